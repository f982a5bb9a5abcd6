#![allow(dead_code)]
mod datapath;
mod stp;

fn main() {}
