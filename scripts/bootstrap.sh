#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine of this project's kind lacks to build and
# test lbctl: Debian packages, bpf-linker built against LLVM 22, the nightly rust-src
# component and the bpffs mount. Idempotent: every step checks first, so a second run
# takes a few seconds. Must run as root (apt, mount).
set -euo pipefail

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: run as root (it installs packages and mounts bpffs)" >&2
    exit 1
fi

# Debian packages. llvm-22-dev/libpolly-22-dev/libzstd-dev: bpf-linker links libLLVM.
# bpftool: inspect pinned programs/maps. iproute2/iputils-ping/curl/tcpdump/bridge-utils/nftables:
# used by the lab and its tests. apache2/libapache2-mod-php: the Apache + PHP backends
# (node web = "apache"). haproxy/wrk/keepalived: reference balancer, load generator and
# VRRP daemon to compare lbctl against. graphviz: `lbctl graph` and the dashboard render
# the topology with dot. chromium: the dashboard test loads the page headless. iperf3:
# `cargo xtask bench datapath` (TCP and UDP across the tunnel). systemd: `systemd-analyze
# verify` of the agent's unit file (tests/realhost.rs; nothing is started with it).
APT_PKGS=(llvm-22-dev libpolly-22-dev libzstd-dev bpftool iproute2 iputils-ping curl
          tcpdump bridge-utils procps nftables apache2 libapache2-mod-php haproxy wrk keepalived
          graphviz chromium iperf3 systemd)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # apache2, haproxy and keepalived are tools here (lbctl runs its own instances inside
    # the lab's namespaces): their system-wide services, started by the packages on a
    # systemd machine, are not wanted in the root namespace.
    if [[ -d /run/systemd/system ]]; then
        for svc in apache2 haproxy keepalived; do
            if [[ " ${missing[*]} " == *" $svc "* ]]; then
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
            fi
        done
    fi
else
    log "Debian packages present"
fi

export PATH="$HOME/.cargo/bin:$PATH"

# bpf-linker must be built against LLVM 22 (the LLVM of this machine's nightly); its build
# finds libLLVM through llvm-config, so llvm-22's bin dir goes first on PATH.
BPF_LINKER_VERSION=0.13.0
if bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
    log "bpf-linker $BPF_LINKER_VERSION present"
else
    log "building bpf-linker $BPF_LINKER_VERSION against llvm-22 (2-3 minutes)"
    PATH=/usr/lib/llvm-22/bin:$PATH cargo install "bpf-linker@$BPF_LINKER_VERSION" --locked \
        --no-default-features --features llvm-22
fi

# cargo-fuzz: the VRRP codec's fuzz target runs in CI for a bounded time.
if cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz present"
else
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    log "nightly rust-src present"
else
    log "adding rust-src to the nightly toolchain"
    rustup component add rust-src --toolchain nightly
fi

if findmnt -t bpf /sys/fs/bpf >/dev/null 2>&1; then
    log "bpffs mounted at /sys/fs/bpf"
else
    log "mounting bpffs at /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
fi
log "done"
