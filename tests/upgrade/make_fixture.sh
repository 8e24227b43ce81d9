#!/usr/bin/env bash
# Builds trailkeep at a release tag and writes a data-directory fixture with it, for the upgrade
# test (tests/reliability/test_upgrade.py): tests/upgrade/fixtures/<tag>.tar.gz holds the data
# directory the old release wrote (events through both dialects, API keys of every kind, a
# retention purge) and manifest.json (every event's id and hash, the keys' secrets — test data —,
# the last signed root and the public key).
#
#   bash tests/upgrade/make_fixture.sh v0.1.0
#
# The old release is built in a temporary git worktree with its own target directory (a full
# build: several minutes; set FIXTURE_TARGET_DIR to keep and reuse one). Needs the conformance
# venv (bash tests/conformance/setup_venv.sh) for the official Pangea SDK, which signs events.
set -euo pipefail

tag="${1:?usage: make_fixture.sh TAG (e.g. v0.1.0)}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo/tests/upgrade/fixtures/$tag.tar.gz"
venv_py="$repo/target/conformance-venv/bin/python"
[ -x "$venv_py" ] || bash "$repo/tests/conformance/setup_venv.sh"

work="$(mktemp -d "${TMPDIR:-/tmp}/trailkeep-fixture-XXXXXX")"
src="$work/src"
cleanup() {
    git -C "$repo" worktree remove --force "$src" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

commit="$(git -C "$repo" rev-parse --verify "$tag^{commit}")"
echo "make_fixture: building $tag ($commit)" >&2
git -C "$repo" worktree add --detach "$src" "$commit" >/dev/null
target="${FIXTURE_TARGET_DIR:-$work/target}"
(cd "$src" && CARGO_TARGET_DIR="$target" cargo build --locked --bin trailkeep)
bin="$target/debug/trailkeep"

echo "make_fixture: writing the fixture with $("$bin" --version)" >&2
"$venv_py" "$repo/tests/upgrade/make_fixture.py" --bin "$bin" --tag "$tag" --commit "$commit" --out "$out"
echo "make_fixture: $out ($(du -h "$out" | cut -f1))" >&2
