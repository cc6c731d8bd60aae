//! Matrix products of two-dimensional tensors, and linear layers over rows, without burn-flex's
//! extra copy of every result.
//!
//! burn-flex allocates each product's output as zeroed bytes and then, because a byte vector
//! does not promise the 16-byte alignment its buffers want, allocates again and copies: two
//! allocations, a zeroing and a copy for every product, forward and backward (a fifth of a GCN
//! training step, more than the arithmetic of its narrow products). Here the output is one
//! float vector that the `gemm` crate fills, with burn-flex's own call to it (same strides,
//! same threading rule), so every value is burn-flex's bit for bit; in training the backward
//! pass computes the gradients with burn's formulas (`grad x rhs^T`, `lhs^T x grad`, the bias
//! gradient as burn's sum over rows) on the same kernel. A layer without a bias is the product
//! alone. Other backends (CUDA) and other float types keep burn's operations.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::{Flex, FlexTensor};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Shape, TensorData};

use rayon::prelude::*;

use super::on_flex::{OnFlex, classify, is_fresh, primitive, to_caller};
use crate::lanes;

/// `lhs x rhs`: `[M, K] x [K, N] -> [M, N]`, as `Tensor::matmul`.
pub fn matmul<B: Backend>(lhs: Tensor<B, 2>, rhs: Tensor<B, 2>) -> Tensor<B, 2> {
    if lhs.dtype() != DType::F32 || rhs.dtype() != DType::F32 {
        return lhs.matmul(rhs);
    }
    match (classify(lhs), classify(rhs)) {
        (OnFlex::Plain(lhs), OnFlex::Plain(rhs)) => {
            let out = product(&primitive(lhs), &primitive(rhs));
            to_caller::<B, Flex, 2>(out)
        }
        (OnFlex::Tracked(lhs), OnFlex::Tracked(rhs)) => {
            let out = tracked_product(primitive(lhs), primitive(rhs));
            to_caller::<B, Autodiff<Flex>, 2>(out)
        }
        (OnFlex::Other(lhs), OnFlex::Other(rhs)) => lhs.matmul(rhs),
        _ => unreachable!("both operands are of one backend"),
    }
}

/// `layer` applied to rows: `[M, d_in] -> [M, d_out]`, as `Linear::forward`.
pub fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let weight = layer.weight.val();
    let bias = layer.bias.as_ref().map(|b| b.val());
    on_flex_affine(x, weight, bias).unwrap_or_else(|x| layer.forward(x))
}

/// `x W + b` over rows, from a `[d_in, d_out]` weight and an optional `[d_out]` bias:
/// `x.matmul(weight) + bias`, as burn computes a linear layer, for layers that are not burn
/// modules (the embedding encoders' inference layers).
pub fn affine<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    on_flex_affine(x, weight.clone(), bias.clone()).unwrap_or_else(|x| {
        let y = x.matmul(weight);
        match bias {
            Some(b) => y + b.unsqueeze(),
            None => y,
        }
    })
}

/// `x W + b` with xp's kernels where they apply (float32 on burn-flex, tracked or not);
/// otherwise `x` back, for burn's operations.
fn on_flex_affine<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let all_f32 = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !all_f32 {
        return Err(x);
    }
    let Some(bias) = bias else {
        return Ok(matmul(x, weight));
    };
    Ok(match (classify(x), classify(weight), classify(bias)) {
        (OnFlex::Plain(x), OnFlex::Plain(weight), OnFlex::Plain(bias)) => {
            let out = product(&primitive(x), &primitive(weight));
            let out = add_bias(out, primitive(bias));
            to_caller::<B, Flex, 2>(out)
        }
        (OnFlex::Tracked(x), OnFlex::Tracked(weight), OnFlex::Tracked(bias)) => {
            let out = tracked_linear(primitive(x), primitive(weight), primitive(bias));
            to_caller::<B, Autodiff<Flex>, 2>(out)
        }
        (OnFlex::Other(x), _, _) => return Err(x),
        _ => unreachable!("the input and the layer are of one backend"),
    })
}

