//! The VTEP's forwarding table (`VX_FDB`): inner MACs learned behind remote VTEPs from
//! decapsulated frames ([`learn`]), looked up to send known unicast to one VTEP
//! ([`known_vtep`]).
use aya_ebpf::{EbpfContext, bindings::BPF_ANY, helpers::bpf_ktime_get_coarse_ns};
use aya_log_ebpf::debug;
use lb_common::vxlan::{FdbEntry, MacKey, VxConfig, VxStats};

use crate::{VX_FDB, VX_LAST, parse::Valid};

/// Learned entries are rewritten at most once a second per MAC (a map write per packet would
/// cost more than the rest of the decapsulation).
const LEARN_REFRESH_NS: u64 = 1_000_000_000;
/// Back-to-back frames from the cached MAC skip even the clock this many times: its entry is
/// refreshed after at most this many frames or a second, whichever comes later. A MAC that
/// sends fewer than this many frames per ageing period can age out while active; its frames
/// are then flooded (still delivered) until its next refresh.
const LEARN_CHECK_EVERY: u32 = 32;

/// MAC learning: the inner source MAC lives behind the outer source address. A per-CPU
/// cache of the last MAC seen spares the LRU lookup for back-to-back frames of one flow.
#[inline(always)]
pub fn learn<C: EbpfContext>(ctx: &C, v: &Valid, st: &mut VxStats) {
    if v.inner_src[0] & 1 != 0 {
        return; // a multicast source MAC is invalid; never learn it
    }
    let Some(last) = VX_LAST.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    let last = unsafe { &mut *last };
    let same = last.mac == v.inner_src && last.vtep == v.outer_src;
    // Even the clock costs (a helper call measured at ~40 ns, as much as the rest of the
    // decapsulation): a cache hit reads it only every LEARN_CHECK_EVERY frames.
    if same && last.hits < LEARN_CHECK_EVERY {
        last.hits += 1;
        return;
    }
    // Coarse time (jiffy resolution) is plenty for ageing counted in seconds.
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if same && now.wrapping_sub(last.seen_ns) <= LEARN_REFRESH_NS {
        last.hits = 0;
        return;
    }
    let key = MacKey::new(v.inner_src);
    let mut fresh = false;
    if let Some(e) = VX_FDB.get_ptr_mut(key) {
        // SAFETY: map value pointer; racing writers only ever store whole fresh values.
        let e = unsafe { &mut *e };
        if e.vtep == v.outer_src {
            if now.wrapping_sub(e.seen_ns) > LEARN_REFRESH_NS {
                e.seen_ns = now;
                st.learn_refresh += 1;
            }
            fresh = true;
        }
    }
    if !fresh {
        let entry = FdbEntry {
            vtep: v.outer_src,
            pad: 0,
            seen_ns: now,
        };
        if VX_FDB.insert(key, entry, BPF_ANY as u64).is_err() {
            return;
        }
        st.learn_new += 1;
        debug!(
            ctx,
            "vxlan: learned {:mac} behind {:i}",
            v.inner_src,
            u32::from_be_bytes(v.outer_src)
        );
    }
    last.mac = v.inner_src;
    last.vtep = v.outer_src;
    last.hits = 0;
    last.seen_ns = now;
}

/// The remote VTEP learned for the unicast MAC `dst`, unless it has aged out by `now`
/// (`bpf_ktime_get_coarse_ns`, the clock of learning).
#[inline(always)]
pub fn known_vtep(dst: [u8; 6], cfg: &VxConfig, now: u64) -> Option<[u8; 4]> {
    let e = VX_FDB.get_ptr(MacKey::new(dst))?;
    // SAFETY: map value pointer, read only.
    let e = unsafe { *e };
    if now.wrapping_sub(e.seen_ns) <= cfg.ageing_ns {
        Some(e.vtep)
    } else {
        None
    }
}
