#!/usr/bin/env bash
# The whole test suite: Rust unit, property and storage tests, then the end-to-end suite that
# runs real `meridian server` processes against real clients (redis-py, redis-cli,
# redis-benchmark), and 200 seeds of the cluster simulator (crates/sim) in release.
# Needs: redis-tools, iptables (partition tests, as root), and Python's redis and pytest
# (tests/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p meridian
cargo test --workspace
cargo run --release -q -p sim -- --seeds 200
python3 -m pytest -q -rs tests
