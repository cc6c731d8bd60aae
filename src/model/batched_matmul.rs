//! Products of batches of matrices, as attention takes them: `[batch, heads, M, K] x [batch,
//! heads, K, N]`, one product per (batch, head) pair, with the operands read in place
//! (strided views of one fused projection, transposed keys).
//!
//! burn-flex's batched product zeroes a fresh output, copies it to realign it and then, for
//! attention's output, is copied once more to bring the heads back beside each other (`[batch,
//! M, heads, N]`). Here `gemm` writes every product straight into its place in the output, in
//! either layout, with burn-flex's own call per pair (same strides, same threading rule), so
//! every value is burn-flex's bit for bit. Inference only: tracked tensors, other backends and
//! other float types keep burn's operations.

use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::matmul::{gemm_into, in_bounds, parallelism};
use super::on_flex::{OnFlex, classify, primitive, to_caller};

/// `lhs x rhs` for each (batch, head) pair: `[b, h, M, K] x [b, h, K, N] -> [b, h, M, N]`, as
/// `Tensor::matmul`.
pub fn batched_matmul<B: Backend>(lhs: Tensor<B, 4>, rhs: Tensor<B, 4>) -> Tensor<B, 4> {
    match plain_pair(lhs, rhs) {
        Ok((lhs, rhs)) => to_caller::<B, Flex, 4>(products(&lhs, &rhs, Layout::HeadsFirst)),
        Err((lhs, rhs)) => lhs.matmul(rhs),
    }
}

/// `lhs x rhs` for each (batch, head) pair with the heads' results side by side in each row:
/// `[b, h, M, K] x [b, h, K, N] -> [b, M, h * N]`, as `lhs.matmul(rhs).swap_dims(1, 2)`
/// reshaped (attention's output, its heads merged for the output projection).
pub fn batched_matmul_merging_heads<B: Backend>(
    lhs: Tensor<B, 4>,
    rhs: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [b, h, m, _] = lhs.dims();
    let n = rhs.dims()[3];
    // Rows `h` apart would make `gemm` see a single-column output as a row and leave the
    // matrix-vector path burn-flex takes for it (other additions, other bits): burn's product.
    let pair = if n == 1 && h > 1 {
        Err((lhs, rhs))
    } else {
        plain_pair(lhs, rhs)
    };
    match pair {
        Ok((lhs, rhs)) => {
            let out = products(&lhs, &rhs, Layout::HeadsMerged);
            to_caller::<B, Flex, 4>(out).reshape([b, m, h * n])
        }
        Err((lhs, rhs)) => lhs.matmul(rhs).swap_dims(1, 2).reshape([b, m, h * n]),
    }
}

/// Both operands as float32 burn-flex primitives with the same batch and head counts (no
/// broadcasting), or both back.
#[allow(clippy::type_complexity)]
fn plain_pair<B: Backend>(
    lhs: Tensor<B, 4>,
    rhs: Tensor<B, 4>,
) -> Result<(FlexTensor, FlexTensor), (Tensor<B, 4>, Tensor<B, 4>)> {
    let [lb, lh, _, k] = lhs.dims();
    let [rb, rh, rk, _] = rhs.dims();
    let fits =
        lb == rb && lh == rh && k == rk && lhs.dtype() == DType::F32 && rhs.dtype() == DType::F32;
    if !fits {
        return Err((lhs, rhs));
    }
    match (classify(lhs), classify(rhs)) {
        (OnFlex::Plain(l), OnFlex::Plain(r)) => Ok((primitive(l), primitive(r))),
        (l, r) => Err((back(l), back(r))),
    }
}

/// A sorted tensor as the caller's type again.
fn back<B: Backend, const D: usize>(x: OnFlex<B, D>) -> Tensor<B, D> {
    match x {
        OnFlex::Plain(x) => to_caller::<B, Flex, D>(primitive(x)),
        OnFlex::Tracked(x) => to_caller::<B, burn::backend::Autodiff<Flex>, D>(primitive(x)),
        OnFlex::Other(x) => x,
    }
}

/// Where each pair's `M x N` result goes in the output.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Layout {
    /// `[b, h, M, N]`: each pair's result is one block.
    HeadsFirst,
    /// `[b, M, h, N]`: each pair's rows are `h * N` apart.
    HeadsMerged,
}

