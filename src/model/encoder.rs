//! burn's transformer encoder run with xp's [`dropout`].
//!
//! The modules are burn's own `TransformerEncoder` (its parameters, initialisation and saved
//! records are unchanged); this is its forward pass, step for step as burn 0.21 writes it
//! (`TransformerEncoderLayer::forward`, `MultiHeadAttention::forward`,
//! `PositionWiseFeedForward::forward`), with each of burn's dropouts replaced by xp's, whose
//! mask is drawn on every core. Without dropout (inference, or probability 0) the result and
//! its gradients are burn's bit for bit; the tests check it against burn's forward.

use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderLayer};
use burn::nn::{Dropout, Linear};
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::{quiet_softmax, softmax};

use super::dropout::dropout;

/// `encoder` applied to `x` `[B, L, d_model]`; `mask_pad` `[B, L]` is true where a token must
/// be ignored (burn's `TransformerEncoderInput::mask_pad`).
pub fn encode<B: Backend>(
    encoder: &TransformerEncoder<B>,
    x: Tensor<B, 3>,
    mask_pad: Tensor<B, 2, Bool>,
) -> Tensor<B, 3> {
    let [batch, length] = mask_pad.dims();
    // burn masks the scores `[B, heads, L, L]` with the padding mask broadcast from `[B, 1, 1,
    // L]`; burn-flex widens a broadcast mask element by element, in the forward pass and again
    // for the gradient, in every layer (6 % of a paper-size MLP step). The same mask laid out
    // in full, once, by block copies, fills the same entries.
    let mask = mask_pad
        .reshape([batch, 1, 1, length])
        .repeat_dim(2, length)
        .repeat_dim(1, encoder.n_heads);
    encoder
        .layers
        .iter()
        .fold(x, |x, layer| encode_layer(layer, x, mask.clone()))
}

fn drop<B: Backend, const D: usize>(layer: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    dropout(layer.prob, x)
}

/// `TransformerEncoderLayer::forward` with the padding mask, laid out as the scores
/// `[B, heads, L, L]`, and no attention mask.
fn encode_layer<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
    x: Tensor<B, 3>,
    mask: Tensor<B, 4, Bool>,
) -> Tensor<B, 3> {
    let residual = if layer.norm_first {
        layer.norm_2.forward(x.clone())
    } else {
        x.clone()
    };
    let residual = attend(&layer.mha, residual, mask);
    let residual = drop(&layer.dropout, residual);
    let mut x = x + residual;

    let residual = if layer.norm_first {
        layer.norm_1.forward(x.clone())
    } else {
        x = layer.norm_1.forward(x);
        x.clone()
    };
    let ff = &layer.pwff;
    let residual = ff.activation.forward(ff.linear_inner.forward(residual));
    let residual = ff.linear_outer.forward(drop(&ff.dropout, residual));
    let residual = drop(&layer.dropout, residual);
    let x = x + residual;

    if layer.norm_first {
        x
    } else {
        layer.norm_2.forward(x)
    }
}

