//! `trailkeep serve --tls-cert --tls-key` as a process: HTTPS over TLS 1.2 and 1.3 only (a TLS 1.1
//! hello and plain HTTP are refused), `https` in the URLs it builds, and SIGHUP swapping the
//! certificate for new connections while open ones keep working; a bad new pair keeps the old one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion};

/// A test certificate authority issuing `localhost` certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM, plus the certificate's DER to compare with what is served.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "trailkeep test CA");
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn issue(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert =
            CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }

    fn client(&self, version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.as_ref().der().clone()).unwrap();
        #[allow(deprecated)] // ring, as the server uses
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every connection does a full handshake: a resumed session names the certificate of the
        // session it resumes, not the one served now.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

fn write_pair(dir: &Path, leaf: &Leaf, key_of: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &key_of.key_pem).unwrap();
    (cert, key)
}

/// A running `serve` and the lines of its log (stderr), collected as they come.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(data: &Path, tls: Option<(&Path, &Path)>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .env("MALLOC_ARENA_MAX", "2")
            .env("TRAILKEEP_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let prefix = format!("listening on {scheme}://127.0.0.1:");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = out.by_ref().map_while(Result::ok).find_map(|l| l.strip_prefix(&prefix).map(|p| p.parse().unwrap()));
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {prefix:?} line; log: {:?}", log.lock().unwrap());
        };
        std::thread::spawn(move || out.for_each(drop));
        Self { child, port, log }
    }

    fn signal(&self, name: &str) {
        assert!(
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap().success()
        );
    }

    /// Waits until the log has `n` lines containing `needle` (the server logs each reload).
    fn wait_for_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.log_lines(needle).len() < n {
            assert!(Instant::now() < deadline, "no {needle:?} in the log: {:?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    fn stop(mut self) {
        self.signal("TERM");
        assert!(self.child.wait().unwrap().success(), "log: {:?}", self.log.lock().unwrap());
    }

    fn tls(&self, config: &Arc<ClientConfig>) -> Tls {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let conn = ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        let mut tls = Tls { stream: StreamOwned::new(conn, tcp), port: self.port };
        while tls.stream.conn.is_handshaking() {
            tls.stream.conn.complete_io(&mut tls.stream.sock).unwrap();
        }
        tls
    }
}

/// One TLS connection carrying keep-alive HTTP/1.1 requests.
struct Tls {
    stream: StreamOwned<ClientConnection, TcpStream>,
    port: u16,
}

impl Tls {
    fn get(&mut self, path: &str) -> (u16, String) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: keep-alive\r\n\r\n", self.port);
        self.stream.write_all(req.as_bytes()).unwrap();
        read_response(&mut self.stream)
    }

    fn served_cert(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().unwrap()[0].clone()
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body.
fn read_response(r: &mut impl Read) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        r.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// A TLS ClientHello without the `supported_versions` extension, so `legacy_version` is the
/// highest version offered; ECDHE-ECDSA suites usable by TLS 1.0–1.2 (GCM and CBC).
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let ext = |ty: u16, body: &[u8]| [&ty.to_be_bytes()[..], &(body.len() as u16).to_be_bytes(), body].concat();
    let extensions = [
        ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]), // supported_groups: x25519, secp256r1
        ext(0x000b, &[1, 0]),                         // ec_point_formats: uncompressed
        ext(0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]), // signature_algorithms
        ext(0x0000, &[0, 12, 0, 0, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't']), // server_name
    ]
    .concat();
    let suites: &[u8] = &[0xc0, 0x2b, 0xc0, 0x2c, 0xc0, 0x09, 0xc0, 0x0a]; // ECDHE_ECDSA AES-GCM, AES-CBC
    let mut body = version.to_vec();
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend((suites.len() as u16).to_be_bytes());
    body.extend(suites);
    body.extend([1, 0]); // compression: null
    body.extend((extensions.len() as u16).to_be_bytes());
    body.extend(extensions);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    record.extend(hs);
    record
}

