//! Development harnesses, compiled for tests and under the `harness` feature only (the
//! `lbctl-harness` binary that `cargo xtask bench datapath` runs); never in the product's
//! command line.
//!
//! - [`testbed`]: a throwaway namespace with veths and crafted frames for the VTEP programs;
//! - [`vtep_bench`]: per-packet cost of the VTEP programs through `BPF_PROG_TEST_RUN`;
//! - [`udp_blast`]: a batched UDP sender and counter for small-packet rates.
pub mod testbed;
pub mod udp_blast;
pub mod vtep_bench;
