"""A real S3 API for the replication tests, and a fault-injecting proxy in front of it.

* :class:`S3` starts ``moto_server`` (PyPI ``moto[server]``) on 127.0.0.1 and a free port, or,
  when ``TRAILKEEP_S3_ENDPOINT`` is set (e.g. a developer's MinIO), uses that endpoint with
  ``TRAILKEEP_S3_ACCESS_KEY`` / ``TRAILKEEP_S3_SECRET_KEY`` (and ``TRAILKEEP_S3_REGION``).
  Each test gets a bucket of its own. ``boto3`` reads the bucket back.
* :class:`Proxy` is an HTTP/1.1 proxy between trailkeep and the S3 endpoint that can refuse
  connections (an outage), answer requests itself (503 SlowDown, 500), or hold a request before
  or after forwarding it (so a test can kill the server during an upload, or after the upload
  reached S3 but before the server saw the answer).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import boto3
import botocore.config

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class S3:
    def __init__(self, log_dir: Path):
        self.proc: Optional[subprocess.Popen] = None
        ext = os.environ.get("TRAILKEEP_S3_ENDPOINT")
        if ext:
            self.endpoint = ext.rstrip("/")
            self.access_key = os.environ.get("TRAILKEEP_S3_ACCESS_KEY", "minioadmin")
            self.secret_key = os.environ.get("TRAILKEEP_S3_SECRET_KEY", "minioadmin")
            self.region = os.environ.get("TRAILKEEP_S3_REGION", "us-east-1")
            self.kind = "external"
        else:
            exe = shutil.which("moto_server") or str(Path(os.sys.executable).parent / "moto_server")
            port = free_port()
            self.log = open(log_dir / "moto_server.log", "ab")
            self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=self.log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.endpoint = f"http://127.0.0.1:{port}"
            # A distinctive secret: the tests check it never shows up anywhere.
            self.access_key = "AKIATRAILKEEPTEST01"
            self.secret_key = "trailkeep-secret-" + uuid.uuid4().hex
            self.region = "us-east-1"
            self.kind = "moto"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError("moto_server did not start")
                    time.sleep(0.1)
        self.client = self.client_for(self.endpoint)

    def client_for(self, endpoint: str):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=botocore.config.Config(s3={"addressing_style": "path"},
                                                          retries={"max_attempts": 2}))

    def new_bucket(self) -> str:
        name = f"tk-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def env(self, endpoint: Optional[str] = None) -> Dict[str, str]:
        """The standard AWS variables trailkeep reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def keys(self, bucket: str, prefix: str = "") -> List[str]:
        out, token = [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            r = self.client.list_objects_v2(**kw)
            out += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return out
            token = r["NextContinuationToken"]

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def objects(self, bucket: str, prefix: str) -> List[Tuple[str, List[dict]]]:
        """Every events object under ``prefix`` (key, parsed lines), in key order."""
        out = []
        for k in sorted(self.keys(bucket, prefix + "/events/")):
            if k.endswith(".jsonl.gz"):
                text = gzip.decompress(self.get(bucket, k)).decode()
                out.append((k, [json.loads(l) for l in text.splitlines() if l]))
        return out

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> Optional[int]:
    while True:
        i = buf.find(marker)
        if i >= 0:
            return i
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


def _read_message(sock: socket.socket, buf: bytearray, response_to: Optional[str] = None) -> Optional[bytes]:
    """One HTTP/1.1 message (head + body by Content-Length or chunked) from ``sock``."""
    end = _read_until(sock, buf, b"\r\n\r\n")
    if end is None:
        return None
    head = bytes(buf[: end + 4])
    del buf[: end + 4]
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        body = bytes(buf[:n])
        del buf[:n]
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        out = bytearray()
        while True:
            i = _read_until(sock, buf, b"\r\n")
            if i is None:
                return None
            size = int(bytes(buf[:i]).split(b";")[0], 16)
            del buf[: i + 2]
            while len(buf) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            out += buf[:size]
            del buf[: size + 2]
            if size == 0:
                break
        body = bytes(out)
        head = head.replace(b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(body))
        head = head.replace(b"transfer-encoding: chunked", b"content-length: %d" % len(body))
    elif response_to is not None and response_to != "HEAD" and not head.split(b" ")[1].startswith((b"1", b"204", b"304")):
        # A response without a length: until the connection closes.
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        body = bytes(buf)
        del buf[:]
    return head + body


SLOWDOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>"
            b"<Message>We encountered an internal error. Please try again.</Message></Error>")


class Proxy:
    """HTTP/1.1 proxy to ``upstream`` (``http://host:port``) with fault injection."""

    def __init__(self, upstream: str):
        host, port = upstream.split("://", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.lock = threading.Lock()
        self.refusing = False
        self.inject: List[Tuple[int, bytes]] = []  # answers to give instead of forwarding, in order
        # (predicate(method, path), "before" | "after"): hold the first matching request
        self.hold: Optional[Tuple[Callable[[str, str], bool], str]] = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.counts: Dict[str, int] = {}
        self.injected = 0
        self.refused = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.refusing:
                self._reset(c)
                with self.lock:
                    self.refused += 1
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _reset(c: socket.socket) -> None:
        try:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        c.close()

    def _serve(self, c: socket.socket) -> None:
        buf = bytearray()
        up: Optional[socket.socket] = None
        ubuf = bytearray()
        try:
            while not self.closed:
                req = _read_message(c, buf)
                if req is None:
                    return
                if self.refusing:
                    self._reset(c)
                    return
                line = req.split(b"\r\n", 1)[0].decode("latin-1")
                method, path = line.split(" ")[0], line.split(" ")[1]
                with self.lock:
                    self.counts[method] = self.counts.get(method, 0) + 1
                    answer = self.inject.pop(0) if self.inject else None
                    hold = None
                    if self.hold and self.hold[0](method, path):
                        hold, self.hold = self.hold[1], None
                if answer is not None:
                    status, body = answer
                    reason = {503: b"Slow Down", 500: b"Internal Server Error"}.get(status, b"Error")
                    c.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body))
                    with self.lock:
                        self.injected += 1
                    return
                if hold == "before":
                    self.holding.set()
                    self.release.wait()
                    return
                if up is None:
                    up = socket.create_connection(self.upstream, timeout=60)
                up.sendall(req)
                resp = _read_message(up, ubuf, response_to=method)
                if resp is None:
                    return
                if hold == "after":
                    self.holding.set()
                    self.release.wait()
                    return
                c.sendall(resp)
        except OSError:
            return
        finally:
            c.close()
            if up is not None:
                up.close()

    def set_refusing(self, on: bool) -> None:
        self.refusing = on

    def inject_errors(self, answers: List[Tuple[int, bytes]]) -> None:
        with self.lock:
            self.inject = list(answers)

    def hold_next(self, predicate: Callable[[str, str], bool], when: str) -> None:
        self.holding.clear()
        self.release.clear()
        with self.lock:
            self.hold = (predicate, when)

    def close(self) -> None:
        self.closed = True
        self.release.set()
        try:
            self.sock.close()
        except OSError:
            pass
