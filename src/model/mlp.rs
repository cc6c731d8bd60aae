//! The paper's "MLP-ified" keypoint backbone: no graph, one small MLP per stream and frame.
//!
//! Per frame, each stream (body 25 points, face 70, both hands 42) is flattened to
//! `points x channels` and mapped by its own `Linear -> GELU -> Linear` to `dim`. The three
//! stream vectors are **concatenated** (not summed) and projected to `dim`: concatenation keeps
//! the streams apart so the projection can weigh them, which summing would blur. Frames are
//! independent, so padded frames cannot leak into real ones here. No dropout here: the
//! classifier drops out the pooled tokens, so the backbone is a pure function of its input and
//! can be recomputed chunk by chunk (see `classifier`).

use super::gelu;
use super::matmul::linear;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::graph::STREAMS;

/// Sizes of the MLP backbone.
#[derive(Debug, Clone)]
pub struct MlpBackboneConfig {
    /// Channels per point (3, or 5 with offsets).
    pub channels: usize,
    /// Hidden width of each stream's MLP.
    pub hidden: usize,
    /// Output feature size per frame.
    pub dim: usize,
}

/// `Linear -> GELU -> Linear` for one stream.
#[derive(Module, Debug)]
pub struct StreamMlp<B: Backend> {
    pub input: Linear<B>,
    pub output: Linear<B>,
}

impl<B: Backend> StreamMlp<B> {
    fn new(d_in: usize, hidden: usize, dim: usize, device: &B::Device) -> Self {
        Self {
            input: LinearConfig::new(d_in, hidden).init(device),
            output: LinearConfig::new(hidden, dim).init(device),
        }
    }

    /// `[rows, points x channels] -> [rows, dim]`.
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        linear(&self.output, gelu(linear(&self.input, x)))
    }
}

/// Per-frame MLP over the body, face and hands streams: `[B, T, 137, C] -> [B, T, dim]`.
#[derive(Module, Debug)]
pub struct MlpBackbone<B: Backend> {
    /// One MLP per stream, in [`STREAMS`] order (body, face, hands).
    pub streams: Vec<StreamMlp<B>>,
    /// Projection of the concatenated stream features to `dim`.
    pub fuse: Linear<B>,
}

impl MlpBackboneConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> MlpBackbone<B> {
        let streams = STREAMS
            .iter()
            .map(|range| StreamMlp::new(range.len() * self.channels, self.hidden, self.dim, device))
            .collect();
        MlpBackbone {
            streams,
            fuse: LinearConfig::new(STREAMS.len() * self.dim, self.dim).init(device),
        }
    }
}

impl<B: Backend> MlpBackbone<B> {
    /// See `FrameBackbone::activation_bytes_per_frame`: the frame's inputs (and their copy),
    /// each stream's hidden layer before and after GELU (and GELU's `erf` values, kept for the
    /// backward pass) and its output, the fused features.
    pub fn activation_bytes_per_frame(&self) -> usize {
        let inputs: usize = self.streams.iter().map(|s| s.input.weight.dims()[0]).sum();
        let per_stream: usize = self
            .streams
            .iter()
            .map(|s| 4 * s.input.weight.dims()[1] + 2 * s.output.weight.dims()[1])
            .sum();
        let dim = self.fuse.weight.dims()[1];
        4 * (2 * inputs + per_stream + 4 * dim)
    }

    pub fn forward(&self, points: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, t, n, c] = points.dims();
        // One row per frame. A stream's points are consecutive, so its inputs are a block of
        // columns, which the matrix product reads in place (no copy per stream).
        let rows = points.reshape([b * t, n * c]);
        let features = STREAMS
            .iter()
            .zip(&self.streams)
            .map(|(range, mlp)| {
                let stream = rows
                    .clone()
                    .slice([0..b * t, range.start * c..range.end * c]);
                mlp.forward(stream)
            })
            .collect();
        let fused = linear(&self.fuse, Tensor::cat(features, 1));
        let dim = fused.dims()[1];
        fused.reshape([b, t, dim])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend, batch, rng_lock};

    #[test]
    fn maps_every_frame_to_dim() {
        let _rng = rng_lock();
        let device = Default::default();
        for channels in [3, 5] {
            let config = MlpBackboneConfig {
                channels,
                hidden: 32,
                dim: 16,
            };
            let model = config.init::<TestBackend>(&device);
            let input = batch::<TestBackend>(&[7, 4], 7, channels, 1, &device);
            assert_eq!(model.forward(input.points).dims(), [2, 7, 16]);
        }
    }

    #[test]
    fn frames_are_independent() {
        let _rng = rng_lock();
        let device = Default::default();
        let config = MlpBackboneConfig {
            channels: 3,
            hidden: 32,
            dim: 16,
        };
        let model = config.init::<TestBackend>(&device);
        let whole = batch::<TestBackend>(&[6], 6, 3, 2, &device).points;
        let first = whole.clone().slice([0..1, 0..3]);
        let a = model.forward(whole).slice([0..1, 0..3]).into_data();
        let b = model.forward(first).into_data();
        a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-6));
    }
}
