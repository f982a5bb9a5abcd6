//! Types of the agent's state maps: backend health (`LB_HEALTH`) and the VRRP instance
//! (`LB_VRRP`). The agent writes them; `lbctl status`, the data path and `bpftool` read them
//! from the pins, so none of them has to ask the agent over RPC.

/// Name of the backend health map: key [`HealthKey`], value [`HealthVal`].
pub const HEALTH_MAP: &str = "LB_HEALTH";
/// Name of the VRRP state map: key `u32` VRID, value [`VrrpState`].
pub const VRRP_MAP: &str = "LB_VRRP";
/// Most backends one agent tracks.
pub const HEALTH_MAX: u32 = 256;
/// Most VRRP instances one agent runs.
pub const VRRP_MAX: u32 = 16;
/// Bytes of the last check's reason kept in [`HealthVal::reason`] (NUL padded).
pub const REASON_LEN: usize = 32;

/// A backend: IPv4 address (network order bytes, so bpftool prints `[10,0,0,1]`) and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HealthKey {
    pub addr: [u8; 4],
    pub port: u16,
    /// Explicit padding, always zero (the kernel hashes every key byte).
    pub pad: u16,
}

impl HealthKey {
    pub const fn new(addr: [u8; 4], port: u16) -> Self {
        Self { addr, port, pad: 0 }
    }
}

/// [`HealthVal::last`]: no check has run yet.
pub const CHECK_NONE: u8 = 0;
/// [`HealthVal::last`]: the last observation succeeded.
pub const CHECK_OK: u8 = 1;
/// [`HealthVal::last`]: the last observation failed.
pub const CHECK_FAIL: u8 = 2;

/// One backend as one balancer sees it. Times are milliseconds since the Unix epoch.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthVal {
    /// 1 when the backend is in rotation, 0 when it is down.
    pub up: u8,
    /// Outcome of the last observation: [`CHECK_NONE`], [`CHECK_OK`] or [`CHECK_FAIL`].
    pub last: u8,
    /// 1 when the last observation came from live traffic (passive), 0 for an active check.
    pub passive: u8,
    pub pad: u8,
    pub weight: u32,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    /// How long the last check took.
    pub check_ms: u32,
    /// Index of the backend in the agent's configuration order.
    pub index: u32,
    /// Up/down transitions since the agent started.
    pub transitions: u64,
    /// Time of the last up/down transition (or of the agent's start).
    pub last_change_ms: u64,
    /// Time of the last observation (0 before the first).
    pub last_check_ms: u64,
    /// Requests sent to this backend.
    pub requests: u64,
    /// Connection failures, resets and timeouts talking to it.
    pub failures: u64,
    /// Responses by class 1xx..5xx.
    pub responses: [u64; 5],
    /// The last observation's reason ("200 OK", "connection refused", ...), NUL padded.
    pub reason: [u8; REASON_LEN],
}

impl Default for HealthVal {
    fn default() -> Self {
        Self {
            up: 0,
            last: CHECK_NONE,
            passive: 0,
            pad: 0,
            weight: 0,
            consecutive_ok: 0,
            consecutive_fail: 0,
            check_ms: 0,
            index: 0,
            transitions: 0,
            last_change_ms: 0,
            last_check_ms: 0,
            requests: 0,
            failures: 0,
            responses: [0; 5],
            reason: [0; REASON_LEN],
        }
    }
}

/// [`VrrpState::state`] values, keepalived's states.
pub const VRRP_INIT: u8 = 0;
pub const VRRP_BACKUP: u8 = 1;
pub const VRRP_MASTER: u8 = 2;
pub const VRRP_FAULT: u8 = 3;

/// One VRRP instance (value of `LB_VRRP`, key: VRID as `u32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VrrpState {
    /// [`VRRP_INIT`], [`VRRP_BACKUP`], [`VRRP_MASTER`] or [`VRRP_FAULT`].
    pub state: u8,
    /// Configured priority.
    pub priority: u8,
    /// Priority advertised now (lowered while the balancer has no healthy backend).
    pub effective_priority: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// Current master's address as network order bytes (0.0.0.0 when unknown).
    pub master: [u8; 4],
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Received packets dropped (bad checksum, TTL, auth, malformed...) plus failed sends.
    pub drops: u64,
    /// Time of the last state change, milliseconds since the Unix epoch.
    pub last_change_ms: u64,
}

const _: () = {
    assert!(core::mem::size_of::<HealthKey>() == 8);
    assert!(core::mem::size_of::<HealthVal>() == 4 + 20 + 8 * 10 + REASON_LEN);
    assert!(core::mem::size_of::<VrrpState>() == 48);
};
