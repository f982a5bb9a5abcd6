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
echo "[test] the closing summary's skip count (scripts/summary.awk)"
bash scripts/summary_test.sh
echo "[test] cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "[test] fuzzing the VRRP and BPDU codecs for 30 s (15 s each)"
fuzz_status=0
bash scripts/fuzz.sh 30 || fuzz_status=$?
if [ "$fuzz_status" -ne 0 ] && [ "$status" -eq 0 ]; then status=$fuzz_status; fi
# One closing line over every test binary (cargo prints one "test result" per binary,
# the last of which may be an empty doc-test run). A test whose prerequisite is missing
# prints "skipped: <test>: <why>" (tests/common, lbctl's test_prereq) and libtest counts it
# as passed: those are moved from passed to skipped, next to the #[ignore]d ones.
awk -f scripts/summary.awk "$log"
exit "$status"
