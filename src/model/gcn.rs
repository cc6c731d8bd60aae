//! ST-GCN-style keypoint backbone: graph convolution over the OpenPose bones in each frame,
//! then a temporal convolution along the frames of each node.
//!
//! Block: `H = A_norm X W` (per frame, `W: C_in -> width/4`) -> zero the padded frames ->
//! temporal convolution (kernel 9, same padding, per node, `width/4 -> width`) -> `+ residual`
//! -> ReLU. Block outputs go `C -> width -> width ...`; afterwards the nodes of each stream
//! (body, face, hands) are averaged and the three stream vectors projected to `dim`:
//! `[B, T, 137, C] -> [B, T, dim]`.
//!
//! Choices for speed and memory on CPU (T up to 35,000):
//! - Inside the blocks the channel axis is outermost (`[C, B, T, N]`, N = 137 nodes), so every
//!   channel mix (`spatial`, `temporal`, `residual`) is one `[C_out, C_in] x [C_in, B*T*N]`
//!   matrix product and the graph aggregation is one `[C*B*T, N] x [N, N]` product. (Channels
//!   in the middle made each mix `B x T` small products, and its weight gradient a
//!   `[B*T, C_out, C_in]` tensor.)
//! - The temporal convolution runs on a narrow `width/4` bottleneck and is computed as one
//!   matrix product over the 9-frame window stacked along the channels
//!   (`9 x width/4 -> width`): per-tap multiply-adds or a depthwise convolution cost several
//!   times more on the CPU backends. The stacked window is a copy (2.25 x one block output);
//!   nine frame-shifted products summed instead would need eight additions over the wider
//!   output (8 x one block output), since burn has no accumulating matrix product.
//!   On the CPU the window is written, and its gradient summed, by xp's own kernels
//!   ([`super::window`]): burn's slices and concatenation took a quarter of a step.
//! - The aggregation runs before or after `spatial`, whichever has fewer channels
//!   (`A (X W) = (A X) W`).
//! - No BatchNorm (ST-GCN has it): padded frames would enter the batch statistics and a
//!   sequence's output would depend on its batch mates. No LayerNorm either: with two
//!   residual blocks it is not needed and it costs as much as the rest of the block.
//! - Memory: one `width`-channel activation is `B x T x 137 x width x 4` bytes (width 64:
//!   35 KB a frame). The backward pass keeps about 6 of these per block (the 9-frame window
//!   alone is 2.25), so memory grows linearly with `B x T`; the trainer bounds it by running
//!   the backbone over chunks of frames (see `classifier`). The MLP backbone needs far less
//!   (no per-node features).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::graph::{NUM_POINTS, STREAMS, normalized_adjacency};
use super::matmul::matmul;
use super::row_bias::add_row_bias;
use super::window::masked_window;

/// Block width / bottleneck width of the temporal convolution.
const BOTTLENECK: usize = 4;

/// Sizes of the GCN backbone.
#[derive(Debug, Clone)]
pub struct GcnBackboneConfig {
    /// Channels per point (3, or 5 with offsets).
    pub channels: usize,
    /// Channels of every block's output (the `64` of `C -> 64 -> 64`).
    pub width: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Temporal kernel size (odd, for same padding).
    pub kernel: usize,
    /// Output feature size per frame.
    pub dim: usize,
}

/// One spatial-temporal block.
#[derive(Module, Debug)]
pub struct GcnBlock<B: Backend> {
    /// `W` of `A_norm X W`: `C_in -> bottleneck`.
    pub spatial: Linear<B>,
    /// Temporal convolution over `kernel` frames, as a linear map of the stacked window:
    /// `kernel x bottleneck -> C_out`.
    pub temporal: Linear<B>,
    /// Projection of the input for the residual when the channel count changes.
    pub residual: Option<Linear<B>>,
    pub kernel: usize,
}

impl<B: Backend> GcnBlock<B> {
    fn new(c_in: usize, c_out: usize, kernel: usize, device: &B::Device) -> Self {
        let bottleneck = (c_out / BOTTLENECK).max(1);
        Self {
            spatial: LinearConfig::new(c_in, bottleneck).init(device),
            temporal: LinearConfig::new(kernel * bottleneck, c_out).init(device),
            residual: (c_in != c_out).then(|| LinearConfig::new(c_in, c_out).init(device)),
            kernel,
        }
    }

