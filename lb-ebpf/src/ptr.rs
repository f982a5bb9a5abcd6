//! The one way the programs read packet bytes: a typed header at an offset, bounds-checked.
//!
//! XDP reads the frame directly: [`ptr_at`] is the single bounds check the verifier sees
//! before every access (`data + offset + size_of::<T>() <= data_end`). TC reads through
//! `bpf_skb_load_bytes` (`TcContext::load`): the kernel checks the bounds against the whole
//! skb, so a header in the paged part of a non-linear skb (GRO on a bridge port) still reads.
//! The decapsulation reads in place in both hooks (an skb's linear part, [`Linear`]).
//! [`read_at`] and [`Packet::read`] copy the header out, so they suit any type; [`header_at`]
//! lends a reference into the frame for the headers of alignment 1 ([`Header`]), so a program
//! reads only the fields it looks at (a copy of a whole header makes the compiler load and
//! assemble all of its bytes, which costs instructions on the per-packet path).
use core::mem;

use aya_ebpf::programs::{TcContext, XdpContext};

use crate::headers::{Ipv4Hdr, UdpHdr, VxlanHdr};

/// A header that may be referenced at any byte of a frame.
///
/// # Safety
/// The type is `#[repr(C)]`, has alignment 1 and every bit pattern is a valid value.
pub unsafe trait Header {}

// SAFETY: network-types' IPv4, UDP and VXLAN headers are `#[repr(C)]` structs of `u8` and
// `[u8; N]` fields only (alignment checked below).
unsafe impl Header for Ipv4Hdr {}
unsafe impl Header for UdpHdr {}
unsafe impl Header for VxlanHdr {}

const _: () = assert!(
    mem::align_of::<Ipv4Hdr>() == 1
        && mem::align_of::<UdpHdr>() == 1
        && mem::align_of::<VxlanHdr>() == 1
);

/// A context whose bytes can be read in place between `data()` and `data_end()`: the XDP
/// frame, or the linear part of an skb (which holds the headers of every frame the VTEP
/// decapsulates once `lb_vxdtc` has pulled them in).
pub trait Linear {
    /// Address of the first byte.
    fn start(&self) -> usize;
    /// Address one past the last byte readable in place.
    fn end(&self) -> usize;
    /// Length of the whole packet (for an skb, paged part included).
    fn total_len(&self) -> usize;
}

impl Linear for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn total_len(&self) -> usize {
        self.data_end() - self.data()
    }
}

impl Linear for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn total_len(&self) -> usize {
        self.len() as usize
    }
}

/// A pointer to a `T` at `offset` of the frame, or `None` when the frame (its linear part)
/// is too short.
#[inline(always)]
pub fn ptr_at<T, C: Linear>(ctx: &C, offset: usize) -> Option<*const T> {
    let start = ctx.start();
    let end = ctx.end();
    if start + offset + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// The `T` at `offset` of the frame, by reference, or `None` when the frame is too short.
#[inline(always)]
pub fn header_at<T: Header, C: Linear>(ctx: &C, offset: usize) -> Option<&T> {
    let p = ptr_at::<T, C>(ctx, offset)?;
    // SAFETY: in bounds (`ptr_at`), alignment 1 and any bit pattern valid (`Header`); the
    // programs never write the frame through a pointer while such a reference lives.
    Some(unsafe { &*p })
}

/// A copy of the `T` at `offset`, read in place, or `None` when the frame (its linear part)
/// is too short.
#[inline(always)]
pub fn read_at<T: Copy, C: Linear>(ctx: &C, offset: usize) -> Option<T> {
    let p = ptr_at::<T, C>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the `size_of::<T>()` bytes at `p` are inside the frame;
    // the read makes no alignment assumption.
    Some(unsafe { p.read_unaligned() })
}

/// An skb a program reads typed headers from wherever they lie, paged part included (the
/// observer); reads in place, from an XDP frame or an skb's linear part, are [`read_at`].
pub trait Packet {
    /// A copy of the `T` at `offset`, or `None` when the packet is too short.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

impl Packet for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        self.load::<T>(offset).ok()
    }
}

/// A copy of the `T` at `offset` of the skb of `ctx`: straight from the linear part when it
/// holds the bytes (no helper call: a call costs as much as the rest of a header check), else
/// through `bpf_skb_load_bytes` (headers in the paged part). Same result as
/// [`Packet::read`]; for the per-packet path of the encapsulation.
#[inline(always)]
pub fn tc_read_fast<T: Copy>(ctx: &TcContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() <= end {
        // SAFETY: the `size_of::<T>()` bytes at `start + offset` are inside the linear part
        // (checked just above, the check the verifier needs); no alignment assumed.
        return Some(unsafe { ((start + offset) as *const T).read_unaligned() });
    }
    ctx.read(offset)
}