/// burn-flex's rule for threading a product (`matmul.rs`): above 192³ multiply-adds, every
/// core.
pub(super) fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// The product of two float32 burn-flex matrices of any strides (transposed views included),
/// into a new row-major matrix: burn-flex's `gemm` call, without its zeroing and copy.
fn product(lhs: &FlexTensor, rhs: &FlexTensor) -> FlexTensor {
    let [m, k] = lhs.layout().shape().dims::<2>();
    let [k_rhs, n] = rhs.layout().shape().dims::<2>();
    assert_eq!(k, k_rhs, "matmul: inner dimensions must match");
    let stride = |t: &FlexTensor| {
        let s = t.layout().strides();
        (s[0], s[1])
    };
    let (lhs_rs, lhs_cs) = stride(lhs);
    let (rhs_rs, rhs_cs) = stride(rhs);
    let lhs_data = lhs.storage::<f32>();
    let rhs_data = rhs.storage::<f32>();
    let (lhs_start, rhs_start) = (lhs.layout().start_offset(), rhs.layout().start_offset());
    assert!(
        in_bounds(lhs_data.len(), lhs_start, [m, k], [lhs_rs, lhs_cs])
            && in_bounds(rhs_data.len(), rhs_start, [k, n], [rhs_rs, rhs_cs]),
        "matmul: an operand's layout reaches outside its buffer"
    );
    let len = m.checked_mul(n).expect("matmul: output size overflows");
    let mut out = Vec::<f32>::with_capacity(len);
    if k == 0 {
        out.resize(len, 0.0);
    } else if len > 0 {
        // SAFETY: the output is `m x n` row-major floats of `out`'s capacity. The inputs are
        // read through their layouts from the start of their buffers, as burn-flex's
        // `matmul_2d_strided` does, and every element the layouts reach lies inside the
        // buffers (asserted above). With `read_dst` false, `gemm` writes every output element
        // (`dst = 1 * lhs x rhs`) and reads none, so after it all `len` are initialised.
        unsafe {
            gemm_into(
                out.as_mut_ptr(),
                n as isize,
                [m, n, k],
                (lhs_data.as_ptr().add(lhs_start), [lhs_rs, lhs_cs]),
                (rhs_data.as_ptr().add(rhs_start), [rhs_rs, rhs_cs]),
                parallelism(m, n, k),
            );
            out.set_len(len);
        }
    }
    FlexTensor::from_data(TensorData::new(out, [m, n]))
}

/// `dst = lhs x rhs` for an `[m, k] x [k, n]` product, `dst` row-major with rows `dst_row`
/// floats apart, each operand a pointer to its first element and its `[row, column]` strides:
/// burn-flex's call to `gemm` (`read_dst` false, `dst = 0 * dst + 1 * lhs x rhs`), which
/// writes every element of `dst` and reads none. A threaded product with a long sum is cut
/// into pieces first ([`long_sum_cut`]): the same values, bit for bit.
///
/// # Safety
/// Every element the operands' layouts reach must be readable, and the `m x n` elements of
/// `dst` writable by this call alone.
pub(super) unsafe fn gemm_into(
    dst: *mut f32,
    dst_row: isize,
    [m, n, k]: [usize; 3],
    (lhs, [lhs_rs, lhs_cs]): (*const f32, [isize; 2]),
    (rhs, [rhs_rs, rhs_cs]): (*const f32, [isize; 2]),
    threads: gemm::Parallelism,
) {
    let call = |dst: *mut f32, [m, n]: [usize; 2], lhs, rhs, threads| {
        // SAFETY: as the caller promises, for the whole product or one piece of it.
        unsafe {
            gemm::gemm(
                m, n, k, dst, 1, dst_row, false, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, 0.0,
                1.0, false, false, false, threads,
            )
        }
    };
    let cores = match threads {
        gemm::Parallelism::Rayon(_) => rayon::current_num_threads(),
        gemm::Parallelism::None => 1,
    };
    let k_contiguous = lhs_cs.unsigned_abs() == 1 && rhs_rs.unsigned_abs() == 1;
    let Some(cut) = long_sum_cut([m, n, k], k_contiguous, cores) else {
        return call(dst, [m, n], lhs, rhs, threads);
    };
    let shared = (Shared(dst), Shared(lhs.cast_mut()), Shared(rhs.cast_mut()));
    (0..cut.pieces).into_par_iter().for_each(|piece| {
        let start = piece * cut.length;
        let (dst, lhs, rhs) = (
            shared.0.get(),
            shared.1.get().cast_const(),
            shared.2.get().cast_const(),
        );
        // Pieces are disjoint blocks of rows or of columns of `dst`; each reads the operands'
        // matching rows (of `lhs`) or columns (of `rhs`), inside what the whole reaches.
        if cut.rows {
            let rows = cut.length.min(m - start);
            call(
                dst.wrapping_offset(start as isize * dst_row),
                [rows, n],
                lhs.wrapping_offset(start as isize * lhs_rs),
                rhs,
                gemm::Parallelism::None,
            )
        } else {
            let columns = cut.length.min(n - start);
            call(
                dst.wrapping_add(start),
                [m, columns],
                lhs,
                rhs.wrapping_offset(start as isize * rhs_cs),
                gemm::Parallelism::None,
            )
        }
    });
}