    /// Channels outermost: `x`: `[C_in, B, T, N]`, `adjacency`: `[N, N]`, `keep`:
    /// `[1, B, T, 1]` (1 = real frame). Returns `[C_out, B, T, N]`.
    fn forward(
        &self,
        x: Tensor<B, 4>,
        adjacency: Tensor<B, 2>,
        keep: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [c_in, b, t, n] = x.dims();
        let m = b * t * n;
        let bottleneck = self.spatial.weight.dims()[1];
        // A (X W) = (A X) W: aggregate over the nodes where there are fewer channels. With
        // nodes last, the aggregation is one `[C*B*T, N] x [N, N]` product (A is symmetric).
        let h = if c_in <= bottleneck {
            let aggregated = matmul(x.clone().reshape([c_in * b * t, n]), adjacency);
            mix(&self.spatial, aggregated.reshape([c_in, m]))
        } else {
            // The bias comes after the aggregation, as in the other order (A's rows do not
            // sum to 1).
            let mixed = weigh(&self.spatial, x.clone().reshape([c_in, m]));
            let aggregated =
                matmul(mixed.reshape([bottleneck * b * t, n]), adjacency).reshape([bottleneck, m]);
            add_bias(&self.spatial, aggregated)
        };
        // Padded frames become zeros, exactly what same padding puts past a sequence's end, so
        // real frames never see padded ones; then the 9-frame window (`super::window`).
        let h = masked_window(h.reshape([bottleneck, b, t, n]), keep, self.kernel);
        let h = mix(&self.temporal, h);
        let c_out = h.dims()[0];
        let residual = match &self.residual {
            Some(projection) => mix(projection, x.reshape([c_in, m])),
            None => x.reshape([c_in, m]),
        };
        relu(h + residual).reshape([c_out, b, t, n])
    }
}

/// A linear layer over the channels of channels-outermost features: `[C_in, M] -> [C_out, M]`
/// as one matrix product (burn's Linear acts on the last axis).
fn mix<B: Backend>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    add_bias(linear, weigh(linear, x))
}

/// The weight part of [`mix`]: `W^T x`.
fn weigh<B: Backend>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    matmul(linear.weight.val().transpose(), x)
}

/// The bias part of [`mix`]: `y + b` along the channels.
fn add_bias<B: Backend>(linear: &Linear<B>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    match &linear.bias {
        Some(bias) => add_row_bias(y, bias.val()),
        None => y,
    }
}

/// Graph-convolutional backbone: `[B, T, 137, C] -> [B, T, dim]`.
#[derive(Module, Debug)]
pub struct GcnBackbone<B: Backend> {
    pub blocks: Vec<GcnBlock<B>>,
    /// Stream-pooled block output (3 x width) -> dim.
    pub project: Linear<B>,
    /// `D^-1/2 (A + I) D^-1/2`, `[137, 137]`; a constant, not a parameter.
    pub adjacency: Tensor<B, 2>,
}

impl GcnBackboneConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> GcnBackbone<B> {
        assert!(
            self.kernel % 2 == 1,
            "temporal kernel must be odd for same padding"
        );
        assert!(self.blocks > 0, "the GCN needs at least one block");
        let blocks = (0..self.blocks)
            .map(|i| {
                let c_in = if i == 0 { self.channels } else { self.width };
                GcnBlock::new(c_in, self.width, self.kernel, device)
            })
            .collect();
        let adjacency = Tensor::<B, 2>::from_data(
            TensorData::new(normalized_adjacency(), [NUM_POINTS, NUM_POINTS]),
            device,
        );
        GcnBackbone {
            blocks,
            project: LinearConfig::new(STREAMS.len() * self.width, self.dim).init(device),
            adjacency,
        }
    }
}

impl<B: Backend> GcnBackbone<B> {
    /// See `FrameBackbone::activation_bytes_per_frame`: per block and node, its input, the
    /// bottleneck and its 9-frame window (with their gradients) and the block's output.
    pub fn activation_bytes_per_frame(&self) -> usize {
        let per_node: usize = self
            .blocks
            .iter()
            .map(|block| {
                let [c_in, bottleneck] = block.spatial.weight.dims();
                let c_out = block.temporal.weight.dims()[1];
                c_in + 12 * bottleneck + 3 * c_out
            })
            .sum();
        4 * NUM_POINTS * per_node
    }

