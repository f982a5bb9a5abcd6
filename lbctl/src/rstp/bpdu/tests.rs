//! Codec tests: golden bytes of BPDUs the kernel's bridge sent and of RST BPDUs tshark decoded,
//! round trips of every kind, and one frame per [`DropReason`].
use std::collections::BTreeSet;

use super::*;

// ---------------------------------------------------------------------------------------------
// Golden frames the Linux 6.18 bridge sent (kernel STP, stp_state 1), captured with
// `tcpdump -i <port> -w` in a throw-away namespace `rstpgold-<pid>`: bridge br0 (priority
// 4096, root) and br1 (priority 32768) joined by the veth a0–b0, hello 1 s, max age 6 s,
// forward delay 2 s; captured on b0 (br1's root port) and on c1, the far end of a veth whose
// other end c0 was added to br1 to make a topology change. The kernel does not pad: 52-byte
// configuration BPDUs and a 21-byte TCN, as the veth delivered them.
// ---------------------------------------------------------------------------------------------

/// br0 (root) on a0: configuration BPDU, no flags, root = bridge = 1000.a6:d3:d3:f7:93:13,
/// cost 0, port 0x8001, message age 0, max age 6 s, hello 1 s, forward delay 2 s.
const KERNEL_CONFIG: &str = "0180c2000000a6d3d3f79313002642420300000000001000a6d3d3f79313\
                             000000001000a6d3d3f7931380010000060001000200";
/// The same after br1's port c0 began forwarding: topology change flag set.
const KERNEL_CONFIG_TC: &str = "0180c2000000a6d3d3f79313002642420300000000011000a6d3d3f79313\
                                000000001000a6d3d3f7931380010000060001000200";
/// br1 on its root port b0: the topology change notification (21 bytes, unpadded).
const KERNEL_TCN: &str = "0180c2000000ee77c3f63a22000742420300000080";
/// br0's answer to it: topology change and topology change acknowledgment.
const KERNEL_CONFIG_TC_TCA: &str = "0180c2000000a6d3d3f79313002642420300000000811000a6d3d3f79313\
                                    000000001000a6d3d3f7931380010000060001000200";
/// br1 relaying the root's information on its designated port c0 (captured on c1): cost 2,
/// bridge 8000.1a:9f:b8:39:43:df, port 0x8002, message age 1/256 s, TC.
const KERNEL_RELAYED: &str = "0180c20000001a9fb83943df002642420300000000011000a6d3d3f79313\
                              0000000280001a9fb83943df80020001060001000200";

// ---------------------------------------------------------------------------------------------
// RST BPDUs our encoder produces. Written to a pcap and decoded with TShark 4.0.17
// (`tshark -r rst.pcap -V`), which showed for each: "Protocol Version Identifier: Rapid
// Spanning Tree (2)", "BPDU Type: Rapid/Multiple Spanning Tree (0x02)", the flags below
// including the port role, root identifier, root path cost, bridge identifier, port
// identifier, message age, max age, hello time, forward delay as written, and "Version 1
// Length: 0". Kept here as golden bytes.
// ---------------------------------------------------------------------------------------------

const RST_SRC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

/// Designated, discarding, proposal (flags 0x0e): root 4096.02:00:00:00:00:0a, cost 20000,
/// bridge 32768.02:00:00:00:00:0b, port 0x8002, message age 1 s, max age 20 s, hello 2 s,
/// forward delay 15 s.
const RST_PROPOSAL: &str = "0180c200000002000000000b00274242030000\
                            02020e100002000000000a00004e20800002000000000b8002\
                            0100140002000f000000000000000000";
/// Root port, learning, forwarding, agreement (flags 0x78).
const RST_AGREEMENT: &str = "0180c200000002000000000b00274242030000\
                             020278100002000000000a00004e20800002000000000b8002\
                             0100140002000f000000000000000000";
/// Alternate port, discarding, topology change and acknowledgment (flags 0x85).
const RST_ALTERNATE_TC: &str = "0180c200000002000000000b00274242030000\
                                020285100002000000000a00004e20800002000000000b8002\
                                0100140002000f000000000000000000";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(s.len() % 2, 0, "odd hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn bridge(priority: u16, mac: [u8; 6]) -> BridgeId {
    BridgeId { priority, mac }
}

