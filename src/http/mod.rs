//! HTTP: the routes of the two dialects (`h2o`, `pangea`), the admin API (`admin`), the
//! replication state (`replication`), the UI routes (`ui`), the OpenAPI document (`openapi`) and metrics (`observe`), over shared handler
//! infrastructure (`state`, `auth`, `authlimit`, `body`, `apidoc`). This file only registers the
//! routes: `configure` is the app factory shared by the server and the tests.

pub mod admin;
pub mod aggregate;
pub mod apidoc;
pub mod auth;
pub mod authlimit;
pub mod body;
pub mod h2o;
pub mod integrity;
pub mod observe;
pub mod openapi;
pub mod pangea;
pub mod replication;
pub mod state;
pub mod ui;

use actix_web::web;

/// Registers every route: H2O at the root, Pangea under `/pangea`, the OpenAPI document and its
/// docs page, UI at `/` (its fallback last). Every route must be documented in `openapi`
/// (`tests/it/openapi.rs` fails otherwise).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(observe::metrics_endpoint));
    pangea::configure(cfg);
    h2o::configure(cfg);
    admin::configure(cfg);
    aggregate::configure(cfg);
    integrity::configure(cfg);
    replication::configure(cfg);
    openapi::configure(cfg);
    ui::configure(cfg);
}
