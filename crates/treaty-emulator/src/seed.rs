//! Deterministic seeds: FNV-1a folds request content into a 64-bit seed and
//! splitmix64 stretches a seed into a stream of well-mixed numbers. Answers,
//! tool call ids and embedding vectors are derived from these so the same
//! request always gets the same bytes back. This is not a cryptographic hash
//! and must never be used as one.

/// 64-bit FNV-1a, fed incrementally.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        Self(Self::OFFSET)
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
        self
    }

    /// Adds a field followed by a separator so `("ab","c")` and `("a","bc")` differ.
    pub(crate) fn field(self, bytes: &[u8]) -> Self {
        self.bytes(bytes).bytes(&[0xff])
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// splitmix64: a tiny generator whose successive outputs are well mixed even
/// from poor seeds such as consecutive integers.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1], from the top 24 bits so every value is exact in f32.
    pub(crate) fn next_unit(&mut self) -> f32 {
        let top = (self.next_u64() >> 40) as f32;
        top / (((1u32 << 24) - 1) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vector() {
        // Published FNV-1a 64 test vector for "a".
        assert_eq!(Fnv::new().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn units_stay_in_range() {
        let mut rng = SplitMix::new(7);
        for _ in 0..10_000 {
            let x = rng.next_unit();
            assert!((-1.0..=1.0).contains(&x));
        }
    }
}
