#!/usr/bin/env bash
# The full test suite: installs what the tests need, then runs every test of the workspace
# (unit, property, replay against real captures, fuzz-corpus replays, and real servers on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
export PATH="$PWD/target/test-tools/venv/bin:$PATH"
# No module may import another that imports it back (inside a crate): the checker's own test, then the checker.
bash scripts/check-module-cycles-test.sh
python3 scripts/check-module-cycles.py
# Lints are part of the suite: the workspace denies unsafe code and warns on unwrap/panic outside tests.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
