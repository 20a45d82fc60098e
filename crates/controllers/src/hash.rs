//! The hashes in the names of controllers' objects (the pod-template-hash of a Deployment's ReplicaSets,
//! ControllerRevisions): 32-bit FNV-1a, written out with upstream's `rand.SafeEncodeString`.

/// The FNV-1a offset basis: the hash of nothing.
pub const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// 32-bit FNV-1a of `bytes`, continuing from `hash` ([`FNV32_OFFSET`] to start).
pub fn fnv32a(bytes: impl IntoIterator<Item = u8>, mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped onto consonants and digits that spell no words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// A hash as it goes into a name: its decimal digits, safely encoded.
pub fn encode(hash: u32) -> String {
    safe_encode(&hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_and_safe_encoding() {
        assert_eq!(fnv32a(*b"", FNV32_OFFSET), FNV32_OFFSET);
        assert_eq!(fnv32a(*b"a", FNV32_OFFSET), 0xe40c_292c, "FNV-1a of \"a\"");
        assert_eq!(
            fnv32a(*b"bc", fnv32a(*b"a", FNV32_OFFSET)),
            fnv32a(*b"abc", FNV32_OFFSET),
            "it continues"
        );
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        assert_eq!(encode(123), safe_encode("123"));
    }
}