/// A pointer handed to the tasks of one product, which touch disjoint parts of what it
/// points to (see [`gemm_into`]).
struct Shared(*mut f32);

impl Shared {
    /// Through a method, so that a task's closure takes the `Shared`, not its raw pointer.
    fn get(&self) -> *mut f32 {
        self.0
    }
}
// SAFETY: the tasks write disjoint blocks of the output and only read the operands.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// How a product's output is cut: pieces of `length` rows (or columns), the last shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    rows: bool,
    length: usize,
    pieces: usize,
}

/// Where a threaded product is better cut into one single-threaded product per core: when its
/// sum is long and its output small (a weight's gradient, summed over every frame of a batch).
/// gemm threads a product inside each block of 512 or more terms of the sum, so such a product
/// forks and joins every core a hundred to a few thousand times, or, with at most 256 outputs
/// and both operands contiguous along the sum, runs on one core: on 2 cores, a layer's
/// gradient `[64, 65536] x [65536, 32]` took 3.5-5.0 ms threaded by gemm and 2.6-2.8 ms as two
/// pieces, the GCN's `[16, 1.2M] x [1.2M, 5]` (one core) 8.1 ms and 4.5 ms.
///
/// The pieces give the whole's values bit for bit, as long as gemm takes the same path for
/// each piece as for the whole. On its general path gemm adds each output's terms in order,
/// one block of the sum after another, whatever the threads; it takes the block length from
/// the cache sizes (not the output's shape) unless both sides are at most 64, and then
/// `min(k, 512)`, so every piece must be on the same side of that line as the whole. With at
/// most 256 outputs and both operands contiguous along the sum (`k_contiguous`) gemm takes
/// another path (eight partial sums per output, added as a tree): again every piece must be on
/// the whole's side. A side of one, or a sum of two terms, would take gemm's matrix-vector
/// paths: never cut there.
fn long_sum_cut([m, n, k]: [usize; 3], k_contiguous: bool, cores: usize) -> Option<Cut> {
    const SHORT_SIDE: usize = 64;
    const FEW_OUTPUTS: usize = 256;
    let path = |m: usize, n: usize| {
        let small = m <= SHORT_SIDE && n <= SHORT_SIDE;
        let dot_products = k_contiguous && m * n <= FEW_OUTPUTS;
        (small, dot_products)
    };
    if cores < 2 || m.min(n) < 2 || k < 16 * m.max(n) {
        return None;
    }
    // Cut the longer side first: each piece then reads all of the other operand once.
    let sides = if m >= n { [true, false] } else { [false, true] };
    sides.into_iter().find_map(|rows| {
        let (cut_side, other) = if rows { (m, n) } else { (n, m) };
        let length = cut_side.div_ceil(cores);
        let pieces = cut_side.div_ceil(length);
        let shortest = cut_side - (pieces - 1) * length;
        // The shortest piece is the first to cross a line (the others are as long or longer).
        let same_path = path(shortest, other) == path(m, n);
        (pieces >= 2 && shortest >= 2 && same_path).then_some(Cut {
            rows,
            length,
            pieces,
        })
    })
}

/// Whether every element of a `dims` view with `strides` from `start` lies inside a buffer of
/// `len` elements (strides may be negative; an empty view reaches nothing).
pub(super) fn in_bounds<const N: usize>(
    len: usize,
    start: usize,
    dims: [usize; N],
    strides: [isize; N],
) -> bool {
    if dims.contains(&0) {
        return true;
    }
    let (mut low, mut high) = (start as i128, start as i128);
    for (d, s) in dims.iter().zip(strides) {
        let reach = (*d as i128 - 1) * s as i128;
        if reach < 0 {
            low += reach;
        } else {
            high += reach;
        }
    }
    low >= 0 && high < len as i128
}

