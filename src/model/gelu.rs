//! Exact GELU, `x * Φ(x)`, whose CPU kernels run in vector lanes and give, bit for bit, what
//! burn's CPU backend gives.
//!
//! burn-flex evaluates GELU and its derivative one element at a time through libm's scalar
//! `erff` (about 17 ns an element on a 2-core EPYC): about 40% of an MLP training step. Here
//! the same expressions use [`lanes::erf`], libm's `erff` bit for bit in vector lanes, on every
//! core; the derivative's `exp` is the system's (`f32::exp`, as burn-flex's), in lanes where
//! [`system_exp`] knows it. In training the forward pass keeps its
//! `erf` values for the backward pass (which burn-flex computes twice): one more activation
//! of the input's size, one `erf` fewer per element. Training numbers do not change, only
//! their speed.
//!
//! [`gelu`] dispatches on the backend: burn-flex and `Autodiff<burn-flex>` (the trainer's) use
//! the kernels here, every other backend (CUDA) its own GELU.

use std::f32::consts::{PI, SQRT_2};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::ops::{ActivationOps, FloatTensor};
use burn::tensor::{DType, TensorData, activation};

use super::on_flex::{OnFlex, classify, primitive, to_caller};
use crate::lanes::{self, BLOCK};
use crate::system_exp;

/// `x * Φ(x)` with `Φ` the standard normal CDF, as `burn::tensor::activation::gelu`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match classify(x) {
        OnFlex::Plain(x) => to_caller::<B, Flex, D>(forward(primitive(x))),
        OnFlex::Tracked(x) => to_caller::<B, Autodiff<Flex>, D>(tracked_forward(primitive(x))),
        OnFlex::Other(x) => activation::gelu(x),
    }
}

/// GELU on `Autodiff<Flex>`: the forward kernel below, and in the backward pass the derivative
/// kernel below on the saved input.
fn tracked_forward(x: FloatTensor<Autodiff<Flex>>) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct ExactGelu;

    impl Backward<Flex, 1> for ExactGelu {
        /// The input and its `erf(x / √2)`, both float32 and contiguous.
        type State = (FlexTensor, Vec<f32>);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (input, erfs) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                derivative_from_erf(input, &erfs, grad)
            });
        }
    }

    match ExactGelu
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) if x.primitive.dtype() == DType::F32 => {
            let input = x.primitive.to_contiguous();
            let (output, erfs) = forward_keeping_erf(&input);
            prep.finish((input, erfs), output)
        }
        // Not float32 (never in xp): burn-flex's own kernels, forward and backward.
        OpsKind::Tracked(prep) => {
            let input = x.primitive.clone();
            let erfs = Vec::new();
            prep.finish((input, erfs), forward(x.primitive))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive)),
    }
}

/// Elements per parallel task: enough to amortise the task, few enough to use every core on a
/// hidden layer of a few thousand rows.
const TASK: usize = 1 << 14;

/// GELU of a burn-flex tensor. Not float32 (never in xp): burn-flex's own kernel.
fn forward(x: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu(x);
    }
    let x = x.to_contiguous();
    let input = x.as_slice::<f32>().expect("contiguous float32");
    let [output] = lanes::par_new(
        TASK,
        [input],
        #[inline(always)]
        |[y], [x]| gelu_slice(x, y),
    );
    FlexTensor::from_data(TensorData::new(output, x.layout().shape().clone()))
}

/// GELU of a contiguous float32 tensor, and the `erf(x / √2)` it went through (for the
/// backward pass).
fn forward_keeping_erf(x: &FlexTensor) -> (FlexTensor, Vec<f32>) {
    let input = x.as_slice::<f32>().expect("contiguous float32");
    let [output, erfs] = lanes::par_new(
        TASK,
        [input],
        #[inline(always)]
        |[y, e], [x]| gelu_erf_slice(x, y, e),
    );
    let shape = x.layout().shape().clone();
    (FlexTensor::from_data(TensorData::new(output, shape)), erfs)
}

