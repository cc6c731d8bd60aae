//! How far a batch is padded.
//!
//! On the CPU a batch is padded to its longest video: the least work, and every shape runs
//! the same code. burn-cuda instead autotunes kernels per shape (and compiles them on first
//! use), and with videos of any length nearly every batch would have a new shape. There the
//! lengths are rounded up to a few buckets per doubling, so the shapes repeat from batch to
//! batch and epoch to epoch: above 64 frames, for less than a quarter more frames (a shorter
//! batch is padded to 64).
//! A video's logits do not depend on how far its batch is padded (padded frames are masked
//! everywhere, and the temporal pooling's stride comes from the config, not the batch:
//! `model::classifier`'s batch-independence test), so bucketing changes no result on the CPU;
//! it is the GPU's float summation that may differ, as any other kernel choice there.

use std::any::TypeId;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;

use super::CpuBackend;

/// How far to pad each padded axis of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// To the longest input of the batch.
    Longest,
    /// Up to [`bucket`] lengths; frames at most `max_frames` (the model's longest sequence),
    /// unless a batch is longer already.
    Buckets { max_frames: usize },
}

/// The fewest frames a bucketed batch has; image vectors and transcript segments, which come
/// in tens, have their own floor.
const FRAMES_FLOOR: usize = 64;
const ITEMS_FLOOR: usize = 8;

impl Padding {
    /// [`Padding::Longest`] on xp's CPU backend (plain or under autodiff), buckets on any
    /// other (CUDA).
    pub fn for_backend<B: Backend>(max_frames: usize) -> Self {
        let cpu = [
            TypeId::of::<CpuBackend>(),
            TypeId::of::<Autodiff<CpuBackend>>(),
        ];
        if cpu.contains(&TypeId::of::<B>()) {
            Padding::Longest
        } else {
            Padding::Buckets { max_frames }
        }
    }

    /// The padded length of the frame axis for a batch whose longest video has `longest`.
    pub fn frames(self, longest: usize) -> usize {
        match self {
            Padding::Longest => longest,
            Padding::Buckets { max_frames } => {
                bucket(longest, FRAMES_FLOOR).min(max_frames.max(longest))
            }
        }
    }

    /// The padded count of image vectors or transcript segments, for a longest of `longest`.
    pub fn items(self, longest: usize) -> usize {
        match self {
            Padding::Longest => longest,
            Padding::Buckets { .. } => bucket(longest, ITEMS_FLOOR),
        }
    }
}

/// `n` rounded up to one of four lengths per doubling (at least `floor`): in `(2^k, 2^(k+1)]`,
/// a multiple of `2^(k-2)`: 5, 6, 7 or 8 times it. So a length grows by less than a quarter,
/// and lengths from `floor` to 35,000 frames fall in about forty buckets.
pub fn bucket(n: usize, floor: usize) -> usize {
    if n <= floor {
        return floor;
    }
    let k = (n - 1).ilog2();
    let step = 1usize << k.saturating_sub(2);
    n.div_ceil(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn buckets_by_hand() {
        assert_eq!(bucket(1, 64), 64);
        assert_eq!(bucket(64, 64), 64);
        // (64, 128]: steps of 16.
        assert_eq!(bucket(65, 64), 80);
        assert_eq!(bucket(80, 64), 80);
        assert_eq!(bucket(81, 64), 96);
        assert_eq!(bucket(128, 64), 128);
        // (4096, 8192]: steps of 1,024.
        assert_eq!(bucket(7_000, 64), 7_168);
        assert_eq!(bucket(35_000, 64), 40_960);
        assert_eq!(bucket(5, 8), 8);
        assert_eq!(bucket(9, 8), 10);
    }

    #[test]
    fn a_bucket_holds_its_length_adds_under_a_quarter_and_they_are_few() {
        let mut seen = BTreeSet::new();
        let mut last = 0;
        for n in 1..=35_000 {
            let b = bucket(n, 64);
            assert!(b >= n && b >= 64, "{n} -> {b}");
            assert!(
                n <= 64 || 4 * (b - n) < n,
                "{n} -> {b}: a quarter or more added"
            );
            assert!(b >= last, "not monotone at {n}");
            assert_eq!(bucket(b, 64), b, "a bucket is its own bucket: {b}");
            last = b;
            seen.insert(b);
        }
        assert!(seen.len() <= 40, "{} buckets", seen.len());
    }

    #[test]
    fn frames_stop_at_the_models_longest_and_the_cpu_pads_to_the_longest() {
        let buckets = Padding::Buckets { max_frames: 256 };
        assert_eq!(buckets.frames(200), 224);
        assert_eq!(buckets.frames(250), 256); // bucket 256
        assert_eq!(buckets.frames(230), 256); // bucket 256 as well
        let odd = Padding::Buckets { max_frames: 250 };
        assert_eq!(odd.frames(230), 250); // bucket 256, beyond the model's 250
        assert_eq!(odd.frames(300), 300); // never below the longest
        assert_eq!(buckets.items(3), 8);
        assert_eq!(Padding::Longest.frames(201), 201);
        assert_eq!(Padding::Longest.items(3), 3);
        assert_eq!(Padding::for_backend::<CpuBackend>(256), Padding::Longest);
        assert_eq!(
            Padding::for_backend::<Autodiff<CpuBackend>>(256),
            Padding::Longest
        );
    }
}
