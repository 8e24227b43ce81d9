"""Fixtures of the replication suite: a real S3 API (``moto_server``, or a developer's MinIO via
``TRAILKEEP_S3_ENDPOINT``), a fault-injecting proxy in front of it, and trailkeep servers from
the reliability suite's harness. Figures are printed at the end and written to
``target/replication-figures.json``."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

import relharness as rh  # noqa: E402
from s3harness import S3, Proxy  # noqa: E402


@pytest.fixture(scope="session")
def tk_tmp():
    if not rh.trailkeep_bin().exists():
        pytest.exit(f"trailkeep binary not found at {rh.trailkeep_bin()} (build it or set TRAILKEEP_BIN)", 2)
    root = Path(tempfile.mkdtemp(prefix="trailkeep-replication-"))
    yield root
    if os.environ.get("TRAILKEEP_KEEP_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3(tk_tmp):
    s = S3(tk_tmp)
    yield s
    s.close()


@pytest.fixture
def proxy(s3):
    p = Proxy(s3.endpoint)
    yield p
    p.close()


@pytest.fixture
def new_server(tk_tmp):
    made: List[rh.Server] = []

    def make(name: Optional[str] = None, extra_args: Sequence[str] = (), data_dir: Optional[Path] = None,
             start: bool = True, env: Optional[dict] = None) -> rh.Server:
        d = Path(data_dir) if data_dir else tk_tmp / f"{name or 'srv'}-{uuid.uuid4().hex[:8]}"
        srv = rh.Server(d, extra_args, env=env, log_dir=tk_tmp)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = {k: dict(v) for k, v in rh.FIGURES.items()}
    out = rh.REPO_ROOT / "target" / "replication-figures.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "s3": os.environ.get("TRAILKEEP_S3_ENDPOINT") and "external" or "moto",
                                   "figures": figures}, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass
    tr = terminalreporter
    tr.section("trailkeep replication figures")
    for section in sorted(figures):
        vals = figures[section]
        notes = vals.pop("notes", None)
        tr.write_line(f"[{section}]")
        for k in sorted(vals):
            tr.write_line(f"    {k:<44} {vals[k]}")
        for n in notes or []:
            tr.write_line(f"    note: {n}")
    tr.write_line(f"figures written to {out}")
