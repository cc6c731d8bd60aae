//! The keypoint classifier: frame backbone + long-sequence encoder + a two-class head.
//!
//! The backbone runs over chunks of at most `frame_chunk` frames (a whole number of tokens,
//! plus the frames on each side that reach the chunk's outputs), each chunk pooled to its
//! tokens at once. So the full-resolution frame features of a long video never exist all at
//! the same time, and training can recompute the backbone chunk by chunk in the backward pass
//! (`train::checkpoint`) instead of keeping its activations for every frame. The result does
//! not depend on the chunk size.

use std::ops::Range;

use burn::module::{ModuleVisitor, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::KeypointBatch;
use super::dropout::dropout;
use super::gcn::{GcnBackbone, GcnBackboneConfig};
use super::graph::NUM_POINTS;
use super::mlp::{MlpBackbone, MlpBackboneConfig};
use super::pool::temporal_pool;
use super::sequence::{SequenceEncoder, SequenceEncoderConfig};

/// Logits per sequence; class 0 = lose, class 1 = win.
pub const NUM_CLASSES: usize = 2;

/// Which per-frame keypoint backbone to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backbone {
    /// The paper's per-stream MLP (no graph).
    Mlp,
    /// ST-GCN-style graph + temporal convolution.
    Gcn,
}

/// Sizes of the keypoint classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypointModelConfig {
    pub backbone: Backbone,
    /// Channels per point: 3 (x, y, confidence) or 5 (with dx, dy offsets).
    pub channels: usize,
    /// Frame feature and token size.
    pub dim: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads (must divide `dim`).
    pub heads: usize,
    /// Upper bound on tokens after temporal pooling.
    pub max_tokens: usize,
    /// The most frames a sequence can have: with `max_tokens`, it fixes how many frames make
    /// a token, so that a video's pooling never depends on its batch.
    pub max_frames: usize,
    pub dropout: f64,
    /// Channels of the GCN blocks.
    pub gcn_channels: usize,
    /// Number of GCN blocks.
    pub gcn_blocks: usize,
    /// Hidden width of each stream's MLP.
    pub mlp_hidden: usize,
    /// Frames the backbone runs on at once (rounded to whole tokens); 0 = as many as fit in
    /// [`ACTIVATION_BUDGET`] at the batch's size. A speed/memory setting only: results are
    /// the same for any value.
    pub frame_chunk: usize,
}

/// What the backbone's activations for one chunk (kept for its backward pass) may take, when
/// `frame_chunk` is 0.
pub const ACTIVATION_BUDGET: usize = 1 << 30;

impl Default for KeypointModelConfig {
    fn default() -> Self {
        Self {
            backbone: Backbone::Mlp,
            channels: 5,
            dim: 128,
            layers: 2,
            heads: 4,
            max_tokens: 256,
            max_frames: 8192,
            dropout: 0.1,
            gcn_channels: 64,
            gcn_blocks: 2,
            mlp_hidden: 256,
            frame_chunk: 0,
        }
    }
}

/// The chosen per-frame backbone.
#[derive(Module, Debug)]
pub enum FrameBackbone<B: Backend> {
    Mlp(MlpBackbone<B>),
    Gcn(GcnBackbone<B>),
}

impl<B: Backend> FrameBackbone<B> {
    /// `[B, T, 137, C]` -> `[B, T, dim]`.
    pub fn forward(&self, points: Tensor<B, 4>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        match self {
            Self::Mlp(mlp) => mlp.forward(points),
            Self::Gcn(gcn) => gcn.forward(points, mask),
        }
    }

    /// Bytes a frame's activations take while its backward pass is pending: an estimate from
    /// the layer sizes, within about 10% of measured peaks.
    pub fn activation_bytes_per_frame(&self) -> usize {
        match self {
            Self::Mlp(mlp) => mlp.activation_bytes_per_frame(),
            Self::Gcn(gcn) => gcn.activation_bytes_per_frame(),
        }
    }

    /// Frames on each side of a frame that its output depends on.
    pub fn halo(&self) -> usize {
        match self {
            Self::Mlp(_) => 0,
            Self::Gcn(gcn) => gcn.receptive_halo(),
        }
    }
}

