//! A bias per row of a channels-first matrix, `y [C, M] + bias [C]`, as the GCN adds it after
//! each channel mix (`M` = every node of every frame: millions of columns).
//!
//! With burn's operations (`y + bias.unsqueeze_dim(1)`), burn-flex adds the broadcast bias on
//! one core, and the bias's gradient is burn-flex's sum of each row of the upstream gradient,
//! one row after the other. On burn-flex this module adds the bias in place on every core (the
//! same one float addition per element), and sums the gradient's rows on every core, each
//! row with burn-flex's own row sum, so every number is burn-flex's bit for bit. Other backends
//! (CUDA) and other float types keep burn's operations.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::on_flex::{OnFlex, classify, is_fresh, primitive, to_caller};

/// Columns per parallel task when adding the bias.
const VALUES_PER_TASK: usize = 1 << 14;

/// `y + bias` with `bias[c]` added to every column of row `c`.
pub fn add_row_bias<B: Backend>(y: Tensor<B, 2>, bias: Tensor<B, 1>) -> Tensor<B, 2> {
    assert_eq!(y.dims()[0], bias.dims()[0], "one bias per row");
    if y.dtype() != DType::F32 || bias.dtype() != DType::F32 {
        return composite(y, bias);
    }
    match (classify(y), classify(bias)) {
        (OnFlex::Plain(y), OnFlex::Plain(bias)) => {
            to_caller::<B, Flex, 2>(forward(primitive(y), &primitive(bias)))
        }
        (OnFlex::Tracked(y), OnFlex::Tracked(bias)) => {
            to_caller::<B, Autodiff<Flex>, 2>(tracked(primitive(y), primitive(bias)))
        }
        (OnFlex::Other(y), OnFlex::Other(bias)) => composite(y, bias),
        _ => unreachable!("both tensors are of one backend"),
    }
}

/// The addition with burn's operations (every backend; the reference for the kernels below).
pub(crate) fn composite<B: Backend>(y: Tensor<B, 2>, bias: Tensor<B, 1>) -> Tensor<B, 2> {
    y + bias.unsqueeze_dim(1)
}

/// `bias` as the `[C, 1]` column burn broadcasts.
fn column(bias: &FlexTensor) -> FlexTensor {
    let rows = bias.layout().shape()[0];
    Flex::float_reshape(bias.clone(), Shape::new([rows, 1]))
}

/// The addition on float32 burn-flex tensors: in place when `y` is a fresh contiguous result
/// (a product just made, as in the GCN), else burn-flex's own broadcast addition.
fn forward(mut y: FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let [rows, columns] = y.layout().shape().dims::<2>();
    let fresh = is_fresh(&y);
    let bias_values = bias.to_contiguous();
    let (Some(bias_values), true) = (bias_values.as_slice::<f32>(), fresh) else {
        return Flex::float_add(y, column(bias));
    };
    if columns == 0 {
        return y;
    }
    let piece = VALUES_PER_TASK.min(columns);
    y.storage_mut::<f32>()[..rows * columns]
        .par_chunks_mut(columns)
        .zip(bias_values)
        .for_each(|(row, &b)| {
            row.par_chunks_mut(piece)
                .for_each(|part| part.iter_mut().for_each(|v| *v += b))
        });
    y
}

/// The addition under autodiff: `y`'s gradient is the upstream gradient, the bias's the sums
/// of its rows.
fn tracked(
    y: FloatTensor<Autodiff<Flex>>,
    bias: FloatTensor<Autodiff<Flex>>,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct RowBias;

    impl Backward<Flex, 2> for RowBias {
        type State = ();

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            binary::<Flex, _, _>(ops.parents, ops.node, grads, |grad| grad, row_sums);
        }
    }

    match RowBias
        .prepare::<NoCheckpointing>([y.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((), forward(y.primitive, &bias.primitive)),
        OpsKind::UnTracked(prep) => prep.finish(forward(y.primitive, &bias.primitive)),
    }
}