/// Output values per parallel task when adding a bias, and columns per task when summing a
/// gradient's columns (one 64-byte cache line of floats).
const VALUES_PER_TASK: usize = 1 << 14;
const COLUMNS_PER_TASK: usize = 16;

/// `out + bias` along the rows, as burn's default `linear` adds it (`[1, d_out]` broadcast, one
/// float addition per element), on every core. `out` is a product just made (contiguous, not
/// shared); otherwise burn-flex's addition.
fn add_bias(mut out: FlexTensor, bias: FlexTensor) -> FlexTensor {
    let d_out = bias.layout().shape()[0];
    let bias = bias.to_contiguous();
    let fresh = is_fresh(&out);
    let (Some(bias), true) = (bias.as_slice::<f32>(), fresh) else {
        return Flex::float_add(out, Flex::float_reshape(bias, Shape::new([1, d_out])));
    };
    let len = out.layout().num_elements();
    let rows_per_task = (VALUES_PER_TASK / d_out.max(1)).max(1);
    out.storage_mut::<f32>()[..len]
        .par_chunks_mut(d_out.max(1) * rows_per_task)
        .for_each(|rows| {
            lanes::widest(
                #[inline(always)]
                || {
                    for row in rows.chunks_exact_mut(d_out) {
                        row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
                    }
                },
            )
        });
    out
}

