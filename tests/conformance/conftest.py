"""Shared fixtures for the trailkeep conformance suite.

The suite never builds anything: it runs the binary named by ``TRAILKEEP_BIN``
(default ``<repo>/target/debug/trailkeep``) as

    trailkeep serve --listen 127.0.0.1:0 --data-dir <tmpdir>

and reads two lines from its stdout:

    admin key: <secret>                       (first start with an empty key store only)
    listening on http://127.0.0.1:<port>

Fixtures:

* ``server`` (session): one running server shared by every test module (H2O and Pangea).
  Tests must isolate themselves by unique values (e.g. a ``workspaces/<uuid4>`` of their own),
  because the server also records self-audit events and other tests' events.
* ``fresh_server`` (function): a factory ``fresh_server(data_dir=None, extra_args=())`` that
  starts a separate server, by default on a new empty data dir; every server it started is
  stopped (SIGTERM) at the end of the test and must exit with code 0.

Both yield :class:`TrailkeepServer` objects: ``.url``, ``.admin_key``, ``.data_dir``, ``.bin``,
``.create_key(scopes, workspaces=(), name=None)``, ``.revoke_key(secret_or_id)``,
``.list_keys()``, ``.stop()``, ``.stderr_tail()``.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "trailkeep"

STARTUP_TIMEOUT_S = float(os.environ.get("TRAILKEEP_STARTUP_TIMEOUT", "60"))
STOP_TIMEOUT_S = 10.0
CLI_TIMEOUT_S = 60.0

_ADMIN_RE = re.compile(r"admin key:\s*(\S+)")
_LISTEN_RE = re.compile(r"listening on (https?://\S+)")

# Variables that would redirect the H2O client's discovery / token exchange (spec §12.1).
_H2O_ENV_VARS = (
    "H2O_CLOUD_TOKEN_ENDPOINT_URL",
    "H2O_CLOUD_DISCOVERY",
    "H2O_CLOUD_ENVIRONMENT",
    "H2O_CLOUD_CLIENT_PLATFORM_TOKEN",
)


def trailkeep_bin() -> Path:
    return Path(os.environ.get("TRAILKEEP_BIN", str(DEFAULT_BIN)))


def key_id_of(secret_or_id: str) -> str:
    """`tk_<id>_<random>` -> `<id>`; anything else is taken to be an id already."""
    if secret_or_id.startswith("tk_"):
        parts = secret_or_id.split("_", 2)
        if len(parts) == 3 and parts[1]:
            return parts[1]
    return secret_or_id


class ServerStartError(RuntimeError):
    pass


class TrailkeepServer:
    """One `trailkeep serve` process on an ephemeral loopback port."""

    def __init__(self, bin_path: Path, data_dir: Path, extra_args: Sequence[str] = ()):
        self.bin = Path(bin_path)
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.url: Optional[str] = None
        self.port: Optional[int] = None
        self.admin_key: Optional[str] = None
        self.stdout_lines: List[str] = []
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self._stderr_path = self.data_dir.parent / f"{self.data_dir.name}.stderr.log"
        self._stderr_file = None

    # ------------------------------------------------------------------ process
    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "TrailkeepServer":
        if not self.bin.exists():
            raise ServerStartError(
                f"trailkeep binary not found at {self.bin} (set TRAILKEEP_BIN or build it)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stderr_file = open(self._stderr_path, "ab")
        cmd = [str(self.bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=_child_env(),
        )
        self._reader = threading.Thread(target=self._read_stdout, name="trailkeep-stdout", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + timeout
        eof = False
        while self.url is None and not eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                eof = True
                break
            self._parse(line)
        if self.url is None:
            self._abort()
            why = "exited before printing" if eof else f"did not print within {timeout:.0f} s"
            raise ServerStartError(
                f"`{' '.join(cmd)}` {why} 'listening on ...' (rc={self.returncode});\n"
                f"stdout: {self.stdout_lines!r}\nstderr tail:\n{self.stderr_tail()}"
            )
        # The admin key line may come after the listening line: give it a moment.
        grace = time.monotonic() + 2.0
        while self.admin_key is None and time.monotonic() < grace:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self._parse(line)
        return self

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _parse(self, line: str) -> None:
        m = _ADMIN_RE.search(line)
        if m and self.admin_key is None:
            self.admin_key = m.group(1)
        m = _LISTEN_RE.search(line)
        if m and self.url is None:
            self.url = m.group(1).rstrip("/")
            pm = re.search(r":(\d+)$", self.url)
            self.port = int(pm.group(1)) if pm else None

    def _abort(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.returncode = self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (SIGKILL -> -9)."""
        if self.proc is None:
            return 0
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._close()
        return self.returncode

    def stderr_tail(self, n: int = 40) -> str:
        try:
            text = self._stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        # drop Rust backtrace frames so that a panic message stays visible
        frame = re.compile(r"^\s+(\d+: |at )")
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        lines = [l for l in text.splitlines() if not frame.match(l)]
        return "\n".join(lines[-n:])

    # ---------------------------------------------------------------------- CLI
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin), *args]
        res = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            env=_child_env(),
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`{' '.join(cmd)}` failed with rc={res.returncode}\n"
                f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    def create_key(
        self,
        scopes: Iterable[str],
        workspaces: Iterable[str] = (),
        name: Optional[str] = None,
    ) -> str:
        """`trailkeep keys create`; returns the secret (the last stdout line)."""
        scopes = list(scopes)
        assert scopes, "at least one scope is required"
        args = ["keys", "create", "--name", name or f"conformance-{uuid.uuid4().hex[:12]}"]
        for s in scopes:
            args += ["--scope", s]
        for w in workspaces:
            args += ["--workspace", w]
        args += ["--data-dir", str(self.data_dir)]
        res = self.cli(*args)
        lines = [l.strip() for l in res.stdout.splitlines() if l.strip()]
        assert lines, f"`keys create` printed nothing on stdout; stderr:\n{res.stderr}"
        return lines[-1]

    def revoke_key(self, secret_or_id: str) -> None:
        self.cli("keys", "revoke", key_id_of(secret_or_id), "--data-dir", str(self.data_dir))

    def list_keys(self) -> str:
        return self.cli("keys", "list", "--data-dir", str(self.data_dir)).stdout

    def __repr__(self) -> str:
        return f"TrailkeepServer(url={self.url!r}, data_dir={str(self.data_dir)!r})"


