//! The inference layers both encoders share, built from Hugging Face tensors: a linear layer
//! (PyTorch stores its weight [out, in]), a LayerNorm, and multi-head self-attention.

use std::any::TypeId;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation;

use super::folder::ModelFolder;
use crate::lanes;
use crate::model::batched_matmul::{batched_matmul, batched_matmul_merging_heads};
use crate::model::matmul;

/// The names a tensor may have: `base.suffix`, for each base.
pub fn names(bases: &[String], suffix: &str) -> Vec<String> {
    bases.iter().map(|b| format!("{b}.{suffix}")).collect()
}

pub struct Linear<B: Backend> {
    /// [in, out]: the transpose of PyTorch's, so `x.matmul(weight)` is the layer.
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
}

impl<B: Backend> Linear<B> {
    /// Reads `{base}.weight` [out, in] and `{base}.bias` [out] (under any of `bases`).
    pub fn load(
        folder: &mut ModelFolder,
        bases: &[String],
        input: usize,
        output: usize,
        bias: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let weight = folder
            .tensor::<B, 2>(&names(bases, "weight"), [output, input], device)?
            .transpose();
        let weight = contiguous(weight);
        let bias = if bias {
            Some(folder.tensor::<B, 1>(&names(bases, "bias"), [output], device)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// A layer from its `[in, out]` weight and its bias.
    pub fn from_parts(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Linear {
            weight: contiguous(weight),
            bias,
        }
    }

    /// Applies the layer to the last axis. The leading axes are folded into the rows of one
    /// matrix product: one product of `[rows, in] x [in, out]` packs the weight once and
    /// spreads over every core, where a batched product repeats both per batch item.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let input = dims[D - 1];
        let rows = x.shape().num_elements() / input.max(1);
        let [_, output] = self.weight.dims();
        let y = matmul::affine(
            x.reshape([rows, input]),
            self.weight.clone(),
            self.bias.clone(),
        );
        let mut out = dims;
        out[D - 1] = output;
        y.reshape(out)
    }

    /// The layer followed by a per-output scale (`y * factor`), as one layer: the scale is
    /// folded into the weight's columns and the bias, so inference pays no pass for it.
    pub fn scale_outputs(self, factor: Tensor<B, 1>) -> Self {
        let weight = self.weight * factor.clone().unsqueeze();
        let bias = self.bias.map(|b| b * factor);
        Linear::from_parts(weight, bias)
    }

    /// The layers side by side as one: `[in, a + b + ...]`, so several projections of the same
    /// input are one matrix product. All or none must have a bias.
    pub fn concat(parts: Vec<Linear<B>>) -> Self {
        let biases: Option<Vec<Tensor<B, 1>>> = parts.iter().map(|p| p.bias.clone()).collect();
        let weight = Tensor::cat(parts.into_iter().map(|p| p.weight).collect(), 1);
        Linear::from_parts(weight, biases.map(|b| Tensor::cat(b, 0)))
    }
}

pub struct LayerNorm<B: Backend> {
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Reads `{base}.weight` and `{base}.bias` (or the older `gamma` / `beta`).
    pub fn load(
        folder: &mut ModelFolder,
        bases: &[String],
        dim: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self> {
        let both = |a: &str, b: &str| {
            let mut n = names(bases, a);
            n.extend(names(bases, b));
            n
        };
        Ok(LayerNorm {
            gamma: folder.tensor(&both("weight", "gamma"), [dim], device)?,
            beta: folder.tensor(&both("bias", "beta"), [dim], device)?,
            eps,
        })
    }

    /// Normalises the last axis (biased variance, epsilon inside the square root, as PyTorch
    /// does), with the backend's fused kernel: one pass per row instead of nine over the
    /// whole tensor.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
            x.into_primitive().tensor(),
            self.gamma.clone().into_primitive().tensor(),
            Some(self.beta.clone().into_primitive().tensor()),
            self.eps,
        )))
    }
}

/// A copy of `t` laid out row-major (a transposed view becomes a plain matrix), so matrix
/// products read it without strides.
fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    let device = t.device();
    Tensor::from_data(t.into_data(), &device)
}

