//! VRRP advertisement encoding and decoding (sans-IO): VRRPv2 (RFC 3768) and VRRPv3
//! (RFC 5798 / RFC 9568) for IPv4, plus the receive checks that decide whether a packet
//! reaches the state machine. Every refusal is a named [`Drop`] reason.
//!
//! Checksums: VRRPv2 sums the VRRP message only. For VRRPv3 over IPv4, RFC 9568 also says
//! "the VRRP message only", but keepalived and FRR (and RFC 5798's errata-era practice)
//! include an IPv4 pseudo-header; we send the pseudo-header form by default and accept
//! both, reporting which one each packet used ([`ChecksumForm`]).
//! keepalived 2.2.7 refuses the message-only form ("Invalid VRRPv3 checksum", checked by
//! hand in a namespace pair), so that form is only for peers that follow RFC 9568 literally.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

/// IP protocol number of VRRP (and of CARP, which squats on it).
pub const IPPROTO_VRRP: u8 = 112;
/// 224.0.0.18, the VRRP multicast group.
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// VRRP packets must be sent and received with this TTL.
pub const VRRP_TTL: u8 = 255;
/// CARP advertisement size (version 2, type 1 like VRRPv2, but counter + SHA1 HMAC).
pub const CARP_LEN: usize = 36;
const CARP_AUTHLEN: u8 = 7;
/// Length of the v2 authentication data trailer.
pub const AUTH_LEN: usize = 8;

/// Why a received packet was discarded. The state machine never sees these packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Drop {
    /// Not an IPv4 packet of protocol 112 (or an IP header we cannot parse).
    NotIpv4,
    /// IP TTL is not 255 (the packet may have been routed).
    Ttl,
    /// VRRP version is not the one this instance runs (or not 2/3 at all).
    Version,
    /// VRRP type is not 1 (advertisement).
    Type,
    /// Shorter than its headers or than its address count requires.
    Truncated,
    /// Longer than the address count says (IP total length governs; Ethernet padding
    /// after it is fine).
    Length,
    /// Checksum wrong (for v3: in both the pseudo-header and the message-only form).
    Checksum,
    /// A VRID this instance does not run.
    Vrid,
    /// VRRPv2 advertisement interval differs from ours (RFC 3768 §7.1 MUST discard).
    IntervalMismatch,
    /// VRRPv2 authentication type or simple-text password mismatch.
    Auth,
    /// Address count is 0.
    AddrCount,
    /// Advertisement interval is 0.
    IntervalZero,
    /// Our own advertisement came back (source is our own address).
    Own,
    /// A CARP advertisement (same protocol number, 36-byte different layout).
    Carp,
    /// Unicast mode: the sender is not one of the configured peers.
    Peer,
}

impl Drop {
    #[cfg(test)]
    pub const ALL: [Drop; 15] = [
        Drop::NotIpv4,
        Drop::Ttl,
        Drop::Version,
        Drop::Type,
        Drop::Truncated,
        Drop::Length,
        Drop::Checksum,
        Drop::Vrid,
        Drop::IntervalMismatch,
        Drop::Auth,
        Drop::AddrCount,
        Drop::IntervalZero,
        Drop::Own,
        Drop::Carp,
        Drop::Peer,
    ];

    /// The counter name (snapshot key).
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::NotIpv4 => "not_ipv4",
            Drop::Ttl => "ttl",
            Drop::Version => "version",
            Drop::Type => "type",
            Drop::Truncated => "truncated",
            Drop::Length => "length",
            Drop::Checksum => "checksum",
            Drop::Vrid => "vrid",
            Drop::IntervalMismatch => "interval_mismatch",
            Drop::Auth => "auth",
            Drop::AddrCount => "addr_count",
            Drop::IntervalZero => "interval_zero",
            Drop::Own => "own",
            Drop::Carp => "carp",
            Drop::Peer => "peer",
        }
    }
}

