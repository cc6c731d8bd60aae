//! Masked average pooling of frame features into tokens, the step between a frame backbone and
//! the sequence encoder.
//!
//! `x`: `[B, T, D]`, `mask`: `[B, T]` (1 = real), `T <= tokens * stride`. Result: `([B, tokens,
//! D], [B, tokens])`: token `k` is the mean of the real frames among frames `k * stride .. (k +
//! 1) * stride`, and counts as real (1.0) if any of them is real, else 0.0 (and holds zeros).
//! Padded frames never enter a token's value. The windows and the output shape depend on
//! `stride` and `tokens` only, never on `T`.
//!
//! Written with burn's operations (a masked product, a sum over a middle axis, a division), the
//! backward pass of the sum broadcasts the gradient through burn-flex's strided iterator one
//! element at a time, on one core: 5% of an MLP training step. On burn-flex this module pools
//! in one pass and spreads the gradient back in one pass, on every core, with the float
//! operations burn's do in the same order, so the numbers are burn's bit for bit. Other
//! backends (CUDA) and other float types keep burn's operations.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, PadMode};
use burn::tensor::{DType, TensorData};

use super::on_flex::{OnFlex, classify, primitive, to_caller};
use crate::lanes;

/// Output rows (of `D` values) per parallel task: tokens are small, so several go together.
const ROWS_PER_TASK: usize = 16;

/// See the module docs. `mask` is a constant: no gradient flows to it.
pub fn temporal_pool<B: Backend>(
    x: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    stride: usize,
    tokens: usize,
) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let [b, t, d] = x.dims();
    assert!(
        t <= tokens * stride,
        "a sequence of {t} frames is longer than the model's max_frames ({})",
        tokens * stride
    );
    assert_eq!(mask.dims(), [b, t], "mask must be [batch, frames]");
    if x.dtype() != DType::F32 {
        return composite(x, mask, stride, tokens);
    }
    let device = x.device();
    let g = Geometry {
        batch: b,
        frames: t,
        dim: d,
        stride,
        tokens,
    };
    let pooled = match classify(x) {
        OnFlex::Plain(x) => {
            let weights = floats(mask);
            let counts = g.counts(&weights);
            let pooled = forward(primitive(x), &weights, &counts, g);
            (to_caller::<B, Flex, 3>(pooled), counts)
        }
        OnFlex::Tracked(x) => {
            let weights = floats(mask);
            let counts = g.counts(&weights);
            let pooled = tracked(primitive(x), weights, counts.clone(), g);
            (to_caller::<B, Autodiff<Flex>, 3>(pooled), counts)
        }
        OnFlex::Other(x) => return composite(x, mask, stride, tokens),
    };
    let (pooled, counts) = pooled;
    let token_mask: Vec<f32> = counts
        .iter()
        .map(|&c| if c > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let token_mask = Tensor::from_data(TensorData::new(token_mask, [b, tokens]), &device);
    (pooled, token_mask)
}

/// The pooling with burn's operations (every backend; the reference for the kernels below).
pub(crate) fn composite<B: Backend>(
    x: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    stride: usize,
    tokens: usize,
) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let [b, t, d] = x.dims();
    let extra = tokens * stride - t;
    let (x, mask) = if extra > 0 {
        (
            x.pad([(0, 0), (0, extra), (0, 0)], PadMode::Constant(0.0)),
            mask.pad([(0, 0), (0, extra)], PadMode::Constant(0.0)),
        )
    } else {
        (x, mask)
    };
    let weights = mask.reshape([b, tokens, stride, 1]);
    let sums = (x.reshape([b, tokens, stride, d]) * weights.clone()).sum_dim(2);
    let counts = weights.sum_dim(2);
    let pooled = (sums / counts.clone().clamp_min(1.0)).reshape([b, tokens, d]);
    let token_mask = counts.reshape([b, tokens]).greater_elem(0.0).float();
    (pooled, token_mask)
}

/// `mask`'s values (one per frame), whatever its backend.
fn floats<B: Backend>(mask: Tensor<B, 2>) -> Vec<f32> {
    mask.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float32 after convert")
}

/// Sizes of the pooling.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    frames: usize,
    dim: usize,
    stride: usize,
    tokens: usize,
}

impl Geometry {
    /// The frames of token `k`, each with its index if it is inside the sequence (the slots
    /// past the end are burn's zero padding).
    fn slots(&self, k: usize) -> impl Iterator<Item = Option<usize>> + use<> {
        let frames = self.frames;
        (k * self.stride..(k + 1) * self.stride).map(move |f| (f < frames).then_some(f))
    }

