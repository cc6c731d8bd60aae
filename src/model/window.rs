//! The GCN's temporal window: the `kernel` frames centred on each frame, stacked along the
//! channels, of features whose padded frames are zeroed.
//!
//! `h`: `[C, B, T, N]` (channels outermost), `keep`: `[1, B, T, 1]` (1 = real frame, 0 =
//! padding). Result: `[kernel x C, B x T x N]`, row `k x C + c` = channel `c` of `h x keep` at
//! frame `t + k - kernel/2`, zeros past either end (same padding).
//!
//! Written with burn's operations (`h * keep`, a padded copy, `kernel` frame-shifted slices,
//! one concatenation), a training step spends a quarter of its time here on the CPU:
//! burn-flex copies each strided slice element by element before concatenating, and the
//! backward pass writes every slice's gradient into a zeroed copy of the padded tensor and adds
//! the `kernel` copies. On burn-flex this module writes the window in one pass, frame by frame
//! (each frame's nodes scaled by its keep value, the one multiplication burn does too), and its
//! backward pass sums each frame's taps in one pass, with the same float additions in the same
//! order as burn's autodiff, so the numbers are burn's bit for bit. Other backends (CUDA) and
//! other float types keep burn's operations.

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

/// See the module docs. `keep` is a constant: no gradient flows to it.
pub fn masked_window<B: Backend>(
    h: Tensor<B, 4>,
    keep: Tensor<B, 4>,
    kernel: usize,
) -> Tensor<B, 2> {
    assert!(kernel % 2 == 1, "the temporal kernel must be odd");
    let [_, b, t, _] = h.dims();
    assert_eq!(keep.dims(), [1, b, t, 1], "keep must be [1, B, T, 1]");
    if h.dtype() != DType::F32 {
        return composite(h, keep, kernel);
    }
    match classify(h) {
        OnFlex::Plain(h) => to_caller::<B, Flex, 2>(forward(primitive(h), &floats(keep), kernel)),
        OnFlex::Tracked(h) => {
            to_caller::<B, Autodiff<Flex>, 2>(tracked(primitive(h), floats(keep), kernel))
        }
        OnFlex::Other(h) => composite(h, keep, kernel),
    }
}

/// The window with burn's operations (every backend; the reference for the kernels below).
pub(crate) fn composite<B: Backend>(
    h: Tensor<B, 4>,
    keep: Tensor<B, 4>,
    kernel: usize,
) -> Tensor<B, 2> {
    let [c, b, t, n] = h.dims();
    let half = kernel / 2;
    let padded = (h * keep).pad(
        [(0, 0), (0, 0), (half, half), (0, 0)],
        PadMode::Constant(0.0),
    );
    let taps = (0..kernel)
        .map(|k| padded.clone().slice([0..c, 0..b, k..k + t, 0..n]))
        .collect();
    Tensor::cat(taps, 0).reshape([kernel * c, b * t * n])
}

/// `keep`'s values (`[1, B, T, 1]`: one per frame), whatever its backend.
fn floats<B: Backend>(keep: Tensor<B, 4>) -> Vec<f32> {
    keep.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float32 after convert")
}

/// Sizes of the window's input.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    batch: usize,
    frames: usize,
    nodes: usize,
    kernel: usize,
}

impl Geometry {
    fn of(h: &FlexTensor, kernel: usize) -> Self {
        let dims = h.layout().shape().dims::<4>();
        let [channels, batch, frames, nodes] = dims;
        Self {
            channels,
            batch,
            frames,
            nodes,
            kernel,
        }
    }

    /// The input frame that tap `k` of output frame `t` reads, if inside the sequence.
    fn source(&self, t: usize, k: usize) -> Option<usize> {
        (t + k)
            .checked_sub(self.kernel / 2)
            .filter(|&s| s < self.frames)
    }
}

/// The window on burn-flex under autodiff: the forward kernel, and in the backward pass the
/// tap-summing kernel.
fn tracked(
    h: FloatTensor<Autodiff<Flex>>,
    keep: Vec<f32>,
    kernel: usize,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Window;

    impl Backward<Flex, 1> for Window {
        type State = (Geometry, Vec<f32>);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (geometry, keep) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                backward(grad, &keep, geometry)
            });
        }
    }

    let geometry = Geometry::of(&h.primitive, kernel);
    match Window
        .prepare::<NoCheckpointing>([h.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = forward(h.primitive, &keep, kernel);
            prep.finish((geometry, keep), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(h.primitive, &keep, kernel)),
    }
}