def _child_env() -> dict:
    env = dict(os.environ)
    for v in _H2O_ENV_VARS:
        env.pop(v, None)
    # The server reads TRAILKEEP_* settings (config file, public URL, redaction, self-audit...):
    # the suite tests the defaults, so none of them may leak in from the caller's environment.
    for v in [k for k in env if k.startswith("TRAILKEEP_")]:
        del env[v]
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", autouse=True)
def _client_environment():
    """Unset H2O_CLOUD_* and bypass proxies for loopback, for the whole session (spec §12.1)."""
    mp = pytest.MonkeyPatch()
    for v in _H2O_ENV_VARS:
        mp.delenv(v, raising=False)
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    mp.setenv("no_proxy", "127.0.0.1,localhost")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def _tk_tmp_root():
    root = Path(tempfile.mkdtemp(prefix="trailkeep-conformance-"))
    yield root
    if os.environ.get("TRAILKEEP_KEEP_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)


def _try_start(srv: TrailkeepServer) -> Optional[str]:
    try:
        srv.start()
    except ServerStartError as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def server(_client_environment, _tk_tmp_root):
    """One shared `trailkeep serve` for the whole session."""
    srv = TrailkeepServer(trailkeep_bin(), _tk_tmp_root / "shared-data")
    err = _try_start(srv)
    if err:
        pytest.fail(err, pytrace=False)
    assert srv.admin_key, (
        f"no 'admin key: ...' line on first start with an empty data dir; stdout={srv.stdout_lines!r}"
    )
    yield srv
    rc = srv.stop()
    assert rc == 0, (
        f"trailkeep serve exited with {rc} after SIGTERM (expected 0)\nstderr tail:\n{srv.stderr_tail()}"
    )


@pytest.fixture
def fresh_server(_client_environment, _tk_tmp_root):
    """Factory for servers of a test's own: ``fresh_server(data_dir=None, extra_args=())``."""
    started: List[TrailkeepServer] = []

    def start(data_dir: Optional[Path] = None, extra_args: Sequence[str] = ()) -> TrailkeepServer:
        d = Path(data_dir) if data_dir else _tk_tmp_root / f"fresh-{uuid.uuid4().hex[:12]}"
        srv = TrailkeepServer(trailkeep_bin(), d, extra_args)
        started.append(srv)
        err = _try_start(srv)
        if err:
            pytest.fail(err, pytrace=False)
        return srv

    yield start
    bad = []
    for srv in started:
        rc = srv.stop()
        if rc != 0:
            bad.append(f"{srv!r}: exit code {rc}\n{srv.stderr_tail()}")
    assert not bad, "servers did not exit 0 after SIGTERM:\n" + "\n".join(bad)


@pytest.fixture(autouse=True)
def _server_still_running(request):
    """Fail fast, with the server's last log lines, if the shared server has died."""
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if not srv.running:
            pytest.fail(
                f"the shared trailkeep server is no longer running (rc={srv.proc.poll() if srv.proc else None})\n"
                f"stderr tail:\n{srv.stderr_tail()}",
                pytrace=False,
            )
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the last server log lines to a failed test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for name in ("server",):
        srv = getattr(item, "funcargs", {}).get(name)
        if isinstance(srv, TrailkeepServer):
            tail = srv.stderr_tail(15)
            if tail:
                rep.sections.append((f"trailkeep stderr (last lines, {name})", tail))