    /// Each token's sum of weights `[B x tokens]`, added as burn's sum over the middle axis
    /// does: from `+0.0`, frame by frame, padding slots adding `+0.0`.
    fn counts(&self, weights: &[f32]) -> Vec<f32> {
        let mut counts = vec![0f32; self.batch * self.tokens];
        for (row, count) in counts.iter_mut().enumerate() {
            let (b, k) = (row / self.tokens, row % self.tokens);
            for slot in self.slots(k) {
                *count += slot.map_or(0.0, |f| weights[b * self.frames + f]);
            }
        }
        counts
    }
}

/// The pooling on burn-flex under autodiff: the forward kernel, and in the backward pass the
/// spreading kernel.
fn tracked(
    x: FloatTensor<Autodiff<Flex>>,
    weights: Vec<f32>,
    counts: Vec<f32>,
    g: Geometry,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Pool;

    impl Backward<Flex, 1> for Pool {
        type State = (Geometry, Vec<f32>, Vec<f32>);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (g, weights, counts) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                backward(grad, &weights, &counts, g)
            });
        }
    }

    match Pool
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = forward(x.primitive, &weights, &counts, g);
            prep.finish((g, weights, counts), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, &weights, &counts, g)),
    }
}

/// The tokens of a float32 burn-flex tensor. Burn's order: each product `x * weight`, summed
/// from `+0.0` frame by frame (padding slots add `0.0 * 0.0`), divided by `max(count, 1)`.
fn forward(x: FlexTensor, weights: &[f32], counts: &[f32], g: Geometry) -> FlexTensor {
    let x = x.to_contiguous();
    let input = x.as_slice::<f32>().expect("contiguous float32");
    let d = g.dim;
    let shape = [g.batch, g.tokens, d];
    let out = lanes::par_rows(g.batch * g.tokens, d, ROWS_PER_TASK, |row, out| {
        let (b, k) = (row / g.tokens, row % g.tokens);
        for slot in g.slots(k) {
            match slot {
                Some(f) => {
                    let w = weights[b * g.frames + f];
                    let frame = &input[(b * g.frames + f) * d..][..d];
                    out.iter_mut().zip(frame).for_each(|(o, x)| *o += x * w);
                }
                None => out.iter_mut().for_each(|o| *o += 0.0 * 0.0),
            }
        }
        let count = counts[row].max(1.0);
        out.iter_mut().for_each(|o| *o /= count);
    });
    FlexTensor::from_data(TensorData::new(out, shape))
}

