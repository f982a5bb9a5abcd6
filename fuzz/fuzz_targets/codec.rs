//! Fuzzes the VRRP codec: decoding never panics, and whatever decodes re-encodes to a
//! message that decodes to the same advertisement (VRRPv2: to the same bytes).
#![no_main]

use lbctl::vrrp::codec::{self, ChecksumForm, RxPolicy, Version};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let own = Ipv4Addr::new(172, 16, 1, 250);
    for version in [Version::V2, Version::V3] {
        let p = RxPolicy {
            version,
            vrid: 12,
            interval_cs: 100,
            auth_pass: if version == Version::V2 {
                Some("secret".into())
            } else {
                None
            },
            own: vec![own],
            peers: vec![],
        };
        let _ = codec::receive(data, &p);
    }
    if let Ok(r) = codec::decode_ipv4(data) {
        let ihl = usize::from(data[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let msg = &data[ihl..total];
        let pseudo = r.checksum != ChecksumForm::MessageOnly;
        let again = codec::encode(&r.advert, r.src, r.dst, pseudo);
        let (a, form) =
            codec::decode_message(&again, r.src, r.dst).expect("re-encoded advert decodes");
        assert_eq!(a, r.advert);
        assert_eq!(form, r.checksum);
        if r.advert.version == Version::V2 {
            // Same bytes, except that a checksum of 0xffff and one of 0x0000 are the same
            // ones' complement value (the encoder writes the latter).
            assert_eq!(again[..6], msg[..6]);
            assert_eq!(again[8..], msg[8..]);
        }
    }
    // The message decoder alone, on arbitrary bytes.
    let _ = codec::decode_message(data, own, codec::VRRP_GROUP);
});
