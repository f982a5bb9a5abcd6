#!/usr/bin/env bash
# Command 2 of the README, and what CI runs: install what is missing, then formatting,
# lints and every test (unit tests, BPF program tests, lab tests in network namespaces).
# Run as root: the lab tests create namespaces, bridges and BPF programs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "[test] cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path lb-ebpf/Cargo.toml -- --check
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "[test] cargo test"
cargo test --workspace
