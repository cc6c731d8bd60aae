//! The image branch: per-frame image embeddings (DINOv2 vectors of the person crops) ->
//! a video vector, through its own long-sequence encoder.
//!
//! A video's distinct vectors `[V, D_in]` are normalised and projected to the sequence width
//! once each, then spread over the sampled frames by an index (a crop embedded every 16th
//! frame serves the 15 frames after it without 16 copies of a 768-wide vector). The frames
//! are then pooled to tokens and encoded exactly like the keypoint branch's frame features.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::classifier::NUM_CLASSES;
use super::dropout::dropout;
use super::pool::temporal_pool;
use super::sequence::{SequenceEncoder, SequenceEncoderConfig};

/// One batch of image-vector sequences.
#[derive(Debug, Clone)]
pub struct ImageBatch<B: Backend> {
    /// `[B, V, D_in]`: each video's distinct vectors, zero-padded to the batch's largest `V`.
    pub vectors: Tensor<B, 3>,
    /// `[B * T]`: for frame `t` of video `b`, the row `b * V + v` of the flattened vectors it
    /// shows (any row where the frame has no vector: its mask is 0).
    pub index: Tensor<B, 1, Int>,
    /// `[B, T]`: 1 where the frame has a vector, 0 for padding and frames before the video's
    /// first vector.
    pub mask: Tensor<B, 2>,
}

#[derive(Debug, Clone)]
pub struct ImageBranchConfig {
    /// Size of the stored vectors (768 for DINOv2-Base).
    pub input: usize,
    pub sequence: SequenceEncoderConfig,
}

#[derive(Module, Debug)]
pub struct ImageBranch<B: Backend> {
    /// Per-vector normalisation: embedding models differ in scale, and a few large
    /// coordinates should not dominate the projection.
    pub norm: LayerNorm<B>,
    pub project: Linear<B>,
    pub sequence: SequenceEncoder<B>,
    pub token_dropout: Dropout,
    pub dropout: Dropout,
    pub head: Linear<B>,
}

impl ImageBranchConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ImageBranch<B> {
        let dim = self.sequence.dim;
        ImageBranch {
            norm: LayerNormConfig::new(self.input).init(device),
            project: LinearConfig::new(self.input, dim).init(device),
            sequence: self.sequence.init(device),
            token_dropout: DropoutConfig::new(self.sequence.dropout).init(),
            dropout: DropoutConfig::new(self.sequence.dropout).init(),
            head: LinearConfig::new(dim, NUM_CLASSES).init(device),
        }
    }
}

impl<B: Backend> ImageBranch<B> {
    /// The video vectors `[B, dim]`.
    pub fn embed(&self, batch: &ImageBatch<B>) -> Tensor<B, 2> {
        let [b, v, d_in] = batch.vectors.dims();
        let [_, t] = batch.mask.dims();
        let projected = self.project.forward(
            self.norm
                .forward(batch.vectors.clone().reshape([b * v, d_in])),
        );
        let dim = projected.dims()[1];
        let frames = projected
            .select(0, batch.index.clone())
            .reshape([b, t, dim]);
        let (tokens, token_mask) = temporal_pool(
            frames,
            batch.mask.clone(),
            self.sequence.stride,
            self.sequence.tokens,
        );
        let tokens = dropout(self.token_dropout.prob, tokens);
        self.sequence.encode(tokens, token_mask)
    }

    /// This branch's own head.
    pub fn head_logits(&self, embedded: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head.forward(dropout(self.dropout.prob, embedded))
    }
}
