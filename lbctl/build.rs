//! Builds the BPF object (crate `lb-ebpf`, nightly, `bpfel-unknown-none`) and leaves it at
//! `$OUT_DIR/lb-ebpf.o`, where `datapath::observe` embeds it with
//! `aya::include_bytes_aligned!`. The build logic is the one of `cargo xtask build-ebpf`
//! (`xtask::ebpf`, a build dependency), so a plain `cargo build -p lbctl` needs no manual
//! step on a bootstrapped machine.
//!
//! The nested build uses its own target directory under `OUT_DIR` (the outer cargo holds the
//! locks of its own), and reruns only when the BPF sources, `lb-common` or the build logic
//! change. Set `LBCTL_EBPF_OBJ=/path/to/object` to embed a prebuilt object instead (e.g. one
//! from `cargo xtask build-ebpf --out ...` on a machine without nightly).
use std::{env, fs, path::PathBuf};

use xtask::ebpf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("lbctl has a parent directory")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dst = out_dir.join("lb-ebpf.o");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LBCTL_EBPF_OBJ");
    // Without the `runtime` feature the library is only the pure protocol cores (the fuzz
    // target's build): nothing loads BPF, so no object is built.
    if env::var_os("CARGO_FEATURE_RUNTIME").is_none() {
        return;
    }
    if let Some(prebuilt) = env::var_os("LBCTL_EBPF_OBJ") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        fs::copy(&prebuilt, &dst).unwrap_or_else(|e| {
            panic!("LBCTL_EBPF_OBJ: copying {} failed: {e}", prebuilt.display())
        });
        return;
    }
    for input in ebpf::EBPF_INPUTS {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }

    let target_dir = out_dir.join("ebpf-target");
    let obj = ebpf::EbpfBuild {
        workspace_root: &root,
        target_dir: &target_dir,
        toolchain: ebpf::EBPF_TOOLCHAIN,
        stdout_to_stderr: true,
    }
    .run()
    .unwrap_or_else(|e| panic!("building the BPF object failed: {e}"));
    fs::copy(&obj, &dst)
        .unwrap_or_else(|e| panic!("copying {} to {} failed: {e}", obj.display(), dst.display()));
}
