//! The part of xtask other crates use: the BPF object's build (`lbctl/build.rs` embeds the
//! object it produces; `cargo xtask build-ebpf` runs the same code).
pub mod ebpf;
