//! OpenAPI descriptions of the Pangea wire shapes (`http/openapi.rs` gathers them). The handlers
//! build and parse their JSON by hand; these types are never constructed.

use std::collections::BTreeMap;

use utoipa::ToSchema;

use crate::http::apidoc::Null;

/// `status` of a successful envelope.
#[derive(ToSchema)]
pub enum PangeaSuccess {
    Success,
}

/// `status` of a 202 envelope.
#[derive(ToSchema)]
pub enum PangeaAccepted {
    Accepted,
}

/// `status` of a validation failure.
#[derive(ToSchema)]
pub enum PangeaValidationStatus {
    ValidationError,
}

/// `status` of the other failures: `Unauthorized` (401 missing or invalid token, 403 key lacks
/// the scope), `NotFound` and `TreeNotFound` (404), `BadOffset` (400), `ServiceNotAvailable` (503).
#[derive(ToSchema)]
pub enum PangeaFailureStatus {
    Unauthorized,
    NotFound,
    BadOffset,
    TreeNotFound,
    ServiceNotAvailable,
}

/// Pangea's response envelope of a success: exactly these six keys.
#[derive(ToSchema)]
pub struct PangeaResponse<R> {
    /// `prq_` + 32 characters `[a-z0-9]`; also sent as `x-request-id`.
    #[schema(example = "prq_x6fdiizbon6j3bsdvnpmwxsz2aan7fqd")]
    pub request_id: String,
    /// RFC 3339 UTC in milliseconds.
    #[schema(example = "2022-09-21T17:24:33.105Z")]
    pub request_time: String,
    #[schema(example = "2022-09-21T17:24:34.007Z")]
    pub response_time: String,
    pub status: PangeaSuccess,
    pub summary: String,
    pub result: R,
}

/// Pangea's envelope of a 202: the work is done or queued; poll `result.location`.
#[derive(ToSchema)]
pub struct PangeaAcceptedResponse {
    #[schema(example = "prq_x6fdiizbon6j3bsdvnpmwxsz2aan7fqd")]
    pub request_id: String,
    pub request_time: String,
    pub response_time: String,
    pub status: PangeaAccepted,
    #[schema(example = "Request accepted; poll request/prq_x6fdiizbon6j3bsdvnpmwxsz2aan7fqd for the result")]
    pub summary: String,
    pub result: PangeaAcceptedResult,
}

/// Pangea's envelope of a validation failure (HTTP 400, 413 or 415).
#[derive(ToSchema)]
pub struct PangeaValidationErrorResponse {
    pub request_id: String,
    pub request_time: String,
    pub response_time: String,
    pub status: PangeaValidationStatus,
    #[schema(example = "There was 1 error(s) in the given payload.")]
    pub summary: String,
    pub result: PangeaValidationErrors,
}

/// Pangea's envelope of any other failure; `result` is `null`.
#[derive(ToSchema)]
pub struct PangeaErrorResponse {
    pub request_id: String,
    pub request_time: String,
    pub response_time: String,
    pub status: PangeaFailureStatus,
    #[schema(example = "Not authorized to access this resource")]
    pub summary: String,
    #[schema(inline)]
    pub result: Null,
}

/// A 400 of `v1/results`: a validation failure, or `BadOffset` (offset beyond the result set).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PangeaResultsBadRequest {
    Validation(PangeaValidationErrorResponse),
    BadOffset(PangeaErrorResponse),
}

/// The result of the original request: a `v2/log_async` bulk result, or `{}` for an export.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PangeaPollResult {
    LogBulk(PangeaLogBulkResult),
    Export(Empty),
}

/// One validation error: a Pangea error code, a message and the JSON pointer into the request.
#[derive(ToSchema)]
pub struct PangeaValidationError {
    #[schema(example = "FieldRequired")]
    pub code: String,
    #[schema(example = "'message' is a required property")]
    pub detail: String,
    /// JSON pointer into the request body.
    #[schema(example = "/event/message")]
    pub source: String,
    #[schema(nullable = false)]
    pub path: Option<String>,
}

#[derive(ToSchema)]
pub struct PangeaValidationErrors {
    #[schema(min_items = 1)]
    pub errors: Vec<PangeaValidationError>,
}

