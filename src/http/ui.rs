//! The embedded web UI and its JSON routes.
use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
