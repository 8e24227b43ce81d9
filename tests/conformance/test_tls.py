"""HTTPS: the official H2O and Pangea clients against `trailkeep serve --tls-cert --tls-key`.

The test makes its own PKI with `cryptography`: a root CA, an intermediate and an RSA server
certificate for `localhost` and 127.0.0.1 whose PKCS#1 key and chain (server certificate, then the
intermediate, as certbot's fullchain.pem) are what the server is given. The clients trust the root
only through `SSL_CERT_FILE` (ssl/httpx/urllib3) and `REQUESTS_CA_BUNDLE` (requests), as users
would configure them, or through the H2O client's own `ssl_ca_cert` argument.
"""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import h2o_audit_trail
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter
from h2o_audit_trail.model.status import Status

import pangea.services.audit.audit as audit_module
from pangea import verify_audit
from pangea.config import PangeaConfig
from pangea.services import Audit
from pangea.services.audit.models import DownloadFormat
from pangea.services.audit.models import EventVerification as V

from conftest import TrailkeepServer, trailkeep_bin

# Offline: the SDK must not ask Arweave for published roots; it then asks v1/root.
audit_module.get_arweave_published_roots = lambda *a: {}
verify_audit.get_arweave_published_roots = lambda *a: {}

UTC = dt.timezone.utc


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, public_key, signing_key, *, ca: bool, sans=None) -> x509.Certificate:
    now = dt.datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return b.sign(signing_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> SimpleNamespace:
    d: Path = tmp_path_factory.mktemp("tls")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("trailkeep test root", "trailkeep test root", root_key.public_key(), root_key, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("trailkeep test intermediate", "trailkeep test root", inter_key.public_key(), root_key, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = _cert("localhost", "trailkeep test intermediate", leaf_key.public_key(), inter_key, ca=False, sans=sans)
    p = SimpleNamespace(ca=d / "ca.pem", cert=d / "fullchain.pem", key=d / "privkey.pem")
    p.ca.write_bytes(_pem(root))
    p.cert.write_bytes(_pem(leaf) + _pem(inter))
    p.key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    assert p.key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    return p


@pytest.fixture(scope="module")
def tls_server(_client_environment, _tk_tmp_root, pki):
    srv = TrailkeepServer(
        trailkeep_bin(),
        _tk_tmp_root / f"tls-{uuid.uuid4().hex[:12]}",
        ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
    )
    srv.start()
    assert srv.admin_key
    yield srv
    assert srv.stop() == 0, srv.stderr_tail()


@pytest.fixture
def trust_ca(monkeypatch, pki):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))


def _tls_version(port: int, pki, maximum: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.version()


def test_https_only_and_verified_against_the_ca(tls_server, pki, monkeypatch):
    assert tls_server.url.startswith("https://127.0.0.1:"), tls_server.url
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.url}/healthz", timeout=30)  # the public CA bundle does not know it
    assert requests.get(f"{tls_server.url}/healthz", verify=str(pki.ca), timeout=30).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=30)
    assert _tls_version(tls_server.port, pki, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _tls_version(tls_server.port, pki, ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"


def test_discovery_and_oidc_documents_say_https(tls_server, trust_ca):
    base = tls_server.url
    oidc = requests.get(f"{base}/.well-known/openid-configuration", timeout=30).json()
    assert oidc["issuer"] == base and oidc["token_endpoint"] == f"{base}/oauth/token"
    env = requests.get(f"{base}/.ai.h2o.cloud.discovery/v1/environment", timeout=30).json()["environment"]
    assert env["h2oCloudEnvironment"] == base and env["issuerUrl"] == base
    services = requests.get(f"{base}/.ai.h2o.cloud.discovery/v1/services", timeout=30).json()["services"]
    assert [s["uri"] for s in services] == [base]


def _h2o_client(srv, mode: str, key: str, pki) -> EventClient:
    if mode == "direct":
        return EventClient(ConnectionConfig(audit_trail_url=srv.url, token_provider=lambda: key))
    if mode == "login_custom":
        return h2o_audit_trail.login_custom(
            endpoint=srv.url, refresh_token=key, issuer_url=srv.url, client_id="tls-test"
        ).event_client
    if mode == "login_custom_ssl_ca_cert":
        return h2o_audit_trail.login_custom(
            endpoint=srv.url, refresh_token=key, issuer_url=srv.url, client_id="tls-test", ssl_ca_cert=str(pki.ca)
        ).event_client
    if mode == "login":
        return h2o_audit_trail.login(environment=srv.url, platform_token=key).event_client
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["direct", "login_custom", "login", "login_custom_ssl_ca_cert"])
def test_h2o_client_over_https(tls_server, pki, monkeypatch, mode):
    if mode == "login_custom_ssl_ca_cert":
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
    key = tls_server.create_key(["ingest", "search"])
    ec_ = _h2o_client(tls_server, mode, key, pki)
    ws = f"workspaces/{uuid.uuid4()}"
    ev = Event(
        event_time=dt.datetime.now(UTC),
        event_source="h2oai-tls",
        action="actions/tls/things/CREATE",
        read_only=False,
        status=Status(code=0),
        principal="users/tls",
        source_ip_address="203.0.113.9",
        resource=f"//tls/{ws}/things/t1",
        request_parameters={},
        user_agent="tls-test/1.0",
        metadata={},
        type=EventType.TYPE_API,
    )
    eid = str(uuid.uuid4())
    created = ec_.create_event(event_id=eid, event=ev)
    assert created.name == f"events/{eid}" and created.workspace == ws
    found = ec_.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert [e.name for e in found.events] == [created.name]


def test_pangea_sdk_over_https(tls_server, trust_ca):
    key = tls_server.create_key(["ingest", "search"])
    tenant = f"workspaces/{uuid.uuid4()}"
    audit = Audit(key, config=PangeaConfig(base_url_template=tls_server.url + "/pangea"), tenant_id=tenant)

    r1 = audit.log(message="over https", actor="alice", verify=True)
    assert r1.result.membership_verification == V.PASS
    r2 = audit.log(message="again", verify=True)
    assert r2.result.consistency_verification == V.PASS and r2.result.membership_verification == V.PASS
    audit.log_bulk([{"message": "bulk 1"}, {"message": "bulk 2"}])

    s = audit.search(query=f'tenant_id:"{tenant}"', verify_consistency=True, verbose=True, limit=10)
    assert s.result.count == 4
    assert all(e.membership_verification == V.PASS for e in s.result.events)

    # Server-built URLs: the async request's location and the download capability.
    acc = audit.log_bulk_async([{"message": "async"}]).accepted_result
    assert acc.location.startswith(tls_server.url + "/pangea/request/"), acc.location
    d = audit.download_results(result_id=s.result.id, format=DownloadFormat.JSON)
    url = d.result.dest_url
    assert url.startswith(tls_server.url + "/download/"), url
    got = requests.get(url, timeout=60)
    assert got.status_code == 200
    assert len([x for x in gzip.decompress(got.content).splitlines() if x.strip()]) == 4
