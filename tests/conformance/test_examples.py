"""Every program in `examples/` runs against a fresh server with the pinned clients.

An example is any file directly in `examples/` named `*.py` (run with this interpreter, the
conformance venv: `h2o-audit-trail`, `pangea-sdk` as pinned in requirements.txt) or `*.sh` (run
with bash). Each takes `URL KEY`, prints what it shows and exits non-zero on failure; a new file
there is picked up without touching this module. `examples/loadgen.rs` (a cargo example) and
`examples/deploy/` are not such programs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

from conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
RUNNERS = {".py": [sys.executable], ".sh": ["bash"]}
EXAMPLE_TIMEOUT_S = 300


def example_programs() -> List[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_file() and p.suffix in RUNNERS)


def run_example(path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return subprocess.run(
        [*RUNNERS[path.suffix], str(path), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        env=env,
        cwd=REPO_ROOT,
    )


def explain(res: subprocess.CompletedProcess, srv=None) -> str:
    text = f"exit {res.returncode}\n--- stdout\n{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-4000:]}"
    if srv is not None:
        text += f"\n--- server stderr (tail)\n{srv.stderr_tail(20)}"
    return text


def test_the_documented_examples_exist():
    names = {p.name for p in example_programs()}
    assert {"h2o_client.py", "pangea_sdk.py", "verify_export.py", "curl_walkthrough.sh"} <= names, names


@pytest.mark.parametrize("path", example_programs(), ids=lambda p: p.name)
def test_example_runs_against_a_fresh_server(fresh_server, path):
    srv = fresh_server()
    res = run_example(path, srv.url, srv.admin_key)
    assert res.returncode == 0, explain(res, srv)
    assert len(res.stdout.strip().splitlines()) >= 3, "an example prints what it shows\n" + explain(res)


@pytest.mark.parametrize("path", example_programs(), ids=lambda p: p.name)
def test_example_fails_with_a_wrong_key_or_no_arguments(fresh_server, path):
    usage = run_example(path)
    assert usage.returncode != 0, explain(usage)
    srv = fresh_server()  # its own: failed authentications count against the client address
    bad = run_example(path, srv.url, "tk_0123456789abcdef_" + "0" * 70)
    assert bad.returncode != 0, "a rejected key must fail the example\n" + explain(bad)


def _export_file(srv, tmp_path: Path) -> Path:
    out = tmp_path / "export.jsonl.gz"
    srv.cli("export", "--format", "jsonl.gz", "--data-dir", str(srv.data_dir), "--out", str(out))
    return out


def _public_key(srv) -> str:
    text = srv.cli("keys", "public", "--data-dir", str(srv.data_dir)).stdout
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("public_key: "))


def _verify_file(srv, path: Path, public_key: str) -> subprocess.CompletedProcess:
    args: Sequence[str] = (srv.url, srv.admin_key, "--file", str(path), "--public-key", public_key)
    return run_example(EXAMPLES / "verify_export.py", *args)


def test_verify_export_checks_a_cli_export_with_the_pinned_public_key(fresh_server, tmp_path):
    """`trailkeep export --format jsonl.gz` + `trailkeep keys public`: every line verifies, across
    buffers of both dialects; an edited line, a line from a forged root and another server's
    key each fail."""
    srv = fresh_server()
    for ex in ("h2o_client.py", "pangea_sdk.py"):
        res = run_example(EXAMPLES / ex, srv.url, srv.admin_key)
        assert res.returncode == 0, explain(res, srv)
    export = _export_file(srv, tmp_path)
    rows = [json.loads(x) for x in gzip.decompress(export.read_bytes()).splitlines() if x.strip()]
    assert len(rows) >= 12 and len({r["leaf_index"] for r in rows}) > 3, rows[:2]
    assert all(r["published"] and r["tree_size"] == r["root"]["size"] for r in rows)
    assert any(r["membership_proof"].count(",") >= 2 for r in rows), "expected some deep proofs"

    key = _public_key(srv)
    ok = _verify_file(srv, export, key)
    assert ok.returncode == 0, explain(ok, srv)
    assert ok.stdout.count("verified (hash, membership proof, root signature)") == len(rows), ok.stdout

    def write(name: str, changed: List[dict]) -> Path:
        p = tmp_path / name
        p.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in changed).encode()))
        return p

    edited = [dict(r) for r in rows]
    edited[-1] = json.loads(json.dumps(rows[-1]))
    edited[-1]["envelope"]["received_at"] = "2020-01-01T00:00:00.000000Z"
    res = _verify_file(srv, write("edited.jsonl.gz", edited), key)
    assert res.returncode == 1 and "does not hash" in res.stdout, explain(res)

    # A consistent line (hash, proof) leading to a root the server never signed.
    forged = json.loads(json.dumps(rows[0]))
    forged["envelope"]["event"]["message"] = "forged"
    forged["hash"] = hashlib.sha256(
        json.dumps(forged["envelope"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    forged["membership_proof"], forged["root"]["root_hash"] = "", forged["hash"]
    res = _verify_file(srv, write("forged.jsonl.gz", [forged]), key)
    assert res.returncode == 1 and "signature does not verify" in res.stdout, explain(res)

    other = fresh_server()
    res = _verify_file(srv, export, _public_key(other))
    assert res.returncode == 1 and "signature does not verify" in res.stdout, explain(res)
