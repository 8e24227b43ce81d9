//! OpenAPI descriptions of the H2O wire shapes (`http/openapi.rs` gathers them). The handlers
//! build and parse their JSON by hand; these types are never constructed.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// The H2O event type, always as its name.
#[derive(ToSchema)]
pub enum H2oEventType {
    #[serde(rename = "TYPE_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "TYPE_API")]
    Api,
    #[serde(rename = "TYPE_SYSTEM")]
    System,
}

/// `status` of an H2O event: a google.rpc.Code number and a message.
#[derive(ToSchema)]
pub struct H2oEventStatus {
    /// google.rpc.Code (int32), e.g. 0 = OK, 3 = INVALID_ARGUMENT.
    #[schema(example = 0)]
    pub code: i32,
    #[schema(nullable = false, max_length = 8192)]
    pub message: Option<String>,
}

/// An event as sent to `POST /v1/events` and inside `:batchCreate` requests. `null` is the same
/// as an absent key; unknown keys and the read-only fields of `H2oEvent` are ignored.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "eventTime": "2025-07-02T10:00:00.123456+00:00", "eventSource": "h2oai-test",
    "action": "actions/test/things/CREATE", "readOnly": false,
    "principal": "users/a2b3b8a6-05c6-47d1-8ae1-774113404975", "sourceIpAddress": "10.0.0.1",
    "status": {"code": 0, "message": ""}, "resource": "//engine-manager/workspaces/w1/daiEngines/e1",
    "requestParameters": {"p": "v"}, "userAgent": "ua/1.0", "metadata": {"k_1": "v1"}, "type": "TYPE_SYSTEM"
}))]
pub struct H2oEventInput {
    /// When the event occurred: RFC 3339 with a UTC offset (`Z` or `±HH:MM`).
    #[schema(format = DateTime)]
    pub event_time: String,
    /// The emitting service, e.g. `h2oai-enginemanager-server`. Non-empty.
    #[schema(min_length = 1, max_length = 8192)]
    pub event_source: String,
    /// e.g. `actions/enginemanager/daiEngines/CREATE`. Non-empty.
    #[schema(min_length = 1, max_length = 8192)]
    pub action: String,
    /// Absent means `false`.
    pub read_only: Option<bool>,
    /// Who acted, e.g. `users/<uuid>`. Non-empty.
    #[schema(min_length = 1, max_length = 8192)]
    pub principal: String,
    /// Private addresses are stored as `private` (unless redaction is disabled). Non-empty.
    #[schema(min_length = 1, max_length = 8192)]
    pub source_ip_address: String,
    /// Full resource name; its first `workspaces/<id>` pair becomes the event's workspace.
    #[schema(max_length = 8192)]
    pub resource: Option<String>,
    /// String map, at most 256 entries.
    pub request_parameters: Option<BTreeMap<String, String>>,
    pub status: Option<H2oEventStatus>,
    #[schema(max_length = 8192)]
    pub user_agent: Option<String>,
    /// String map, at most 256 entries; keys match `^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$`.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Absent means `TYPE_UNSPECIFIED`; numbers are rejected.
    #[serde(rename = "type")]
    pub event_type: Option<H2oEventType>,
    /// `""` or `workspaces/<id>`: overrides the workspace derived from `resource`.
    #[schema(pattern = "^(workspaces/[^/]+)?$")]
    pub workspace_override: Option<String>,
}

/// A stored event in the H2O shape. Every field is present and non-null, except `status`, which
/// is omitted when the event has none.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct H2oEvent {
    /// protojson form: UTC with `Z`, 0/3/6/9 fraction digits.
    #[schema(format = DateTime, example = "2025-07-02T10:00:00.123456Z")]
    pub event_time: String,
    /// `pangea` for events logged through the Pangea dialect.
    pub event_source: String,
    pub action: String,
    pub read_only: bool,
    pub principal: String,
    pub source_ip_address: String,
    /// `events/<eventId>`.
    #[schema(example = "events/b096430b-c7a8-47f2-a129-d9ae58cf454f")]
    pub name: String,
    /// Server ingestion time.
    #[schema(format = DateTime)]
    pub receive_time: String,
    pub resource: String,
    pub request_parameters: BTreeMap<String, String>,
    #[schema(nullable = false)]
    pub status: Option<H2oEventStatus>,
    /// Always `""`.
    pub login_principal: String,
    pub user_agent: String,
    pub metadata: BTreeMap<String, String>,
    /// The effective workspace (`workspaces/<id>` or `""`).
    pub workspace: String,
    #[serde(rename = "type")]
    pub event_type: H2oEventType,
}

/// `POST /v1/events` answer.
#[derive(ToSchema)]
pub struct H2oCreateEventResponse {
    pub event: H2oEvent,
}

/// One item of a batch.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct H2oCreateEventRequest {
    /// A canonical UUIDv4.
    #[schema(format = "uuid")]
    pub event_id: String,
    pub event: H2oEventInput,
}

/// `POST /v1/events:batchCreate` body: at most 1000 requests.
#[derive(ToSchema)]
pub struct H2oBatchCreateRequest {
    #[schema(max_items = 1000)]
    pub requests: Option<Vec<H2oCreateEventRequest>>,
}