/// Keypoint sequences -> win/lose logits.
#[derive(Module, Debug)]
pub struct KeypointModel<B: Backend> {
    pub backbone: FrameBackbone<B>,
    pub sequence: SequenceEncoder<B>,
    /// Dropout on the pooled tokens (not inside the backbone, which must give the same
    /// output when a chunk is recomputed).
    pub token_dropout: Dropout,
    pub dropout: Dropout,
    pub head: Linear<B>,
    pub channels: usize,
    /// See [`KeypointModelConfig::frame_chunk`].
    pub frame_chunk: usize,
}

impl<B: Backend> KeypointModel<B> {
    /// Builds the model with weights drawn from the backend's RNG: call `B::seed(&device,
    /// seed)` first for reproducible weights.
    pub fn new(config: &KeypointModelConfig, device: &B::Device) -> Self {
        assert!(
            config.channels == 3 || config.channels == 5,
            "channels must be 3 or 5, got {}",
            config.channels
        );
        let backbone = match config.backbone {
            Backbone::Mlp => FrameBackbone::Mlp(
                MlpBackboneConfig {
                    channels: config.channels,
                    hidden: config.mlp_hidden,
                    dim: config.dim,
                }
                .init(device),
            ),
            Backbone::Gcn => FrameBackbone::Gcn(
                GcnBackboneConfig {
                    channels: config.channels,
                    width: config.gcn_channels,
                    blocks: config.gcn_blocks,
                    kernel: 9,
                    dim: config.dim,
                }
                .init(device),
            ),
        };
        let sequence = SequenceEncoderConfig {
            dim: config.dim,
            layers: config.layers,
            heads: config.heads,
            max_tokens: config.max_tokens,
            max_frames: config.max_frames,
            dropout: config.dropout,
        }
        .init(device);
        let model = Self {
            backbone,
            sequence,
            token_dropout: DropoutConfig::new(config.dropout).init(),
            dropout: DropoutConfig::new(config.dropout).init(),
            head: LinearConfig::new(config.dim, NUM_CLASSES).init(device),
            channels: config.channels,
            frame_chunk: config.frame_chunk,
        };
        // burn initialises parameters lazily, on first use. Drawing them all now, in module
        // order, makes the weights a function of the seed alone (not of when the first
        // forward pass happens or what else used the RNG in between).
        model.visit(&mut Materialize);
        model
    }

    /// Logits `[batch, 2]` (class 0 = lose, 1 = win). Padded frames (mask 0) do not affect
    /// the result; every sequence needs at least one real frame.
    pub fn forward(&self, batch: &KeypointBatch<B>) -> Tensor<B, 2> {
        let [b, t, n, c] = batch.points.dims();
        assert_eq!(n, NUM_POINTS, "expected {NUM_POINTS} keypoints per frame");
        assert_eq!(
            c, self.channels,
            "model built for {} channels",
            self.channels
        );
        assert_eq!(batch.mask.dims(), [b, t], "mask must be [batch, frames]");
        let (tokens, token_mask) = self.tokens(batch);
        self.classify(tokens, token_mask)
    }

    /// The frame ranges the backbone runs on for `videos` sequences of `frames` frames:
    /// consecutive, each a whole number of tokens long (the last may be shorter).
    pub fn chunks(&self, videos: usize, frames: usize) -> Vec<Range<usize>> {
        let stride = self.sequence.stride;
        let wanted = if self.frame_chunk > 0 {
            self.frame_chunk
        } else {
            ACTIVATION_BUDGET / (videos.max(1) * self.backbone.activation_bytes_per_frame())
        };
        let chunk = (wanted / stride).max(1) * stride;
        (0..frames)
            .step_by(chunk)
            .map(|start| start..(start + chunk).min(frames))
            .collect()
    }

