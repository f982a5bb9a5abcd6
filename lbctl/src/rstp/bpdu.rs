//! The BPDU codec (802.1D-2004 clause 9): Ethernet 802.3 + LLC frames to and from
//! [`super::types::Bpdu`].
//!
//! A BPDU travels in an 802.3 frame to the STP group address 01:80:c2:00:00:00: the 12 address
//! bytes, a length field (the LLC PDU's length, at most 1500; larger values are EtherTypes),
//! the LLC header `42 42 03` (DSAP, SSAP, UI) and the BPDU. Three kinds exist (9.3):
//!
//! | kind | protocol version | type | octets |
//! |---|---|---|---|
//! | configuration | 0 (any, 9.3.4) | 0x00 | 35 |
//! | topology change notification | any | 0x80 | 4 |
//! | rapid spanning tree | 2 or more | 0x02 | 36 |
//!
//! Decoding follows the validation of 9.3.4: a BPDU longer than its kind needs is accepted
//! (the rest is ignored: an MSTP BPDU, version 3, reads as the RST BPDU it starts with),
//! one shorter is refused, and so is anything else, each under its [`DropReason`]. What the
//! state machines must judge themselves (a message age beyond max age, our own BPDU looped
//! back) is not the codec's business: those BPDUs decode.
//!
//! Encoding writes what the kernel's bridge and other RSTP bridges send: a configuration BPDU
//! carries only the TC and TCA flags, an RST BPDU is version 2 with a version-1 length of 0,
//! and the frame is padded to the 60-byte Ethernet minimum (the length field still says how
//! long the LLC PDU is, so the padding is ignored on receipt).
use std::fmt;

use super::types::{Bpdu, BridgeId, ConfigBody, Flags, PortId, Times, WireRole};

/// The STP (bridge group) destination address.
pub const STP_GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];
/// DSAP, SSAP and control of the LLC header of every BPDU.
pub const LLC_STP: [u8; 3] = [0x42, 0x42, 0x03];

/// Ethernet header: two addresses and the length field.
const ETH_HLEN: usize = 14;
/// Largest 802.3 length field; larger values are EtherTypes (Ethernet II).
const ETH_DATA_LEN: usize = 1500;
/// Smallest Ethernet frame without its FCS; shorter frames are padded.
const ETH_ZLEN: usize = 60;
/// Protocol identifier, version and type: what every BPDU starts with.
const BPDU_HEAD: usize = 4;

const TYPE_CONFIG: u8 = 0x00;
const TYPE_RST: u8 = 0x02;
const TYPE_TCN: u8 = 0x80;
/// Octets of a configuration BPDU (9.3.1).
pub const CONFIG_LEN: usize = 35;
/// Octets of a topology change notification BPDU (9.3.2).
pub const TCN_LEN: usize = 4;
/// Octets of an RST BPDU (9.3.3).
pub const RST_LEN: usize = 36;
/// The protocol version identifier of RSTP.
pub const RSTP_VERSION: u8 = 2;

const FLAG_TC: u8 = 0x01;
const FLAG_PROPOSAL: u8 = 0x02;
const ROLE_SHIFT: u8 = 2;
const ROLE_MASK: u8 = 0x0c;
const FLAG_LEARNING: u8 = 0x10;
const FLAG_FORWARDING: u8 = 0x20;
const FLAG_AGREEMENT: u8 = 0x40;
const FLAG_TCA: u8 = 0x80;

/// Why a frame was refused. One variant per reason; [`DropReason::as_str`] gives a stable
/// snake_case name (a counter label), `Display` a sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The destination is not the STP group address 01:80:c2:00:00:00.
    NotStpGroup,
    /// The length/type field is an EtherType (> 1500): BPDUs are 802.3 + LLC frames.
    EthernetII,
    /// The frame ends before its Ethernet header, before the length field's end, or the LLC
    /// PDU is too short to hold the LLC header and a BPDU's protocol id, version and type.
    Truncated,
    /// The LLC header is not `42 42 03`.
    BadLlc,
    /// The protocol identifier is not 0 (Spanning Tree Protocol).
    BadProtocolId,
    /// The BPDU type is none of 0x00 (configuration), 0x02 (RST) and 0x80 (TCN).
    UnknownType,
    /// The BPDU is shorter than its type needs (35, 36 or 4 octets).
    TooShortForType,
    /// Type 0x02 (RST) with a protocol version below 2 (9.3.4 c).
    RstVersionTooLow,
}