/// `grad * d gelu(x) / dx`, as burn-flex's `gelu_backward`.
#[cfg(test)]
fn derivative(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
    }
    let x = x.to_contiguous();
    let (_, erfs) = forward_keeping_erf(&x);
    derivative_from_erf(x, &erfs, grad)
}

/// [`derivative`] with `erf(x / √2)` already computed (`erfs`, empty when `x` is not float32).
fn derivative_from_erf(x: FlexTensor, erfs: &[f32], grad: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
    }
    let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
    let input = x.as_slice::<f32>().expect("contiguous float32");
    let upstream = grad.as_slice::<f32>().expect("contiguous float32");
    assert!(
        input.len() == upstream.len() && input.len() == erfs.len(),
        "GELU: gradient of another shape"
    );
    let [output] = lanes::par_new(
        TASK,
        [input, erfs, upstream],
        #[inline(always)]
        |[out], [x, e, g]| derivative_slice(x, e, g, out),
    );
    FlexTensor::from_data(TensorData::new(output, x.layout().shape().clone()))
}

/// `0.5 * x * (1 + erf(x / √2))`, burn-flex's expression.
#[inline(always)]
fn gelu_slice(x: &[f32], y: &mut [f32]) {
    // `erf` values are not wanted here: a block-sized scratch takes them.
    let mut e = [0f32; BLOCK];
    for (x, y) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)) {
        gelu_erf_slice(x, y, &mut e[..x.len()]);
    }
}

/// [`gelu_slice`], also writing `erf(x / √2)` to `e` (as long as `x`).
#[inline(always)]
fn gelu_erf_slice(x: &[f32], y: &mut [f32], e: &mut [f32]) {
    let mut u = [0f32; BLOCK];
    for ((x, y), e) in x
        .chunks(BLOCK)
        .zip(y.chunks_mut(BLOCK))
        .zip(e.chunks_mut(BLOCK))
    {
        let u = &mut u[..x.len()];
        for (u, &x) in u.iter_mut().zip(x) {
            *u = x / SQRT_2;
        }
        lanes::erf(u, e);
        for ((y, &x), &e) in y.iter_mut().zip(x).zip(&*e) {
            *y = 0.5 * x * (1.0 + e);
        }
    }
}