/// The first TLS record the server answers `hello` with: (content type, first two body bytes).
fn first_record(port: u16, hello: &[u8]) -> (u8, [u8; 2]) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(hello).unwrap();
    let mut header = [0u8; 7];
    tcp.read_exact(&mut header).unwrap();
    (header[0], [header[5], header[6]])
}

#[test]
fn https_speaks_tls_1_2_and_1_3_only_and_builds_https_urls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let leaf = ca.issue();
    let (cert, key) = write_pair(dir.path(), &leaf, &leaf);
    let server = Server::start(&dir.path().join("data"), Some((&cert, &key)));

    let suites: Vec<_> = {
        #[allow(deprecated)]
        let p = rustls::crypto::ring::default_provider();
        p.cipher_suites.iter().map(|s| s.suite()).collect()
    };
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut c = server.tls(&ca.client(version));
        assert_eq!(c.get("/healthz").0, 200);
        assert_eq!(c.stream.conn.protocol_version(), Some(version.version));
        let suite = c.stream.conn.negotiated_cipher_suite().unwrap().suite();
        assert!(suites.contains(&suite), "{suite:?} is one of rustls' default suites");
        assert_eq!(c.served_cert(), leaf.der);

        let (status, body) = c.get("/.well-known/openid-configuration");
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let base = format!("https://localhost:{}", server.port);
        assert_eq!(doc["issuer"], base.as_str(), "{doc}");
        assert_eq!(doc["token_endpoint"], format!("{base}/oauth/token"), "{doc}");
        let (_, body) = c.get("/.ai.h2o.cloud.discovery/v1/environment");
        let env: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(env["environment"]["issuerUrl"], base.as_str(), "{env}");
        assert_eq!(env["environment"]["h2oCloudEnvironment"], base.as_str(), "{env}");
    }

    // The same hello the server answers with a ServerHello at TLS 1.2 gets an alert at TLS 1.1.
    let (content_type, _) = first_record(server.port, &client_hello([3, 3]));
    assert_eq!(content_type, 0x16, "handshake record (ServerHello) for a TLS 1.2 hello");
    let (content_type, alert) = first_record(server.port, &client_hello([3, 2]));
    assert_eq!((content_type, alert), (0x15, [2, 70]), "fatal protocol_version alert for a TLS 1.1 hello");

    // Plain HTTP on the HTTPS port: no HTTP response.
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP got {:?}", String::from_utf8_lossy(&answer));

    assert_eq!(server.tls(&ca.client(&rustls::version::TLS13)).get("/healthz").0, 200, "still serving");
    server.stop();
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (a, b, c) = (ca.issue(), ca.issue(), ca.issue());
    let (cert, key) = write_pair(dir.path(), &a, &a);
    let server = Server::start(&dir.path().join("data"), Some((&cert, &key)));
    let client = ca.client(&rustls::version::TLS13);

    let mut before = server.tls(&client);
    assert_eq!(before.get("/healthz").0, 200);
    assert_eq!(before.served_cert(), a.der);

    write_pair(dir.path(), &b, &b);
    server.signal("HUP");
    server.wait_for_log("SIGHUP: TLS certificate reloaded", 1);
    assert_eq!(before.get("/healthz").0, 200, "the connection opened before the reload keeps working");
    assert_eq!(before.served_cert(), a.der);
    let mut after = server.tls(&client);
    assert_eq!(after.get("/healthz").0, 200);
    assert_eq!(after.served_cert(), b.der, "a new connection gets the new certificate");

    // A new certificate with the wrong key, then a missing key file: both refused, B stays.
    write_pair(dir.path(), &c, &b);
    server.signal("HUP");
    server.wait_for_log("TLS certificate not reloaded", 1);
    std::fs::remove_file(&key).unwrap();
    server.signal("HUP");
    server.wait_for_log("TLS certificate not reloaded", 2);
    let failures = server.log_lines("TLS certificate not reloaded");
    assert!(failures[0].contains("does not belong to the first certificate"), "{failures:?}");
    assert!(failures[1].contains("cannot read the TLS private key file"), "{failures:?}");
    let secret = b.key_pem.lines().nth(1).unwrap();
    assert!(server.log.lock().unwrap().iter().all(|l| !l.contains(secret)), "key material in the log");

    let mut later = server.tls(&client);
    assert_eq!(later.get("/healthz").0, 200);
    assert_eq!(later.served_cert(), b.der, "a failed reload keeps the previous certificate");
    assert_eq!(before.get("/healthz").0, 200);
    assert_eq!(after.get("/healthz").0, 200);
    server.stop();
}

