#!/usr/bin/env python3
"""Runs the shell and Python snippets of README.md, as written, against a fresh server.

    target/conformance-venv/bin/python tests/readme/run_snippets.py [--readme README.md] [--list]

The blocks are read from the README at run time (never copied), in document order:

* A ```bash block whose one command runs `serve` (the Quick start's `cargo run --release --
  serve`) starts the server, in the background, with `TRAILKEEP_LISTEN=127.0.0.1:0` and
  `TRAILKEEP_DATA_DIR` set to a new empty directory; the runner reads `admin key: …` and
  `listening on …` from its stdout.
* Every other ```bash block runs with `bash -euo pipefail`; every ```python block with this
  interpreter (the conformance venv, which has the pinned clients). Each runs in a temporary
  working directory, with `trailkeep` (the binary the server block ran) first on PATH,
  `TRAILKEEP_DATA_DIR` naming the server's data directory, and `curl` failing on an HTTP error
  status (`--fail-with-body`).
* The placeholders the README documents next to the snippets are substituted: `tk_...` and
  `$KEY`/`$ADMIN` become the admin key, `<id>` the id of a key created for that block alone,
  and the default address `127.0.0.1:8080` / `localhost:8080` the server's address.
* A block right after `<!-- not run in CI: REASON -->` is skipped and listed with its reason.

Exit status 0 when every block ran with status 0; otherwise each failed block is named by its
line and section, with its output.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[2]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
SKIP_MARKER = re.compile(r"<!--\s*not run in CI:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
BLOCK_TIMEOUT_S = float(os.environ.get("TRAILKEEP_README_BLOCK_TIMEOUT", "300"))
# `cargo run --release` builds first: allow for a release build from scratch.
SERVER_START_TIMEOUT_S = float(os.environ.get("TRAILKEEP_README_START_TIMEOUT", "3600"))
PLACEHOLDER_ADDRESS = re.compile(r"\b(127\.0\.0\.1|localhost):8080\b")


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    section: str
    lang: str
    code: str
    skip_reason: Optional[str] = None

    @property
    def name(self) -> str:
        first = next((l.strip() for l in self.code.splitlines() if l.strip()), "")
        return f"README.md:{self.line} ({self.section}) {self.lang}: {first[:70]}"

    def is_server(self) -> bool:
        cmds = [l for l in self.code.splitlines() if l.strip() and not l.strip().startswith("#")]
        return self.lang == "bash" and len(cmds) == 1 and re.search(r"(^|\s)serve(\s|$)", cmds[0]) is not None


def parse(readme: Path) -> List[Block]:
    blocks: List[Block] = []
    section = "top"
    lines = readme.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):  # a heading: lines inside fences are never looked at here
            section = line.lstrip("#").strip()
        m = FENCE.match(line)
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        lang = RUNNABLE.get(m.group(1).lower(), m.group(1).lower() or "(none)")
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        marker = SKIP_MARKER.search(prev)
        blocks.append(Block(start + 1, section, lang, "\n".join(lines[start + 1 : j]) + "\n",
                            marker.group(1) if marker else None))
        i = j + 1
    return blocks


@dataclass
class Server:
    proc: subprocess.Popen
    data_dir: Path
    url: str = ""
    admin_key: str = ""
    bin_dir: Optional[Path] = None
    output: List[str] = field(default_factory=list)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(block: Block, work: Path, env: dict) -> Server:
    data_dir = work / "data"
    env = dict(env, TRAILKEEP_LISTEN="127.0.0.1:0", TRAILKEEP_DATA_DIR=str(data_dir))
    log = open(work / "server.stderr.log", "wb")
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", f"exec {block.code.strip()}"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        start_new_session=True,
    )
    srv = Server(proc, data_dir)
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            srv.output.append(line)
            if line.startswith("admin key: "):
                srv.admin_key = line.split(": ", 1)[1].strip()
            if line.startswith("listening on "):
                srv.url = line.split(" ", 2)[2].strip().rstrip("/")
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(SERVER_START_TIMEOUT_S)
    if not srv.url or not srv.admin_key:
        srv.stop()
        tail = (work / "server.stderr.log").read_text("utf-8", "replace")[-3000:]
        raise RuntimeError(f"{block.name}: no 'listening on' and 'admin key' lines\n"
                           f"stdout: {srv.output}\nstderr tail:\n{tail}")
    # the binary the block ran (cargo run: target/<profile>/trailkeep) is the `trailkeep` of the other blocks
    exe = Path(os.readlink(f"/proc/{proc.pid}/exe"))
    srv.bin_dir = exe.parent
    return srv


def curl_shim(directory: Path) -> None:
    real = shutil.which("curl")
    if not real:
        raise RuntimeError("curl is not installed")
    shim = directory / "curl"
    shim.write_text(f'#!/bin/sh\nexec {real} --fail-with-body "$@"\n')
    shim.chmod(0o755)


def create_key(srv: Server, env: dict) -> str:
    """A throwaway key for a block's `<id>` (revoked or listed by the block)."""
    out = subprocess.run([str(srv.bin_dir / "trailkeep"), "keys", "create", "--name", "readme-snippet",
                          "--scope", "ingest"], env=env, capture_output=True, text=True, timeout=60, check=True)
    secret = out.stdout.strip().splitlines()[-1]
    return secret.split("_")[1]


