//! The Internet checksum (RFC 1071), the one copy every caller uses: the VRRP codec, the
//! test frame builders, and the BPF VTEP (which checksums the outer IPv4 header it writes).
//!
//! `no_std` and allocation-free. [`ipv4_header`] is written for the BPF verifier: a fixed
//! 20-byte array and a loop with a constant bound, so it unrolls with no bounds to prove.

/// Folds a 32-bit one's-complement sum into 16 bits and complements it.
#[inline(always)]
pub const fn finish(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The checksum of `parts` concatenated, as if one buffer: a part of odd length carries its
/// last byte over into the next part's first 16-bit word.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in p.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
        // Fold as we go: a long input cannot overflow the accumulator.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    finish(sum)
}

/// The checksum of a 20-byte IPv4 header (its checksum field zero).
#[inline(always)]
pub fn ipv4_header(h: &[u8; 20]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < 20 {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        i += 2;
    }
    finish(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's worked example (section 3): the sum of these words is 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&[&data]), !0xddf2);
    }

    /// Split points (even and odd) do not change the result.
    #[test]
    fn parts_are_one_buffer() {
        let data: [u8; 9] = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40];
        let whole = inet_checksum(&[&data]);
        for cut in 0..=data.len() {
            assert_eq!(
                inet_checksum(&[&data[..cut], &data[cut..]]),
                whole,
                "cut {cut}"
            );
        }
    }

    /// A header with its checksum filled in sums to zero; both functions agree.
    #[test]
    fn ipv4_header_verifies() {
        let mut h: [u8; 20] = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
        ];
        let c = ipv4_header(&h);
        assert_eq!(c, inet_checksum(&[&h]));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(inet_checksum(&[&h]), 0);
    }
}
