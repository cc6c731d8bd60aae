//! Long-sequence encoder: thousands of frame features -> one vector per sequence.
//!
//! Interviews run to thousands of frames (median about 7,000). Self-attention costs
//! `T^2` memory and time per head and layer, which is out of reach on a CPU for such `T`
//! (T = 8192, 4 heads, batch 8: 2 G attention weights per layer). So the frames are first
//! average-pooled in time: a token is the mean of `stride = ceil(max_frames / max_tokens)`
//! consecutive frames, and a sequence has at most `ceil(max_frames / stride) <= max_tokens`
//! tokens. Attention then costs at most `max_tokens^2` (256^2 = 65 K weights per head),
//! whatever `T` is; the frame-level backbone stays linear in `T`. Then: sinusoidal positional
//! encoding (by token index), a pre-norm transformer encoder that ignores padded tokens, and a
//! masked mean.
//!
//! A video's result depends only on the video and the config, never on its batch: the stride
//! comes from the config (`max_frames`), not from the padded batch length, and every sequence
//! is padded to the same number of tokens, so each video goes through the transformer with
//! the same shapes and the same summation order whoever shares its batch.

use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{LayerNorm, LayerNormConfig, PositionalEncoding, PositionalEncodingConfig};
use burn::prelude::*;

use super::encoder::encode;
use super::pool::temporal_pool;

/// Feed-forward width of each transformer layer, as a multiple of `dim`. Kept at 2 (not the
/// usual 4): the training sets hold about a hundred videos.
const FF_MULTIPLIER: usize = 2;

/// Sizes of the sequence encoder.
#[derive(Debug, Clone)]
pub struct SequenceEncoderConfig {
    /// Token size (even, divisible by `heads`).
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    /// Upper bound on the number of tokens after temporal pooling.
    pub max_tokens: usize,
    /// The most frames a sequence can have (the dataset samples at most this many).
    pub max_frames: usize,
    pub dropout: f64,
}

/// Temporal pooling + transformer + masked mean: `[B, T, dim]` -> `[B, dim]`.
#[derive(Module, Debug)]
pub struct SequenceEncoder<B: Backend> {
    pub positions: PositionalEncoding<B>,
    pub encoder: TransformerEncoder<B>,
    /// Final norm, needed because the layers are pre-norm.
    pub norm: LayerNorm<B>,
    /// Frames per token.
    pub stride: usize,
    /// Tokens every sequence is padded to: `ceil(max_frames / stride)`.
    pub tokens: usize,
}

impl SequenceEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SequenceEncoder<B> {
        assert!(self.max_tokens > 0, "max_tokens must be positive");
        assert!(self.max_frames > 0, "max_frames must be positive");
        let stride = pooling_stride(self.max_frames, self.max_tokens);
        assert!(
            self.dim.is_multiple_of(2),
            "dim must be even (sinusoidal positions)"
        );
        assert!(
            self.dim.is_multiple_of(self.heads),
            "dim must be divisible by heads"
        );
        SequenceEncoder {
            positions: PositionalEncodingConfig::new(self.dim)
                .with_max_sequence_size(self.max_tokens)
                .with_max_timescale(self.max_tokens.max(10_000))
                .init(device),
            encoder: TransformerEncoderConfig::new(
                self.dim,
                FF_MULTIPLIER * self.dim,
                self.heads,
                self.layers,
            )
            .with_dropout(self.dropout)
            // Pre-norm trains more stably from scratch on small data.
            .with_norm_first(true)
            .init(device),
            norm: LayerNormConfig::new(self.dim).init(device),
            stride,
            tokens: self.max_frames.div_ceil(stride),
        }
    }
}

/// Frames per token when sequences have at most `frames` frames: `ceil(frames / max_tokens)`.
pub fn pooling_stride(frames: usize, max_tokens: usize) -> usize {
    frames.div_ceil(max_tokens).max(1)
}