/// `MultiHeadAttention::forward` on self-attention: the context `[B, L, d_model]`. As burn
/// does, dropout applies to the scaled scores, before the padding mask and the softmax.
fn attend<B: Backend>(
    mha: &MultiHeadAttention<B>,
    x: Tensor<B, 3>,
    mask: Tensor<B, 4, Bool>,
) -> Tensor<B, 3> {
    let [batch, length, d_model] = x.dims();
    let heads = |linear: &Linear<B>, x: Tensor<B, 3>| {
        linear
            .forward(x)
            .reshape([batch, length, mha.n_heads, mha.d_k])
            .swap_dims(1, 2)
    };
    let query = heads(&mha.query, x.clone());
    let key = heads(&mha.key, x.clone());
    let value = heads(&mha.value, x);

    let scores = query
        .matmul(key.transpose())
        .div_scalar((mha.d_k as f32).sqrt());
    let scores = drop(&mha.dropout, scores);
    let scores = scores.mask_fill(mask, mha.min_float);
    let weights = if mha.quiet_softmax {
        quiet_softmax(scores, 3)
    } else {
        softmax(scores, 3)
    };

    let context = weights
        .matmul(value)
        .swap_dims(1, 2)
        .reshape([batch, length, d_model]);
    mha.output.forward(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend, bits, rng_lock, values};
    use burn::module::AutodiffModule;
    use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};

    /// Sequences of 9, 4 and 1 real tokens out of 9 (padding masked).
    fn input<Bk: Backend>(d: usize) -> (Tensor<Bk, 3>, Tensor<Bk, 2, Bool>) {
        let device = Default::default();
        let x = Tensor::from_data(TensorData::new(values(3 * 9 * d, 21), [3, 9, d]), &device);
        let real: Vec<bool> = [9, 4, 1]
            .iter()
            .flat_map(|&n| (0..9).map(move |t| t >= n))
            .collect();
        let pad = Tensor::from_data(TensorData::new(real, [3, 9]), &device);
        (x, pad)
    }

    #[test]
    fn without_dropout_it_is_burns_encoder_bit_for_bit() {
        let _rng = rng_lock();
        let device = Default::default();
        for norm_first in [true, false] {
            for quiet in [false, true] {
                // Training mode with probability 0, so the autodiff graph is burn's.
                let encoder = TransformerEncoderConfig::new(24, 48, 4, 2)
                    .with_dropout(0.0)
                    .with_norm_first(norm_first)
                    .with_quiet_softmax(quiet)
                    .init::<TestBackend>(&device);
                let (x, pad) = input::<TestBackend>(24);
                let upstream = Tensor::<TestBackend, 3>::from_data(
                    TensorData::new(values(3 * 9 * 24, 22), [3, 9, 24]),
                    &device,
                );
                let run = |ours: bool| {
                    let x = x.clone().require_grad();
                    let out = if ours {
                        encode(&encoder, x.clone(), pad.clone())
                    } else {
                        encoder
                            .forward(TransformerEncoderInput::new(x.clone()).mask_pad(pad.clone()))
                    };
                    let forward = bits(out.clone());
                    let grads = (out * upstream.clone()).sum().backward();
                    let weight = encoder.layers[0].mha.query.weight.grad(&grads).map(bits);
                    (forward, x.grad(&grads).map(bits), weight)
                };
                assert_eq!(
                    run(true),
                    run(false),
                    "norm_first {norm_first} quiet {quiet}"
                );
            }
        }
    }

    #[test]
    fn in_inference_dropout_is_off_and_the_result_is_burns() {
        let _rng = rng_lock();
        let device = Default::default();
        let encoder = TransformerEncoderConfig::new(24, 48, 4, 2)
            .with_dropout(0.5)
            .with_norm_first(true)
            .init::<crate::train::CpuBackend>(&device);
        let (x, pad) = input::<crate::train::CpuBackend>(24);
        let ours = encode(&encoder, x.clone(), pad.clone());
        let burns = encoder.forward(TransformerEncoderInput::new(x).mask_pad(pad));
        assert_eq!(bits(ours), bits(burns));
    }

    #[test]
    fn in_training_dropout_changes_the_result_and_padding_still_cannot_leak() {
        let _rng = rng_lock();
        let device = Default::default();
        let encoder = TransformerEncoderConfig::new(24, 48, 4, 1)
            .with_dropout(0.5)
            .with_norm_first(true)
            .init::<TestBackend>(&device);
        let (x, pad) = input::<TestBackend>(24);
        let plain = encode(&encoder.valid(), x.clone().inner(), pad.clone().inner());
        let dropped = encode(&encoder, x.clone(), pad.clone());
        assert_ne!(bits(dropped.clone().inner()), bits(plain));
        // Changing a padded token changes no real token's output (the mask is applied after
        // dropout, as in burn): the third sequence's first token is its only real one.
        let mut changed = x.clone().into_data().to_vec::<f32>().unwrap();
        let last = 2 * 9 * 24;
        changed[last + 5 * 24..last + 6 * 24]
            .iter_mut()
            .for_each(|v| *v += 100.0);
        let x2 = Tensor::<TestBackend, 3>::from_data(TensorData::new(changed, [3, 9, 24]), &device);
        <TestBackend as Backend>::seed(&device, 5);
        let a = encode(&encoder, x, pad.clone()).slice([2..3, 0..1, 0..24]);
        <TestBackend as Backend>::seed(&device, 5);
        let b = encode(&encoder, x2, pad).slice([2..3, 0..1, 0..24]);
        assert_eq!(bits(a), bits(b));
    }
}