    /// The tokens of the frames in `range` (one of [`Self::chunks`]): `([B, tokens, dim],
    /// [B, tokens])`. The backbone also reads the `halo` frames on each side, so the chunk's
    /// frame features are exactly those of a pass over the whole sequence.
    pub fn chunk_tokens(
        &self,
        batch: &KeypointBatch<B>,
        range: Range<usize>,
    ) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let [b, t, _, _] = batch.points.dims();
        let halo = self.backbone.halo();
        let lo = range.start.saturating_sub(halo);
        let hi = (range.end + halo).min(t);
        let (points, mask) = if lo == 0 && hi == t {
            (batch.points.clone(), batch.mask.clone())
        } else {
            // Video by video: each slice is one contiguous block, so the copy into a chunk is
            // a few block copies rather than an element-by-element strided walk.
            let points = (0..b)
                .map(|i| batch.points.clone().slice([i..i + 1, lo..hi]))
                .collect();
            (
                Tensor::cat(points, 0),
                batch.mask.clone().slice([0..b, lo..hi]),
            )
        };
        let mut frames = self.backbone.forward(points, mask);
        if lo != range.start || hi != range.end {
            frames = frames.slice([0..b, range.start - lo..range.end - lo]);
        }
        let stride = self.sequence.stride;
        let tokens = range.len().div_ceil(stride);
        let mask = batch.mask.clone().slice([0..b, range]);
        temporal_pool(frames, mask, stride, tokens)
    }

    /// All tokens of a batch, chunk by chunk, padded to the encoder's token count.
    pub fn tokens(&self, batch: &KeypointBatch<B>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let [b, t, _, _] = batch.points.dims();
        let (tokens, masks): (Vec<_>, Vec<_>) = self
            .chunks(b, t)
            .into_iter()
            .map(|range| self.chunk_tokens(batch, range))
            .unzip();
        pad_tokens(
            Tensor::cat(tokens, 1),
            Tensor::cat(masks, 1),
            self.sequence.tokens,
        )
    }

    /// Logits `[B, 2]` from pooled tokens (as [`Self::tokens`] makes them).
    pub fn classify(&self, tokens: Tensor<B, 3>, token_mask: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head_logits(self.embed(tokens, token_mask))
    }

    /// The branch's video vector `[B, dim]` from pooled tokens: what a fused model reads.
    pub fn embed(&self, tokens: Tensor<B, 3>, token_mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let tokens = dropout(self.token_dropout.prob, tokens);
        self.sequence.encode(tokens, token_mask)
    }

    /// This branch's own head: logits `[B, 2]` from [`Self::embed`]'s vector.
    pub fn head_logits(&self, embedded: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head.forward(dropout(self.dropout.prob, embedded))
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

/// Pads `[B, L, D]` tokens and their `[B, L]` mask with empty tokens to `total`.
fn pad_tokens<B: Backend>(
    tokens: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    total: usize,
) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let extra = total.checked_sub(tokens.dims()[1]).unwrap_or_else(|| {
        panic!(
            "a sequence of {} tokens is longer than the model's max_frames allow ({total})",
            tokens.dims()[1]
        )
    });
    if extra == 0 {
        return (tokens, mask);
    }
    (
        tokens.pad([(0, 0), (0, extra), (0, 0)], PadMode::Constant(0.0)),
        mask.pad([(0, 0), (0, extra)], PadMode::Constant(0.0)),
    )
}