impl<B: Backend> SequenceEncoder<B> {
    /// `x`: `[B, T, dim]` frame features, `mask`: `[B, T]` (1 = real). Returns `[B, dim]`.
    /// Every sequence needs at least one real frame.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let (tokens, token_mask) = temporal_pool(x, mask, self.stride, self.tokens);
        self.encode(tokens, token_mask)
    }

    /// The transformer and masked mean over already pooled tokens: `tokens` `[B, L, dim]`,
    /// `token_mask` `[B, L]` (1 = real), as [`temporal_pool`] makes them. Returns `[B, dim]`.
    pub fn encode(&self, tokens: Tensor<B, 3>, token_mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [b, l, d] = tokens.dims();
        let tokens = self.positions.forward(tokens);
        // burn's padding mask is true where a token must be ignored.
        let padding = token_mask.clone().lower_elem(0.5);
        let encoded = encode(&self.encoder, tokens, padding);
        let encoded = self.norm.forward(encoded);
        let weights = token_mask.reshape([b, l, 1]);
        let sums = (encoded * weights.clone()).sum_dim(1).reshape([b, d]);
        let counts = weights.sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        sums / counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend, rng_lock, values};

    type Inner = crate::train::CpuBackend;

    fn tensor3(data: Vec<f32>, shape: [usize; 3]) -> Tensor<Inner, 3> {
        Tensor::from_data(TensorData::new(data, shape), &Default::default())
    }

    #[test]
    fn stride_and_token_count() {
        assert_eq!(pooling_stride(50, 256), 1);
        assert_eq!(pooling_stride(256, 256), 1);
        assert_eq!(pooling_stride(257, 256), 2);
        assert_eq!(pooling_stride(4096, 256), 16);
        assert_eq!(pooling_stride(8191, 256), 32);
        for t in [1usize, 255, 256, 257, 1000, 4096, 8191, 35_000] {
            assert!(t.div_ceil(pooling_stride(t, 256)) <= 256);
        }
    }

    #[test]
    fn pooling_averages_real_frames_only() {
        // Stride 3, tokens [0..3) and [3..6) (frame 5 is padding).
        let x = tensor3(
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0],
            [2, 5, 1],
        );
        let mask = Tensor::<Inner, 2>::from_data(
            TensorData::new(
                vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                [2, 5],
            ),
            &Default::default(),
        );
        let (pooled, token_mask) = temporal_pool(x, mask, 3, 3);
        // The third token of each sequence is padding: the config allows 9 frames.
        assert_eq!(
            pooled.into_data().to_vec::<f32>().unwrap(),
            vec![2.0, 4.5, 0.0, 10.0, 0.0, 0.0]
        );
        assert_eq!(
            token_mask.into_data().to_vec::<f32>().unwrap(),
            vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn long_sequence_pools_to_max_tokens() {
        let (b, t, d) = (1, 4096, 8);
        let x = tensor3(values(b * t * d, 5), [b, t, d]);
        let mask = Tensor::<Inner, 2>::ones([b, t], &Default::default());
        let (pooled, token_mask) = temporal_pool(x, mask, pooling_stride(4096, 256), 256);
        assert_eq!(pooled.dims(), [1, 256, 8]);
        assert_eq!(token_mask.sum().into_scalar(), 256.0);
    }

    #[test]
    fn encoder_ignores_padding() {
        let _rng = rng_lock();
        let device = Default::default();
        let config = SequenceEncoderConfig {
            dim: 16,
            layers: 1,
            heads: 2,
            max_tokens: 4,
            max_frames: 6,
            dropout: 0.0,
        };
        let model = config.init::<TestBackend>(&device);
        let mask = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(
                [[1.0f32; 6], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]].concat(),
                [2, 6],
            ),
            &device,
        );
        let a: Tensor<TestBackend, 3> =
            Tensor::from_data(TensorData::new(values(2 * 6 * 16, 1), [2, 6, 16]), &device);
        let b: Tensor<TestBackend, 3> =
            Tensor::from_data(TensorData::new(values(2 * 6 * 16, 2), [2, 6, 16]), &device);
        let keep = mask.clone().reshape([2, 6, 1]);
        let b = a.clone() * keep.clone() + b * (keep.neg() + 1.0);
        let out_a = model.forward(a, mask.clone());
        let out_b = model.forward(b, mask);
        assert_eq!(out_a.dims(), [2, 16]);
        assert_eq!(out_a.into_data(), out_b.into_data());
    }
}