impl std::fmt::Display for Drop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version an instance runs and an advertisement carries. The two differ in
/// what follows the address count (v2: authentication type and an interval in seconds; v3:
/// a 12-bit interval in centiseconds), in the v2-only authentication trailer, in the
/// checksum (v3 over IPv4 may include a pseudo-header) and, in the state machine, in the
/// skew time and whether a backup learns the master's interval.
///
/// Written as its number wherever it is text (the config's `version = 2|3`, the agent's
/// JSON); any other number is refused with [`UnknownVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Version {
    /// RFC 3768 (keepalived's default).
    V2,
    /// RFC 5798 / RFC 9568.
    V3,
}

impl Version {
    /// The number in the header's version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl From<Version> for u8 {
    fn from(v: Version) -> u8 {
        v.number()
    }
}

impl TryFrom<u8> for Version {
    type Error = UnknownVersion;

    fn try_from(n: u8) -> Result<Self, UnknownVersion> {
        match n {
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            n => Err(UnknownVersion(n)),
        }
    }
}

/// A VRRP version number other than 2 or 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownVersion(pub u8);

impl std::fmt::Display for UnknownVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: use 2 or 3", self.0)
    }
}

impl std::error::Error for UnknownVersion {}

/// Which checksum a packet carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumForm {
    /// VRRPv2: the message only (the only form v2 has).
    V2,
    /// VRRPv3 with the IPv4 pseudo-header (keepalived, FRR).
    PseudoHeader,
    /// VRRPv3 over the message only (RFC 9568's text).
    MessageOnly,
}

impl ChecksumForm {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumForm::V2 => "v2",
            ChecksumForm::PseudoHeader => "v3_pseudo_header",
            ChecksumForm::MessageOnly => "v3_message_only",
        }
    }
}

/// A VRRP advertisement, version-neutral. The interval is kept in centiseconds (v2 carries
/// seconds: encoded as `interval_cs / 100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: seconds × 100).
    pub interval_cs: u16,
    pub addrs: Vec<Ipv4Addr>,
    /// v2 only: 0 none, 1 simple text, 2 IP AH (not supported).
    pub auth_type: u8,
    /// v2 only.
    pub auth_data: [u8; AUTH_LEN],
}

impl Advert {
    /// A plain advertisement (no authentication).
    pub fn new(
        version: Version,
        vrid: u8,
        priority: u8,
        interval_cs: u16,
        addrs: Vec<Ipv4Addr>,
    ) -> Self {
        Advert {
            version,
            vrid,
            priority,
            interval_cs,
            addrs,
            auth_type: 0,
            auth_data: [0; AUTH_LEN],
        }
    }

    /// Sets v2 simple-text authentication (type 1, password zero-padded/truncated to 8 bytes).
    pub fn with_password(mut self, pass: &str) -> Self {
        self.auth_type = 1;
        self.auth_data = password_bytes(pass);
        self
    }
}

pub fn password_bytes(pass: &str) -> [u8; AUTH_LEN] {
    let mut d = [0u8; AUTH_LEN];
    for (o, b) in d.iter_mut().zip(pass.bytes()) {
        *o = b;
    }
    d
}

use lb_common::csum::inet_checksum;

