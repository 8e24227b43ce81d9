//! Replication to object storage: every committed event is copied, exactly once, into
//! time-partitioned gzipped JSON Lines objects of an S3-compatible bucket or a local directory,
//! with the material that lets the archive prove itself (`layout`); the archive is checked with no
//! database (`archive::verify`) and a data directory is rebuilt from it (`restore`).
//!
//! The uploader (`uploader`) runs on a thread of its own with its own async runtime: it reads
//! committed rows from the reader pool, never from the writer, and keeps its watermark in the
//! database (`store::replication`); ingest never waits for object storage.

pub mod archive;
pub mod columns;
pub mod configs;
pub mod layout;
pub mod restore;
pub mod uploader;

use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;

use crate::config::TargetKind;

/// A replication target: `s3://bucket[/prefix]` or `file:///absolute/path` (the URL grammar is
/// `config::ReplicationTarget`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: String,
    kind: TargetKind,
}

impl Target {
    /// Parses a target URL; credentials in it are refused without being repeated.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let t = crate::config::ReplicationTarget::parse(url)?;
        Ok(Self { url: t.url, kind: t.kind })
    }

    /// The normalised URL (no credentials ever): the key of the watermark and what is shown.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store and the prefix under which the archive lives.
    pub fn open(&self) -> anyhow::Result<(Arc<dyn ObjectStore>, ObjPath)> {
        match &self.kind {
            TargetKind::S3 { bucket, prefix } => Ok((Arc::new(s3_store(bucket)?), ObjPath::from(prefix.as_str()))),
            TargetKind::File { root } => {
                std::fs::create_dir_all(root)
                    .with_context(|| format!("cannot create the archive directory {}", root.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| anyhow::anyhow!("cannot open the archive directory: {}", redact(&e.to_string())))?;
                Ok((Arc::new(store), ObjPath::default()))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// rustls' process-wide crypto provider (ring; aws-lc-rs is not built), installed once before
/// the first HTTPS client is made.
pub fn install_tls_provider() {
    // rustls 0.23.48 deprecates ring's provider for its lack of post-quantum key exchange; the
    // alternative, aws-lc-rs, compiles C with cmake (`shared/design/dependencies.md` §3), and S3
    // endpoints negotiate the classical groups ring offers.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let _ = provider.install_default();
}

/// An S3 client from the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`;
/// `object_store` reads each of these names). A custom endpoint gets path-style requests (the
/// default: virtual-hosted style only when asked for). Requests are retried a few times inside
/// the client (backoff with jitter); the uploader retries whole objects for as long as it takes.
fn s3_store(bucket: &str) -> anyhow::Result<object_store::aws::AmazonS3> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
    install_tls_provider();
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
        b = b.with_config(AmazonS3ConfigKey::VirtualHostedStyleRequest, "false");
    }
    b = b
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: std::time::Duration::from_millis(100),
                max_backoff: std::time::Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(30),
        });
    b.build().map_err(|e| anyhow::anyhow!("cannot configure the S3 client: {}", redact(&e.to_string())))
}

/// Removes the values of the secret AWS variables from a message (errors and logs never show
/// them, whatever a library put into its text).
pub fn redact(msg: &str) -> String {
    let mut out = msg.to_string();
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
        if let Some(v) = std::env::var_os(var).and_then(|v| v.into_string().ok())
            && v.len() >= 4
        {
            out = out.replace(&v, "***");
        }
    }
    out
}

/// Why an object-store operation failed, for metrics and the status route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused, reset, timed out, DNS.
    Unreachable,
    /// 503 SlowDown / 429.
    Throttled,
    /// Other 5xx.
    ServerError,
    /// 401/403.
    Denied,
    /// The bucket does not exist (404).
    NotFound,
    /// The target holds another trail's archive.
    Conflict,
    /// The database could not be read.
    Database,
    Other,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Denied => "denied",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Database => "database",
            Self::Other => "other",
        }
    }

    /// Classifies an object-store error (by the HTTP status it carries, else by its kind).
    pub fn of(e: &object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => return Self::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => return Self::Denied,
            _ => {}
        }
        // The client's retry error carries the HTTP status in its text ("status code: 503 …").
        let text = error_chain(e);
        let status = text
            .match_indices("status code: ")
            .filter_map(|(i, m)| text.get(i + m.len()..i + m.len() + 3)?.parse::<u16>().ok())
            .next();
        match status {
            Some(429 | 503) => Self::Throttled,
            Some(401 | 403) => Self::Denied,
            Some(404) => Self::NotFound,
            Some(500..=599) => Self::ServerError,
            Some(_) => Self::Other,
            None if text.contains("SlowDown") => Self::Throttled,
            None if ["error sending request", "connect", "timed out", "Connection", "connection", "dns"]
                .iter()
                .any(|k| text.contains(k)) =>
            {
                Self::Unreachable
            }
            None => Self::Other,
        }
    }
}

/// An error and its sources, one text (secrets removed).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_credentials() {
        let t = Target::parse("s3://bucket/some/prefix/").unwrap();
        assert_eq!(t.url(), "s3://bucket/some/prefix");
        assert_eq!(Target::parse("s3://bucket").unwrap().url(), "s3://bucket");
        assert_eq!(Target::parse("file:///var/archive/").unwrap().url(), "file:///var/archive");
        for bad in ["s3://AKIA:SECRETSECRET@bucket/x", "s3://", "file://relative", "http://x", "s3://b/p?x=1"] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("SECRETSECRET"), "{err}");
        }
    }
}
