//! The Pangea Secure Audit Log dialect under `/pangea`.
use actix_web::web;

#[derive(Default)]
pub struct PangeaState {}

pub fn configure(_cfg: &mut web::ServiceConfig) {}