/// The window of a float32 burn-flex tensor: every output row `(k, c, b)` is `T x N` values,
/// written frame by frame from the input's row `(c, b)` shifted by `k - kernel/2` frames.
fn forward(h: FlexTensor, keep: &[f32], kernel: usize) -> FlexTensor {
    let g = Geometry::of(&h, kernel);
    let h = h.to_contiguous();
    let input = h.as_slice::<f32>().expect("contiguous float32");
    let (frames, nodes) = (g.frames, g.nodes);
    let row = frames * nodes;
    let shape = [g.kernel * g.channels, g.batch * row];
    let out = lanes::par_rows(g.kernel * g.channels * g.batch, row, 1, |r, out| {
        let b = r % g.batch;
        let c = (r / g.batch) % g.channels;
        let k = r / (g.batch * g.channels);
        let input = &input[(c * g.batch + b) * row..][..row];
        let keep = &keep[b * frames..][..frames];
        for t in 0..frames {
            // Frames past either end stay zero.
            if let Some(s) = g.source(t, k) {
                let from = &input[s * nodes..][..nodes];
                for (o, x) in out[t * nodes..][..nodes].iter_mut().zip(from) {
                    *o = x * keep[s];
                }
            }
        }
    });
    FlexTensor::from_data(TensorData::new(out, shape))
}