/// Multi-head self-attention with the query, key and value projections fused into one.
pub struct SelfAttention<B: Backend> {
    /// `[dim, 3 * dim]`: query, key and value side by side.
    qkv: Linear<B>,
    output: Linear<B>,
    heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    pub fn new(
        query: Linear<B>,
        key: Linear<B>,
        value: Linear<B>,
        output: Linear<B>,
        heads: usize,
    ) -> Self {
        // The scores' 1/sqrt(head size) folded into the query projection: one pass fewer over
        // the [batch, heads, seq, seq] scores per layer.
        let [_, dim] = query.weight.dims();
        let scale = ((dim / heads) as f64).powf(-0.5);
        let device = query.weight.device();
        let query = query.scale_outputs(Tensor::full([dim], scale, &device));
        SelfAttention {
            qkv: Linear::concat(vec![query, key, value]),
            output,
            heads,
        }
    }

    /// Scales the attention's output per channel (DINOv2's LayerScale), folded into the output
    /// projection.
    pub fn scale_outputs(self, factor: Tensor<B, 1>) -> Self {
        SelfAttention {
            output: self.output.scale_outputs(factor),
            ..self
        }
    }

    /// `x` [batch, seq, dim]; `padding` [batch, seq] is true for the keys no query may attend
    /// to (padding), or None. Scores are scaled by 1/sqrt(head size), as transformers does
    /// (through the query).
    ///
    /// The query, key and value heads are strided views of the one projection (no copies):
    /// the matrix products read them in place, one (batch, head) pair per task across cores.
    pub fn forward(&self, x: Tensor<B, 3>, padding: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let h = self.heads;
        let hd = d / h;
        // [batch, 3 * heads, seq, head size]: query heads, then key heads, then value heads.
        let heads = self
            .qkv
            .forward(x)
            .reshape([b, s, 3 * h, hd])
            .swap_dims(1, 2);
        let part = |i: usize| heads.clone().narrow(1, i * h, h);
        // The query is scaled already (see `new`).
        let mut scores = batched_matmul(part(0), part(1).swap_dims(2, 3));
        if let Some(padding) = padding {
            // transformers adds the lowest float to padded keys' scores: after the softmax
            // their weight is exactly 0, as here.
            scores = scores.mask_fill(padding.reshape([b, 1, 1, s]), f32::MIN);
        }
        let weights = softmax(scores);
        // Written straight into token-major order, the heads side by side.
        let out = batched_matmul_merging_heads(weights, part(2));
        self.output.forward(out)
    }
}

/// Softmax over the last dimension, for inference.
///
/// On the CPU backend, one pass over each row with [`lanes::expf`] in vector lanes: burn's
/// softmax is five passes over the scores (max, subtract, a scalar `exp` per element, sum,
/// divide), and DINOv2-base at 224 px takes 76 million exponentials a batch of 8. Other
/// backends (CUDA) use their own.
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if TypeId::of::<B>() != TypeId::of::<crate::train::CpuBackend>() {
        return activation::softmax(x, D - 1);
    }
    let device = x.device();
    let row = x.dims()[D - 1];
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) if row > 0 => {
            let rows_per_task = (1 << 14) / row + 1;
            lanes::par_pieces(
                row * rows_per_task,
                [values],
                [],
                #[inline(always)]
                |[rows], []| softmax_rows(rows, row),
            );
            Tensor::from_data(data, &device)
        }
        _ => activation::softmax(Tensor::from_data(data, &device), D - 1),
    }
}

/// Lanes a row's maximum and sum are accumulated in: enough for AVX2, and a fixed order of
/// additions (so the same row gives the same sum on any CPU).
const ACCUMULATORS: usize = 8;

#[inline(always)]
fn softmax_rows(values: &mut [f32], row: usize) {
    for r in values.chunks_mut(row) {
        let mut max = [f32::NEG_INFINITY; ACCUMULATORS];
        for chunk in r.chunks(ACCUMULATORS) {
            for (m, &v) in max.iter_mut().zip(chunk) {
                *m = if v > *m { v } else { *m };
            }
        }
        let max = max.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for v in r.iter_mut() {
            // Below -87, exp is below 1.7e-38: 0 here, as it is for masked scores (f32::MIN).
            let d = *v - max;
            let e = lanes::expf(if d < -87.0 { -87.0 } else { d });
            *v = if d < -87.0 { 0.0 } else { e };
        }
        let mut sum = [0f32; ACCUMULATORS];
        for chunk in r.chunks(ACCUMULATORS) {
            for (s, &v) in sum.iter_mut().zip(chunk) {
                *s += v;
            }
        }
        let inverse = 1.0 / sum.iter().sum::<f32>();
        for v in r.iter_mut() {
            *v *= inverse;
        }
    }
}

