//! The text branch: a transcript's embedding vectors (one per transcript, or one per segment)
//! -> a video vector. Segments are pooled with learned attention (one score per segment,
//! softmax over the video's segments), then an MLP maps the pooled vector to the model width.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::classifier::NUM_CLASSES;
use super::gelu;

/// One batch of transcripts.
#[derive(Debug, Clone)]
pub struct TextBatch<B: Backend> {
    /// `[B, S, D_in]`: each video's segment vectors (a whole transcript is one segment),
    /// zero-padded to the batch's largest `S`.
    pub vectors: Tensor<B, 3>,
    /// `[B, S]`: 1 for real segments. Every video needs one.
    pub mask: Tensor<B, 2>,
}

#[derive(Debug, Clone)]
pub struct TextBranchConfig {
    /// Size of the stored vectors (768 for BERT-base).
    pub input: usize,
    pub dim: usize,
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct TextBranch<B: Backend> {
    pub norm: LayerNorm<B>,
    /// One attention score per segment.
    pub score: Linear<B>,
    pub hidden: Linear<B>,
    pub out: Linear<B>,
    pub dropout: Dropout,
    pub head: Linear<B>,
}

impl TextBranchConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TextBranch<B> {
        TextBranch {
            norm: LayerNormConfig::new(self.input).init(device),
            score: LinearConfig::new(self.input, 1).init(device),
            hidden: LinearConfig::new(self.input, self.dim).init(device),
            out: LinearConfig::new(self.dim, self.dim).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.dim, NUM_CLASSES).init(device),
        }
    }
}

/// A large negative score for padded segments: their softmax weight underflows to 0.
const MASKED_SCORE: f32 = -1.0e9;

impl<B: Backend> TextBranch<B> {
    /// The video vectors `[B, dim]`.
    pub fn embed(&self, batch: &TextBatch<B>) -> Tensor<B, 2> {
        let [b, s, _] = batch.vectors.dims();
        let x = self.norm.forward(batch.vectors.clone());
        let scores = self.score.forward(x.clone()).reshape([b, s]);
        let mask = batch.mask.clone();
        let scores = scores * mask.clone() + (mask.neg() + 1.0) * MASKED_SCORE;
        let weights = softmax(scores, 1).reshape([b, s, 1]);
        let pooled = (x * weights).sum_dim(1).reshape([b, self.norm_width()]);
        let h = gelu(self.hidden.forward(self.dropout.forward(pooled)));
        self.out.forward(h)
    }

    fn norm_width(&self) -> usize {
        self.score.weight.dims()[0]
    }

    /// This branch's own head.
    pub fn head_logits(&self, embedded: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head.forward(self.dropout.forward(embedded))
    }
}
