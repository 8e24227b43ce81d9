//! In-process integration tests: the app factory over a temp-dir database, no sockets.

mod authlimit;
mod checkpoint;
mod common;
mod fulltext;
mod h2o;
mod ledger;
mod openapi;
mod pangea;
mod process;
mod props;
mod retention;
mod substring;
