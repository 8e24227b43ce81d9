"""`tests/readme/run_snippets.py` (CI runs it on README.md) on READMEs of our own: it runs every
shell and Python block with the documented placeholders filled in, fails naming the block that
failed, and lists the blocks marked as not run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, _child_env, trailkeep_bin

RUNNER = REPO_ROOT / "tests" / "readme" / "run_snippets.py"

README = """# demo

## Start

```bash
trailkeep serve
```

## Use

```bash
KEY=tk_...   # your key
curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/api/v1/whoami
[ "$ADMIN" = "$KEY" ]
```

```python
import json, urllib.request
KEY = "tk_..."
req = urllib.request.Request("http://localhost:8080/api/v1/whoami", headers={"Authorization": f"Bearer {KEY}"})
assert json.load(urllib.request.urlopen(req))["scopes"], "no scopes"
```

```bash
trailkeep keys revoke <id>
curl -s -X POST localhost:8080/pangea/v1/log -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"event":{"message":"m"}}'
```

<!-- not run in CI: needs a person at the keyboard -->
```bash
read -p "press enter"
```

```toml
listen = "127.0.0.1:8080"
```
"""


def run(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    readme = tmp_path / "README.md"
    readme.write_text(text)
    env = _child_env()
    env["PATH"] = f"{trailkeep_bin().parent}:{env.get('PATH', '')}"
    return subprocess.run([sys.executable, str(RUNNER), "--readme", str(readme)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)


def test_every_block_runs_with_the_placeholders_filled_in(tmp_path):
    res = run(tmp_path, README)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "README snippets: 4 blocks run (server included), 0 failed, 2 not run" in out, out
    assert "not run: README.md:30 (Use) bash: read -p" in out and "needs a person at the keyboard" in out, out
    assert "not run: README.md:34 (Use) toml" in out, out


def test_a_failing_block_fails_the_run_and_is_named(tmp_path):
    broken = README.replace("/api/v1/whoami\n", "/api/v1/no-such-route\n", 1)
    res = run(tmp_path, broken)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "FAILED: README.md:11 (Use) bash: KEY=tk_...   # your key" in out, out
    assert "README snippets: 4 blocks run (server included), 1 failed" in out, out


def test_a_python_block_that_raises_fails(tmp_path):
    res = run(tmp_path, README.replace('["scopes"], "no scopes"', '["no-such-field"]'))
    assert res.returncode == 1 and "FAILED: README.md:17 (Use) python" in res.stderr, res.stdout + res.stderr


def test_a_readme_without_a_server_block_fails(tmp_path):
    res = run(tmp_path, "# x\n\n```bash\ntrue\n```\n")
    assert res.returncode == 1 and "no ```bash block runs `serve`" in res.stderr, res.stderr


def test_the_project_readme_parses_and_marks_few_blocks_as_not_run():
    res = subprocess.run([sys.executable, str(RUNNER), "--list"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("server") and "cargo run --release -- serve" in lines[0], lines
    # Blocks without a language and `text` blocks are output or layouts shown to the reader, not commands.
    not_run = [l for l in lines if l.startswith("not run")
               and not l.startswith(("not run: (none) block", "not run: text block"))]
    # Every skipped command block says why, and they stay few: the test command itself, and the
    # operations that need what CI cannot have (a public certificate, a stopped server, a bucket
    # of one's own; tests/replication runs the replication commands against moto_server).
    assert len(not_run) <= 6, not_run
    assert any("bash tests/run.sh" in l for l in not_run), not_run
    assert all(not l.startswith("not run:  ") and len(l.split("README.md:")[0]) > len("not run: ") + 10
               for l in not_run), not_run
    assert sum(1 for l in lines if l.startswith("run ")) >= 6, lines
