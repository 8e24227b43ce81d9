//! In-process integration tests: the app factory over a temp-dir database, no sockets.

mod aggregate;
mod authlimit;
mod checkpoint;
mod common;
mod fulltext;
mod h2o;
mod integrity;
mod keystore;
mod layering;
mod ledger;
mod openapi;
mod pangea;
mod process;
mod props;
mod replication;
mod retention;
mod substring;
mod tls;