/// A standard Pangea event (the default config). All values are strings (an object given for
/// `message`, `new` or `old` is stored as its canonical JSON string); `timestamp` is stored
/// verbatim. In a config with a custom schema the event has that schema's fields instead
/// (`POST /pangea/v1/schema`): strings, text, integers, booleans and datetimes; unknown fields are
/// refused.
#[derive(ToSchema)]
#[schema(example = json!({"message": "hello", "actor": "alice", "action": "login", "status": "success"}))]
pub struct PangeaEvent {
    #[schema(max_length = 32766)]
    pub message: String,
    #[schema(nullable = false, max_length = 128)]
    pub actor: Option<String>,
    #[schema(nullable = false, max_length = 32)]
    pub action: Option<String>,
    #[schema(nullable = false, max_length = 32766)]
    pub new: Option<String>,
    #[schema(nullable = false, max_length = 32766)]
    pub old: Option<String>,
    #[schema(nullable = false, max_length = 128)]
    pub source: Option<String>,
    #[schema(nullable = false, max_length = 32)]
    pub status: Option<String>,
    #[schema(nullable = false, max_length = 128)]
    pub target: Option<String>,
    /// A key limited to workspaces may only log its own tenants.
    #[schema(nullable = false, max_length = 128)]
    pub tenant_id: Option<String>,
    /// RFC 3339, offset optional; stored as given.
    #[schema(nullable = false, max_length = 128, format = DateTime)]
    pub timestamp: Option<String>,
}

/// A stored event as it appears in envelopes: the standard fields, stored verbatim, and for events
/// that came in through the H2O dialect the H2O-only fields as extra keys (see the README's field
/// mapping).
#[derive(ToSchema)]
pub struct PangeaStoredEvent {
    pub message: String,
    #[schema(nullable = false)]
    pub actor: Option<String>,
    #[schema(nullable = false)]
    pub action: Option<String>,
    #[schema(nullable = false)]
    pub new: Option<String>,
    #[schema(nullable = false)]
    pub old: Option<String>,
    #[schema(nullable = false)]
    pub source: Option<String>,
    /// H2O events: the decimal `status.code`.
    #[schema(nullable = false)]
    pub status: Option<String>,
    #[schema(nullable = false)]
    pub target: Option<String>,
    #[schema(nullable = false)]
    pub tenant_id: Option<String>,
    #[schema(nullable = false)]
    pub timestamp: Option<String>,
    /// H2O events only.
    #[schema(nullable = false, format = "uuid")]
    pub event_id: Option<String>,
    /// H2O events only.
    #[schema(nullable = false)]
    pub event_source: Option<String>,
    /// H2O events only.
    #[schema(nullable = false)]
    pub read_only: Option<bool>,
    /// H2O events only: `TYPE_UNSPECIFIED`, `TYPE_API` or `TYPE_SYSTEM`.
    #[serde(rename = "type")]
    #[schema(nullable = false)]
    pub event_type: Option<String>,
    /// H2O events only.
    #[schema(nullable = false)]
    pub user_agent: Option<String>,
    /// H2O events only.
    #[schema(nullable = false)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// H2O events only.
    #[schema(nullable = false)]
    pub request_parameters: Option<BTreeMap<String, String>>,
    /// H2O events with a status only.
    #[schema(nullable = false)]
    pub status_message: Option<String>,
}

/// The hashed record: `hash` = SHA-256 of its canonical JSON. Null-valued keys are never emitted.
#[derive(ToSchema)]
pub struct PangeaEnvelope {
    pub event: PangeaStoredEvent,
    /// Exactly `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    #[schema(format = DateTime, example = "2024-05-01T12:00:01.000001Z")]
    pub received_at: String,
    /// Client signature, present only if one was sent.
    #[schema(nullable = false)]
    pub signature: Option<String>,
    /// Client public key, present only if one was sent.
    #[schema(nullable = false)]
    pub public_key: Option<String>,
}

/// `POST /pangea/v1/log` body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": {"message": "hello"}}))]
pub struct PangeaLogRequest {
    pub event: PangeaEvent,
    /// Default `false`: include the envelope and the proofs.
    pub verbose: Option<bool>,
    /// Base64 Ed25519 signature of the canonical event.
    #[schema(max_length = 1024)]
    pub signature: Option<String>,
    #[schema(max_length = 1024)]
    pub public_key: Option<String>,
    /// An earlier `unpublished_root`: ask for a consistency proof from it.
    #[schema(max_length = 64)]
    pub prev_root: Option<String>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// `POST /pangea/v1/log` result.
#[derive(ToSchema)]
pub struct PangeaLogResult {
    /// Lowercase hex SHA-256 of the canonical envelope.
    #[schema(
        min_length = 64,
        max_length = 64,
        example = "9c9c3b5a627cce035d517c14c10779656e900532bf6e76a5d2c69148e45fdb8d"
    )]
    pub hash: String,
    /// Verbose only.
    #[schema(nullable = false)]
    pub envelope: Option<PangeaEnvelope>,
    /// Verbose only: root of the unpublished tree right after this append.
    #[schema(nullable = false)]
    pub unpublished_root: Option<String>,
    /// Verbose only: `l:<hex>,r:<hex>,…` from `hash` to `unpublished_root`.
    #[schema(nullable = false)]
    pub membership_proof: Option<String>,
    /// Verbose, with a known `prev_root`: from `prev_root` to `unpublished_root`.
    #[schema(nullable = false)]
    pub consistency_proof: Option<Vec<String>>,
}