/// The gradient of `x` from the tokens': burn's backward steps, element by element. The
/// division's is `grad * (1 / max(count, 1))`, the sum's `1.0 * (+0.0 + that)` (burn sums the
/// gradient over the summed axis of length one, then multiplies by ones), the product's that
/// times the frame's weight.
fn backward(grad: FlexTensor, weights: &[f32], counts: &[f32], g: Geometry) -> FlexTensor {
    let grad = grad.to_contiguous();
    let upstream = grad.as_slice::<f32>().expect("contiguous float32");
    let d = g.dim;
    let recips: Vec<f32> = counts.iter().map(|&c| 1.0 / c.max(1.0)).collect();
    let shape = [g.batch, g.frames, d];
    let out = lanes::par_rows(g.batch * g.frames, d, ROWS_PER_TASK, |row, out| {
        let (b, f) = (row / g.frames, row % g.frames);
        let token = b * g.tokens + f / g.stride;
        let (w, r) = (weights[row], recips[token]);
        let from = &upstream[token * d..][..d];
        for (o, &u) in out.iter_mut().zip(from) {
            *o = (1.0 * (0.0 + u * r)) * w;
        }
    });
    FlexTensor::from_data(TensorData::new(out, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::bits;
    use burn::tensor::Distribution;

    type Tracked = Autodiff<Flex>;

    /// `[B, T, D]` features of many magnitudes (so any change of rounding shows), with exact
    /// zeros of either sign; and a mask where video `b` has its last `2b` frames padded (at
    /// least one real frame), and one padded frame inside the first video.
    fn inputs<Bk: Backend>(
        [b, t, d]: [usize; 3],
        device: &Bk::Device,
    ) -> (Tensor<Bk, 3>, Tensor<Bk, 2>) {
        // The backend's RNG is shared with the seeded tests: draw while holding its lock.
        let _rng = crate::model::test_util::rng_lock();
        let dims = [b, t, d];
        let x = Tensor::<Bk, 3>::random(dims, Distribution::Normal(0.0, 1.0), device)
            * Tensor::<Bk, 3>::random(dims, Distribution::Uniform(-6.0, 6.0), device).exp();
        let x = x.clone().mask_fill(x.clone().abs().lower_elem(0.05), -0.0);
        let mask: Vec<f32> = (0..b * t)
            .map(|i| {
                let (v, f) = (i / t, i % t);
                let real = t.saturating_sub(2 * v).max(1);
                let hole = v == 0 && f == 1 && t > 2;
                if f < real && !hole { 1.0 } else { 0.0 }
            })
            .collect();
        let mask = Tensor::<Bk, 2>::from_data(TensorData::new(mask, [b, t]), device);
        (x, mask)
    }

    /// `[B, T, D]`, stride, tokens: exact fit, padding slots past `T` (a last token partly and
    /// wholly past the end), whole padded tokens, stride 1, one token, odd `D`.
    const CASES: [([usize; 3], usize, usize); 6] = [
        ([2, 12, 5], 3, 4),
        ([3, 10, 4], 4, 4),
        ([2, 7, 3], 2, 6),
        ([1, 5, 8], 1, 5),
        ([3, 6, 9], 8, 1),
        ([4, 33, 7], 5, 7),
    ];

    type Pooled = (Tensor<Tracked, 3>, Tensor<Tracked, 2>);

    #[test]
    fn tokens_are_burns_bit_for_bit() {
        let device = Default::default();
        for (dims, stride, tokens) in CASES {
            let (x, mask) = inputs::<Flex>(dims, &device);
            let (ours, our_mask) = temporal_pool(x.clone(), mask.clone(), stride, tokens);
            let (burns, burn_mask) = composite(x, mask, stride, tokens);
            assert_eq!(ours.dims(), burns.dims());
            assert_eq!(bits(ours), bits(burns), "{dims:?} stride {stride}");
            assert_eq!(bits(our_mask), bits(burn_mask), "{dims:?} stride {stride}");
        }
    }

    #[test]
    fn gradient_is_burns_bit_for_bit() {
        let device = Default::default();
        for (dims, stride, tokens) in CASES {
            let (x, mask) = inputs::<Tracked>(dims, &device);
            let [b, _, d] = dims;
            // An upstream gradient of many magnitudes, with signed zeros, too.
            let (upstream, _) = inputs::<Tracked>([b, tokens, d], &device);
            let gradient = |pool: &dyn Fn(Tensor<Tracked, 3>) -> Pooled| {
                let x = x.clone().require_grad();
                let (pooled, token_mask) = pool(x.clone());
                let grads = (pooled * upstream.clone()).sum().backward();
                (
                    bits(x.grad(&grads).expect("x is tracked")),
                    bits(token_mask),
                )
            };
            let ours = gradient(&|x| temporal_pool(x, mask.clone(), stride, tokens));
            let burns = gradient(&|x| composite(x, mask.clone(), stride, tokens));
            assert_eq!(ours, burns, "{dims:?} stride {stride}");
        }
    }

    #[test]
    fn tokens_hold_the_mean_of_real_frames() {
        // Stride 2, 3 tokens, 5 frames: token 0 = frames 0 and 1 (1 padded), token 1 = frames
        // 2 and 3, token 2 = frame 4 and a slot past the end.
        let device = Default::default();
        let x = Tensor::<Tracked, 3>::from_data(
            TensorData::new(vec![1.0f32, 100.0, 3.0, 5.0, 8.0], [1, 5, 1]),
            &device,
        )
        .require_grad();
        let mask = Tensor::<Tracked, 2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0, 1.0], [1, 5]),
            &device,
        );
        let (pooled, token_mask) = temporal_pool(x.clone(), mask, 2, 3);
        let values = pooled.clone().into_data().to_vec::<f32>().unwrap();
        assert_eq!(values, vec![1.0, 4.0, 8.0]);
        let token_mask = token_mask.into_data().to_vec::<f32>().unwrap();
        assert_eq!(token_mask, vec![1.0, 1.0, 1.0]);
        // d token / d frame = 1 / (real frames in the token), 0 for the padded frame.
        let grads = pooled.sum().backward();
        let dx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(dx, vec![1.0, 0.0, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn empty_batches_pool_to_nothing() {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::zeros([0, 4, 3], &device);
        let mask = Tensor::<Flex, 2>::zeros([0, 4], &device);
        let (pooled, token_mask) = temporal_pool(x, mask, 2, 2);
        assert_eq!(pooled.dims(), [0, 2, 3]);
        assert_eq!(token_mask.dims(), [0, 2]);
    }
}