/// The sum of each row of `grad` `[C, M]` as burn's broadcast backward takes it
/// (`sum_dim(grad, 1)`, shaped as the bias): each row summed by burn-flex's own kernel on a
/// one-row view of the same memory, rows spread over the cores. Gradients that are not
/// contiguous keep burn-flex's sum over the whole tensor.
fn row_sums(grad: FlexTensor) -> FlexTensor {
    let [rows, columns] = grad.layout().shape().dims::<2>();
    // One column: `[C, 1]` is the bias's own shape, nothing was broadcast and burn sums nothing
    // (a `-0.0` stays `-0.0`).
    if columns == 1 {
        return Flex::float_reshape(grad, Shape::new([rows]));
    }
    if grad.dtype() != DType::F32 || !grad.is_contiguous() {
        return Flex::float_reshape(Flex::float_sum_dim(grad, 1), Shape::new([rows]));
    }
    let sums: Vec<f32> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let sum = Flex::float_sum_dim(grad.narrow(0, r, 1), 1);
            sum.as_slice::<f32>().expect("float32")[0]
        })
        .collect();
    FlexTensor::from_data(TensorData::new(sums, [rows]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::bits;
    use burn::tensor::Distribution;

    type Tracked = Autodiff<Flex>;

    type Adds = dyn Fn(Tensor<Tracked, 2>, Tensor<Tracked, 1>) -> Tensor<Tracked, 2>;

    /// Values of many magnitudes (so the order of additions shows in the rounding), with
    /// exact zeros of either sign.
    fn spread<Bk: Backend, const D: usize>(dims: [usize; D], device: &Bk::Device) -> Tensor<Bk, D> {
        // The backend's RNG is shared with the seeded tests: draw while holding its lock.
        let _rng = crate::model::test_util::rng_lock();
        let x = Tensor::<Bk, D>::random(dims, Distribution::Normal(0.0, 1.0), device)
            * Tensor::<Bk, D>::random(dims, Distribution::Uniform(-6.0, 6.0), device).exp();
        x.clone().mask_fill(x.abs().lower_elem(0.05), -0.0)
    }

    /// `[C, M]`: one value, one column, short rows, rows longer than a task and not a whole number of SIMD
    /// lanes, empty rows.
    const SHAPES: [[usize; 2]; 6] = [[1, 1], [3, 1], [3, 5], [16, 40_003], [5, 17], [4, 0]];

    #[test]
    fn sums_are_burns_bit_for_bit() {
        let device = Default::default();
        for [c, m] in SHAPES {
            // A product just made (added in place) and a view (burn-flex's addition).
            let y = spread::<Flex, 2>([c, m + 1], &device);
            let bias = spread::<Flex, 1>([c], &device);
            let fresh = y.clone().slice([0..c, 0..m]) * 1.0;
            let want = bits(composite(fresh.clone(), bias.clone()));
            assert_eq!(bits(add_row_bias(fresh, bias.clone())), want, "{c}x{m}");
            let view = y.slice([0..c, 0..m]);
            assert_eq!(bits(add_row_bias(view, bias)), want, "{c}x{m} view");
        }
    }

    #[test]
    fn gradients_are_burns_bit_for_bit() {
        let device = Default::default();
        for [c, m] in SHAPES {
            let x = spread::<Tracked, 2>([c, m], &device);
            let bias = spread::<Tracked, 1>([c], &device).require_grad();
            // Random values, and all `-0.0` (whose sums are `+0.0`, but not their copies).
            let random = spread::<Tracked, 2>([c, m], &device);
            let zeros = Tensor::<Tracked, 2>::full([c, m], -0.0, &device);
            for upstream in [random, zeros] {
                let run = |add: &Adds| {
                    let x = x.clone().require_grad();
                    // `x * 1.0`: a fresh result, as a product is in the GCN.
                    let out = add(x.clone() * 1.0, bias.clone());
                    let forward = bits(out.clone());
                    let grads = (out * upstream.clone()).sum().backward();
                    (
                        forward,
                        x.grad(&grads).map(bits),
                        bias.grad(&grads).map(bits),
                    )
                };
                assert_eq!(run(&add_row_bias), run(&composite), "{c}x{m}");
            }
        }
    }
}