fn pseudo_hdr(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = IPPROTO_VRRP;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// Encodes the VRRP message (no IP header). `src`/`dst` are the IP addresses the message
/// will carry, needed for the v3 pseudo-header checksum (`pseudo_header = true`).
pub fn encode(a: &Advert, src: Ipv4Addr, dst: Ipv4Addr, pseudo_header: bool) -> Vec<u8> {
    let n = a.addrs.len().min(255);
    let mut m = Vec::with_capacity(8 + 4 * n + AUTH_LEN);
    m.push((a.version.number() << 4) | 1);
    m.push(a.vrid);
    m.push(a.priority);
    m.push(n as u8);
    match a.version {
        Version::V2 => {
            m.push(a.auth_type);
            m.push((a.interval_cs / 100).min(255) as u8);
        }
        Version::V3 => m.extend_from_slice(&(a.interval_cs & 0x0fff).to_be_bytes()),
    }
    m.extend_from_slice(&[0, 0]);
    for ip in a.addrs.iter().take(n) {
        m.extend_from_slice(&ip.octets());
    }
    if a.version == Version::V2 {
        m.extend_from_slice(&a.auth_data);
    }
    let cs = if a.version == Version::V3 && pseudo_header {
        inet_checksum(&[&pseudo_hdr(src, dst, m.len()), &m])
    } else {
        inet_checksum(&[&m])
    };
    m[6..8].copy_from_slice(&cs.to_be_bytes());
    m
}

/// Wraps a payload in an IPv4 header (20 bytes, no options) as VRRP sends it: TOS 0xc0
/// (internetwork control), TTL as given (255 for VRRP), protocol 112, DF clear, ID 0 (the
/// kernel fills ID in with IP_HDRINCL), header checksum computed.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[1] = 0xc0;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[8] = ttl;
    h[9] = IPPROTO_VRRP;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let cs = inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&cs.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A structurally valid advertisement with the IP facts the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub advert: Advert,
    pub checksum: ChecksumForm,
}

/// Parses an IPv4 packet (header included, as a raw socket delivers it). Checks that do
/// not depend on configuration: IP header, TTL, CARP, version/type, lengths, checksum,
/// address count and interval 0. The IP total length governs: bytes after it (Ethernet
/// padding) are ignored.
pub fn decode_ipv4(pkt: &[u8]) -> Result<Received, Drop> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return Err(Drop::NotIpv4);
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if ihl < 20 || pkt[9] != IPPROTO_VRRP {
        return Err(Drop::NotIpv4);
    }
    if total < ihl || pkt.len() < total {
        return Err(Drop::Truncated);
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let ttl = pkt[8];
    if ttl != VRRP_TTL {
        return Err(Drop::Ttl);
    }
    let (advert, checksum) = decode_message(&pkt[ihl..total], src, dst)?;
    Ok(Received {
        src,
        dst,
        ttl,
        advert,
        checksum,
    })
}