/// One item of `v2/log`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PangeaLogItem {
    pub event: PangeaEvent,
    #[schema(max_length = 1024)]
    pub signature: Option<String>,
    #[schema(max_length = 1024)]
    pub public_key: Option<String>,
}

/// `POST /pangea/v2/log` and `v2/log_async` body: 1–1000 events, validated all or nothing.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [{"event": {"message": "one"}}, {"event": {"message": "two"}}]}))]
pub struct PangeaLogBulkRequest {
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<PangeaLogItem>,
    pub verbose: Option<bool>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

#[derive(ToSchema)]
pub struct PangeaLogBulkItem {
    #[schema(min_length = 64, max_length = 64)]
    pub hash: String,
    /// Verbose only.
    #[schema(nullable = false)]
    pub envelope: Option<PangeaEnvelope>,
}

/// `POST /pangea/v2/log` result, in request order.
#[derive(ToSchema)]
pub struct PangeaLogBulkResult {
    pub results: Vec<PangeaLogBulkItem>,
}

/// One Auth0 log-streaming item: `data` becomes one standard event.
#[derive(ToSchema)]
pub struct Auth0Log {
    pub log_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// `POST /pangea/v1/log_stream` body (Auth0 log streaming): 1–1000 logs.
#[derive(ToSchema)]
pub struct PangeaLogStreamRequest {
    #[schema(min_items = 1, max_items = 1000)]
    pub logs: Vec<Auth0Log>,
}

/// An empty object.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `202` result: poll `location` (`GET /pangea/request/{request_id}`).
#[derive(ToSchema)]
pub struct PangeaAcceptedResult {
    #[schema(example = 60)]
    pub ttl_mins: i64,
    #[schema(example = 0)]
    pub retry_counter: i64,
    pub location: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PangeaOrder {
    Asc,
    Desc,
}

/// The default config's sort fields (Pangea's); a custom config's `order_by` is any of its
/// searchable fields.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PangeaOrderBy {
    Actor,
    Action,
    Message,
    ReceivedAt,
    Source,
    Status,
    Target,
    Timestamp,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PangeaFormat {
    Csv,
    Json,
}

/// Per field, the event's value must equal one of the listed values; fields are ANDed; `[]` is
/// no restriction.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PangeaSearchRestriction {
    pub actor: Option<Vec<String>>,
    pub action: Option<Vec<String>>,
    pub source: Option<Vec<String>>,
    pub status: Option<Vec<String>>,
    pub target: Option<Vec<String>>,
    pub tenant_id: Option<Vec<String>>,
}

/// `POST /pangea/v1/search` body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"query": "actor:alice", "order": "desc", "limit": 20}))]
pub struct PangeaSearchRequest {
    /// Case-sensitive terms, all of which must match: `value`, `field:value` (contains),
    /// `field=value` (equals), `-term`, `"quoted value"`, `AND`, `OR`, parentheses, and
    /// `timestamp`/`received_at` comparisons with `>`, `<`, `>=`, `<=`.
    #[schema(max_length = 4096, example = "actor:\"Jane Doe\" target:cosmos")]
    pub query: Option<String>,
    /// Default `desc`.
    pub order: Option<PangeaOrder>,
    /// Default `received_at`; in a config with a custom schema, any of its searchable fields.
    pub order_by: Option<PangeaOrderBy>,
    /// Inclusive, on `received_at`: RFC 3339 (naive = UTC) or a duration before now (`7d`,
    /// `120min`). Default: 14 days ago.
    #[schema(max_length = 128, example = "7d")]
    pub start: Option<String>,
    /// Inclusive; same formats. Default: no limit.
    #[schema(max_length = 128)]
    pub end: Option<String>,
    /// Events in the first page, 1–1000, default 20.
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Caps `count`; 1–10000, default 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub max_results: Option<i64>,
    pub search_restriction: Option<PangeaSearchRestriction>,
    /// Default `true`: proofs, `leaf_index` and roots.
    pub verbose: Option<bool>,
    /// Accepted and ignored.
    pub return_context: Option<bool>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// One search hit.
#[derive(ToSchema)]
pub struct PangeaSearchEvent {
    pub envelope: PangeaEnvelope,
    #[schema(min_length = 64, max_length = 64)]
    pub hash: String,
    /// Whether a signed root covers the event.
    pub published: bool,
    /// Verbose and published only: the index of the event's buffer in the tree.
    #[schema(nullable = false)]
    pub leaf_index: Option<u64>,
    /// Verbose only: against `root` if published, else `unpublished_root`.
    #[schema(nullable = false)]
    pub membership_proof: Option<String>,
}

/// A published (signed) root of the Merkle tree.
#[derive(ToSchema)]
pub struct PangeaRoot {
    /// Stable 64-hex name of the tree.
    pub tree_name: String,
    #[schema(minimum = 1)]
    pub size: u64,
    #[schema(min_length = 64, max_length = 64)]
    pub root_hash: String,
    #[schema(format = DateTime)]
    pub published_at: String,
    /// `urn:audit-root:<tree_name>:<size>`.
    pub url: String,
    /// Size ≥ 2: consistency proof from size − 1.
    #[schema(nullable = false)]
    pub consistency_proof: Option<Vec<String>>,
    /// Base64 Ed25519 signature over the canonical `{published_at, root_hash, size, tree_name}`
    /// (`v1/root` only; the server key is at `GET /api/v1/public-key`).
    #[schema(nullable = false)]
    pub signature: Option<String>,
}

#[derive(ToSchema)]
pub struct PangeaUnpublishedRoot {
    pub tree_name: String,
    pub size: u64,
    #[schema(min_length = 64, max_length = 64)]
    pub root_hash: String,
}

/// `POST /pangea/v1/search` result; the matching list and roots are frozen for `results`.
#[derive(ToSchema)]
pub struct PangeaSearchResult {
    /// `pas_` + 32 characters.
    #[schema(example = "pas_sqilrhruwu54uggihqj3aie24wrctakr")]
    pub id: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// min(matches, `max_results`).
    pub count: u64,
    pub events: Vec<PangeaSearchEvent>,
    /// Verbose, if anything is published.
    #[schema(nullable = false)]
    pub root: Option<PangeaRoot>,
    /// Verbose.
    #[schema(nullable = false)]
    pub unpublished_root: Option<PangeaUnpublishedRoot>,
}

/// `POST /pangea/v1/results` body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "pas_sqilrhruwu54uggihqj3aie24wrctakr", "limit": 20, "offset": 0}))]
pub struct PangeaResultsRequest {
    /// A search id.
    #[schema(max_length = 128)]
    pub id: String,
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[schema(minimum = 0)]
    pub offset: Option<i64>,
    /// Fail unless the search used exactly this restriction.
    pub assert_search_restriction: Option<PangeaSearchRestriction>,
    pub return_context: Option<bool>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// `POST /pangea/v1/results` result.
#[derive(ToSchema)]
pub struct PangeaResultsResult {
    pub count: u64,
    pub events: Vec<PangeaSearchEvent>,
    #[schema(nullable = false)]
    pub root: Option<PangeaRoot>,
    #[schema(nullable = false)]
    pub unpublished_root: Option<PangeaUnpublishedRoot>,
}

/// `POST /pangea/v1/root` body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PangeaRootRequest {
    /// Default: the latest published root.
    #[schema(minimum = 1)]
    pub tree_size: Option<i64>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// `POST /pangea/v1/root` result (as the SDKs read it: under `data`).
#[derive(ToSchema)]
pub struct PangeaRootResult {
    pub data: PangeaRoot,
}

/// `POST /pangea/v1/download_results` body: exactly one of `result_id` and `request_id`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"result_id": "pas_sqilrhruwu54uggihqj3aie24wrctakr", "format": "csv"}))]
pub struct PangeaDownloadRequest {
    /// A search id.
    #[schema(max_length = 128)]
    pub result_id: Option<String>,
    /// An export's request id.
    #[schema(max_length = 128)]
    pub request_id: Option<String>,
    /// Default `csv`.
    pub format: Option<PangeaFormat>,
    pub return_context: Option<bool>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// A capability URL (no key needed) and its expiry.
#[derive(ToSchema)]
pub struct PangeaDownloadResult {
    /// `<base>/download/<token>/trailkeep-results.<csv|json>.gz`.
    pub dest_url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST /pangea/v1/export` body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"format": "json", "start": "7d", "order": "asc"}))]
pub struct PangeaExportRequest {
    pub format: Option<PangeaFormat>,
    /// RFC 3339 or a duration before now.
    #[schema(max_length = 128)]
    pub start: Option<String>,
    #[schema(max_length = 128)]
    pub end: Option<String>,
    pub order_by: Option<PangeaOrderBy>,
    pub order: Option<PangeaOrder>,
    pub verbose: Option<bool>,
    /// The audit config (`pci_…`); else the key's only config, else the default config.
    pub config_id: Option<String>,
}

/// The download route's error body.
#[derive(ToSchema)]
pub struct DownloadError {
    #[schema(example = "not found or expired")]
    pub error: String,
}