/// Touches every float parameter so that lazy initialisation runs now.
pub(crate) struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend, batch, repad, rng_lock, small_config};
    use burn::module::AutodiffModule;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::ops::PadMode;

    type B = TestBackend;

    fn targets(device: &burn::tensor::Device<B>, labels: &[i64]) -> Tensor<B, 1, Int> {
        Tensor::from_data(TensorData::new(labels.to_vec(), [labels.len()]), device)
    }

    fn loss(model: &KeypointModel<B>, input: &KeypointBatch<B>, labels: &[i64]) -> Tensor<B, 1> {
        let device = input.points.device();
        CrossEntropyLossConfig::new()
            .init(&device)
            .forward(model.forward(input), targets(&device, labels))
    }

    #[test]
    fn default_config_matches_the_design() {
        let config = KeypointModelConfig::default();
        assert_eq!((config.dim, config.layers, config.heads), (128, 2, 4));
        assert_eq!(
            (config.max_tokens, config.gcn_channels, config.mlp_hidden),
            (256, 64, 256)
        );
    }

    #[test]
    fn padded_batches_give_two_logits_per_sequence() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            for channels in [3, 5] {
                let model = KeypointModel::<B>::new(&small_config(backbone, channels), &device);
                let input = batch::<B>(&[50, 25, 40], 50, channels, 7, &device);
                let logits = model.forward(&input);
                assert_eq!(logits.dims(), [3, 2], "{backbone:?} {channels}");
                let values = logits.into_data().to_vec::<f32>().unwrap();
                assert!(values.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            let model = KeypointModel::<B>::new(&small_config(backbone, 5), &device);
            let input = batch::<B>(&[30, 15], 30, 5, 8, &device);
            let grads = loss(&model, &input, &[0, 1]).backward();

            let first = match &model.backbone {
                FrameBackbone::Mlp(mlp) => mlp.streams[0].input.weight.val(),
                FrameBackbone::Gcn(gcn) => gcn.blocks[0].spatial.weight.val(),
            };
            for (name, weight) in [("first", first), ("head", model.head.weight.val())] {
                let grad = weight.grad(&grads).expect(name);
                assert!(
                    grad.abs().sum().into_scalar() > 0.0,
                    "{backbone:?}: zero {name} grad"
                );
            }

            let mut count = CountParams(0);
            model.visit(&mut count);
            let params = GradientsParams::from_grads(grads, &model);
            assert_eq!(
                params.len(),
                count.0,
                "{backbone:?}: some parameter has no gradient"
            );
        }
    }

    struct CountParams(usize);

    impl<BB: Backend> ModuleVisitor<BB> for CountParams {
        fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<BB, D>>) {
            self.0 += 1;
        }
    }

    #[test]
    fn padded_frames_do_not_change_the_logits() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            let model = KeypointModel::<B>::new(&small_config(backbone, 5), &device);
            let input = batch::<B>(&[50, 25, 40], 50, 5, 9, &device);
            let other = repad(&input, 123);
            // Inference (no dropout).
            let eval = model.valid();
            let a = eval.forward(&to_inner(&input)).into_data();
            let b = eval.forward(&to_inner(&other)).into_data();
            assert_eq!(a, b, "{backbone:?} inference");
            // Training mode: same seed, same dropout masks.
            B::seed(&device, 5);
            let a = model.forward(&input).into_data();
            B::seed(&device, 5);
            let b = model.forward(&other).into_data();
            assert_eq!(a, b, "{backbone:?} training");
        }
    }

    /// One video's row of a batch, alone and padded to `frames`.
    fn row(
        batch: &KeypointBatch<B>,
        i: usize,
        frames: usize,
    ) -> KeypointBatch<<B as AutodiffBackend>::InnerBackend> {
        let [_, t, n, c] = batch.points.dims();
        let len = batch
            .mask
            .clone()
            .slice([i..i + 1, 0..t])
            .sum()
            .into_scalar() as usize;
        let points = batch
            .points
            .clone()
            .inner()
            .slice([i..i + 1, 0..len, 0..n, 0..c]);
        let mask = batch.mask.clone().inner().slice([i..i + 1, 0..len]);
        KeypointBatch {
            points: points.pad(
                [(0, 0), (0, frames - len), (0, 0), (0, 0)],
                PadMode::Constant(0.0),
            ),
            mask: mask.pad([(0, 0), (0, frames - len)], PadMode::Constant(0.0)),
        }
    }

    #[test]
    fn a_videos_logits_do_not_depend_on_its_batch() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            // max_frames 64, max_tokens 16: 4 frames a token, whatever the batch.
            let model = KeypointModel::<B>::new(&small_config(backbone, 5), &device).valid();
            let lengths = [37, 64, 5, 20, 61, 12, 33, 48];
            let input = batch::<B>(&lengths, 64, 5, 21, &device);
            let together: Vec<f32> = model
                .forward(&to_inner(&input))
                .into_data()
                .to_vec()
                .unwrap();
            // The same videos in reverse order, in a batch padded only to the longest of them.
            let reversed: Vec<KeypointBatch<_>> = (0..lengths.len())
                .rev()
                .map(|i| row(&input, i, 64))
                .collect();
            let reversed = KeypointBatch {
                points: Tensor::cat(reversed.iter().map(|r| r.points.clone()).collect(), 0),
                mask: Tensor::cat(reversed.iter().map(|r| r.mask.clone()).collect(), 0),
            };
            let backwards: Vec<f32> = model.forward(&reversed).into_data().to_vec().unwrap();
            for (i, &len) in lengths.iter().enumerate() {
                // Alone, padded to nothing but its own length.
                let alone: Vec<f32> = model
                    .forward(&row(&input, i, len))
                    .into_data()
                    .to_vec()
                    .unwrap();
                let j = lengths.len() - 1 - i;
                for k in 0..2 {
                    let bits = |v: f32| v.to_bits();
                    assert_eq!(
                        bits(alone[k]),
                        bits(together[i * 2 + k]),
                        "{backbone:?}: video {i} ({len} frames) alone vs in a batch of 8"
                    );
                    assert_eq!(
                        bits(backwards[j * 2 + k]),
                        bits(together[i * 2 + k]),
                        "{backbone:?}: video {i} in another batch order"
                    );
                }
            }
        }
    }

    fn to_inner(batch: &KeypointBatch<B>) -> KeypointBatch<<B as AutodiffBackend>::InnerBackend> {
        KeypointBatch {
            points: batch.points.clone().inner(),
            mask: batch.mask.clone().inner(),
        }
    }

    #[test]
    fn ultra_long_sequence_runs() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            let config = KeypointModelConfig {
                max_tokens: 256,
                max_frames: 4096,
                ..small_config(backbone, 5)
            };
            let model = KeypointModel::<B>::new(&config, &device).valid();
            let input = batch(&[4096], 4096, 5, 10, &device);
            assert_eq!(model.forward(&input).dims(), [1, 2]);
        }
    }

    #[test]
    fn same_seed_gives_bit_identical_training() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            let run = || {
                B::seed(&device, 42);
                let model = KeypointModel::<B>::new(&small_config(backbone, 5), &device);
                let input = batch::<B>(&[20, 12], 20, 5, 11, &device);
                let before = model.valid().forward(&to_inner(&input)).into_data();
                let grads = loss(&model, &input, &[1, 0]).backward();
                let grads = GradientsParams::from_grads(grads, &model);
                let mut optimizer = AdamConfig::new().init();
                let model = optimizer.step(1e-2, model, grads);
                let after = model.valid().forward(&to_inner(&input)).into_data();
                (before, after)
            };
            let (before_1, after_1) = run();
            let (before_2, after_2) = run();
            assert_eq!(before_1, before_2, "{backbone:?}: initial logits differ");
            assert_eq!(
                after_1, after_2,
                "{backbone:?}: logits after one step differ"
            );
            assert_ne!(before_1, after_1, "{backbone:?}: the step changed nothing");
        }
    }

    /// Forward + backward time at default size, batch 8 x 512 frames:
    /// `cargo test --lib model::classifier -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, not a check"]
    fn timing_default_size() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            let config = KeypointModelConfig {
                backbone,
                max_frames: 512,
                ..KeypointModelConfig::default()
            };
            B::seed(&device, 0);
            let model = KeypointModel::<B>::new(&config, &device);
            let input = batch::<B>(&[512; 8], 512, 5, 12, &device);
            for _ in 0..2 {
                let start = std::time::Instant::now();
                let grads = loss(&model, &input, &[0, 1, 0, 1, 0, 1, 0, 1]).backward();
                let _ = GradientsParams::from_grads(grads, &model);
                println!(
                    "{backbone:?}: {} params ({} in the backbone), forward+backward 8 x 512: {:.2?}",
                    model.num_params(),
                    model.backbone.num_params(),
                    start.elapsed()
                );
            }
        }
    }
}
