//! The one way the programs read packet bytes: a typed header at an offset, bounds-checked.
//!
//! XDP reads the frame directly: [`ptr_at`] is the single bounds check the verifier sees
//! before every access (`data + offset + size_of::<T>() <= data_end`). TC reads through
//! `bpf_skb_load_bytes` (`TcContext::load`): the kernel checks the bounds against the whole
//! skb, so a header in the paged part of a non-linear skb (GRO on a bridge port) still reads.
//! Both copy the header out, so no reference to packet memory (whose alignment nobody
//! promises) is ever formed.
use core::mem;

use aya_ebpf::programs::{TcContext, XdpContext};

/// A pointer to a `T` at `offset` of the XDP frame, or `None` when the frame is too short.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// A packet a program can read typed headers from.
pub trait Packet {
    /// A copy of the `T` at `offset`, or `None` when the packet is too short.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

impl Packet for XdpContext {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let p = ptr_at::<T>(self, offset)?;
        // SAFETY: `ptr_at` checked that the `size_of::<T>()` bytes at `p` are inside the
        // frame; the read makes no alignment assumption.
        Some(unsafe { p.read_unaligned() })
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        self.load::<T>(offset).ok()
    }
}