def substitute(code: str, srv: Server, key_id: Optional[str]) -> str:
    address = srv.url.split("://", 1)[1]
    code = PLACEHOLDER_ADDRESS.sub(address, code)
    code = code.replace("tk_...", srv.admin_key)
    if key_id is not None:
        code = code.replace("<id>", key_id)
    return code


def run_block(block: Block, srv: Server, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    key_id = create_key(srv, env) if "<id>" in block.code else None
    code = substitute(block.code, srv, key_id)
    cmd = ["bash", "-euo", "pipefail", "-c", code] if block.lang == "bash" else [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=BLOCK_TIMEOUT_S)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--list", action="store_true", help="list the blocks and what would be done with them")
    ap.add_argument("-v", "--verbose", action="store_true", help="show every block's output")
    args = ap.parse_args()

    blocks = parse(args.readme)
    skipped = [b for b in blocks if b.skip_reason is not None or b.lang not in ("bash", "python")]
    runnable = [b for b in blocks if b not in skipped]
    servers = [b for b in runnable if b.is_server()]
    if args.list:
        for b in blocks:
            what = ("not run: " + (b.skip_reason or f"{b.lang} block")) if b in skipped else \
                ("server" if b in servers else "run")
            print(f"{what:<40} {b.name}")
        return 0
    if not servers:
        print(f"{args.readme}: no ```bash block runs `serve`", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="trailkeep-readme-"))
    shim_dir = work / "shim"
    shim_dir.mkdir()
    curl_shim(shim_dir)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAILKEEP_", "H2O_CLOUD_"))}
    base_env["NO_PROXY"] = base_env["no_proxy"] = "127.0.0.1,localhost"

    started = time.monotonic()
    print(f"starting the server: {servers[0].name}", flush=True)
    srv = start_server(servers[0], work, base_env)
    print(f"  up after {time.monotonic() - started:.0f} s (build included) at {srv.url}, binary {srv.bin_dir / 'trailkeep'}", flush=True)
    env = dict(base_env, KEY=srv.admin_key, ADMIN=srv.admin_key, TRAILKEEP_DATA_DIR=str(srv.data_dir),
               PATH=f"{shim_dir}:{srv.bin_dir}:{base_env.get('PATH', '')}")
    failed: List[str] = []
    ran = 0
    try:
        for b in runnable:
            if b is servers[0]:
                continue
            cwd = Path(tempfile.mkdtemp(dir=work, prefix="block-"))
            t = time.monotonic()
            try:
                res = run_block(b, srv, env, cwd)
                ok, out = res.returncode == 0, f"exit {res.returncode}\n{res.stdout}{res.stderr}"
            except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
                ok, out = False, f"{type(e).__name__}: {e}"
            ran += 1
            print(f"{'ok  ' if ok else 'FAIL'} {b.name} ({time.monotonic() - t:.1f} s)", flush=True)
            if not ok:
                failed.append(b.name)
            if not ok or args.verbose:
                print("     " + out.strip()[-6000:].replace("\n", "\n     "), flush=True)
            if srv.proc.poll() is not None:
                failed.append(f"the server exited ({srv.proc.returncode}) during {b.name}")
                break
    finally:
        rc = srv.stop()
    if rc != 0:
        failed.append(f"the server exited with {rc} after SIGTERM")
    for b in skipped:
        print(f"not run: {b.name}: {b.skip_reason or 'not a shell or Python block'}")
    print(f"README snippets: {ran + 1} blocks run (server included), {len(failed)} failed, {len(skipped)} not run")
    for f in failed:
        print(f"FAILED: {f}", file=sys.stderr)
    if not failed and os.environ.get("TRAILKEEP_KEEP_DATA") != "1":
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