/// The bias gradient: the column sums of `grad` `[rows, d_out]`, as burn-flex's `sum_dim(0)`
/// adds them (from `+0.0`, row by row), with the columns split among the cores: each column's
/// additions keep their order. Layouts other than contiguous columns keep burn-flex's sum.
fn column_sums(grad: FlexTensor) -> FlexTensor {
    let [rows, d_out] = grad.layout().shape().dims::<2>();
    let [row_stride, column_stride] = [0, 1].map(|i| grad.layout().strides()[i]);
    let data = grad.storage::<f32>();
    let start = grad.layout().start_offset();
    let plain = grad.dtype() == DType::F32
        && (column_stride == 1 || d_out <= 1)
        && row_stride >= 0
        && in_bounds(data.len(), start, [rows, d_out], [row_stride, 1]);
    if !plain {
        let sums = Flex::float_sum_dim(grad, 0);
        return Flex::float_reshape(sums, Shape::new([d_out]));
    }
    let mut sums = vec![0f32; d_out];
    sums.par_chunks_mut(COLUMNS_PER_TASK)
        .enumerate()
        .for_each(|(task, sums)| {
            let first = start + task * COLUMNS_PER_TASK;
            for r in 0..rows {
                let row = &data[first + r * row_stride as usize..][..sums.len()];
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        });
    FlexTensor::from_data(TensorData::new(sums, [d_out]))
}

/// [`product`] under autodiff, with burn's matmul backward: `grad x rhs^T` for `lhs`,
/// `lhs^T x grad` for `rhs`, each only when that side is tracked.
fn tracked_product(
    lhs: FloatTensor<Autodiff<Flex>>,
    rhs: FloatTensor<Autodiff<Flex>>,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Product;

    impl Backward<Flex, 2> for Product {
        /// `lhs` when `rhs` is tracked, `rhs` when `lhs` is.
        type State = (Option<FlexTensor>, Option<FlexTensor>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (lhs, rhs) = ops.state;
            binary::<Flex, _, _>(
                ops.parents,
                ops.node,
                grads,
                |grad| product(&grad, &rhs.expect("kept for lhs").transpose(0, 1)),
                |grad| product(&lhs.expect("kept for rhs").transpose(0, 1), &grad),
            );
        }
    }

    let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
    match Product
        .prepare::<NoCheckpointing>([lhs.node.clone(), rhs.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = product(&lhs.primitive, &rhs.primitive);
            let state = (
                rhs_tracked.then(|| lhs.primitive.clone()),
                lhs_tracked.then(|| rhs.primitive.clone()),
            );
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(product(&lhs.primitive, &rhs.primitive)),
    }
}

/// `x W + b` under autodiff, with burn's linear backward, in its order: `grad x W^T` for `x`,
/// `x^T x grad` for `W`, the column sums of `grad` for `b`.
fn tracked_linear(
    x: FloatTensor<Autodiff<Flex>>,
    weight: FloatTensor<Autodiff<Flex>>,
    bias: FloatTensor<Autodiff<Flex>>,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct LinearRows;

    impl Backward<Flex, 3> for LinearRows {
        /// `x` when the weight is tracked, the weight when `x` is.
        type State = (Option<FlexTensor>, Option<FlexTensor>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_weight, node_bias] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, weight) = ops.state;
            if let Some(node) = node_x {
                let weight = weight.expect("kept for x");
                grads.register::<Flex>(node.id, product(&grad, &weight.transpose(0, 1)));
            }
            if let Some(node) = node_weight {
                let x = x.expect("kept for the weight");
                grads.register::<Flex>(node.id, product(&x.transpose(0, 1), &grad));
            }
            if let Some(node) = node_bias {
                grads.register::<Flex>(node.id, column_sums(grad));
            }
        }
    }

    let (x_tracked, weight_tracked) = (x.is_tracked(), weight.is_tracked());
    let forward =
        |x: &FlexTensor, weight: &FlexTensor, bias: FlexTensor| add_bias(product(x, weight), bias);
    match LinearRows
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = forward(&x.primitive, &weight.primitive, bias.primitive);
            let state = (
                weight_tracked.then(|| x.primitive.clone()),
                x_tracked.then(|| weight.primitive.clone()),
            );
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(&x.primitive, &weight.primitive, bias.primitive))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::bits;
    use burn::module::AutodiffModule;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    type Tracked = Autodiff<Flex>;

    /// Values of many magnitudes, so that any change in the order of additions shows.
    fn spread<Bk: Backend>(dims: [usize; 2], device: &Bk::Device) -> Tensor<Bk, 2> {
        // The backend's RNG is shared with the seeded tests: draw while holding its lock.
        let _rng = crate::model::test_util::rng_lock();
        Tensor::<Bk, 2>::random(dims, Distribution::Normal(0.0, 1.0), device)
            * Tensor::<Bk, 2>::random(dims, Distribution::Uniform(-5.0, 5.0), device).exp()
    }

    /// Shapes below and above burn-flex's threading threshold (192³ multiply-adds).
    const SHAPES: [[usize; 3]; 4] = [[7, 5, 3], [137, 64, 40], [2000, 137, 137], [1, 300, 9]];

    #[test]
    fn empty_products_are_burns() {
        let device = Default::default();
        for [m, k, n] in [[3, 0, 4], [0, 5, 2], [4, 3, 0]] {
            let lhs = Tensor::<Flex, 2>::ones([m, k], &device);
            let rhs = Tensor::<Flex, 2>::ones([k, n], &device);
            let ours = matmul(lhs.clone(), rhs.clone());
            assert_eq!(ours.dims(), [m, n]);
            assert_eq!(bits(ours), bits(lhs.matmul(rhs)), "{m}x{k}x{n}");
        }
    }

    #[test]
    fn layouts_are_checked_against_their_buffers() {
        assert!(in_bounds(12, 0, [3, 4], [4, 1]));
        assert!(in_bounds(12, 0, [4, 3], [1, 4])); // a transposed view
        assert!(!in_bounds(11, 0, [3, 4], [4, 1]));
        assert!(in_bounds(12, 11, [3, 4], [-4, -1])); // flipped both ways
        assert!(!in_bounds(12, 10, [3, 4], [-4, -1]));
        assert!(in_bounds(0, 5, [0, 4], [4, 1]));
    }

    #[test]
    fn products_are_burns_bit_for_bit() {
        let device = Default::default();
        for [m, k, n] in SHAPES {
            let lhs = spread::<Flex>([m, k], &device);
            let rhs = spread::<Flex>([k, n], &device);
            assert_eq!(
                bits(matmul(lhs.clone(), rhs.clone())),
                bits(lhs.clone().matmul(rhs.clone())),
                "{m}x{k}x{n}"
            );
            // Transposed views (strided operands), as in the backward pass and the GCN's mix.
            let lhs_t = spread::<Flex>([k, m], &device).transpose();
            let rhs_t = spread::<Flex>([n, k], &device).transpose();
            assert_eq!(
                bits(matmul(lhs_t.clone(), rhs_t.clone())),
                bits(lhs_t.matmul(rhs_t)),
                "{m}x{k}x{n} transposed"
            );
        }
    }

    #[test]
    fn long_sums_are_cut_where_gemm_keeps_its_blocks() {
        let cut = |rows, length, pieces| {
            Some(Cut {
                rows,
                length,
                pieces,
            })
        };
        // The MLP's weight gradients at 8,192 frames, and the GCN's channel mix.
        assert_eq!(long_sum_cut([350, 64, 65536], false, 2), cut(true, 175, 2));
        assert_eq!(long_sum_cut([210, 64, 65536], false, 3), cut(true, 70, 3));
        assert_eq!(
            long_sum_cut([16, 36, 1_236_288], false, 2),
            cut(false, 18, 2)
        );
        // Both sides at most 64: any pieces keep gemm's block length.
        assert_eq!(long_sum_cut([64, 32, 65536], false, 2), cut(true, 32, 2));
        // 125 rows in two would be pieces of 63 and 62 beside 64 columns, which gemm would
        // sum in other blocks than the whole: columns instead.
        assert_eq!(long_sum_cut([125, 64, 65536], false, 2), cut(false, 32, 2));
        assert_eq!(long_sum_cut([96, 32, 65536], false, 2), cut(false, 16, 2));
        assert_eq!(long_sum_cut([130, 40, 65536], false, 2), cut(true, 65, 2));
        assert_eq!(long_sum_cut([128, 40, 65536], false, 2), cut(false, 20, 2));
        // Not cut: one core, a short sum, or pieces of one row or column (gemm's matrix-vector
        // paths) or too short to keep the block length.
        assert_eq!(long_sum_cut([350, 64, 65536], false, 1), None);
        assert_eq!(long_sum_cut([65536, 64, 350], false, 2), None);
        assert_eq!(long_sum_cut([3, 2, 1000], false, 2), None);
        assert_eq!(long_sum_cut([100, 1, 65536], false, 2), None);
        assert_eq!(long_sum_cut([300, 1, 65536], true, 2), None);
        assert_eq!(long_sum_cut([0, 8, 65536], false, 2), None);
        // Operands contiguous along the sum (the GCN's gradients): at most 256 outputs take
        // gemm's dot-product path, so pieces must stay on the whole's side of 256 too.
        assert_eq!(
            long_sum_cut([16, 36, 1_236_288], true, 2),
            cut(false, 18, 2)
        );
        assert_eq!(long_sum_cut([16, 5, 1_236_288], true, 2), cut(true, 8, 2));
        assert_eq!(long_sum_cut([64, 5, 65536], true, 2), None);
        assert_eq!(long_sum_cut([16, 36, 65536], true, 3), None);
        assert_eq!(long_sum_cut([16, 64, 65536], true, 4), None);
    }

    #[test]
    fn long_sums_cut_into_pieces_are_burns_bit_for_bit() {
        let device = Default::default();
        // Sums longer than gemm's blocks (of 512 or 1,024 terms, or sized to the L1 cache), on
        // both sides of its 64 line and of its 256 line, as the layers' and the GCN's weight
        // gradients: `x^T x grad` with `x` read down its columns, and `grad x x^T` with both
        // operands contiguous along the sum. Some of these are not cut (see above): they
        // guard against a cut that would take another path than the whole.
        let transposed = [[125, 64], [96, 32], [64, 32], [16, 36], [350, 8], [130, 40]];
        let contiguous = [[64, 5], [16, 36], [16, 5], [16, 64], [64, 64], [300, 1]];
        let mut cut = 0;
        for cores in [2, 3, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(cores)
                .build()
                .unwrap();
            let cases = transposed.map(|s| (s, false)).into_iter();
            for ([m, n], k_contiguous) in cases.chain(contiguous.map(|s| (s, true))) {
                let k = (16 * m.max(n)).max(5000).max(12_500_000 / (m * n));
                let (lhs, rhs) = if k_contiguous {
                    let rhs = spread::<Flex>([n, k], &device).transpose();
                    (spread::<Flex>([m, k], &device), rhs)
                } else {
                    let lhs = spread::<Flex>([k, m], &device).transpose();
                    (
                        lhs,
                        spread::<Flex>([k, n + 3], &device).slice([0..k, 1..n + 1]),
                    )
                };
                cut += usize::from(long_sum_cut([m, n, k], k_contiguous, cores).is_some());
                let ours = pool.install(|| matmul(lhs.clone(), rhs.clone()));
                assert_eq!(
                    bits(ours),
                    bits(lhs.clone().matmul(rhs.clone())),
                    "{m}x{n}x{k} on {cores} cores, contiguous along the sum: {k_contiguous}"
                );
            }
        }
        assert!(cut >= 20, "only {cut} of the products were cut");
    }

    #[test]
    fn product_gradients_are_burns_bit_for_bit() {
        let device = Default::default();
        for [m, k, n] in SHAPES {
            let lhs = spread::<Tracked>([m, k], &device);
            let rhs = spread::<Tracked>([k, n], &device);
            let upstream = spread::<Tracked>([m, n], &device);
            // Both tracked, then only one side (the other a constant, as the GCN's adjacency).
            for (track_lhs, track_rhs) in [(true, true), (true, false), (false, true)] {
                let run = |ours: bool| {
                    let l = if track_lhs {
                        lhs.clone().require_grad()
                    } else {
                        lhs.clone()
                    };
                    let r = if track_rhs {
                        rhs.clone().require_grad()
                    } else {
                        rhs.clone()
                    };
                    let out = if ours {
                        matmul(l.clone(), r.clone())
                    } else {
                        l.clone().matmul(r.clone())
                    };
                    let grads = (out * upstream.clone()).sum().backward();
                    (l.grad(&grads).map(bits), r.grad(&grads).map(bits))
                };
                assert_eq!(run(true), run(false), "{m}x{k}x{n} {track_lhs} {track_rhs}");
            }
        }
    }

    #[test]
    fn linear_layers_are_burns_bit_for_bit() {
        let device = Default::default();
        for [m, k, n] in SHAPES {
            let layer = LinearConfig::new(k, n).init::<Tracked>(&device);
            // A strided input: a block of columns, as the MLP reads each stream.
            let wide = spread::<Tracked>([m, k + 3], &device);
            // The gradient reaches the layer contiguous, or as a block of columns of a wider
            // one (through a concatenation), or transposed.
            let upstream = spread::<Tracked>([m, n + 2], &device);
            let run = |ours: bool, track_x: bool, reach: usize| {
                let wide = if track_x {
                    wide.clone().require_grad()
                } else {
                    wide.clone()
                };
                let x = wide.clone().slice([0..m, 2..k + 2]);
                let out = if ours {
                    linear(&layer, x)
                } else {
                    layer.forward(x)
                };
                let forward = bits(out.clone());
                // Held until the backward pass: burn 0.21's `cat` lets go of its input's graph
                // node before registering its own, and another test's backward finishing in that
                // gap frees the node, and with it the weight's and bias's gradients
                // (tracel-ai/burn#5573). xp trains one model per process, so only tests meet it.
                let _held = out.clone();
                let loss = match reach {
                    0 => (out * upstream.clone().slice([0..m, 0..n])).sum(),
                    1 => {
                        let extra = Tensor::zeros([m, 2], &device);
                        (Tensor::cat(vec![out, extra], 1) * upstream.clone()).sum()
                    }
                    _ => {
                        let up = upstream.clone().slice([0..m, 0..n]).transpose();
                        (out.transpose() * up).sum()
                    }
                };
                let grads = loss.backward();
                let bias = layer.bias.as_ref().unwrap();
                (
                    forward,
                    wide.grad(&grads).map(bits),
                    layer.weight.grad(&grads).map(bits),
                    bias.grad(&grads).map(bits),
                )
            };
            for track_x in [true, false] {
                for reach in 0..3 {
                    assert_eq!(
                        run(true, track_x, reach),
                        run(false, track_x, reach),
                        "{m}x{k}x{n} {track_x} {reach}"
                    );
                }
            }
            let plain = layer.valid();
            let x = spread::<Flex>([m, k], &device);
            assert_eq!(bits(linear(&plain, x.clone())), bits(plain.forward(x)));
        }
    }
}