impl DropReason {
    /// Every reason, for counters that list them all.
    pub const ALL: [DropReason; 8] = [
        DropReason::NotStpGroup,
        DropReason::EthernetII,
        DropReason::Truncated,
        DropReason::BadLlc,
        DropReason::BadProtocolId,
        DropReason::UnknownType,
        DropReason::TooShortForType,
        DropReason::RstVersionTooLow,
    ];

    /// A stable snake_case name, e.g. for a counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotStpGroup => "not_stp_group",
            DropReason::EthernetII => "ethernet_ii",
            DropReason::Truncated => "truncated",
            DropReason::BadLlc => "bad_llc",
            DropReason::BadProtocolId => "bad_protocol_id",
            DropReason::UnknownType => "unknown_type",
            DropReason::TooShortForType => "too_short_for_type",
            DropReason::RstVersionTooLow => "rst_version_too_low",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NotStpGroup => "destination is not the STP group address 01:80:c2:00:00:00",
            DropReason::EthernetII => {
                "length field is an EtherType (> 1500): a BPDU is an 802.3 LLC frame"
            }
            DropReason::Truncated => {
                "frame ends before its 802.3 length field says or before the BPDU header"
            }
            DropReason::BadLlc => "LLC header is not 42 42 03",
            DropReason::BadProtocolId => "BPDU protocol identifier is not 0",
            DropReason::UnknownType => "BPDU type is not 0x00, 0x02 or 0x80",
            DropReason::TooShortForType => {
                "BPDU is shorter than its type needs (config 35, RST 36, TCN 4 octets)"
            }
            DropReason::RstVersionTooLow => "RST BPDU (type 0x02) with protocol version below 2",
        })
    }
}

impl std::error::Error for DropReason {}

/// A whole Ethernet frame as AF_PACKET delivers it (dst, src, 802.3 length, LLC 42 42 03,
/// BPDU) to a BPDU. Padding after the length field's end is ignored; a length field larger
/// than the frame is [`DropReason::Truncated`]. Validation per 802.1D-2004 9.3.4.
pub fn decode_frame(frame: &[u8]) -> Result<Bpdu, DropReason> {
    if frame.len() < ETH_HLEN {
        return Err(DropReason::Truncated);
    }
    if frame[..6] != STP_GROUP {
        return Err(DropReason::NotStpGroup);
    }
    let len = usize::from(u16::from_be_bytes([frame[12], frame[13]]));
    if len > ETH_DATA_LEN {
        return Err(DropReason::EthernetII);
    }
    let pdu = frame[ETH_HLEN..].get(..len).ok_or(DropReason::Truncated)?;
    decode(pdu)
}

/// The LLC PDU only (after the 14-byte Ethernet header, without padding), same rules as
/// [`decode_frame`].
pub fn decode(bpdu_and_llc: &[u8]) -> Result<Bpdu, DropReason> {
    let Some((llc, b)) = bpdu_and_llc.split_first_chunk::<3>() else {
        return Err(DropReason::Truncated);
    };
    if b.len() < BPDU_HEAD {
        return Err(DropReason::Truncated);
    }
    if *llc != LLC_STP {
        return Err(DropReason::BadLlc);
    }
    if b[..2] != [0, 0] {
        return Err(DropReason::BadProtocolId);
    }
    let (version, kind) = (b[2], b[3]);
    let need = match kind {
        TYPE_CONFIG => CONFIG_LEN,
        TYPE_TCN => TCN_LEN,
        TYPE_RST if version < RSTP_VERSION => return Err(DropReason::RstVersionTooLow),
        TYPE_RST => RST_LEN,
        _ => return Err(DropReason::UnknownType),
    };
    if b.len() < need {
        return Err(DropReason::TooShortForType);
    }
    Ok(match kind {
        TYPE_TCN => Bpdu::Tcn,
        TYPE_CONFIG => {
            let mut body = read_body(b);
            body.flags = Flags {
                tc: body.flags.tc,
                tca: body.flags.tca,
                ..Flags::default()
            };
            Bpdu::Config(body)
        }
        _ => Bpdu::Rst(read_body(b)),
    })
}