/// Created events in request order, and the failed items keyed by their decimal index.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct H2oBatchCreateResponse {
    pub events: Vec<H2oEvent>,
    #[schema(example = json!({"1": {"code": 3, "message": "event_id must be in UUIDv4 format", "details": []}}))]
    pub failed_requests: BTreeMap<String, H2oStatus>,
}

/// Search filter: every set condition must hold. `null`, `{}` and `[]` mean "no condition";
/// `…Regex` values are RE2 patterns matched anywhere in the value (anchor with `^…$`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct H2oSearchFilter {
    /// Inclusive; default `2025-07-01T00:00:00Z`.
    #[schema(format = DateTime)]
    pub start_event_time: Option<String>,
    /// Exclusive; default: the time of the first page.
    #[schema(format = DateTime)]
    pub end_event_time: Option<String>,
    pub event_source_exact: Option<String>,
    pub event_source_regex: Option<String>,
    pub resource_exact: Option<String>,
    pub resource_regex: Option<String>,
    pub read_only: Option<bool>,
    /// Matched against the decimal `status.code`, or `""` for events without status.
    pub status_code_regex: Option<String>,
    pub principal_exact: Option<String>,
    pub principal_regex: Option<String>,
    pub source_ip_address_exact: Option<String>,
    pub source_ip_address_regex: Option<String>,
    pub metadata_exact: Option<BTreeMap<String, String>>,
    pub metadata_regex: Option<BTreeMap<String, String>>,
    pub workspace_exact: Option<String>,
    pub workspace_regex: Option<String>,
    pub action_exact: Option<String>,
    pub action_regex: Option<String>,
    pub include_types: Option<Vec<H2oEventType>>,
    pub exclude_types: Option<Vec<H2oEventType>>,
}

/// `POST /v1/events:search` body (all optional).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"filter": {"workspaceExact": "workspaces/w1"}, "pageSize": 50, "pageToken": ""}))]
pub struct H2oSearchRequest {
    pub filter: Option<H2oSearchFilter>,
    /// 0 or absent: 50; values above 1000 mean 1000.
    #[schema(minimum = 0)]
    pub page_size: Option<i32>,
    /// `""` or absent for the first page, else the `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

/// Newest first.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct H2oSearchResponse {
    pub events: Vec<H2oEvent>,
    /// `""` on the last page.
    pub next_page_token: String,
    /// The scanned window is `[searchedUntilTime, end)`; informational only.
    #[schema(format = DateTime)]
    pub searched_until_time: String,
}

/// grpc-gateway error body (`google.rpc.Status`).
#[derive(ToSchema)]
#[schema(example = json!({"code": 3, "message": "event_id must be in UUIDv4 format", "details": []}))]
pub struct H2oStatus {
    /// google.rpc.Code: 3 invalid argument, 5 not found, 6 already exists, 7 permission denied,
    /// 12 method not allowed, 13 internal, 14 unavailable, 16 unauthenticated.
    pub code: i32,
    pub message: String,
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<serde_json::Value>,
}

/// `GET /version`.
#[derive(ToSchema)]
pub struct H2oVersion {
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// OpenID Provider metadata (only what the H2O login needs).
#[derive(ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub token_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
}

/// `POST /oauth/token` form: the refresh token is an API key.
#[derive(ToSchema)]
pub struct OAuthTokenRequest {
    /// Only `refresh_token` is supported.
    #[schema(example = "refresh_token")]
    pub grant_type: String,
    /// An API key (`tk_…`).
    pub refresh_token: String,
    /// Accepted and ignored.
    pub client_id: Option<String>,
    /// Accepted and ignored.
    pub client_secret: Option<String>,
}

/// A short-lived access token bound to the key (void once the key is revoked).
#[derive(ToSchema)]
pub struct OAuthTokenResponse {
    #[schema(example = "tka_…")]
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// RFC 6749 error.
#[derive(ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    pub error: String,
    pub error_description: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryEnvironment {
    pub h2o_cloud_environment: String,
    pub issuer_url: String,
    #[serde(rename = "h2oCloudPlatformOauth2Scope")]
    pub h2o_cloud_platform_oauth2_scope: String,
    pub h2o_cloud_version: String,
}

#[derive(ToSchema)]
pub struct DiscoveryEnvironmentResponse {
    pub environment: DiscoveryEnvironment,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryService {
    #[schema(example = "services/audit-trail")]
    pub name: String,
    pub display_name: String,
    /// The API base URL, used verbatim by the client.
    pub uri: String,
    pub version: String,
}

/// Never paged: no `nextPageToken`.
#[derive(ToSchema)]
pub struct DiscoveryServicesResponse {
    pub services: Vec<DiscoveryService>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryClient {
    #[schema(example = "clients/platform")]
    pub name: String,
    pub display_name: String,
    #[serde(rename = "oauth2ClientId")]
    pub oauth2_client_id: String,
}

#[derive(ToSchema)]
pub struct DiscoveryClientsResponse {
    pub clients: Vec<DiscoveryClient>,
}

/// Always empty.
#[derive(ToSchema)]
pub struct DiscoveryLinksResponse {
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub links: Vec<serde_json::Value>,
}

/// Always empty.
#[derive(ToSchema)]
pub struct DiscoveryComponentsResponse {
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub components: Vec<serde_json::Value>,
}