#[test]
fn sighup_without_tls_keeps_serving_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    server.signal("HUP");
    server.wait_for_log("SIGHUP: nothing to reload (TLS is off)", 1);
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.write_all(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut tcp);
    assert_eq!(status, 200);
    assert!(body.contains(r#""issuer":"http://localhost""#), "{body}");
    server.stop();
}

#[test]
fn serve_refuses_unusable_tls_files_and_warns_of_an_expired_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (a, b) = (ca.issue(), ca.issue());
    let (cert, key) = write_pair(dir.path(), &a, &b);
    let data = dir.path().join("data");
    let serve = |extra: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env("MALLOC_ARENA_MAX", "2")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = serve(&["--tls-cert".as_ref(), cert.as_os_str(), "--tls-key".as_ref(), key.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not belong to the first certificate in"), "{err}");
    assert!(!err.contains(b.key_pem.lines().nth(1).unwrap()), "key material in {err}");
    assert!(!data.exists(), "nothing is created before the TLS files are checked");

    let out = serve(&["--tls-cert".as_ref(), cert.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no private key: give --tls-key"), "{err}");

    // An expired certificate is served (clients decide), with a warning.
    let old = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = params.signed_by(&old, &ca.issuer).unwrap();
    let leaf = Leaf { cert_pem: expired.pem(), key_pem: old.serialize_pem(), der: expired.der().clone() };
    let (cert, key) = write_pair(dir.path(), &leaf, &leaf);
    let server = Server::start(&data, Some((&cert, &key)));
    server.wait_for_log("the TLS certificate expired at 2002-01-01T00:00:00Z", 1);
    server.stop();
}

/// The URLs the server builds say `https` with TLS on, even if a forwarding header says otherwise
/// (in-process: the configuration alone decides; the files are read only by `run`).
#[actix_web::test]
async fn with_tls_on_built_urls_are_https_whatever_the_forwarding_headers_say() {
    let tls = trailkeep::config::TlsFiles { cert: "/unused/cert.pem".into(), key: "/unused/key.pem".into() };
    let server = crate::common::TestServer::with_config(|c| c.tls = Some(tls));
    let app = server.app().await;
    let req = actix_web::test::TestRequest::get()
        .uri("/.well-known/openid-configuration")
        .insert_header(("host", "audit.example.com"))
        .insert_header(("x-forwarded-proto", "http"))
        .to_request();
    let doc: serde_json::Value = actix_web::test::call_and_read_body_json(&app, req).await;
    assert_eq!(doc["issuer"], "https://audit.example.com", "{doc}");
    assert_eq!(doc["token_endpoint"], "https://audit.example.com/oauth/token", "{doc}");

    let plain = crate::common::TestServer::new();
    let app = plain.app().await;
    let req = actix_web::test::TestRequest::get()
        .uri("/.well-known/openid-configuration")
        .insert_header(("host", "audit.example.com"))
        .to_request();
    let doc: serde_json::Value = actix_web::test::call_and_read_body_json(&app, req).await;
    assert_eq!(doc["issuer"], "http://audit.example.com", "{doc}");
}
