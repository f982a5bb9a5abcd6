//! Fuzzes the BPDU codec (`lbctl::rstp::bpdu`): decoding never panics, and whatever decodes
//! re-encodes to a frame that decodes to the same BPDU.
#![no_main]

use lbctl::rstp::bpdu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a whole Ethernet frame (what AF_PACKET delivers).
    if let Ok(b) = bpdu::decode_frame(data) {
        let src: [u8; 6] = data[6..12].try_into().expect("a decoded frame has a source");
        let again = bpdu::encode_frame(src, &b);
        assert!(again.len() >= 60, "encoded frame shorter than the Ethernet minimum");
        assert_eq!(bpdu::decode_frame(&again), Ok(b), "re-encoded frame decodes differently");
        // A frame the encoder wrote is padded to 60 bytes and otherwise stable.
        assert_eq!(bpdu::encode_frame(src, &b), again);
    }
    // As the LLC payload alone.
    if let Ok(b) = bpdu::decode(data) {
        let again = bpdu::encode_frame([2, 0, 0, 0, 0, 1], &b);
        assert_eq!(bpdu::decode_frame(&again), Ok(b), "re-encoded payload decodes differently");
        let len = usize::from(u16::from_be_bytes([again[12], again[13]]));
        assert_eq!(bpdu::decode(&again[14..14 + len]), Ok(b));
    }
});
