//! Uniformly random base62 strings from the operating system's CSPRNG.

/// The base62 alphabet, in ASCII order so that encoded numbers sort like the numbers.
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn uniformly from [`BASE62`], each carrying log2(62) ≈ 5.95 bits.
///
/// Bytes of 248 and above are rejected so that every character is equally likely (248 is the
/// largest multiple of 62 that fits in a byte).
pub(crate) fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        // The OS CSPRNG failing is not something a caller can recover from: no token or id
        // may ever be produced from a weaker source.
        getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

/// `value` in base62, left-padded with `0` to exactly `N` characters (ASCII bytes, on the
/// stack: the checksum of every presented token is computed on the verification hot path).
pub(crate) fn base62_fixed<const N: usize>(mut value: u64) -> [u8; N] {
    let mut digits = [b'0'; N];
    for slot in digits.iter_mut().rev() {
        // `value % 62` is below 62: always an index of the alphabet.
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

pub(crate) fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_requested_length_and_alphabet() {
        for len in [0, 1, 22, 32, 100] {
            let s = random_base62(len);
            assert_eq!(s.len(), len);
            assert!(is_base62(&s));
        }
    }

    #[test]
    fn random_strings_differ() {
        assert_ne!(random_base62(32), random_base62(32));
    }

    #[test]
    fn every_character_of_the_alphabet_appears() {
        let s = random_base62(20_000);
        for c in BASE62 {
            assert!(s.as_bytes().contains(c), "{} never drawn", *c as char);
        }
    }

    #[test]
    fn fixed_width_encoding_pads_and_round_trips_order() {
        assert_eq!(&base62_fixed::<6>(0), b"000000");
        assert_eq!(&base62_fixed::<2>(61), b"0z");
        assert_eq!(&base62_fixed::<2>(62), b"10");
        assert_eq!(&base62_fixed::<6>(u64::from(u32::MAX)), b"4gfFC3");
        assert!(base62_fixed::<6>(1000) < base62_fixed::<6>(1001));
    }
}
