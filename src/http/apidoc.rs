//! Building blocks of the OpenAPI description that every handler's `#[utoipa::path]` uses: the
//! tags, the security scheme's name, the `null` schema and RFC 9457 problem details (the error of
//! the UI and admin routes). `openapi.rs` gathers the handlers into the document.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// The OpenAPI tags: one per route group.
pub const TAG_H2O: &str = "H2O Audit Trail";
pub const TAG_PANGEA: &str = "Pangea Secure Audit Log";
pub const TAG_UI: &str = "UI & admin";
pub const TAG_OPS: &str = "Operations";

/// The name of the bearer security scheme used by every authenticated operation.
pub const BEARER: &str = "api_key";

/// `{"type": "null"}`: the `result` of Pangea error envelopes.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

/// RFC 9457 problem details, plus a machine-readable `code`.
#[derive(ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unauthorized", "status": 401,
    "code": "invalid_credentials", "detail": "a valid API key is required"}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
}