const BR0: [u8; 6] = [0xa6, 0xd3, 0xd3, 0xf7, 0x93, 0x13];

fn kernel_root_body(flags: Flags) -> ConfigBody {
    ConfigBody {
        flags,
        root: bridge(0x1000, BR0),
        root_path_cost: 0,
        bridge: bridge(0x1000, BR0),
        port: PortId(0x8001),
        times: Times {
            message_age: 0,
            max_age: 6 * Times::SECOND,
            hello_time: Times::SECOND,
            forward_delay: 2 * Times::SECOND,
        },
    }
}

fn rst_body(flags: Flags) -> ConfigBody {
    ConfigBody {
        flags,
        root: bridge(0x1000, [2, 0, 0, 0, 0, 0x0a]),
        root_path_cost: 20000,
        bridge: bridge(0x8000, RST_SRC),
        port: PortId::new(128, 2),
        times: Times {
            message_age: Times::SECOND,
            max_age: 20 * Times::SECOND,
            hello_time: 2 * Times::SECOND,
            forward_delay: 15 * Times::SECOND,
        },
    }
}

fn tc_only(tc: bool, tca: bool) -> Flags {
    Flags {
        tc,
        tca,
        ..Flags::default()
    }
}

/// The kernel's frames and what they carry.
fn kernel_goldens() -> Vec<(&'static str, Bpdu)> {
    let relayed = ConfigBody {
        root_path_cost: 2,
        bridge: bridge(0x8000, [0x1a, 0x9f, 0xb8, 0x39, 0x43, 0xdf]),
        port: PortId(0x8002),
        times: Times {
            message_age: 1,
            ..kernel_root_body(Flags::default()).times
        },
        ..kernel_root_body(tc_only(true, false))
    };
    vec![
        (
            KERNEL_CONFIG,
            Bpdu::Config(kernel_root_body(Flags::default())),
        ),
        (
            KERNEL_CONFIG_TC,
            Bpdu::Config(kernel_root_body(tc_only(true, false))),
        ),
        (KERNEL_TCN, Bpdu::Tcn),
        (
            KERNEL_CONFIG_TC_TCA,
            Bpdu::Config(kernel_root_body(tc_only(true, true))),
        ),
        (KERNEL_RELAYED, Bpdu::Config(relayed)),
    ]
}

/// Our RST frames and what they carry.
fn rst_goldens() -> Vec<(&'static str, Bpdu)> {
    let proposal = Flags {
        proposal: true,
        role: WireRole::Designated,
        ..Flags::default()
    };
    let agreement = Flags {
        role: WireRole::Root,
        learning: true,
        forwarding: true,
        agreement: true,
        ..Flags::default()
    };
    let alternate = Flags {
        role: WireRole::AlternateOrBackup,
        tc: true,
        tca: true,
        ..Flags::default()
    };
    vec![
        (RST_PROPOSAL, Bpdu::Rst(rst_body(proposal))),
        (RST_AGREEMENT, Bpdu::Rst(rst_body(agreement))),
        (RST_ALTERNATE_TC, Bpdu::Rst(rst_body(alternate))),
    ]
}

#[test]
fn decodes_what_the_kernel_sends() {
    for (golden, want) in kernel_goldens() {
        let frame = hex(golden);
        assert_eq!(decode_frame(&frame), Ok(want), "{golden}");
        // The LLC payload alone decodes the same.
        let len = usize::from(u16::from_be_bytes([frame[12], frame[13]]));
        assert_eq!(decode(&frame[14..14 + len]), Ok(want), "{golden}");
    }
}

#[test]
fn encodes_what_the_kernel_sends() {
    // Byte for byte, plus the padding to 60 bytes the kernel leaves out on a veth.
    for (golden, bpdu) in kernel_goldens() {
        let frame = hex(golden);
        let src: [u8; 6] = frame[6..12].try_into().unwrap();
        assert_eq!(encode_frame(src, &bpdu), pad60(frame), "{golden}");
    }
}

