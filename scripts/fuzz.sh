#!/usr/bin/env bash
# Fuzzes the protocol codecs with cargo-fuzz for a bounded time:
#   codec  the VRRP codec (fuzz/fuzz_targets/codec.rs), seeds fuzz/seeds/codec (keepalived
#          captures, CARP);
#   bpdu   the BPDU codec (fuzz/fuzz_targets/bpdu.rs), seeds fuzz/seeds/bpdu (BPDUs the
#          kernel's bridge sent, RST BPDUs checked with tshark).
#   scripts/fuzz.sh [SECONDS [TARGET...]]   (default 30 s split evenly over codec and bpdu)
# Needs the nightly toolchain; installs cargo-fuzz if missing. New corpus entries go to a
# temporary directory; the seed directories are read only. A crash leaves its input under
# fuzz/artifacts/<target>/ and fails the script.
# No sanitizer: the codecs are safe Rust (`#![forbid(unsafe_code)]`), so what the fuzzer looks
# for is a panic or a broken round trip, which libFuzzer catches by itself; AddressSanitizer
# would only slow the build.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(codec bpdu); fi
each=$((secs / ${#targets[@]}))
if [ "$each" -lt 1 ]; then each=1; fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for t in "${targets[@]}"; do
    if [ ! -d "seeds/$t" ]; then
        echo "[fuzz] unknown target $t (expected one of: codec bpdu)" >&2
        exit 2
    fi
    mkdir -p "$corpus/$t"
    echo "[fuzz] $t: fuzzing for ${each} s"
    cargo +nightly fuzz run --sanitizer none "$t" "$corpus/$t" "seeds/$t" -- \
        -max_total_time="$each" -max_len=512
    echo "[fuzz] $t: no crash in ${each} s"
done