/// Parses a VRRP message (`m` is exactly the IP payload). `src`/`dst` serve the v3
/// pseudo-header checksum.
pub fn decode_message(
    m: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<(Advert, ChecksumForm), Drop> {
    if m.len() < 8 {
        return Err(Drop::Truncated);
    }
    let typ = m[0] & 0x0f;
    let version = Version::try_from(m[0] >> 4).map_err(|_| Drop::Version)?;
    // CARP: version 2, type 1 like VRRPv2, but 36 bytes with authlen 7 (32-bit words of
    // counter + HMAC) where VRRPv2 has its address count: a VRRPv2 message with count 7
    // would be 8 + 28 + 8 = 44 bytes, so the two cannot be confused.
    if version == Version::V2 && m.len() == CARP_LEN && m[3] == CARP_AUTHLEN && m[4] == 0 {
        return Err(Drop::Carp);
    }
    if typ != 1 {
        return Err(Drop::Type);
    }
    let count = usize::from(m[3]);
    if count == 0 {
        return Err(Drop::AddrCount);
    }
    let auth_len = match version {
        Version::V2 => AUTH_LEN,
        Version::V3 => 0,
    };
    let need = 8 + 4 * count + auth_len;
    if m.len() < need {
        return Err(Drop::Truncated);
    }
    if m.len() > need {
        return Err(Drop::Length);
    }
    let form = match version {
        Version::V2 if inet_checksum(&[m]) == 0 => ChecksumForm::V2,
        Version::V3 if inet_checksum(&[&pseudo_hdr(src, dst, m.len()), m]) == 0 => {
            ChecksumForm::PseudoHeader
        }
        Version::V3 if inet_checksum(&[m]) == 0 => ChecksumForm::MessageOnly,
        _ => return Err(Drop::Checksum),
    };
    let (interval_cs, auth_type) = match version {
        Version::V2 => (u16::from(m[5]) * 100, m[4]),
        Version::V3 => (u16::from_be_bytes([m[4], m[5]]) & 0x0fff, 0),
    };
    if interval_cs == 0 {
        return Err(Drop::IntervalZero);
    }
    let addrs = m[8..8 + 4 * count]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    let mut auth_data = [0u8; AUTH_LEN];
    auth_data[..auth_len].copy_from_slice(&m[8 + 4 * count..need]);
    Ok((
        Advert {
            version,
            vrid: m[1],
            priority: m[2],
            interval_cs,
            addrs,
            auth_type,
            auth_data,
        },
        form,
    ))
}

/// What this instance accepts (the configuration-dependent checks).
#[derive(Debug, Clone)]
pub struct RxPolicy {
    pub version: Version,
    pub vrid: u8,
    /// Our advertisement interval in centiseconds (v2: must match exactly).
    pub interval_cs: u16,
    /// v2 simple-text password; None = authentication type 0 expected.
    pub auth_pass: Option<String>,
    /// Our own addresses (a packet from one of them is our own, looped back).
    pub own: Vec<Ipv4Addr>,
    /// Unicast peers; when non-empty only they are accepted.
    pub peers: Vec<Ipv4Addr>,
}

/// Configuration-dependent checks, after [`decode_ipv4`].
pub fn check(r: &Received, p: &RxPolicy) -> Result<(), Drop> {
    let a = &r.advert;
    if a.version != p.version {
        return Err(Drop::Version);
    }
    if a.vrid != p.vrid {
        return Err(Drop::Vrid);
    }
    if p.own.contains(&r.src) {
        return Err(Drop::Own);
    }
    if !p.peers.is_empty() && !p.peers.contains(&r.src) {
        return Err(Drop::Peer);
    }
    if a.version == Version::V2 {
        match &p.auth_pass {
            None if a.auth_type != 0 => return Err(Drop::Auth),
            Some(pass) if a.auth_type != 1 || a.auth_data != password_bytes(pass) => {
                return Err(Drop::Auth)
            }
            _ => {}
        }
        if a.interval_cs != p.interval_cs {
            return Err(Drop::IntervalMismatch);
        }
    }
    Ok(())
}

/// Both steps: the advertisement and its checksum form, or the reason to drop it.
pub fn receive(pkt: &[u8], p: &RxPolicy) -> Result<Received, Drop> {
    let r = decode_ipv4(pkt)?;
    check(&r, p)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::Version::{V2, V3};
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 254);
    const BAL1: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 250);
    const BAL2: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 251);

    fn policy(version: Version) -> RxPolicy {
        RxPolicy {
            version,
            vrid: 12,
            interval_cs: 100,
            auth_pass: None,
            own: vec![BAL2],
            peers: vec![],
        }
    }

    /// The v2 golden advertisement: vrid 12, priority 150, interval 1 s, 172.16.1.254,
    /// auth none. Checksum by hand: 0x210c + 0x9601 + 0x0001 + 0xac10 + 0x01fe = 0x1651c,
    /// folded 0x651d, complemented 0x9ae2 (same bytes as keepalived 2.2.7 sends, captured
    /// with tcpdump in the interop test namespace).
    const V2_GOLDEN: [u8; 20] = [
        0x21, 0x0c, 0x96, 0x01, 0x00, 0x01, 0x9a, 0xe2, 0xac, 0x10, 0x01, 0xfe, 0, 0, 0, 0, 0, 0,
        0, 0,
    ];

    /// v3, vrid 12, priority 150, interval 100 cs, 172.16.1.254 from 172.16.1.250 to
    /// 224.0.0.18, pseudo-header checksum. By hand: pseudo-header words ac10 01fa (src)
    /// e000 0012 (dst) 0070 (proto) 000c (len) sum to 0x8e99; message words 310c 9601 0064
    /// ac10 01fe sum (folded) to 0x7580; total 0x10419 folds to 0x041a; checksum 0xfbe5.
    /// keepalived 2.2.7 (`version 3`) sends exactly these bytes (tcpdump capture).
    const V3_GOLDEN_PSEUDO: [u8; 12] = [
        0x31, 0x0c, 0x96, 0x01, 0x00, 0x64, 0xfb, 0xe5, 0xac, 0x10, 0x01, 0xfe,
    ];
    /// Same advertisement, RFC 9568 message-only checksum: !0x7580 = 0x8a7f.
    const V3_GOLDEN_RFC: [u8; 12] = [
        0x31, 0x0c, 0x96, 0x01, 0x00, 0x64, 0x8a, 0x7f, 0xac, 0x10, 0x01, 0xfe,
    ];

    fn adv(version: Version, prio: u8) -> Advert {
        Advert::new(version, 12, prio, 100, vec![VIP])
    }

    #[test]
    fn version_is_its_number_and_nothing_else() {
        for v in [V2, V3] {
            assert_eq!(Version::try_from(v.number()), Ok(v));
            assert_eq!(u8::from(v), v.number());
        }
        for n in [0, 1, 4, 15, 255] {
            assert_eq!(Version::try_from(n), Err(UnknownVersion(n)));
        }
        assert_eq!(UnknownVersion(4).to_string(), "4: use 2 or 3");
        // Text forms (config, the agent's JSON) carry the number.
        assert_eq!(serde_json::to_string(&V3).unwrap(), "3");
        assert_eq!(serde_json::from_str::<Version>("2").unwrap(), V2);
        let e = serde_json::from_str::<Version>("4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("4: use 2 or 3"), "{e}");
    }

    #[test]
    fn golden_v2() {
        let m = encode(&adv(V2, 150), BAL1, VRRP_GROUP, true);
        assert_eq!(m, V2_GOLDEN);
        let (a, f) = decode_message(&V2_GOLDEN, BAL1, VRRP_GROUP).unwrap();
        assert_eq!(a, adv(V2, 150));
        assert_eq!(f, ChecksumForm::V2);
    }

    #[test]
    fn golden_v3_both_forms() {
        assert_eq!(
            encode(&adv(V3, 150), BAL1, VRRP_GROUP, true),
            V3_GOLDEN_PSEUDO
        );
        assert_eq!(
            encode(&adv(V3, 150), BAL1, VRRP_GROUP, false),
            V3_GOLDEN_RFC
        );
        let (a, f) = decode_message(&V3_GOLDEN_PSEUDO, BAL1, VRRP_GROUP).unwrap();
        assert_eq!((a, f), (adv(V3, 150), ChecksumForm::PseudoHeader));
        let (a, f) = decode_message(&V3_GOLDEN_RFC, BAL1, VRRP_GROUP).unwrap();
        assert_eq!((a, f), (adv(V3, 150), ChecksumForm::MessageOnly));
        // The pseudo-header form is bound to the addresses: another destination fails it.
        assert_eq!(
            decode_message(&V3_GOLDEN_PSEUDO, BAL1, BAL2),
            Err(Drop::Checksum)
        );
    }

    #[test]
    fn golden_ip_header() {
        let p = ipv4_packet(BAL1, VRRP_GROUP, 255, &V2_GOLDEN);
        assert_eq!(p.len(), 40);
        assert_eq!(inet_checksum(&[&p[..20]]), 0);
        assert_eq!(&p[..4], &[0x45, 0xc0, 0x00, 0x28]);
        let r = receive(&p, &policy(V2)).unwrap();
        assert_eq!(r.src, BAL1);
        assert_eq!(r.advert.priority, 150);
    }

    #[test]
    fn odd_length_checksum() {
        // RFC 1071 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            inet_checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
        assert_eq!(inet_checksum(&[&[0x01]]), !0x0100);
    }

    #[test]
    fn password_roundtrip() {
        let a = adv(V2, 100).with_password("secretpassword");
        assert_eq!(&a.auth_data, b"secretpa");
        let m = encode(&a, BAL1, VRRP_GROUP, true);
        let p = ipv4_packet(BAL1, VRRP_GROUP, 255, &m);
        let mut pol = policy(V2);
        assert_eq!(receive(&p, &pol).unwrap_err(), Drop::Auth);
        pol.auth_pass = Some("secretpassword".into());
        assert!(receive(&p, &pol).is_ok());
        pol.auth_pass = Some("other".into());
        assert_eq!(receive(&p, &pol).unwrap_err(), Drop::Auth);
        // Configured password, packet without authentication.
        let p = ipv4_packet(
            BAL1,
            VRRP_GROUP,
            255,
            &encode(&adv(V2, 100), BAL1, VRRP_GROUP, true),
        );
        assert_eq!(receive(&p, &pol).unwrap_err(), Drop::Auth);
    }

    fn pkt(version: Version, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut m = encode(&adv(version, 100), BAL1, VRRP_GROUP, true);
        f(&mut m);
        ipv4_packet(BAL1, VRRP_GROUP, 255, &m)
    }

    /// Recomputes the v2 / message-only checksum after a mutation.
    fn fix_cs(m: &mut [u8]) {
        m[6] = 0;
        m[7] = 0;
        let cs = inet_checksum(&[m]);
        m[6..8].copy_from_slice(&cs.to_be_bytes());
    }

    #[test]
    fn every_drop_reason() {
        let p2 = policy(V2);
        let p3 = policy(V3);
        let cases: Vec<(Vec<u8>, &RxPolicy, Drop)> = vec![
            (vec![0x60; 40], &p2, Drop::NotIpv4),
            (
                {
                    let mut p = pkt(V2, |_| {});
                    p[8] = 64;
                    p
                },
                &p2,
                Drop::Ttl,
            ),
            (
                pkt(V2, |m| {
                    m[0] = 0x41;
                    fix_cs(m)
                }),
                &p2,
                Drop::Version,
            ),
            (pkt(V3, |_| {}), &p2, Drop::Version),
            (
                pkt(V2, |m| {
                    m[0] = 0x22;
                    fix_cs(m)
                }),
                &p2,
                Drop::Type,
            ),
            (
                {
                    let mut p = pkt(V2, |_| {});
                    p.truncate(30);
                    p
                },
                &p2,
                Drop::Truncated,
            ),
            (pkt(V2, |m| m.truncate(16)), &p2, Drop::Truncated),
            (
                pkt(V2, |m| {
                    m.extend_from_slice(&[0, 0, 0, 0]);
                    fix_cs(m)
                }),
                &p2,
                Drop::Length,
            ),
            (pkt(V2, |m| m[7] ^= 1), &p2, Drop::Checksum),
            (pkt(V3, |m| m[7] ^= 1), &p3, Drop::Checksum),
            (
                pkt(V2, |m| {
                    m[1] = 13;
                    fix_cs(m)
                }),
                &p2,
                Drop::Vrid,
            ),
            (
                pkt(V2, |m| {
                    m[5] = 2;
                    fix_cs(m)
                }),
                &p2,
                Drop::IntervalMismatch,
            ),
            (
                pkt(V2, |m| {
                    m[4] = 2;
                    fix_cs(m)
                }),
                &p2,
                Drop::Auth,
            ),
            (
                pkt(V2, |m| {
                    m[3] = 0;
                    m.truncate(16);
                    fix_cs(m)
                }),
                &p2,
                Drop::AddrCount,
            ),
            (
                pkt(V2, |m| {
                    m[5] = 0;
                    fix_cs(m)
                }),
                &p2,
                Drop::IntervalZero,
            ),
            (
                pkt(V3, |m| {
                    m[4] = 0xf0; // reserved bits set, interval 0
                    m[5] = 0;
                    fix_cs(m)
                }),
                &p3,
                Drop::IntervalZero,
            ),
            (
                ipv4_packet(
                    BAL2,
                    VRRP_GROUP,
                    255,
                    &encode(&adv(V2, 100), BAL2, VRRP_GROUP, true),
                ),
                &p2,
                Drop::Own,
            ),
            (
                ipv4_packet(BAL1, VRRP_GROUP, 255, &carp(12)),
                &p2,
                Drop::Carp,
            ),
        ];
        for (i, (p, pol, want)) in cases.iter().enumerate() {
            assert_eq!(receive(p, pol).map(|_| ()), Err(*want), "case {i}");
        }
        let mut peers = policy(V2);
        peers.peers = vec![Ipv4Addr::new(172, 16, 1, 9)];
        assert_eq!(receive(&pkt(V2, |_| {}), &peers).unwrap_err(), Drop::Peer);
        // Every reason has a distinct name.
        let names: std::collections::BTreeSet<_> = Drop::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Drop::ALL.len());
    }

    /// A CARP advertisement (OpenBSD carp_header): version 2, type 1, vhid, advskew 0,
    /// authlen 7, pad, advbase 1, checksum, 8-byte counter, 20-byte HMAC; checksum valid.
    pub(crate) fn carp(vhid: u8) -> Vec<u8> {
        let mut m = vec![0x21, vhid, 0, CARP_AUTHLEN, 0, 1, 0, 0];
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 42]);
        m.extend((0..20u8).map(|i| i.wrapping_mul(37)));
        let cs = inet_checksum(&[&m]);
        m[6..8].copy_from_slice(&cs.to_be_bytes());
        m
    }

    #[test]
    fn v2_with_five_addresses_is_not_carp() {
        // 36 bytes like CARP, but count 5 matches the length: a genuine VRRPv2 advert.
        let a = Advert::new(
            V2,
            12,
            100,
            100,
            (1..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect(),
        );
        let m = encode(&a, BAL1, VRRP_GROUP, true);
        assert_eq!(m.len(), 36);
        assert_eq!(decode_message(&m, BAL1, VRRP_GROUP).unwrap().0, a);
    }

    #[test]
    fn ethernet_padding_ignored() {
        // A 12-byte v3 message in a 32-byte IP packet: a minimum Ethernet frame pads it to
        // 46 bytes of payload; the IP total length governs.
        let mut p = pkt(V3, |_| {});
        p.extend_from_slice(&[0u8; 14]);
        let r = receive(&p, &policy(V3)).unwrap();
        assert_eq!(r.checksum, ChecksumForm::PseudoHeader);
    }

    #[test]
    fn v3_interval_12_bits() {
        let a = Advert::new(V3, 1, 1, 4095, vec![VIP]);
        let m = encode(&a, BAL1, VRRP_GROUP, false);
        assert_eq!(
            decode_message(&m, BAL1, VRRP_GROUP).unwrap().0.interval_cs,
            4095
        );
    }

    /// Deterministic fuzz loop (xorshift): random bytes and mutated golden packets never
    /// panic the decoder. The cargo-fuzz target in fuzz/ does the same with coverage.
    #[test]
    fn random_and_mutated_packets_never_panic() {
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let goldens = [
            ipv4_packet(BAL1, VRRP_GROUP, 255, &V2_GOLDEN),
            ipv4_packet(BAL1, VRRP_GROUP, 255, &V3_GOLDEN_PSEUDO),
            ipv4_packet(BAL1, VRRP_GROUP, 255, &carp(1)),
        ];
        let pols = [policy(V2), policy(V3)];
        let mut accepted = 0;
        for i in 0..100_000u32 {
            let r = next();
            let p: Vec<u8> = if i % 2 == 0 {
                let len = (r % 80) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut p = goldens[(r % 3) as usize].clone();
                for _ in 0..(1 + next() % 4) {
                    let k = next();
                    match k % 4 {
                        0 if !p.is_empty() => {
                            let at = (next() as usize) % p.len();
                            p[at] ^= 1 << (k % 8);
                        }
                        1 => p.truncate((next() as usize) % (p.len() + 1)),
                        2 => p.push(next() as u8),
                        _ if p.len() > 3 => {
                            let at = (next() as usize) % p.len();
                            p[at] = next() as u8;
                        }
                        _ => {}
                    }
                }
                p
            };
            if receive(&p, &pols[(r >> 32) as usize % 2]).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted > 0, "some mutated goldens survive (e.g. padding)");
    }
}
