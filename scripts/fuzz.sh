#!/usr/bin/env bash
# Fuzzes the VRRP codec (fuzz/fuzz_targets/codec.rs) with cargo-fuzz for a bounded time.
#   scripts/fuzz.sh [SECONDS]   (default 30)
# Needs the nightly toolchain; installs cargo-fuzz if missing. New corpus entries go to a
# temporary directory; fuzz/seeds/codec (keepalived captures, CARP) is read only. A crash
# leaves its input under fuzz/artifacts/codec/ and fails the script.
# No sanitizer: the codec is safe Rust (`#![forbid(unsafe_code)]`), so what the fuzzer looks
# for is a panic or a broken round trip, which libFuzzer catches by itself; AddressSanitizer
# would only slow the build.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cargo +nightly fuzz run --sanitizer none codec "$corpus" seeds/codec -- -max_total_time="$secs" -max_len=512
echo "[fuzz] codec: no crash in ${secs} s"
