//! ST-GCN-style keypoint backbone: graph convolution over the OpenPose bones in each frame,
//! then a temporal convolution along the frames of each node.
//!
//! Block: `H = A_norm X W` (per frame, `W: C_in -> width/4`) -> zero the padded frames ->
//! temporal convolution (kernel 9, same padding, per node, `width/4 -> width`) -> `+ residual`
//! -> ReLU. Block outputs go `C -> width -> width ...`; afterwards the nodes of each stream
//! (body, face, hands) are averaged and the three stream vectors projected to `dim`:
//! `[B, T, 137, C] -> [B, T, dim]`.
//!
//! Choices for speed and memory on CPU (T up to 8192):
//! - The temporal convolution runs on a narrow `width/4` bottleneck and is computed as one
//!   matrix product over the stacked 9-frame window (`9 x width/4 -> width`): on ndarray,
//!   element-wise ops are the slow part, so a per-tap multiply-add or a depthwise conv (burn's
//!   conv2d backward on ndarray is very slow) cost 5-50x more.
//! - Inside the blocks frames are channels-first (`[B, T, C, 137]`): the graph aggregation is
//!   then one `[B*T*C, 137] x [137, 137]` product and the window gather copies whole
//!   `C x 137` blocks.
//! - No BatchNorm (ST-GCN has it): padded frames would enter the batch statistics and a
//!   sequence's output would depend on its batch mates. No LayerNorm either: with two
//!   residual blocks it is not needed and it costs as much as the rest of the block.
//! - Memory: one `width`-channel activation is `B x T x 137 x width x 4` bytes (width 64:
//!   35 KB a frame). The backward pass keeps about 6 of these per block (the 9-frame window
//!   alone is 2.25), so 2 blocks need about `B x T x 0.4 MB`: B = 1, T = 8192 about 3.5 GB;
//!   B = 8, T = 2048 about 7 GB; B = 8, T = 8192 about 28 GB (too much for most CPUs: cap
//!   frames or use batch 1-2). Measured: 1.8 GB peak for B = 8, T = 512. Inference keeps only 2-3 activations alive. The MLP backbone
//!   needs far less (no per-node features).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;

use super::graph::{NUM_POINTS, STREAMS, normalized_adjacency};

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
    /// Dropout on the projected frame feature.
    pub dropout: f64,
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

    /// Channels-first frames: `x`: `[B, T, C_in, N]`, `adjacency`: `[N, N]`, `keep`:
    /// `[B, T, 1, 1]` (1 = real). Returns `[B, T, C_out, N]`.
    fn forward(
        &self,
        x: Tensor<B, 4>,
        adjacency: Tensor<B, 2>,
        keep: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, t, c_in, n] = x.dims();
        // A_norm (X W) = (A_norm X) W; aggregating first is cheaper while C_in is small. With
        // nodes last, the aggregation is one `[B*T*C, N] x [N, N]` product (A is symmetric).
        let aggregated = x.clone().reshape([b * t * c_in, n]).matmul(adjacency);
        let h = mix(&self.spatial, aggregated.reshape([b * t, c_in, n]));
        let bottleneck = h.dims()[1];
        // Padded frames become zeros, exactly what same padding puts past a sequence's end, so
        // real frames never see padded ones.
        let h = h.reshape([b, t, bottleneck, n]) * keep;
        let window = self.window(h);
        let h = mix(
            &self.temporal,
            window.reshape([b * t, self.kernel * bottleneck, n]),
        );
        let c_out = h.dims()[1];
        let residual = match &self.residual {
            Some(projection) => mix(projection, x.reshape([b * t, c_in, n])),
            None => x.reshape([b * t, c_in, n]),
        };
        relu(h + residual).reshape([b, t, c_out, n])
    }

    /// Stacks the `kernel` frames centred on each frame along the channels (zeros past the
    /// ends): `[B, T, C, N] -> [B, T, kernel x C, N]`, channel `k x C + c` = frame
    /// `t + k - kernel/2`. One gather of `T x kernel` frames (frame-major) followed by a free
    /// reshape: cheaper, forward and backward, than concatenating `kernel` shifted slices.
    fn window(&self, h: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, t, c, n] = h.dims();
        let half = self.kernel / 2;
        let padded = h.pad(
            [(0, 0), (half, half), (0, 0), (0, 0)],
            PadMode::Constant(0.0),
        );
        let kernel = self.kernel;
        let frames: Vec<i64> = (0..t)
            .flat_map(|frame| (0..kernel).map(move |k| (frame + k) as i64))
            .collect();
        let frames =
            Tensor::<B, 1, Int>::from_data(TensorData::new(frames, [t * kernel]), &padded.device());
        padded.select(1, frames).reshape([b, t, kernel * c, n])
    }
}

/// A linear layer over the channel axis of channels-first features: `[M, C_in, N] ->
/// [M, C_out, N]` (burn's Linear acts on the last axis, which holds the nodes here).
fn mix<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [d_in, d_out] = linear.weight.dims();
    let weight = linear.weight.val().transpose().reshape([1, d_out, d_in]);
    let y = weight.matmul(x);
    match &linear.bias {
        Some(bias) => y + bias.val().reshape([1, d_out, 1]),
        None => y,
    }
}

/// Graph-convolutional backbone: `[B, T, 137, C] -> [B, T, dim]`.
#[derive(Module, Debug)]
pub struct GcnBackbone<B: Backend> {
    pub blocks: Vec<GcnBlock<B>>,
    /// Stream-pooled block output (3 x width) -> dim.
    pub project: Linear<B>,
    pub dropout: Dropout,
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
            dropout: DropoutConfig::new(self.dropout).init(),
            adjacency,
        }
    }
}

impl<B: Backend> GcnBackbone<B> {
    /// `points`: `[B, T, 137, C]`, `mask`: `[B, T]` (1 = real frame).
    pub fn forward(&self, points: Tensor<B, 4>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, t, _, _] = points.dims();
        let keep = mask.reshape([b, t, 1, 1]);
        // Channels-first inside the blocks (see `GcnBlock::forward`).
        let mut x = points.swap_dims(2, 3);
        for block in &self.blocks {
            x = block.forward(x, self.adjacency.clone(), keep.clone());
        }
        let width = x.dims()[2];
        let pooled = STREAMS
            .iter()
            .map(|range| {
                x.clone()
                    .slice([0..b, 0..t, 0..width, range.clone()])
                    .mean_dim(3)
            })
            .collect();
        let pooled = Tensor::cat(pooled, 2).reshape([b, t, STREAMS.len() * width]);
        self.dropout.forward(self.project.forward(pooled))
    }
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
            dropout: 0.0,
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

    #[test]
    fn window_is_same_padded_and_local() {
        let _rng = rng_lock();
        let device = Default::default();
        let block = GcnBlock::<TestBackend>::new(2, 4, 9, &device);
        // Frame t holds the value t + 1 (node 0, channel 0), so a window shows which frames it
        // read; zeros are the same padding.
        let t = 12;
        let mut data = vec![0.0f32; t * NUM_POINTS];
        for frame in 0..t {
            data[frame * NUM_POINTS] = (frame + 1) as f32;
        }
        // Layout [1, T, C = 1, N].
        let h = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(data, [1, t, 1, NUM_POINTS]),
            &device,
        );
        let window = block.window(h);
        assert_eq!(window.dims(), [1, t, 9, NUM_POINTS]);
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
                    window[(frame * 9 + k) * NUM_POINTS],
                    expected,
                    "frame {frame} tap {k}"
                );
            }
        }
    }
}
