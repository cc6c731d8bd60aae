//! Exact GELU, `x * Φ(x)`, whose CPU kernels run in vector lanes and give, bit for bit, what
//! burn's CPU backend gives.
//!
//! burn-flex evaluates GELU and its derivative one element at a time through libm's scalar
//! `erff` (about 17 ns an element on a 2-core EPYC): about 40% of an MLP training step. Here
//! `erf` is the same algorithm with the same constants (FreeBSD's `s_erff.c` and `e_expf.c`,
//! which the libm crate ports and burn-flex calls), written without branches so the compiler
//! keeps it in vector lanes, with the same float operations in the same order (Rust never fuses
//! a multiply and an add on its own). The result is identical for every float32: training
//! numbers do not change, only their speed. The derivative keeps burn-flex's formula, its
//! scalar `exp` included.
//!
//! [`gelu`] dispatches on the backend: burn-flex and `Autodiff<burn-flex>` (the trainer's) use
//! the kernels here, every other backend (CUDA) its own GELU.
//!
//! The constants below are Sun Microsystems' (fdlibm, via FreeBSD):
//! "Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved. Developed at SunPro, a
//! Sun Microsystems, Inc. business. Permission to use, copy, modify, and distribute this
//! software is freely granted, provided that this notice is preserved."

use std::any::Any;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::ops::{ActivationOps, FloatTensor};
use burn::tensor::{DType, TensorData, TensorPrimitive, activation};

/// `x * Φ(x)` with `Φ` the standard normal CDF, as `burn::tensor::activation::gelu`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x: Box<dyn Any> = Box::new(x);
    let x = match x.downcast::<Tensor<Flex, D>>() {
        Ok(x) => return same_type(map_primitive(*x, forward)),
        Err(x) => x,
    };
    let x = match x.downcast::<Tensor<Autodiff<Flex>, D>>() {
        Ok(x) => return same_type(map_primitive(*x, tracked_forward)),
        Err(x) => x,
    };
    activation::gelu(
        *x.downcast::<Tensor<B, D>>()
            .expect("the argument's own type"),
    )
}

/// `value` as `T`, which it is (checked by the caller's `downcast`).
fn same_type<T: 'static>(value: impl Any) -> T {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
        .expect("the caller's type")
}

fn map_primitive<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    f: impl FnOnce(B::FloatTensorPrimitive) -> B::FloatTensorPrimitive,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(f(x.into_primitive().tensor())))
}

/// GELU on `Autodiff<Flex>`: the forward kernel below, and in the backward pass the derivative
/// kernel below on the saved input.
fn tracked_forward(x: FloatTensor<Autodiff<Flex>>) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct ExactGelu;

    impl Backward<Flex, 1> for ExactGelu {
        type State = FlexTensor;

        fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let input = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| derivative(input, grad));
        }
    }

    match ExactGelu
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(x.primitive.clone(), forward(x.primitive)),
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
    let mut output = vec![0f32; input.len()];
    use rayon::prelude::*;
    output
        .par_chunks_mut(TASK)
        .zip(input.par_chunks(TASK))
        .for_each(|(y, x)| kernels::gelu(x, y));
    FlexTensor::from_data(TensorData::new(output, x.layout().shape().clone()))
}

/// `grad * d gelu(x) / dx`, as burn-flex's `gelu_backward`.
fn derivative(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
    }
    let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
    let input = x.as_slice::<f32>().expect("contiguous float32");
    let upstream = grad.as_slice::<f32>().expect("contiguous float32");
    assert_eq!(
        input.len(),
        upstream.len(),
        "GELU: gradient of another shape"
    );
    let mut output = vec![0f32; input.len()];
    use rayon::prelude::*;
    output
        .par_chunks_mut(TASK)
        .zip(input.par_chunks(TASK).zip(upstream.par_chunks(TASK)))
        .for_each(|(out, (x, g))| kernels::derivative(x, g, out));
    FlexTensor::from_data(TensorData::new(output, x.layout().shape().clone()))
}

/// The slice kernels, compiled twice on x86-64: for the baseline (SSE2, 4 lanes) and for AVX2
/// (8 lanes), chosen at run time. Both do the same operations, so give the same bits.
mod kernels {
    use super::lanes;

