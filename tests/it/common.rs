use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use serde_json::Value;
use trailkeep::config::Config;
use trailkeep::http::state::AppState;
use trailkeep::keys::Scopes;

/// The in-process app under test (what `TestServer::app` returns).
pub trait TestApp: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {}
impl<S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> TestApp for S {}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub state: web::Data<AppState>,
    pub admin: String,
    _writer: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A server whose test configuration is adjusted by `adjust` first.
    pub fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.self_audit = false;
        adjust(&mut config);
        let opened = trailkeep::server::open(config).unwrap();
        Self { admin: opened.bootstrap_key.unwrap(), state: opened.state, dir, _writer: Some(opened.writer_thread) }
    }

    pub fn key(&self, scopes: &[&str], workspaces: &[&str]) -> String {
        let conn = trailkeep::store::open_rw(self.dir.path()).unwrap();
        let scopes = Scopes::parse_list(scopes).unwrap();
        let ws: Vec<String> = workspaces.iter().map(|s| s.to_string()).collect();
        trailkeep::keys::create_key(&conn, "test", scopes, &ws).unwrap().secret
    }

    /// Stops the writer (as a shutdown does) and returns the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.state.writer.stop().await;
        let writer = self._writer.take();
        let Self { dir, state, .. } = self;
        drop(state);
        if let Some(w) = writer {
            w.join().unwrap();
        }
        dir
    }

    pub async fn app(&self) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
        test::init_service(App::new().app_data(self.state.clone()).configure(trailkeep::http::configure)).await
    }
}

pub async fn call(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = match method {
        "GET" => test::TestRequest::get(),
        "PUT" => test::TestRequest::put(),
        "DELETE" => test::TestRequest::delete(),
        _ => test::TestRequest::post(),
    }
    .uri(path)
    .insert_header(("content-type", "application/json"))
    .set_payload(body.to_string());
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let bytes = test::read_body(resp).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub fn h2o_event(resource: &str) -> Value {
    serde_json::json!({
        "eventTime": "2025-07-02T10:00:00.123456+00:00", "eventSource": "h2oai-test",
        "action": "actions/test/things/CREATE", "readOnly": false,
        "principal": "users/a2b3b8a6-05c6-47d1-8ae1-774113404975", "sourceIpAddress": "10.0.0.1",
        "status": {"code": 0, "message": ""}, "resource": resource,
        "requestParameters": {"p": "v"}, "userAgent": "ua/1.0", "metadata": {"k_1": "v1"}, "type": "TYPE_SYSTEM"
    })
}

pub fn uuid4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST /pangea/v1/search` with `body`; asserts 200 and returns the `result` object.
pub async fn pangea_search(app: &impl TestApp, key: &str, body: Value) -> Value {
    let (st, body) = call(app, "POST", "/pangea/v1/search", Some(key), &body.to_string()).await;
    assert_eq!(st, 200, "{body}");
    body["result"].clone()
}