/// burn-flex's threshold for running the pairs in parallel rather than one after the other
/// (total multiply-adds).
const BATCH_PARALLEL_THRESHOLD: usize = 128 * 128 * 128;

/// The output pointer, shared by the tasks that write disjoint elements of it.
#[derive(Clone, Copy)]
struct Output(*mut f32);
// SAFETY: each task writes only the elements of its own pair (disjoint by construction).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    /// The element `offset` floats in (a method, so closures capture the whole `Output`).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

fn products(lhs: &FlexTensor, rhs: &FlexTensor, layout: Layout) -> FlexTensor {
    let [b, h, m, k] = lhs.layout().shape().dims::<4>();
    let n = rhs.layout().shape()[3];
    let strides = |t: &FlexTensor| -> [isize; 4] {
        let s = t.layout().strides();
        [s[0], s[1], s[2], s[3]]
    };
    let (ls, rs) = (strides(lhs), strides(rhs));
    let (lhs_data, rhs_data) = (lhs.storage::<f32>(), rhs.storage::<f32>());
    let (lhs_start, rhs_start) = (lhs.layout().start_offset(), rhs.layout().start_offset());
    assert!(
        in_bounds(lhs_data.len(), lhs_start, [b, h, m, k], ls)
            && in_bounds(rhs_data.len(), rhs_start, [b, h, k, n], rs),
        "batched matmul: an operand's layout reaches outside its buffer"
    );
    let pairs = b * h;
    let len = pairs
        .checked_mul(m)
        .and_then(|x| x.checked_mul(n))
        .expect("batched matmul: output size overflows");
    let dims = match layout {
        Layout::HeadsFirst => [b, h, m, n],
        Layout::HeadsMerged => [b, m, h, n],
    };
    let mut out = Vec::<f32>::with_capacity(len);
    if k == 0 || len == 0 {
        out.resize(len, 0.0);
        return FlexTensor::from_data(TensorData::new(out, dims));
    }
    // Where pair `p`'s result starts, and its row stride.
    let out_start = |p: usize| match layout {
        Layout::HeadsFirst => p * m * n,
        Layout::HeadsMerged => (p / h) * m * h * n + (p % h) * n,
    };
    let out_row = match layout {
        Layout::HeadsFirst => n,
        Layout::HeadsMerged => h * n,
    } as isize;
    let dst = Output(out.as_mut_ptr());
    let one = |p: usize, threads: gemm::Parallelism| {
        let (bi, hi) = ((p / h) as isize, (p % h) as isize);
        let lhs_at = lhs_start as isize + bi * ls[0] + hi * ls[1];
        let rhs_at = rhs_start as isize + bi * rs[0] + hi * rs[1];
        // SAFETY: the operands' views lie inside their buffers (asserted above), and pair
        // `p`'s `M x N` output elements (from `out_start(p)`, rows `out_row` apart) lie inside
        // `out`'s capacity and are written by this call alone. With `read_dst` false, `gemm`
        // writes each of them (`dst = 1 * lhs x rhs`) and reads none; together the pairs cover
        // all `len` elements.
        unsafe {
            gemm_into(
                dst.at(out_start(p)),
                out_row,
                [m, n, k],
                (lhs_data.as_ptr().offset(lhs_at), [ls[2], ls[3]]),
                (rhs_data.as_ptr().offset(rhs_at), [rs[2], rs[3]]),
                threads,
            );
        }
    };
    // burn-flex's strategy: large matrices thread each product, many small ones run the
    // pairs in parallel. Either gives the same bits: `gemm` never splits a dot product.
    let per_pair = m.saturating_mul(n).saturating_mul(k);
    let total = per_pair.saturating_mul(pairs);
    let within = parallelism(m, n, k);
    let across = pairs >= 4 && total >= BATCH_PARALLEL_THRESHOLD;
    if matches!(within, gemm::Parallelism::Rayon(_)) && !across {
        (0..pairs).for_each(|p| one(p, within));
    } else if total >= BATCH_PARALLEL_THRESHOLD && pairs > 1 {
        (0..pairs)
            .into_par_iter()
            .for_each(|p| one(p, gemm::Parallelism::None));
    } else {
        (0..pairs).for_each(|p| one(p, gemm::Parallelism::None));
    }
    // SAFETY: every element was written (see above).
    unsafe { out.set_len(len) };
    FlexTensor::from_data(TensorData::new(out, dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::bits;
    use burn::tensor::Distribution;

    /// Values of many magnitudes, so that any change in the order of additions shows.
    fn spread(dims: [usize; 4]) -> Tensor<Flex, 4> {
        // The backend's RNG is shared with the seeded tests: draw while holding its lock.
        let _rng = crate::model::test_util::rng_lock();
        let device = Default::default();
        Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device)
            * Tensor::<Flex, 4>::random(dims, Distribution::Uniform(-4.0, 4.0), &device).exp()
    }

    /// Attention's shapes (a fused projection's heads as strided views, the keys transposed),
    /// below and above burn-flex's thresholds for threading.
    #[test]
    fn attention_products_are_burns_bit_for_bit() {
        // Heads of size 1 over more than 512 keys: burn-flex's product of a column takes
        // gemm's matrix-vector path, whose additions differ from the blocked kernel's.
        let shapes = [
            [1, 1, 3, 2],
            [2, 3, 7, 5],
            [2, 12, 33, 16],
            [1, 2, 300, 64],
            [1, 2, 600, 1],
        ];
        for [b, h, s, hd] in shapes {
            // [b, s, 3h, hd] as from one projection, heads second.
            let fused = spread([b, s, 3 * h, hd]).swap_dims(1, 2);
            let part = |i: usize| fused.clone().narrow(1, i * h, h);
            let (q, k, v) = (part(0), part(1).swap_dims(2, 3), part(2));
            let scores = batched_matmul(q.clone(), k.clone());
            assert_eq!(
                bits(scores.clone()),
                bits(q.matmul(k)),
                "scores {b} {h} {s} {hd}"
            );
            let merged = batched_matmul_merging_heads(scores.clone(), v.clone());
            let burn = scores.matmul(v).swap_dims(1, 2).reshape([b, s, h * hd]);
            assert_eq!(bits(merged), bits(burn), "output {b} {h} {s} {hd}");
        }
    }

    /// Single-column products with a transposed left side, which burn-flex computes as a
    /// column-major matrix-vector product.
    #[test]
    fn single_column_products_are_burns_bit_for_bit() {
        for [b, h, m, k] in [[2, 3, 5, 7], [1, 2, 40, 900]] {
            let lhs = spread([b, h, k, m]).swap_dims(2, 3);
            let rhs = spread([b, h, k, 1]);
            let merged = batched_matmul_merging_heads(lhs.clone(), rhs.clone());
            let burn = lhs
                .clone()
                .matmul(rhs.clone())
                .swap_dims(1, 2)
                .reshape([b, m, h]);
            assert_eq!(bits(merged), bits(burn), "merged {b} {h} {m} {k}");
            let first = batched_matmul(lhs.clone(), rhs.clone());
            assert_eq!(
                bits(first),
                bits(lhs.matmul(rhs)),
                "heads first {b} {h} {m} {k}"
            );
        }
    }

    #[test]
    fn empty_and_broadcast_products_are_burns() {
        for [b, h, m, k, n] in [[2, 3, 4, 0, 5], [2, 3, 0, 4, 5], [0, 3, 4, 2, 5]] {
            let (l, r) = (spread([b, h, m, k]), spread([b, h, k, n]));
            assert_eq!(
                bits(batched_matmul(l.clone(), r.clone())),
                bits(l.matmul(r))
            );
        }
        // A broadcast batch goes to burn.
        let (l, r) = (spread([2, 3, 4, 5]), spread([1, 3, 5, 6]));
        assert_eq!(
            bits(batched_matmul(l.clone(), r.clone())),
            bits(l.matmul(r))
        );
    }

    #[test]
    fn tracked_tensors_keep_burns_product_and_gradients() {
        type Tracked = burn::backend::Autodiff<Flex>;
        let device = Default::default();
        let rng = crate::model::test_util::rng_lock();
        let l = Tensor::<Tracked, 4>::random([2, 2, 3, 4], Distribution::Default, &device)
            .require_grad();
        let r = Tensor::<Tracked, 4>::random([2, 2, 4, 5], Distribution::Default, &device);
        drop(rng);
        let out = batched_matmul_merging_heads(l.clone(), r.clone());
        let grads = out.sum().backward();
        assert_eq!(l.grad(&grads).unwrap().dims(), [2, 2, 3, 4]);
    }
}
