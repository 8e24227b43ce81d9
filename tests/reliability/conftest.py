"""Fixtures and the figures report for the trailkeep reliability suite.

* ``tk_tmp`` (session): a scratch directory, removed at the end unless ``TRAILKEEP_KEEP_DATA=1``.
* ``new_server`` (function): factory ``new_server(name=None, extra_args=(), data_dir=None,
  start=True)`` returning :class:`relharness.Server`; every server it made is stopped at the
  end of the test.

At the end of the run the figures collected in ``relharness.FIGURES`` (crashes survived, acked
events, acked-then-lost, in-doubt resolved, root forks, bad inputs tried and 5xx seen, authz
cells checked and failed, fault outcomes) are printed and written to
``target/reliability-figures.json`` (or ``TRAILKEEP_FIGURES``), together with the failing tests and
their one-line reasons.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

import relharness as rh

_RESULTS = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": []}
_T0 = time.time()


@pytest.fixture(scope="session", autouse=True)
def _client_environment():
    mp = pytest.MonkeyPatch()
    for v in ("H2O_CLOUD_TOKEN_ENDPOINT_URL", "H2O_CLOUD_DISCOVERY", "H2O_CLOUD_ENVIRONMENT",
              "H2O_CLOUD_CLIENT_PLATFORM_TOKEN"):
        mp.delenv(v, raising=False)
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    mp.setenv("no_proxy", "127.0.0.1,localhost")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tk_tmp():
    if not rh.trailkeep_bin().exists():
        pytest.exit(f"trailkeep binary not found at {rh.trailkeep_bin()} (build it or set TRAILKEEP_BIN)", 2)
    root = Path(tempfile.mkdtemp(prefix="trailkeep-reliability-"))
    yield root
    if os.environ.get("TRAILKEEP_KEEP_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_server(tk_tmp):
    made: List[rh.Server] = []

    def make(name: Optional[str] = None, extra_args: Sequence[str] = (), data_dir: Optional[Path] = None,
             start: bool = True, env: Optional[dict] = None) -> rh.Server:
        d = Path(data_dir) if data_dir else tk_tmp / f"{name or 'srv'}-{uuid.uuid4().hex[:8]}"
        if data_dir:
            d.parent.mkdir(parents=True, exist_ok=True)
        srv = rh.Server(d, extra_args, env=env, log_dir=tk_tmp)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.stop()


# ----------------------------------------------------------------------------------------- report
def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when in ("setup", "teardown") and report.outcome != "passed"):
        if report.passed and report.when == "call":
            _RESULTS["passed"] += 1
        elif report.failed:
            _RESULTS["failed"] += 1
            msg = ""
            if hasattr(report.longrepr, "reprcrash") and report.longrepr.reprcrash is not None:
                msg = report.longrepr.reprcrash.message
            else:
                msg = str(report.longrepr)
            first = next((l for l in msg.splitlines() if l.strip()), "")
            _RESULTS["failures"].append({"test": report.nodeid, "reason": first[:400]})
        elif report.skipped:
            _RESULTS["skipped"] += 1
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            _RESULTS["skips"].append({"test": report.nodeid, "reason": reason[:300]})


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(rh.REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = {k: dict(v) for k, v in rh.FIGURES.items()}
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "tier": "long" if rh.LONG else "ci",
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "binary": str(rh.trailkeep_bin()),
        "runtime_s": round(time.time() - _T0, 1),
        "tests": {k: _RESULTS[k] for k in ("passed", "failed", "skipped")},
        "figures": figures,
        "failures": _RESULTS["failures"],
        "skips": _RESULTS["skips"],
    }
    out = Path(os.environ.get("TRAILKEEP_FIGURES", rh.REPO_ROOT / "target" / "reliability-figures.json"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        terminalreporter.write_line(f"(could not write {out}: {e})")
    tr = terminalreporter
    tr.section(f"trailkeep reliability figures ({doc['tier']} tier)")
    for section in sorted(figures):
        vals = figures[section]
        notes = vals.pop("notes", None)
        tr.write_line(f"[{section}]")
        for k in sorted(vals):
            tr.write_line(f"    {k:<40} {vals[k]}")
        for n in notes or []:
            tr.write_line(f"    note: {n}")
    if _RESULTS["failures"]:
        tr.write_line(f"failing tests ({len(_RESULTS['failures'])}):")
        for f in _RESULTS["failures"]:
            tr.write_line(f"    {f['test']}: {f['reason'][:240]}")
    tr.write_line(f"figures written to {out}")
