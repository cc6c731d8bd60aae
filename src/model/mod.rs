//! The classifier (burn): one interview's keypoints, image vectors and transcript vectors ->
//! win/lose logits.
//!
//! Keypoint branch: a per-frame backbone ([`mlp`] or [`gcn`]) turns `[batch, frames, 137,
//! channels]` into frame features `[batch, frames, dim]`; the [`sequence`] encoder pools them in
//! time to at most `max_tokens` tokens, runs a transformer and mean-pools to `[batch, dim]`; the
//! [`classifier`] head gives two logits (class 0 = lose, 1 = win). The [`image`] branch does the
//! same with projected image vectors, the [`text`] branch attention-pools transcript vectors;
//! [`fusion`] holds the branches a run uses and classifies their concatenated vectors.
//!
//! Everything is generic over `B: Backend`, so the same code runs on the CPU (burn-flex) and on
//! CUDA.

pub mod batched_matmul;
pub mod classifier;
pub mod dropout;
pub mod encoder;
pub mod fusion;
pub mod gcn;
pub mod gelu;
pub mod graph;
pub mod image;
pub mod matmul;
pub mod mlp;
mod on_flex;
pub mod pool;
pub mod row_bias;
pub mod sequence;
pub mod text;
pub mod weights;
pub mod window;

pub use classifier::{Backbone, KeypointModel, KeypointModelConfig};
pub use fusion::{Batch, Classifier, ClassifierConfig};
pub use gelu::gelu;
pub use image::{ImageBatch, ImageBranchConfig};
pub use text::{TextBatch, TextBranchConfig};
pub use weights::Weights;

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

    /// The bit patterns of a float tensor's values, for comparisons that must be exact (signed
    /// zeros and NaN payloads included).
    pub fn bits<Bk: Backend, const D: usize>(x: Tensor<Bk, D>) -> Vec<u32> {
        let v = x.into_data().to_vec::<f32>().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

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

    /// Sizes of the test inputs of the image and text branches.
    pub const IMAGE_DIM: usize = 12;
    pub const TEXT_DIM: usize = 10;

    /// A small classifier with the chosen branches (the keypoint one with 5 channels).
    pub fn small_classifier(
        keypoints: Option<crate::model::Backbone>,
        image: bool,
        text: bool,
    ) -> crate::model::ClassifierConfig {
        let kp = small_config(crate::model::Backbone::Mlp, 5);
        let sequence = crate::model::sequence::SequenceEncoderConfig {
            dim: kp.dim,
            layers: kp.layers,
            heads: kp.heads,
            max_tokens: kp.max_tokens,
            max_frames: kp.max_frames,
            dropout: kp.dropout,
        };
        crate::model::ClassifierConfig {
            keypoints: keypoints.map(|b| small_config(b, 5)),
            image: image.then_some(crate::model::ImageBranchConfig {
                input: IMAGE_DIM,
                sequence,
            }),
            text: text.then_some(crate::model::TextBranchConfig {
                input: TEXT_DIM,
                dim: kp.dim,
                dropout: kp.dropout,
            }),
            dim: kp.dim,
            dropout: kp.dropout,
        }
    }

    /// A batch for a model with all three branches: keypoints as [`batch`] makes them, three
    /// image vectors per video (frame t shows vector min(t / 8, 2)), two text segments (one
    /// for odd videos). `present[i]` flags video i's keypoints, image and text; an absent
    /// input is a zero placeholder, as the trainer makes it.
    pub fn fused_batch<B: Backend>(
        lengths: &[usize],
        frames: usize,
        seed: u64,
        present: &[[f32; 3]],
        device: &B::Device,
    ) -> crate::model::Batch<B> {
        let b = lengths.len();
        let keypoints = batch::<B>(lengths, frames, 5, seed, device);
        let mut vectors = values(b * 3 * IMAGE_DIM, seed + 1);
        let mut index = Vec::with_capacity(b * frames);
        let mut image_mask = vec![0.0f32; b * frames];
        let mut text = values(b * 2 * TEXT_DIM, seed + 2);
        let mut text_mask = vec![0.0f32; b * 2];
        for (i, &len) in lengths.iter().enumerate() {
            let [_, has_image, has_text] = present[i];
            for t in 0..frames {
                index.push((i * 3 + (t / 8).min(2)) as i64);
                if has_image > 0.0 && t < len || t == 0 {
                    image_mask[i * frames + t] = 1.0;
                }
            }
            if has_image == 0.0 {
                vectors[i * 3 * IMAGE_DIM..(i + 1) * 3 * IMAGE_DIM].fill(0.0);
            }
            let segments = if has_text == 0.0 { 1 } else { 2 - i % 2 };
            if has_text == 0.0 {
                text[i * 2 * TEXT_DIM..(i + 1) * 2 * TEXT_DIM].fill(0.0);
            }
            text_mask[i * 2..i * 2 + segments].fill(1.0);
        }
        let flags: Vec<f32> = present.iter().flatten().copied().collect();
        crate::model::Batch {
            keypoints: Some(keypoints),
            image: Some(crate::model::ImageBatch {
                vectors: Tensor::from_data(TensorData::new(vectors, [b, 3, IMAGE_DIM]), device),
                index: Tensor::from_data(TensorData::new(index, [b * frames]), device),
                mask: Tensor::from_data(TensorData::new(image_mask, [b, frames]), device),
            }),
            text: Some(crate::model::TextBatch {
                vectors: Tensor::from_data(TensorData::new(text, [b, 2, TEXT_DIM]), device),
                mask: Tensor::from_data(TensorData::new(text_mask, [b, 2]), device),
            }),
            present: Tensor::from_data(TensorData::new(flags, [b, 3]), device),
        }
    }

    /// The same batch without autodiff.
    pub fn to_inner<B: burn::tensor::backend::AutodiffBackend>(
        batch: &crate::model::Batch<B>,
    ) -> crate::model::Batch<B::InnerBackend> {
        crate::model::Batch {
            keypoints: batch.keypoints.as_ref().map(|k| KeypointBatch {
                points: k.points.clone().inner(),
                mask: k.mask.clone().inner(),
            }),
            image: batch.image.as_ref().map(|i| crate::model::ImageBatch {
                vectors: i.vectors.clone().inner(),
                index: i.index.clone().inner(),
                mask: i.mask.clone().inner(),
            }),
            text: batch.text.as_ref().map(|t| crate::model::TextBatch {
                vectors: t.vectors.clone().inner(),
                mask: t.mask.clone().inner(),
            }),
            present: batch.present.clone().inner(),
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
