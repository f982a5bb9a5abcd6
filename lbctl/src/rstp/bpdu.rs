//! The BPDU codec (802.1D-2004 clause 9): Ethernet 802.3 + LLC frames to and from
//! [`super::types::Bpdu`]. Written on branch `rstp-codec`.