    pub fn gelu(x: &[f32], y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { gelu_avx2(x, y) };
        }
        lanes::gelu(x, y)
    }

    pub fn derivative(x: &[f32], grad: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { derivative_avx2(x, grad, out) };
        }
        lanes::derivative(x, grad, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn gelu_avx2(x: &[f32], y: &mut [f32]) {
        lanes::gelu(x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn derivative_avx2(x: &[f32], grad: &[f32], out: &mut [f32]) {
        lanes::derivative(x, grad, out)
    }
}

/// Branch-free element code, inlined into each kernel build.
mod lanes {
    use std::f32::consts::{PI, SQRT_2};

    /// Elements processed together: small enough for the scratch arrays to stay in L1.
    const BLOCK: usize = 512;

    /// `0.5 * x * (1 + erf(x / √2))`, burn-flex's expression.
    #[inline(always)]
    pub fn gelu(x: &[f32], y: &mut [f32]) {
        let mut u = [0f32; BLOCK];
        let mut e = [0f32; BLOCK];
        for (x, y) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)) {
            let (u, e) = (&mut u[..x.len()], &mut e[..x.len()]);
            for (u, &x) in u.iter_mut().zip(x) {
                *u = x / SQRT_2;
            }
            erf(u, e);
            for ((y, &x), &e) in y.iter_mut().zip(x).zip(&*e) {
                *y = 0.5 * x * (1.0 + e);
            }
        }
    }

    /// `grad * (cdf + x * pdf)`, burn-flex's expression, with its scalar `exp`.
    #[inline(always)]
    pub fn derivative(x: &[f32], grad: &[f32], out: &mut [f32]) {
        let inv_sqrt_2pi: f32 = 1.0 / (2.0 * PI).sqrt();
        let mut u = [0f32; BLOCK];
        let mut e = [0f32; BLOCK];
        let blocks = x.chunks(BLOCK).zip(grad.chunks(BLOCK));
        for ((x, grad), out) in blocks.zip(out.chunks_mut(BLOCK)) {
            let (u, e) = (&mut u[..x.len()], &mut e[..x.len()]);
            for (u, &x) in u.iter_mut().zip(x) {
                *u = x / SQRT_2;
            }
            erf(u, e);
            for (u, &x) in u.iter_mut().zip(x) {
                *u = (-0.5 * x * x).exp();
            }
            for (((out, &x), &g), (&e, &u)) in
                out.iter_mut().zip(x).zip(grad).zip(e.iter().zip(&*u))
            {
                let cdf = 0.5 * (1.0 + e);
                let pdf = inv_sqrt_2pi * u;
                *out = g * (cdf + x * pdf);
            }
        }
    }

    /// `erf` of at most `BLOCK` values: every lane takes the near formulas (|u| < 1.25), then
    /// the lanes beyond are gathered, computed together, and scattered back, so the costly tail
    /// (two `exp`) runs only where it is needed and still in lanes.
    #[inline(always)]
    fn erf(u: &[f32], out: &mut [f32]) {
        for (out, &u) in out.iter_mut().zip(u) {
            *out = erf_near(u);
        }
        let mut at = [0u16; BLOCK];
        let mut far = [0f32; BLOCK];
        let mut count = 0;
        for (i, &u) in u.iter().enumerate() {
            at[count] = i as u16;
            far[count] = u;
            count += (magnitude_bits(u) >= ONE_AND_A_QUARTER) as usize;
        }
        for u in &mut far[..count] {
            *u = erf_far(*u);
        }
        for (&i, &value) in at[..count].iter().zip(&far[..count]) {
            out[i as usize] = value;
        }
    }

    fn magnitude_bits(x: f32) -> u32 {
        x.to_bits() & 0x7fff_ffff
    }

    /// Bit patterns of |x| at which `erff` changes formula.
    const TWO_TO_MINUS_28: u32 = 0x3180_0000;
    const ERX_BOUND: u32 = 0x3f58_0000; // 0.84375
    const ONE_AND_A_QUARTER: u32 = 0x3fa0_0000;
    const ONE_OVER_0_35: u32 = 0x4036_db6d;
    const SIX: u32 = 0x40c0_0000;

    // The constants, as bit patterns: a decimal spelling could round to another float.
    const ERX: f32 = f32::from_bits(0x3f58_560b);
    const EFX8: f32 = f32::from_bits(0x3f83_75d4);
    /// erf on [0, 0.84375]: numerator.
    const PP: [f32; 5] = bits([
        0x3e03_75d4,
        0xbea6_6beb,
        0xbce9_528f,
        0xbbbd_1489,
        0xb7c7_56b1,
    ]);
    /// and denominator.
    const QQ: [f32; 5] = bits([
        0x3ecb_bbce,
        0x3d85_2a63,
        0x3ba6_8116,
        0x390a_ee49,
        0xb684_e21a,
    ]);
    /// erf on [0.84375, 1.25]: numerator.
    const PA: [f32; 7] = bits([
        0xbb1a_cdc6,
        0x3ed4_6805,
        0xbebe_9208,
        0x3ea2_fe54,
        0xbde3_1cc2,
        0x3d11_51b3,
        0xbb0d_f9c0,
    ]);
    /// and denominator.
    const QA: [f32; 6] = bits([
        0x3dd9_f331,
        0x3f0a_5785,
        0x3d93_1ae7,
        0x3e01_3307,
        0x3c5f_6e13,
        0x3c44_5aa3,
    ]);
    /// erfc on [1.25, 1/0.35]: numerator.
    const RA: [f32; 8] = bits([
        0xbc21_a093,
        0xbf31_a0b7,
        0xc128_f022,
        0xc279_8057,
        0xc322_658c,
        0xc338_9ae7,
        0xc2a2_932b,
        0xc11d_077e,
    ]);
    /// and denominator.
    const SA: [f32; 8] = bits([
        0x419d_35ce,
        0x4309_a863,
        0x43d9_486f,
        0x4421_58c9,
        0x43d6_810b,
        0x42d9_451f,
        0x40d2_3f7c,
        0xbd77_7f97,
    ]);
    /// erfc on [1/0.35, 6]: numerator.
    const RB: [f32; 7] = bits([
        0xbc21_a092,
        0xbf4c_9dd4,
        0xc18e_104b,
        0xc320_a2ea,
        0xc41f_6441,
        0xc480_230b,
        0xc3f1_c275,
    ]);
    /// and denominator.
    const SB: [f32; 7] = bits([
        0x41f2_b459,
        0x43a2_e571,
        0x44c0_1759,
        0x4547_fdbb,
        0x451f_90ce,
        0x43ed_43a7,
        0xc1b3_8712,
    ]);

    const fn bits<const N: usize>(patterns: [u32; N]) -> [f32; N] {
        let mut floats = [0f32; N];
        let mut i = 0;
        while i < N {
            floats[i] = f32::from_bits(patterns[i]);
            i += 1;
        }
        floats
    }

    /// `c[0] + z * (c[1] + ... + z * c[n])`, nested as fdlibm writes its polynomials.
    #[inline(always)]
    fn horner(c: &[f32], z: f32) -> f32 {
        let (last, rest) = c.split_last().expect("coefficients");
        rest.iter().rev().fold(*last, |acc, &c| c + z * acc)
    }

    /// `1 + z * (c[0] + z * (...))`: fdlibm's denominators.
    #[inline(always)]
    fn one_plus(c: &[f32], z: f32) -> f32 {
        1.0 + z * horner(c, z)
    }

    /// `erff(x)` for |x| < 1.25; any value elsewhere.
    #[inline(always)]
    fn erf_near(x: f32) -> f32 {
        let bits = magnitude_bits(x);
        let z = x * x;
        let small = x + x * (horner(&PP, z) / one_plus(&QQ, z));
        let tiny = 0.125 * (8.0 * x + EFX8 * x);
        let s = f32::from_bits(bits) - 1.0;
        let mid = 1.0 - (1.0 - ERX - horner(&PA, s) / one_plus(&QA, s));
        let mid = with_sign_of(mid, x);
        let y = if bits < ERX_BOUND { small } else { mid };
        if bits < TWO_TO_MINUS_28 { tiny } else { y }
    }

    /// `erff(x)` for |x| >= 1.25, infinities and NaN included.
    #[inline(always)]
    fn erf_far(x: f32) -> f32 {
        let bits = magnitude_bits(x);
        let a = f32::from_bits(bits);
        let s = 1.0 / (a * a);
        let below = bits < ONE_OVER_0_35;
        let r = if below {
            horner(&RA, s)
        } else {
            horner(&RB, s)
        };
        let big_s = if below {
            one_plus(&SA, s)
        } else {
            one_plus(&SB, s)
        };
        let z = f32::from_bits(bits & 0xffff_e000);
        let erfc = expf(-z * z - 0.5625) * expf((z - a) * (z + a) + r / big_s) / a;
        let tail = with_sign_of(1.0 - erfc, x);
        // Beyond 6, erff is ±(1 - 2^-120), which rounds to ±1; at infinity and NaN it
        // evaluates `1 - 2 * sign + 1 / x`.
        let sign = (x.to_bits() >> 31) as f32;
        let beyond = if bits >= 0x7f80_0000 {
            1.0 - 2.0 * sign + 1.0 / x
        } else {
            with_sign_of(1.0 - f32::from_bits(0x0380_0000), x)
        };
        if bits < SIX { tail } else { beyond }
    }

    fn with_sign_of(magnitude: f32, x: f32) -> f32 {
        f32::from_bits(magnitude.to_bits() | (x.to_bits() & 0x8000_0000))
    }

    const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
    const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
    const P1: f32 = f32::from_bits(0x3e2a_aa8f);
    const P2: f32 = f32::from_bits(0xbb35_5215);

    /// `expf(x)` for -87 < x < 88 (erf's tail asks for -36.6 to 0.1), fdlibm's reduction
    /// `x = k ln2 + r` with its three cases of `k` taken as selects.
    #[inline(always)]
    fn expf(x: f32) -> f32 {
        let bits = magnitude_bits(x);
        let negative = x.to_bits() >> 31 != 0;
        let far = (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32;
        let near = if negative { -1 } else { 1 };
        let k = if bits > 0x3f85_1592 {
            far
        } else if bits > 0x3eb1_7218 {
            near
        } else {
            0
        };
        let kf = k as f32;
        let hi = x - kf * LN2_HI;
        let lo = kf * LN2_LO;
        let r = hi - lo;
        let rr = r * r;
        let c = r - rr * (P1 + rr * P2);
        let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
        // scalbnf(y, k), exact here: the result is a normal float.
        let scaled = y * f32::from_bits(((0x7f + k) as u32) << 23);
        if bits > 0x3900_0000 { scaled } else { 1.0 + x }
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