#[test]
fn rst_bpdus_match_the_tshark_checked_bytes() {
    for (golden, bpdu) in rst_goldens() {
        let frame = hex(golden);
        assert_eq!(frame.len(), 60, "{golden}");
        assert_eq!(encode_frame(RST_SRC, &bpdu), frame, "{golden}");
        assert_eq!(decode_frame(&frame), Ok(bpdu), "{golden}");
        // Version 2, type 2, version 1 length 0, 36 octets (length field 3 + 36).
        assert_eq!(&frame[12..14], &[0, 39]);
        assert_eq!(frame[17..21], [0, 0, 2, 2]);
        assert_eq!(frame[14 + 3 + 35], 0);
    }
}

#[test]
fn every_rst_flags_byte_round_trips() {
    let frame = hex(RST_PROPOSAL);
    for flags in 0..=255u8 {
        let mut f = frame.clone();
        f[21] = flags;
        let bpdu = decode_frame(&f).expect("RST decodes");
        assert_eq!(encode_frame(RST_SRC, &bpdu), f, "flags {flags:#04x}");
    }
}

#[test]
fn config_bpdus_keep_only_tc_and_tca() {
    // 802.1D uses bits 1 and 8 only; the others are ignored on input and sent as 0.
    let frame = hex(KERNEL_CONFIG);
    for flags in 0..=255u8 {
        let mut f = frame.clone();
        f[21] = flags;
        let Ok(Bpdu::Config(body)) = decode_frame(&f) else {
            panic!("config BPDU with flags {flags:#04x} did not decode");
        };
        assert_eq!(body.flags, tc_only(flags & 1 != 0, flags & 0x80 != 0));
        let again = encode_frame(RST_SRC, &Bpdu::Config(body));
        assert_eq!(again[21], flags & 0x81);
    }
}

#[test]
fn round_trip_every_kind() {
    let mut body = rst_body(Flags {
        tc: true,
        proposal: true,
        role: WireRole::Unknown,
        ..Flags::default()
    });
    body.root_path_cost = u32::MAX;
    body.times.message_age = u16::MAX;
    for bpdu in [
        Bpdu::Tcn,
        Bpdu::Config(ConfigBody {
            flags: tc_only(false, true),
            ..body
        }),
        Bpdu::Rst(body),
        Bpdu::Rst(ConfigBody::default()),
        Bpdu::Config(ConfigBody::default()),
    ] {
        let frame = encode_frame(RST_SRC, &bpdu);
        assert_eq!(frame.len(), 60, "{bpdu:?}");
        assert_eq!(frame[..6], STP_GROUP);
        assert_eq!(frame[6..12], RST_SRC);
        assert_eq!(decode_frame(&frame), Ok(bpdu));
    }
}

#[test]
fn padding_and_longer_bpdus_are_ignored() {
    // Padding after the length field's end: ignored, whatever it holds.
    let mut frame = hex(KERNEL_CONFIG);
    frame.extend_from_slice(&[0xff; 20]);
    assert_eq!(decode_frame(&frame), Ok(kernel_goldens()[0].1));
    // An MSTP BPDU (version 3, 36 octets of RST BPDU then the MST part) reads as RST (9.3.4).
    let mut mst = hex(RST_AGREEMENT);
    mst.truncate(14 + 3 + 36);
    mst[19] = 3;
    mst.extend_from_slice(&[0, 64]); // version 3 length
    mst.extend_from_slice(&[0x5a; 64]);
    let len = (mst.len() - 14) as u16;
    mst[12..14].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode_frame(&mst), Ok(rst_goldens()[1].1));
    // A configuration BPDU is type 0 whatever its version says (9.3.4 a).
    let mut v2 = hex(KERNEL_CONFIG);
    v2[19] = 2;
    assert_eq!(decode_frame(&v2), Ok(kernel_goldens()[0].1));
}