/// Exact GELU, `x * Φ(x)` (transformers' `gelu`), for inference.
///
/// On the CPU backend it is one vectorisable pass with a rational `erf` (below): the backend's
/// own GELU calls a scalar `erff` per element, 6% of a DINOv2 forward pass. Other backends
/// (CUDA) use their own kernel. Not `model::gelu` (libm's `erff` bit for bit, which training
/// needs to keep its numbers): that costs several times more per value, and inference only has
/// to match transformers within 1e-4.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if TypeId::of::<B>() != TypeId::of::<crate::train::CpuBackend>() {
        return activation::gelu(x);
    }
    let device = x.device();
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => {
            // On every core, as the backend's element-wise kernels run.
            lanes::par_pieces(
                1 << 14,
                [values],
                [],
                #[inline(always)]
                |[chunk], []| {
                    for v in chunk {
                        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
                    }
                },
            );
            Tensor::from_data(data, &device)
        }
        // Not float32 (the encoders load float32 weights): the backend's own kernel.
        Err(_) => activation::gelu(Tensor::from_data(data, &device)),
    }
}

/// `erf` in float32 to within 5e-7 of libm's everywhere (a few units in the last place): an odd rational function
/// of degree 13/8 on [-4, 4] (beyond, erf is ±1 in float32), without branches or calls (plain
/// multiply-adds: `mul_add` would call libm's `fmaf` on a baseline x86-64 build), so the
/// compiler vectorises the loop. Coefficients from the minimax fit Eigen and XLA use.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_3e-10_f32;
    let p = p * x2 + 2.770_681_4e-8;
    let p = p * x2 + -2.101_024e-6;
    let p = p * x2 + -5.692_506_4e-5;
    let p = p * x2 + -7.349_906e-4;
    let p = p * x2 + -2.954_6e-3;
    let p = p * x2 + -1.609_603_3e-2;
    let q = -1.456_607_2e-5_f32;
    let q = q * x2 + -2.133_740_6e-4;
    let q = q * x2 + -1.682_827e-3;
    let q = q * x2 + -7.373_329e-3;
    let q = q * x2 + -1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against libm's correctly rounded-to-1-ulp `erff` (the function burn's GELU calls) on a
    /// dense grid, tails included.
    #[test]
    fn the_rational_erf_matches_libm() {
        let mut worst = 0f32;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            worst = worst.max((erf(x) - libm_erf(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf - libm erff| = {worst:e}");
        for x in [10.0, 1e30, f32::INFINITY] {
            assert!((erf(x) - 1.0).abs() <= f32::EPSILON && erf(-x) == -erf(x));
        }
    }

    fn libm_erf(x: f32) -> f32 {
        unsafe extern "C" {
            fn erff(x: f32) -> f32;
        }
        // SAFETY: a pure C math function.
        unsafe { erff(x) }
    }

    /// Against burn's softmax, with masked (f32::MIN) and large scores, rows longer and
    /// shorter than the accumulators.
    #[test]
    fn softmax_on_the_cpu_is_burn_softmax() {
        type B = crate::train::CpuBackend;
        let device = Default::default();
        for row in [1, 5, 8, 13, 257] {
            let mut scores: Vec<f32> = (0..6 * row)
                .map(|i| (i as f32 * 0.37).sin() * 30.0)
                .collect();
            scores[row / 2] = f32::MIN;
            scores[row + row / 3] = 80.0;
            let x = Tensor::<B, 1>::from_floats(scores.as_slice(), &device).reshape([2, 3, row]);
            let ours = softmax(x.clone()).into_data().to_vec::<f32>().unwrap();
            let burn = activation::softmax(x, 2)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            for (i, (a, b)) in ours.iter().zip(&burn).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.max(1e-3),
                    "row {row}, element {i}: {a} vs burn's {b}"
                );
            }
            for r in ours.chunks(row) {
                assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn gelu_on_the_cpu_is_the_exact_gelu() {
        type B = crate::train::CpuBackend;
        let device = Default::default();
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.02).collect();
        let x = Tensor::<B, 1>::from_floats(xs.as_slice(), &device);
        let ours = gelu(x.clone()).into_data().to_vec::<f32>().unwrap();
        let burn = activation::gelu(x).into_data().to_vec::<f32>().unwrap();
        for ((a, b), x) in ours.iter().zip(&burn).zip(&xs) {
            assert!((a - b).abs() < 1e-6, "gelu({x}): {a} vs burn's {b}");
        }
    }
}
