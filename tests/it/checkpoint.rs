//! The WAL checkpoint thread copies committed pages into the database file while ingest goes
//! on (woken every 16,384 committed events), so the writer's own automatic checkpoint (at 10,000
//! WAL frames) finds little left to copy.

use serde_json::{Value, json};

use crate::common::{TestServer, call, h2o_event, uuid4};

#[actix_web::test]
async fn bulk_ingest_is_checkpointed_in_the_background() {
    let s = TestServer::new();
    let app = s.app().await;
    let db = s.dir.path().join("trailkeep.db");
    let before = std::fs::metadata(&db).unwrap().len();
    for b in 0..17 {
        let requests: Vec<Value> = (0..1000)
            .map(|i| json!({"event": h2o_event(&format!("//svc/things/{b}-{i}")), "eventId": uuid4()}))
            .collect();
        let body = json!({"requests": requests}).to_string();
        let (st, text) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &body).await;
        assert_eq!(st, 200, "{text}");
    }
    // Past 16,384 committed events the checkpoint thread is woken.
    let mut runs = 0;
    for _ in 0..100 {
        runs = s.state.writer.background_checkpoints();
        if runs > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(runs, 1, "one wake-up per 16,384 events");
    assert!(std::fs::metadata(&db).unwrap().len() > before, "pages were copied into the database file");
}
