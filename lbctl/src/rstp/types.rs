//! The values a BPDU carries (802.1D-2004 clauses 9 and 17.19–17.21), shared by the codec
//! ([`super::bpdu`]) and the state machines ([`super::fsm`]), and the port role the machines
//! assign.
//!
//! Times stay in the wire's unit, 1/256 s, so a decoded BPDU re-encodes to the same bytes;
//! the state machines convert where they compare or count.

/// 802.1D bridge identifier: priority (the 4-bit priority times 4096 plus the 12-bit system
/// id extension, 0..=65535) then MAC. The derived `Ord` compares priority first, then the MAC
/// bytes in order, i.e. the 8 bytes big-endian, as the standard does. Lower is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BridgeId {
    pub priority: u16,
    pub mac: [u8; 6],
}

/// A port identifier as sent in BPDUs: the 4-bit port priority (in steps of 16, 0..=240)
/// in the top 4 bits, the 12-bit port number below (17.19.21 / 9.2.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

impl PortId {
    /// A port id from a priority (0..=240, multiples of 16) and a port number (1..=4095).
    pub fn new(priority: u8, number: u16) -> PortId {
        PortId((u16::from(priority) & 0xf0) << 8 | (number & 0x0fff))
    }
    pub fn number(self) -> u16 {
        self.0 & 0x0fff
    }
    pub fn priority(self) -> u8 {
        (self.0 >> 8) as u8 & 0xf0
    }
}

/// A port priority vector (17.6): root bridge, root path cost, designated bridge, designated
/// port, then the port the vector was received on (or the port itself for a designated
/// vector). The derived `Ord` compares the fields in this order: lower is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriorityVector {
    pub root: BridgeId,
    pub root_path_cost: u32,
    pub designated_bridge: BridgeId,
    pub designated_port: PortId,
    pub bridge_port: PortId,
}

/// The four times a configuration or RST BPDU carries, in 1/256 s (the wire's unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Times {
    pub message_age: u16,
    pub max_age: u16,
    pub hello_time: u16,
    pub forward_delay: u16,
}

impl Times {
    /// One second in the wire's unit.
    pub const SECOND: u16 = 256;
}

/// A port role (17.7; 802.1D-2004 names: the 1998 edition only distinguishes root,
/// designated and "blocking", which 2004 splits into Alternate and Backup). The state
/// machines assign it; the tree theory (`stp::theory`, which re-exports it) expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Role {
    /// The bridge's best path towards the root.
    Root,
    /// The port that forwards onto its segment on behalf of the tree.
    Designated,
    /// Blocked; the segment's designated port belongs to another bridge (a redundant path).
    Alternate,
    /// Blocked; the segment's designated port belongs to this same bridge.
    Backup,
    /// Down port, down bridge, or unknown bridge: takes no part.
    Disabled,
}

/// The port role encoded in an RST BPDU's flags (bits 3–4, 9.3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WireRole {
    /// 0: unknown (the value an MSTP master port would send; never sent by RSTP).
    #[default]
    Unknown,
    /// 1: alternate or backup.
    AlternateOrBackup,
    /// 2: root.
    Root,
    /// 3: designated.
    Designated,
}

/// The flags byte of a configuration or RST BPDU (9.3.1, 9.3.3). A configuration BPDU uses
/// only `tc` and `tca`; the codec writes the others as 0 for it and ignores them on input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// Bit 1: topology change.
    pub tc: bool,
    /// Bit 2: proposal.
    pub proposal: bool,
    /// Bits 3–4: port role.
    pub role: WireRole,
    /// Bit 5: learning.
    pub learning: bool,
    /// Bit 6: forwarding.
    pub forwarding: bool,
    /// Bit 7: agreement.
    pub agreement: bool,
    /// Bit 8: topology change acknowledgment.
    pub tca: bool,
}

/// The body shared by configuration BPDUs (protocol version 0, type 0) and RST BPDUs
/// (version 2, type 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfigBody {
    pub flags: Flags,
    pub root: BridgeId,
    pub root_path_cost: u32,
    /// The transmitting bridge.
    pub bridge: BridgeId,
    /// The transmitting port.
    pub port: PortId,
    pub times: Times,
}

impl ConfigBody {
    /// The message priority vector this BPDU conveys, as received on `bridge_port` (17.6).
    pub fn priority_vector(&self, bridge_port: PortId) -> PriorityVector {
        PriorityVector {
            root: self.root,
            root_path_cost: self.root_path_cost,
            designated_bridge: self.bridge,
            designated_port: self.port,
            bridge_port,
        }
    }
}

/// A decoded BPDU (9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bpdu {
    /// A configuration BPDU (802.1D, protocol version 0, type 0x00).
    Config(ConfigBody),
    /// A topology change notification BPDU (type 0x80).
    Tcn,
    /// A rapid spanning tree BPDU (type 0x02; protocol version 2, or higher for MSTP's,
    /// read as RSTP per 9.3.4).
    Rst(ConfigBody),
}
