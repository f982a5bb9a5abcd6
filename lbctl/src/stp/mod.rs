//! Spanning tree: the tree 802.1D says the config should produce, and port roles derived
//! from what the kernel reports.
#![forbid(unsafe_code)]
pub mod loops;
pub mod theory;
