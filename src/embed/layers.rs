//! The inference layers both encoders share, built from Hugging Face tensors: a linear layer
//! (PyTorch stores its weight [out, in]), a LayerNorm, and multi-head self-attention.

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::activation;

use super::folder::ModelFolder;

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
        let bias = if bias {
            Some(folder.tensor::<B, 1>(&names(bases, "bias"), [output], device)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// A layer from its `[in, out]` weight and its bias.
    pub fn from_parts(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Linear { weight, bias }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let y = x.matmul(self.weight.clone().unsqueeze());
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        }
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

    /// Normalises the last axis (biased variance, as PyTorch does).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(D - 1);
        let normed = centered / (var + self.eps).sqrt();
        normed * self.gamma.clone().unsqueeze() + self.beta.clone().unsqueeze()
    }
}

/// Multi-head self-attention: separate query, key, value and output projections.
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    /// `x` [batch, seq, dim]; `mask_bias` [batch, seq] is added to every query's scores for
    /// each key (0 for tokens, a large negative number for padding), or None.
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let hd = d / self.heads;
        let split = |t: Tensor<B, 3>| t.reshape([b, s, self.heads, hd]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let mut scores = q.matmul(k.swap_dims(2, 3)) * (hd as f64).powf(-0.5);
        if let Some(bias) = mask_bias {
            scores = scores + bias.reshape([b, 1, 1, s]);
        }
        let weights = activation::softmax(scores, 3);
        let out = weights.matmul(v).swap_dims(1, 2).reshape([b, s, d]);
        self.output.forward(out)
    }
}
