//! A small seeded generator (SplitMix64): the harnesses' choices come from a seed, and nothing
//! here needs more than uniform integers.

#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound`.
    ///
    /// # Panics
    /// `bound` is zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        // Lemire's multiply-shift: unbiased enough for picking operations and nodes.
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        let below = u64::try_from(wide >> 64).expect("less than bound");
        assert!(below < bound);
        below
    }

    /// Uniform in `0..len`, for picking from a slice.
    ///
    /// # Panics
    /// `len` is zero.
    pub fn index(&mut self, len: usize) -> usize {
        let index = self.below(u64::try_from(len).expect("a usize fits in a u64"));
        usize::try_from(index).expect("less than len")
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// Goal: one seed, one sequence; values stay in bounds. Method: two generators, one seed.
    #[test]
    fn a_seed_is_a_sequence() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let first: Vec<u64> = (0..100).map(|_| a.below(7)).collect();
        assert_eq!(first, (0..100).map(|_| b.below(7)).collect::<Vec<_>>());
        assert!(first.iter().all(|v| *v < 7));
        assert!((0..7).all(|v| first.contains(&v)), "every value turns up");
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert!((0..100).all(|_| a.index(3) < 3));
    }
}
