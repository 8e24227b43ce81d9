"""The server's log output (README "Running trailkeep in production", Logs).

* `--log-format auto` (the default): JSON lines when stderr is not a terminal, readable lines with
  ANSI colours on a terminal, no colours with `NO_COLOR`; `pretty` and `json` force a format.
* The admin key created at first start is a plain `admin key: …` line on stdout, exactly once,
  and never part of a log line; the log names only the key id.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

from conftest import _child_env, key_id_of, trailkeep_bin

START_TIMEOUT_S = 60.0
ESC = b"\x1b"
PLAIN_LINES = (
    re.compile(r"first start: created an administrator API key \(shown only once, keep it safe\):"),
    re.compile(r"admin key: tk_[0-9a-f]{16}_[0-9a-f]{70}"),
    re.compile(r"listening on http://127\.0\.0\.1:\d+"),
)


def _serve(data_dir: Path, stdout, stderr, extra_args=(), env_extra: Optional[dict] = None) -> subprocess.Popen:
    env = _child_env()
    env.pop("NO_COLOR", None)
    env.update(env_extra or {})
    cmd = [str(trailkeep_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *extra_args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env)


def _wait_for(read, pattern: str) -> re.Match:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        m = re.search(pattern, read())
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} within {START_TIMEOUT_S:.0f} s; output:\n{read()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _get(url: str, key: Optional[str] = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def test_json_lines_in_a_file_with_the_admin_key_on_its_own_plain_line(tmp_path):
    """stdout and stderr into one file (as `> log 2>&1` or the journal get them)."""
    log = tmp_path / "server.log"
    with open(log, "wb") as f:
        proc = _serve(tmp_path / "data", f, f)
        try:
            url = _wait_for(lambda: log.read_text("utf-8", "replace"), r"listening on (http://\S+)").group(1)
            _wait_for(lambda: log.read_text("utf-8", "replace"), r'"message":"listening"')
            key = re.search(r"^admin key: (\S+)$", log.read_text("utf-8"), re.M).group(1)
            assert _get(f"{url}/healthz") == 200
            assert _get(f"{url}/api/v1/whoami", key) == 200
        finally:
            _stop(proc)
    data = log.read_bytes()
    assert ESC not in data, "colour codes in a log file"
    text = data.decode("utf-8")
    assert text.count(key) == 1, "the admin key must appear exactly once"
    assert f"\nadmin key: {key}\n" in text, "the admin key line must be a line of its own"

    records: List[dict] = []
    for line in text.splitlines():
        if any(p.fullmatch(line) for p in PLAIN_LINES):
            continue
        records.append(json.loads(line))  # every other line is one JSON object
    assert not any(key in json.dumps(r) for r in records)
    assert all({"timestamp", "level", "fields", "target"} <= set(r) for r in records), records[:3]
    created = [r for r in records if "first start" in r["fields"].get("message", "")]
    assert len(created) == 1 and created[0]["fields"]["key_id"] == key_id_of(key), created
    routes = {(r["fields"].get("route"), r["fields"].get("status")) for r in records if r["fields"].get("message") == "request"}
    assert {("/healthz", 200), ("/api/v1/whoami", 200)} <= routes, routes
    assert any(r["fields"].get("message") == "HTTP server stopped; closing the database" for r in records)


def test_no_admin_key_after_the_first_start(tmp_path):
    out = tmp_path / "out.log"
    for _ in range(2):
        with open(out, "wb") as f:
            proc = _serve(tmp_path / "data", f, subprocess.DEVNULL)
            try:
                _wait_for(lambda: out.read_text("utf-8", "replace"), r"listening on http://")
            finally:
                _stop(proc)
    assert "admin key" not in out.read_text("utf-8")


def test_pretty_to_a_file_has_no_colour_codes(tmp_path):
    err = tmp_path / "stderr.log"
    with open(err, "wb") as f:
        proc = _serve(tmp_path / "data", subprocess.PIPE, f, ["--log-format", "pretty"])
        try:
            _wait_for(lambda: err.read_text("utf-8", "replace"), r"listening")
        finally:
            _stop(proc)
    data = err.read_bytes()
    assert ESC not in data
    lines = data.decode().splitlines()
    assert lines and not any(l.startswith("{") for l in lines), lines[:3]
    assert any(re.search(r" INFO trailkeep(::\w+)*: starting trailkeep", l) for l in lines), lines[:3]


class _Terminal:
    """A pseudo-terminal as the server's stderr; collects what the server writes to it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.data = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO once every writer closed the slave side
                return
            if not chunk:
                return
            self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def close(self) -> None:
        os.close(self.slave)
        self._reader.join(timeout=5)
        os.close(self.master)


def _on_a_terminal(tmp_path: Path, extra_args=(), env_extra: Optional[dict] = None) -> bytes:
    term = _Terminal()
    try:
        proc = _serve(tmp_path / "data", subprocess.DEVNULL, term.slave, extra_args, env_extra)
        try:
            _wait_for(term.text, r"listening")
        finally:
            _stop(proc)
    finally:
        term.close()
    return term.data


def test_auto_on_a_terminal_is_pretty_with_colours(tmp_path):
    data = _on_a_terminal(tmp_path)
    assert ESC + b"[" in data, data[:300]
    assert b'{"timestamp"' not in data


def test_no_color_turns_colours_off_on_a_terminal(tmp_path):
    data = _on_a_terminal(tmp_path, env_extra={"NO_COLOR": "1"})
    assert ESC not in data, data[:300]
    assert b"starting trailkeep" in data and b'{"timestamp"' not in data


def test_json_on_a_terminal_when_asked(tmp_path):
    data = _on_a_terminal(tmp_path, env_extra={"TRAILKEEP_LOG_FORMAT": "json"})
    assert ESC not in data
    lines = [l for l in data.decode().replace("\r\n", "\n").splitlines() if l.strip()]
    assert lines and all(json.loads(l)["level"] for l in lines), lines[:3]
