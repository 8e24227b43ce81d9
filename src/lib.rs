//! trailkeep: a self-hosted, tamper-evident audit trail server speaking the H2O Audit Trail and
//! Pangea Secure Audit Log APIs over one log. See ARCHITECTURE.md for the map.

pub mod backup;
pub mod cli;
pub mod config;
pub mod configs;
pub mod datadir;
pub mod event;
pub mod export;
pub mod http;
pub mod keys;
pub mod keystore;
pub mod ledger;
pub mod logging;
pub mod replication;
pub mod search;
pub mod server;
pub mod serverkeys;
pub mod store;
pub mod time;
pub mod tls;
pub mod verify;