/// `grad * (cdf + x * pdf)`, burn-flex's expression, with its `exp` (the system's, in lanes
/// where [`system_exp`] can); `e` holds `erf(x / √2)`.
#[inline(always)]
fn derivative_slice(x: &[f32], e: &[f32], grad: &[f32], out: &mut [f32]) {
    let inv_sqrt_2pi: f32 = 1.0 / (2.0 * PI).sqrt();
    let (mut arg, mut u) = ([0f32; BLOCK], [0f32; BLOCK]);
    let blocks = x.chunks(BLOCK).zip(e.chunks(BLOCK)).zip(grad.chunks(BLOCK));
    for (((x, e), grad), out) in blocks.zip(out.chunks_mut(BLOCK)) {
        let (arg, u) = (&mut arg[..x.len()], &mut u[..x.len()]);
        for (a, &x) in arg.iter_mut().zip(x) {
            *a = -0.5 * x * x;
        }
        system_exp::exp(arg, u);
        for (((out, &x), &g), (&e, &u)) in out.iter_mut().zip(x).zip(grad).zip(e.iter().zip(&*u)) {
            let cdf = 0.5 * (1.0 + e);
            let pdf = inv_sqrt_2pi * u;
            *out = g * (cdf + x * pdf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 4,096th float32 bit pattern, both signs, infinities and NaN included.
    fn sample() -> Vec<f32> {
        (0..=u32::MAX / 4096)
            .map(|i| f32::from_bits(i.wrapping_mul(4096).wrapping_add(i & 4095)))
            .collect()
    }

    fn same_bits(ours: &[f32], theirs: &[f32], inputs: &[f32], what: &str) {
        for ((a, b), x) in ours.iter().zip(theirs).zip(inputs) {
            let equal = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(equal, "{what}({x:e}) = {a:e}, burn-flex gives {b:e}");
        }
    }

    #[test]
    fn forward_is_burn_flex_bit_for_bit() {
        let device = Default::default();
        let xs = sample();
        let x = Tensor::<Flex, 1>::from_floats(xs.as_slice(), &device);
        let ours = gelu(x.clone()).into_data().to_vec::<f32>().unwrap();
        let theirs = activation::gelu(x).into_data().to_vec::<f32>().unwrap();
        same_bits(&ours, &theirs, &xs, "gelu");
    }

    #[test]
    fn derivative_is_burn_flex_bit_for_bit() {
        let xs = sample();
        let grads: Vec<f32> = (0..xs.len()).map(|i| (i % 7) as f32 * 0.37 - 1.1).collect();
        let shape = [xs.len()];
        let flex = |v: &[f32]| FlexTensor::from_data(TensorData::new(v.to_vec(), shape));
        let ours = derivative(flex(&xs), flex(&grads)).into_data();
        let theirs =
            <Flex as ActivationOps<Flex>>::gelu_backward(flex(&xs), flex(&grads)).into_data();
        same_bits(
            &ours.to_vec().unwrap(),
            &theirs.to_vec().unwrap(),
            &xs,
            "gelu'",
        );
    }

    /// Every float32, 2^32 values, forward and derivative: a few minutes in release,
    /// `cargo test --release --lib every_float32 -- --ignored`.
    #[test]
    #[ignore = "4.3 billion values: run by hand in release"]
    fn every_float32_is_burn_flex_bit_for_bit() {
        const CHUNK: u64 = 1 << 24;
        for start in (0..1u64 << 32).step_by(CHUNK as usize) {
            let xs: Vec<f32> = (start..start + CHUNK)
                .map(|b| f32::from_bits(b as u32))
                .collect();
            let flex = || FlexTensor::from_data(TensorData::new(xs.clone(), [xs.len()]));
            let check = |ours: FlexTensor, theirs: FlexTensor, what: &str| {
                let (ours, theirs) = (ours.into_data(), theirs.into_data());
                same_bits(
                    &ours.to_vec().unwrap(),
                    &theirs.to_vec().unwrap(),
                    &xs,
                    what,
                );
            };
            check(
                forward(flex()),
                <Flex as ActivationOps<Flex>>::gelu(flex()),
                "gelu",
            );
            check(
                derivative(flex(), flex()),
                <Flex as ActivationOps<Flex>>::gelu_backward(flex(), flex()),
                "gelu'",
            );
        }
    }

    /// Through autodiff: the same values and gradients as burn's GELU on `Autodiff<Flex>`,
    /// on a strided (transposed) input.
    #[test]
    fn autodiff_matches_burn() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        let values: Vec<f32> = (0..6000).map(|i| (i as f32 * 0.731).sin() * 5.0).collect();
        let run = |ours: bool| {
            let x = Tensor::<B, 1>::from_floats(values.as_slice(), &device)
                .reshape([60, 100])
                .require_grad();
            let t = x.clone().transpose();
            let y = if ours { gelu(t) } else { activation::gelu(t) };
            let weights =
                Tensor::<B, 1>::from_floats(values.as_slice(), &device).reshape([100, 60]);
            let grads = (y.clone() * weights).sum().backward();
            let dx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
            (y.inner().into_data().to_vec::<f32>().unwrap(), dx)
        };
        let (y_ours, dx_ours) = run(true);
        let (y_burn, dx_burn) = run(false);
        same_bits(&y_ours, &y_burn, &values, "gelu");
        same_bits(&dx_ours, &dx_burn, &values, "gelu'");
        // Untracked (no `require_grad`) tensors go through too.
        let x = Tensor::<B, 1>::from_floats([0.5, -2.0], &device);
        assert_eq!(gelu(x.clone()).into_data(), activation::gelu(x).into_data());
    }
}