/// One frame per reason.
fn refused() -> Vec<(&'static str, Vec<u8>, DropReason)> {
    let config = hex(KERNEL_CONFIG);
    let rst = hex(RST_PROPOSAL);
    let with = |base: &[u8], at: usize, v: u8| {
        let mut f = base.to_vec();
        f[at] = v;
        f
    };
    let with_len = |base: &[u8], len: u16| {
        let mut f = base.to_vec();
        f[12..14].copy_from_slice(&len.to_be_bytes());
        f
    };
    vec![
        (
            "shorter than an Ethernet header",
            config[..13].to_vec(),
            DropReason::Truncated,
        ),
        (
            "unicast destination",
            with(&config, 0, 0x02),
            DropReason::NotStpGroup,
        ),
        (
            "LLDP group address",
            with(&config, 5, 0x0e),
            DropReason::NotStpGroup,
        ),
        (
            "EtherType 0x0800",
            with_len(&config, 0x0800),
            DropReason::EthernetII,
        ),
        (
            "length 1501",
            with_len(&config, 1501),
            DropReason::EthernetII,
        ),
        (
            "length beyond the frame",
            with_len(&config, 39),
            DropReason::Truncated,
        ),
        (
            "frame cut inside the BPDU",
            config[..40].to_vec(),
            DropReason::Truncated,
        ),
        (
            "LLC PDU of 3 octets",
            with_len(&config, 3),
            DropReason::Truncated,
        ),
        (
            "LLC PDU of 6 octets",
            with_len(&config, 6),
            DropReason::Truncated,
        ),
        ("DSAP 0xaa", with(&config, 14, 0xaa), DropReason::BadLlc),
        ("control 0x13", with(&config, 16, 0x13), DropReason::BadLlc),
        (
            "protocol id 0x0001",
            with(&config, 18, 1),
            DropReason::BadProtocolId,
        ),
        (
            "protocol id 0x0100",
            with(&config, 17, 1),
            DropReason::BadProtocolId,
        ),
        (
            "type 0x01",
            with(&config, 20, 0x01),
            DropReason::UnknownType,
        ),
        (
            "type 0xff",
            with(&config, 20, 0xff),
            DropReason::UnknownType,
        ),
        (
            "config of 34 octets",
            with_len(&config, 3 + 34),
            DropReason::TooShortForType,
        ),
        (
            "RST of 35 octets",
            with_len(&rst, 3 + 35),
            DropReason::TooShortForType,
        ),
        // A TCN is the 4-octet head every BPDU has: 3 octets are short of any BPDU.
        (
            "TCN of 3 octets",
            with_len(&hex(KERNEL_TCN), 3 + 3),
            DropReason::Truncated,
        ),
        (
            "RST type with version 0",
            with(&rst, 19, 0),
            DropReason::RstVersionTooLow,
        ),
        (
            "RST type with version 1",
            with(&rst, 19, 1),
            DropReason::RstVersionTooLow,
        ),
    ]
}

#[test]
fn every_drop_reason_is_reached() {
    let mut seen = BTreeSet::new();
    for (what, frame, want) in refused() {
        assert_eq!(decode_frame(&frame), Err(want), "{what}");
        seen.insert(want);
    }
    let all: BTreeSet<DropReason> = DropReason::ALL.into_iter().collect();
    assert_eq!(seen, all, "a reason no test reaches");
}

#[test]
fn decode_refuses_short_llc_payloads() {
    assert_eq!(decode(&[]), Err(DropReason::Truncated));
    assert_eq!(
        decode(&[0x42, 0x42, 0x03, 0, 0, 0]),
        Err(DropReason::Truncated)
    );
    assert_eq!(decode(&[0x42, 0x42, 0x03, 0, 0, 0, 0x80]), Ok(Bpdu::Tcn));
    assert_eq!(
        decode(&[0x42, 0x42, 0x03, 0, 0, 0, 0x00]),
        Err(DropReason::TooShortForType)
    );
}

#[test]
fn drop_reasons_have_stable_distinct_names() {
    let names: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), DropReason::ALL.len());
    for r in DropReason::ALL {
        let name = r.as_str();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
        assert!(r.to_string().len() > 10, "{r:?} has no sentence");
    }
    assert_eq!(DropReason::TooShortForType.as_str(), "too_short_for_type");
}