    /// Frames on each side that reach a frame's output: `kernel / 2` per block.
    pub fn receptive_halo(&self) -> usize {
        self.blocks.iter().map(|block| block.kernel / 2).sum()
    }

    /// `points`: `[B, T, 137, C]`, `mask`: `[B, T]` (1 = real frame).
    pub fn forward(&self, points: Tensor<B, 4>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, t, n, _] = points.dims();
        let keep = mask.reshape([1, b, t, 1]);
        // Channels outermost inside the blocks (see `GcnBlock::forward`).
        let mut x = points.permute([3, 0, 1, 2]);
        for block in &self.blocks {
            x = block.forward(x, self.adjacency.clone(), keep.clone());
        }
        let width = x.dims()[0];
        // The mean over each stream's nodes, as one product with a `[N, streams]` matrix.
        let pooled = matmul(
            x.reshape([width * b * t, n]),
            stream_means::<B>(&self.adjacency.device()),
        )
        .reshape([width, b * t, STREAMS.len()])
        .permute([1, 2, 0])
        .reshape([b, t, STREAMS.len() * width]);
        self.project.forward(pooled)
    }
}

/// `[N, streams]`: column s averages the nodes of stream s.
fn stream_means<B: Backend>(device: &B::Device) -> Tensor<B, 2> {
    let mut weights = vec![0.0f32; NUM_POINTS * STREAMS.len()];
    for (s, range) in STREAMS.iter().enumerate() {
        for node in range.clone() {
            weights[node * STREAMS.len() + s] = 1.0 / range.len() as f32;
        }
    }
    Tensor::from_data(
        TensorData::new(weights, [NUM_POINTS, STREAMS.len()]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend, batch, repad, rng_lock};

    fn config(channels: usize) -> GcnBackboneConfig {
        GcnBackboneConfig {
            channels,
            width: 8,
            blocks: 2,
            kernel: 9,
            dim: 16,
        }
    }

    #[test]
    fn maps_every_frame_to_dim() {
        let _rng = rng_lock();
        let device = Default::default();
        for channels in [3, 5] {
            let model = config(channels).init::<TestBackend>(&device);
            let input = batch::<TestBackend>(&[12, 5], 12, channels, 3, &device);
            assert_eq!(model.forward(input.points, input.mask).dims(), [2, 12, 16]);
        }
    }

    #[test]
    fn padded_frames_do_not_reach_real_frames() {
        let _rng = rng_lock();
        let device = Default::default();
        let model = config(3).init::<TestBackend>(&device);
        let input = batch::<TestBackend>(&[20, 11], 20, 3, 4, &device);
        let other = repad(&input, 99);
        let a = model.forward(input.points, input.mask.clone());
        let b = model.forward(other.points, other.mask);
        // Real frames of the short sequence, including those within the kernel of the padding.
        let a = a.slice([1..2, 0..11]).into_data();
        let b = b.slice([1..2, 0..11]).into_data();
        assert_eq!(a, b);
    }

    fn floats<const D: usize>(t: Tensor<TestBackend, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// `x W + b` for one row `x` of a Linear (weight `[d_in, d_out]`, row-major).
    fn affine(linear: &Linear<TestBackend>, x: &[f32]) -> Vec<f32> {
        let [d_in, d_out] = linear.weight.dims();
        let w = floats(linear.weight.val());
        let mut y = floats(linear.bias.as_ref().unwrap().val());
        for (i, xi) in x.iter().enumerate().take(d_in) {
            for (o, yo) in y.iter_mut().enumerate() {
                *yo += xi * w[i * d_out + o];
            }
        }
        y
    }

    /// The backbone written out element by element from its definition (the module docs), in
    /// the plain `[B, T, N, C]` layout: `[B, T, dim]`.
    fn reference(
        model: &GcnBackbone<TestBackend>,
        points: &[f32],
        mask: &[f32],
        dims: [usize; 4],
    ) -> Vec<f32> {
        let [b, t, n, c] = dims;
        let a = normalized_adjacency();
        // x[((b * t) + t) * n + node] = channel vector.
        let mut x: Vec<Vec<f32>> = points.chunks(c).map(|v| v.to_vec()).collect();
        for block in &model.blocks {
            let bottleneck = block.spatial.weight.dims()[1];
            // s = (A X) W_s + b_s, zeroed on padded frames.
            let mut s = vec![vec![0.0f32; bottleneck]; b * t * n];
            for frame in 0..b * t {
                for node in 0..n {
                    let mut agg = vec![0.0f32; x[0].len()];
                    for other in 0..n {
                        for (ch, v) in agg.iter_mut().enumerate() {
                            *v += a[node * n + other] * x[frame * n + other][ch];
                        }
                    }
                    let keep = mask[frame];
                    s[frame * n + node] = affine(&block.spatial, &agg)
                        .iter()
                        .map(|v| v * keep)
                        .collect();
                }
            }
            // Temporal: 9 taps of s stacked (tap-major), same padding, then W_t + b_t.
            let half = block.kernel / 2;
            let mut out = Vec::with_capacity(b * t * n);
            for seq in 0..b {
                for frame in 0..t {
                    for node in 0..n {
                        let mut stacked = Vec::new();
                        for k in 0..block.kernel {
                            let source = frame as i64 + k as i64 - half as i64;
                            if (0..t as i64).contains(&source) {
                                stacked.extend(&s[(seq * t + source as usize) * n + node]);
                            } else {
                                stacked.extend(vec![0.0; bottleneck]);
                            }
                        }
                        let y = affine(&block.temporal, &stacked);
                        let input = &x[(seq * t + frame) * n + node];
                        let residual = match &block.residual {
                            Some(projection) => affine(projection, input),
                            None => input.clone(),
                        };
                        out.push(
                            y.iter()
                                .zip(&residual)
                                .map(|(y, r)| (y + r).max(0.0))
                                .collect(),
                        );
                    }
                }
            }
            x = out;
        }
        // Mean over each stream's nodes, streams concatenated, then the projection.
        let mut result = Vec::new();
        for frame in 0..b * t {
            let mut pooled = Vec::new();
            for range in STREAMS {
                let width = x[0].len();
                let mut mean = vec![0.0f32; width];
                for node in range.clone() {
                    for (w, v) in mean.iter_mut().enumerate() {
                        *v += x[frame * n + node][w] / range.len() as f32;
                    }
                }
                pooled.extend(mean);
            }
            result.extend(affine(&model.project, &pooled));
        }
        result
    }

    #[test]
    fn matches_an_element_by_element_reference() {
        let _rng = rng_lock();
        let device = Default::default();
        // Width 16 (bottleneck 4) with 3 input channels: block 1 aggregates before its
        // spatial weight, block 2 after it, so both orders are checked.
        let config = GcnBackboneConfig {
            channels: 3,
            width: 16,
            blocks: 2,
            kernel: 9,
            dim: 8,
        };
        let model = config.init::<TestBackend>(&device);
        let input = batch::<TestBackend>(&[12, 7], 12, 3, 5, &device);
        let dims = input.points.dims();
        let points = floats(input.points.clone());
        let mask = floats(input.mask.clone());
        let got = floats(model.forward(input.points, input.mask));
        let want = reference(&model, &points, &mask, dims);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-4, "value {i}: {g} vs reference {w}");
        }
    }

    #[test]
    fn window_is_same_padded_and_local() {
        let _rng = rng_lock();
        let device = Default::default();
        // Frame t holds the value t + 1 (node 0, channel 0), so a window shows which frames it
        // read; zeros are the same padding.
        let t = 12;
        let mut data = vec![0.0f32; t * NUM_POINTS];
        for frame in 0..t {
            data[frame * NUM_POINTS] = (frame + 1) as f32;
        }
        // Layout [C = 1, B = 1, T, N].
        let h = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(data, [1, 1, t, NUM_POINTS]),
            &device,
        );
        let keep = Tensor::<TestBackend, 4>::ones([1, 1, t, 1], &device);
        let window = masked_window(h, keep, 9);
        assert_eq!(window.dims(), [9, t * NUM_POINTS]);
        let window = window.into_data().to_vec::<f32>().unwrap();
        for frame in 0..t {
            for k in 0..9 {
                let source = frame as i64 + k as i64 - 4;
                let expected = if (0..t as i64).contains(&source) {
                    (source + 1) as f32
                } else {
                    0.0
                };
                assert_eq!(
                    window[k * t * NUM_POINTS + frame * NUM_POINTS],
                    expected,
                    "frame {frame} tap {k}"
                );
            }
        }
    }
}
