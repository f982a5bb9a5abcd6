//! Builds the BPF crate `lb-ebpf` with nightly for `bpfel-unknown-none`.
//!
//! This file is the single implementation of that build. It is used by `cargo xtask build-ebpf`
//! and, as the xtask library (a build dependency), by `lbctl/build.rs`, which embeds the object
//! into the lbctl binary. It depends on `std` only.
//!
//! The nested `cargo` must not inherit what the outer cargo or a build script environment sets
//! for the host build: `RUSTFLAGS`/`CARGO_ENCODED_RUSTFLAGS` (host flags, coverage or sanitizer
//! instrumentation would break a BPF build), `CARGO_TARGET_DIR` (the outer cargo holds locks
//! there), `RUSTC`/`RUSTC_WRAPPER`/`RUSTC_WORKSPACE_WRAPPER` (stable rustc or clippy-driver
//! instead of nightly), `RUSTUP_TOOLCHAIN` (would pin the nested cargo to stable),
//! `CARGO_PROFILE_*`/`CARGO_BUILD_*` overrides and the build-script variables. All of them are
//! removed; the flags the BPF build needs are set explicitly.
#![allow(dead_code)]

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Directory of the BPF crate, relative to the workspace root.
pub const EBPF_CRATE_DIR: &str = "lb-ebpf";
/// Name of the BPF crate's binary (the ELF object aya loads).
pub const EBPF_BIN: &str = "lb-ebpf";
/// Target triple of the BPF build (little-endian BPF, like every host this lab runs on).
pub const EBPF_TARGET: &str = "bpfel-unknown-none";
/// Default rustup toolchain for the BPF build.
pub const EBPF_TOOLCHAIN: &str = "nightly";
/// Paths, relative to the workspace root, whose changes require rebuilding the BPF object.
pub const EBPF_INPUTS: &[&str] = &[
    "lb-ebpf/src",
    "lb-ebpf/Cargo.toml",
    "lb-ebpf/Cargo.lock",
    "lb-ebpf/rust-toolchain.toml",
    "lb-ebpf/.cargo/config.toml",
    "lb-common/src",
    "lb-common/Cargo.toml",
    "xtask/src/ebpf.rs",
];

/// Flags for the BPF crate (passed as `CARGO_ENCODED_RUSTFLAGS`, 0x1f-separated): full debug
/// info, and `--btf` so bpf-linker emits BTF, which `#[btf_map]` maps need and which makes
/// `bpftool map dump` print field names.
const EBPF_RUSTFLAGS: &[&str] = &["-Cdebuginfo=2", "-Clink-arg=--btf"];

/// One build of `lb-ebpf`.
pub struct EbpfBuild<'a> {
    /// Root of the lbctl workspace (the directory holding `lb-ebpf/`).
    pub workspace_root: &'a Path,
    /// Cargo target directory of the nested build; must not be the outer cargo's.
    pub target_dir: &'a Path,
    /// Rustup toolchain, normally `nightly`.
    pub toolchain: &'a str,
    /// Send the nested cargo's stdout to stderr: in a build script stdout is the channel of
    /// `cargo:` directives.
    pub stdout_to_stderr: bool,
}

impl EbpfBuild<'_> {
    /// Runs the build and returns the path of the BPF object
    /// (`<target_dir>/bpfel-unknown-none/release/lb-ebpf`).
    pub fn run(&self) -> Result<PathBuf, String> {
        let crate_dir = self.workspace_root.join(EBPF_CRATE_DIR);
        let manifest = crate_dir.join("Cargo.toml");
        if !manifest.is_file() {
            return Err(format!("{} not found", manifest.display()));
        }
        let path = search_path();
        let mut cmd = match find_in(&path, "rustup") {
            Some(rustup) => {
                let mut c = Command::new(rustup);
                c.args(["run", self.toolchain, "cargo"]);
                c
            }
            // Without rustup the `cargo` on PATH has to be a nightly one.
            None => Command::new("cargo"),
        };
        cmd.current_dir(&crate_dir)
            .arg("build")
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--release", "--bin", EBPF_BIN, "--target", EBPF_TARGET])
            .args(["-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(self.target_dir);
        for (key, _) in env::vars_os() {
            if let Some(key) = key.to_str() {
                if strip_var(key) {
                    cmd.env_remove(key);
                }
            }
        }
        cmd.env("PATH", &path);
        cmd.env("CARGO_ENCODED_RUSTFLAGS", EBPF_RUSTFLAGS.join("\x1f"));
        if self.stdout_to_stderr {
            cmd.stdout(Stdio::from(std::io::stderr()));
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building {EBPF_CRATE_DIR} failed ({status}); command: {cmd:?}. The machine needs \
                 the {} toolchain with rust-src and bpf-linker (see scripts/bootstrap.sh)",
                self.toolchain
            ));
        }
        let obj = self
            .target_dir
            .join(EBPF_TARGET)
            .join("release")
            .join(EBPF_BIN);
        let meta = fs::metadata(&obj)
            .map_err(|e| format!("BPF object {} missing after build: {e}", obj.display()))?;
        if meta.len() == 0 {
            return Err(format!("BPF object {} is empty", obj.display()));
        }
        Ok(obj)
    }
}

/// Whether an inherited environment variable must not reach the nested cargo.
fn strip_var(key: &str) -> bool {
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_MAKEFLAGS", // jobserver: the nested build shares the outer job slots
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const STRIP_EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTC_BOOTSTRAP",
        "RUSTUP_TOOLCHAIN",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        // build-script variables
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    if key.starts_with("__CARGO") {
        return true;
    }
    if key.starts_with("CARGO") {
        return !KEEP
            .iter()
            .any(|k| key == *k || (k.ends_with('_') && key.starts_with(k)));
    }
    STRIP_EXACT.contains(&key)
}

/// `PATH` with cargo's bin directory (rustup, bpf-linker) appended when it is missing.
fn search_path() -> OsString {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin"));
    if let Some(bin) = cargo_bin {
        if bin.is_dir() && !dirs.contains(&bin) {
            dirs.push(bin);
        }
    }
    env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
}

fn find_in(path: &OsString, exe: &str) -> Option<PathBuf> {
    env::split_paths(path)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}