/// The gradient of `h` from the window's: each frame's `kernel` taps summed, then zeroed on
/// padded frames. The sum is burn's: burn-autodiff 0.21 runs the slices' backward steps from
/// the last tap to the first and adds each gradient (a zeroed padded tensor) to the sum so far,
/// `g_0 + (g_1 + (... + g_{kernel-1}))`; a tap past the sequence's end adds `+0.0` (not nothing:
/// `-0.0 + 0.0` is `+0.0`). The tests pin this order against burn's own.
fn backward(grad: FlexTensor, keep: &[f32], g: Geometry) -> FlexTensor {
    let grad = grad.to_contiguous();
    let upstream = grad.as_slice::<f32>().expect("contiguous float32");
    let (frames, nodes) = (g.frames, g.nodes);
    let row = frames * nodes;
    let tap_stride = g.channels * g.batch * row;
    let shape = [g.channels, g.batch, frames, nodes];
    let out = lanes::par_rows(g.channels * g.batch, row, 1, |r, out| {
        let b = r % g.batch;
        let keep = &keep[b * frames..][..frames];
        for s in 0..frames {
            let out = &mut out[s * nodes..][..nodes];
            // Output frame t reads input frame s through tap k when t = s + kernel/2 - k.
            let tap = |k: usize| {
                (s + g.kernel / 2)
                    .checked_sub(k)
                    .filter(|&t| t < frames)
                    .map(|t| &upstream[k * tap_stride + r * row + t * nodes..][..nodes])
            };
            match tap(g.kernel - 1) {
                Some(first) => out.copy_from_slice(first),
                None => out.fill(0.0),
            }
            for k in (0..g.kernel - 1).rev() {
                match tap(k) {
                    Some(gk) => out.iter_mut().zip(gk).for_each(|(o, v)| *o += v),
                    None => out.iter_mut().for_each(|o| *o += 0.0),
                }
            }
            out.iter_mut().for_each(|o| *o *= keep[s]);
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

    /// `[C, B, T, N]` values of many magnitudes (so the order of additions shows in the
    /// rounding), with some exact zeros of either sign; and `keep` with padded frames.
    fn inputs<Bk: Backend>(
        dims: [usize; 4],
        device: &Bk::Device,
    ) -> (Tensor<Bk, 4>, Tensor<Bk, 4>) {
        // The backend's RNG is shared with the seeded tests: draw while holding its lock.
        let _rng = crate::model::test_util::rng_lock();
        let [_, b, t, _] = dims;
        let h = Tensor::<Bk, 4>::random(dims, Distribution::Normal(0.0, 1.0), device)
            * Tensor::<Bk, 4>::random(dims, Distribution::Uniform(-6.0, 6.0), device).exp();
        let h = h.clone().mask_fill(h.clone().abs().lower_elem(0.05), -0.0);
        let keep: Vec<f32> = (0..b * t)
            .map(|i| {
                // Sequence b has max(1, t - 1 - 3b) real frames, then padding.
                let real = t.saturating_sub(1 + 3 * (i / t)).max(1);
                if i % t < real { 1.0 } else { 0.0 }
            })
            .collect();
        let keep = Tensor::<Bk, 4>::from_data(TensorData::new(keep, [1, b, t, 1]), device);
        (h, keep)
    }

    /// `[C, B, T, N]` and kernel: long and short sequences (T below kernel / 2 too), one and
    /// several sequences, the GCN's kernel and a small one.
    const CASES: [([usize; 4], usize); 5] = [
        ([3, 2, 11, 5], 9),
        ([2, 3, 4, 7], 9),
        ([2, 2, 3, 4], 9),
        ([1, 1, 1, 3], 9),
        ([4, 1, 6, 3], 3),
    ];

    #[test]
    fn empty_inputs_give_empty_windows() {
        let device = Default::default();
        let h = Tensor::<Flex, 4>::zeros([2, 3, 0, 5], &device);
        let keep = Tensor::<Flex, 4>::zeros([1, 3, 0, 1], &device);
        assert_eq!(masked_window(h, keep, 9).dims(), [18, 0]);
    }

    #[test]
    fn forward_is_burns_bit_for_bit() {
        let device = Default::default();
        for (dims, kernel) in CASES {
            let (h, keep) = inputs::<Flex>(dims, &device);
            let ours = masked_window(h.clone(), keep.clone(), kernel);
            let burns = composite(h, keep, kernel);
            assert_eq!(ours.dims(), burns.dims());
            assert_eq!(bits(ours), bits(burns), "dims {dims:?}, kernel {kernel}");
        }
    }

    #[test]
    fn gradient_is_burns_bit_for_bit() {
        let device = Default::default();
        for (dims, kernel) in CASES {
            let (h, keep) = inputs::<Tracked>(dims, &device);
            let rows = kernel * dims[0];
            let cols = dims[1] * dims[2] * dims[3];
            // An upstream gradient of many magnitudes too.
            let (upstream, _) = inputs::<Tracked>([rows, 1, 1, cols], &device);
            let upstream = upstream.reshape([rows, cols]);
            let gradient = |window: &dyn Fn(Tensor<Tracked, 4>) -> Tensor<Tracked, 2>| {
                let h = h.clone().require_grad();
                let grads = (window(h.clone()) * upstream.clone()).sum().backward();
                bits(h.grad(&grads).expect("h is tracked"))
            };
            let ours = gradient(&|h| masked_window(h, keep.clone(), kernel));
            let burns = gradient(&|h| composite(h, keep.clone(), kernel));
            assert_eq!(ours, burns, "dims {dims:?}, kernel {kernel}");
        }
    }

    #[test]
    fn short_sequences_read_only_their_frames() {
        // T = 2 with a 9-frame kernel: every tap but the middle three is past an end. Frame t
        // holds t + 1; the first sequence's second frame is padding.
        let device = Default::default();
        let h = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 1.0, 2.0], [1, 2, 2, 1]),
            &device,
        );
        let keep = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0], [1, 2, 2, 1]),
            &device,
        );
        let window = masked_window(h, keep, 9)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Row k holds [seq 0 frame 0, seq 0 frame 1, seq 1 frame 0, seq 1 frame 1].
        let mut want = vec![0.0f32; 9 * 4];
        want[3 * 4..4 * 4].copy_from_slice(&[0.0, 1.0, 0.0, 1.0]); // tap -1
        want[4 * 4..5 * 4].copy_from_slice(&[1.0, 0.0, 1.0, 2.0]); // tap 0
        want[5 * 4..6 * 4].copy_from_slice(&[0.0, 0.0, 2.0, 0.0]); // tap +1
        assert_eq!(window, want);
    }
}