/// The whole frame to send from port MAC `src`: dst [`STP_GROUP`], 802.3 length, LLC, BPDU
/// (RST: version 2, version-1 length 0, 36 bytes), padded to the 60-byte Ethernet minimum.
pub fn encode_frame(src: [u8; 6], bpdu: &Bpdu) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_ZLEN);
    f.extend_from_slice(&STP_GROUP);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0, 0]); // length, set below
    f.extend_from_slice(&LLC_STP);
    match bpdu {
        Bpdu::Tcn => f.extend_from_slice(&[0, 0, 0, TYPE_TCN]),
        Bpdu::Config(body) => {
            f.extend_from_slice(&[0, 0, 0, TYPE_CONFIG]);
            let flags = Flags {
                tc: body.flags.tc,
                tca: body.flags.tca,
                ..Flags::default()
            };
            write_body(&mut f, body, flags);
        }
        Bpdu::Rst(body) => {
            f.extend_from_slice(&[0, 0, RSTP_VERSION, TYPE_RST]);
            write_body(&mut f, body, body.flags);
            f.push(0); // version 1 length
        }
    }
    let len = (f.len() - ETH_HLEN) as u16;
    f[12..14].copy_from_slice(&len.to_be_bytes());
    if f.len() < ETH_ZLEN {
        f.resize(ETH_ZLEN, 0);
    }
    f
}

/// The fields from the flags to the forward delay (offsets 4..35 of a configuration or RST
/// BPDU); `b` holds at least [`CONFIG_LEN`] octets.
fn read_body(b: &[u8]) -> ConfigBody {
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let bridge_at = |i: usize| BridgeId {
        priority: u16_at(i),
        mac: [b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]],
    };
    ConfigBody {
        flags: read_flags(b[4]),
        root: bridge_at(5),
        root_path_cost: u32::from_be_bytes([b[13], b[14], b[15], b[16]]),
        bridge: bridge_at(17),
        port: PortId(u16_at(25)),
        times: Times {
            message_age: u16_at(27),
            max_age: u16_at(29),
            hello_time: u16_at(31),
            forward_delay: u16_at(33),
        },
    }
}

fn write_body(f: &mut Vec<u8>, body: &ConfigBody, flags: Flags) {
    f.push(write_flags(flags));
    for (id, cost) in [(body.root, Some(body.root_path_cost)), (body.bridge, None)] {
        f.extend_from_slice(&id.priority.to_be_bytes());
        f.extend_from_slice(&id.mac);
        if let Some(cost) = cost {
            f.extend_from_slice(&cost.to_be_bytes());
        }
    }
    f.extend_from_slice(&body.port.0.to_be_bytes());
    let t = body.times;
    for v in [t.message_age, t.max_age, t.hello_time, t.forward_delay] {
        f.extend_from_slice(&v.to_be_bytes());
    }
}

fn read_flags(v: u8) -> Flags {
    Flags {
        tc: v & FLAG_TC != 0,
        proposal: v & FLAG_PROPOSAL != 0,
        role: match (v & ROLE_MASK) >> ROLE_SHIFT {
            0 => WireRole::Unknown,
            1 => WireRole::AlternateOrBackup,
            2 => WireRole::Root,
            _ => WireRole::Designated,
        },
        learning: v & FLAG_LEARNING != 0,
        forwarding: v & FLAG_FORWARDING != 0,
        agreement: v & FLAG_AGREEMENT != 0,
        tca: v & FLAG_TCA != 0,
    }
}

fn write_flags(f: Flags) -> u8 {
    let role = match f.role {
        WireRole::Unknown => 0,
        WireRole::AlternateOrBackup => 1,
        WireRole::Root => 2,
        WireRole::Designated => 3,
    };
    let bit = |on: bool, b: u8| if on { b } else { 0 };
    bit(f.tc, FLAG_TC)
        | bit(f.proposal, FLAG_PROPOSAL)
        | role << ROLE_SHIFT
        | bit(f.learning, FLAG_LEARNING)
        | bit(f.forwarding, FLAG_FORWARDING)
        | bit(f.agreement, FLAG_AGREEMENT)
        | bit(f.tca, FLAG_TCA)
}

#[cfg(test)]
mod tests;
