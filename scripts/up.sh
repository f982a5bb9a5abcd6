#!/usr/bin/env bash
# Command 1 of the README: install what is missing, build lbctl (with its BPF programs)
# and bring up the default scenario. Run as root. Extra arguments go to `lbctl up`
# (e.g. -c configs/my-lab.toml --lab mylab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p lbctl
install -m 0755 target/release/lbctl /usr/local/bin/lbctl
echo "[up] installed /usr/local/bin/lbctl"
exec /usr/local/bin/lbctl up "$@"
