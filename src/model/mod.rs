//! Keypoint classifier (burn): OpenPose keypoint sequences of one interview -> win/lose logits.
//!
//! Pipeline: a per-frame backbone ([`mlp`] or [`gcn`]) turns `[batch, frames, 137, channels]`
//! into frame features `[batch, frames, dim]`; the [`sequence`] encoder pools them in time to at
//! most `max_tokens` tokens, runs a transformer and mean-pools to `[batch, dim]`; the
//! [`classifier`] head gives two logits (class 0 = lose, 1 = win).
//!
//! Everything is generic over `B: Backend`, so the same code runs on the CPU (burn-flex) and on
//! CUDA.

pub mod classifier;
pub mod gcn;
pub mod graph;
pub mod mlp;
pub mod sequence;

pub use classifier::{Backbone, KeypointModel, KeypointModelConfig};

use burn::prelude::*;

/// One batch of keypoint sequences.
#[derive(Debug, Clone)]
pub struct KeypointBatch<B: Backend> {
    /// [batch, frames, 137, channels]: points in OpenPose order (body 0-24, face 25-94,
    /// left hand 95-115, right hand 116-136). channels = 3 (x, y normalised; confidence)
    /// or 5 with inter-frame offsets (dx, dy) appended.
    pub points: Tensor<B, 4>,
    /// [batch, frames]: 1.0 for real frames, 0.0 for padding (sequences are padded to the
    /// longest in the batch).
    pub mask: Tensor<B, 2>,
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Shared test fixtures.

    use super::KeypointBatch;
    use burn::prelude::*;
    use std::sync::{Mutex, MutexGuard};

    pub type TestBackend = burn::backend::Autodiff<crate::train::CpuBackend>;

    /// A small keypoint classifier for tests: 4 frames a token (64 frames, 16 tokens), the
    /// backbone chunk sized automatically.
    pub fn small_config(
        backbone: crate::model::Backbone,
        channels: usize,
    ) -> crate::model::KeypointModelConfig {
        crate::model::KeypointModelConfig {
            backbone,
            channels,
            dim: 16,
            layers: 1,
            heads: 2,
            max_tokens: 16,
            max_frames: 64,
            dropout: 0.1,
            gcn_channels: 8,
            gcn_blocks: 2,
            mlp_hidden: 16,
            frame_chunk: 0,
        }
    }

    /// The CPU backend's RNG is one process-wide state: tests that initialise models or run
    /// dropout hold this lock so that the determinism test sees only its own draws.
    pub fn rng_lock() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deterministic pseudo-random values in [-1, 1) that do not touch the backend RNG.
    pub fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A batch whose sequence `i` has `lengths[i]` real frames followed by padding; padded
    /// frames hold random values (not zeros) so that leaks would show.
    pub fn batch<B: Backend>(
        lengths: &[usize],
        frames: usize,
        channels: usize,
        seed: u64,
        device: &B::Device,
    ) -> KeypointBatch<B> {
        let b = lengths.len();
        let points = values(b * frames * 137 * channels, seed);
        let mask: Vec<f32> = lengths
            .iter()
            .flat_map(|&len| (0..frames).map(move |t| if t < len { 1.0 } else { 0.0 }))
            .collect();
        KeypointBatch {
            points: Tensor::from_data(TensorData::new(points, [b, frames, 137, channels]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, frames]), device),
        }
    }

    /// The same batch with every padded frame overwritten by other random values.
    pub fn repad<B: Backend>(batch: &KeypointBatch<B>, seed: u64) -> KeypointBatch<B> {
        let [b, t, n, c] = batch.points.dims();
        let device = batch.points.device();
        let noise: Tensor<B, 4> = Tensor::from_data(
            TensorData::new(values(b * t * n * c, seed), [b, t, n, c]),
            &device,
        );
        let keep = batch.mask.clone().reshape([b, t, 1, 1]);
        let points = batch.points.clone() * keep.clone() + noise * (keep.neg() + 1.0);
        KeypointBatch {
            points,
            mask: batch.mask.clone(),
        }
    }
}
