//! Dropout whose mask is drawn on every core.
//!
//! burn's `Dropout` draws its Bernoulli mask from burn-flex's one process-wide generator, one
//! value at a time (a sampler made for each value), on one core: at the paper's model size
//! that was 15-30 % of an MLP training step (the same step with dropout 0 ran 1.15-1.3x
//! faster). Here, on burn-flex under autodiff, each call draws one key from that same
//! generator, so `Backend::seed` still fixes every mask, and the mask of element `i` is a hash
//! of `(key, i)`, computed on every core. The arithmetic is burn's (`x * mask * (1 / keep)`);
//! only the masks differ from burn's, so a run's numbers differ from a build that used burn's
//! `Dropout`, and are as reproducible. Other backends (CUDA) keep burn's `Dropout`.

use burn::backend::Autodiff;
use burn::backend::flex::Flex;
use burn::nn::DropoutConfig;
use burn::prelude::*;
use burn::tensor::{Device, Distribution, TensorData};

use super::on_flex::{OnFlex, classify, primitive, to_caller};
use crate::lanes;

/// Mask values per parallel task.
const CHUNK: usize = 1 << 14;

/// `x` with each element zeroed with probability `prob` and the rest scaled by
/// `1 / (1 - prob)`, in training (an autodiff backend); `x` itself in inference, as burn's
/// `Dropout::forward`.
pub fn dropout<B: Backend, const D: usize>(prob: f64, x: Tensor<B, D>) -> Tensor<B, D> {
    if !B::ad_enabled(&x.device()) || prob == 0.0 {
        return x;
    }
    assert!(
        (0.0..1.0).contains(&prob),
        "dropout probability {prob} is outside [0, 1)"
    );
    let keep = 1.0 - prob;
    match classify(x) {
        OnFlex::Tracked(x) => {
            let device = x.device();
            let mask = keep_mask(draw_key(&device), x.dims().iter().product(), keep);
            let mask =
                Tensor::<Autodiff<Flex>, D>::from_data(TensorData::new(mask, x.shape()), &device);
            // burn's two multiplications, in burn's order.
            let out = (x * mask) * (1.0 / keep);
            to_caller::<B, Autodiff<Flex>, D>(primitive(out))
        }
        OnFlex::Plain(x) => to_caller::<B, Flex, D>(primitive(x)),
        OnFlex::Other(x) => DropoutConfig::new(prob).init().forward(x),
    }
}

/// One 64-bit key from burn-flex's generator (two uniform draws, as a burn `Dropout` would
/// draw its first two mask values), so masks follow `Backend::seed` and differ call by call.
fn draw_key(device: &Device<Flex>) -> u64 {
    let draws = Tensor::<Flex, 1>::random([2], Distribution::Default, device)
        .into_data()
        .to_vec::<f32>()
        .expect("float32");
    (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits())
}

/// The mask: `1.0` where element `i`'s draw falls below `keep`, else `0.0`.
pub(crate) fn keep_mask(key: u64, len: usize, keep: f64) -> Vec<f32> {
    // A draw is 24 uniform bits; keep when it is below `keep` x 2^24.
    let threshold = (keep * (1u64 << 24) as f64).round() as u32;
    let mut mask = lanes::par_rows(len.div_ceil(CHUNK), CHUNK, 1, |task, piece| {
        let first = (task * CHUNK) as u64;
        lanes::widest(
            #[inline(always)]
            || {
                for (j, m) in piece.iter_mut().enumerate() {
                    *m = if draw(key, first + j as u64) < threshold {
                        1.0
                    } else {
                        0.0
                    };
                }
            },
        )
    });
    mask.truncate(len);
    mask
}

/// 24 uniform bits for element `i` under `key`: murmur3's 32-bit finaliser applied twice, to
/// the index's low half mixed with one half of the key, then with the other halves added.
#[inline(always)]
fn draw(key: u64, i: u64) -> u32 {
    let low = (i as u32) ^ (key as u32);
    let high = ((i >> 32) as u32) ^ ((key >> 32) as u32);
    fmix32(fmix32(low).wrapping_add(high)) >> 8
}

/// murmur3's finaliser: a bijection of `u32` in which every input bit flips each output bit
/// with probability close to one half.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{rng_lock, values};

    type Tracked = Autodiff<Flex>;

    fn tracked(data: Vec<f32>, shape: [usize; 2]) -> Tensor<Tracked, 2> {
        Tensor::from_data(TensorData::new(data, shape), &Default::default())
    }

    #[test]
    fn murmur_finaliser_matches_published_values() {
        // MurmurHash3's fmix32, evaluated with a separate Python transcription of its steps.
        assert_eq!(fmix32(0), 0);
        assert_eq!(fmix32(1), 0x514e_28b7);
        assert_eq!(fmix32(0xffff_ffff), 0x81f1_6f39);
        assert_eq!(fmix32(0xdead_beef), 0x0de5_c6a9);
    }

    #[test]
    fn masks_keep_the_asked_share_independently() {
        let n = 1 << 20;
        for keep in [0.9, 0.5, 0.25] {
            let mask = keep_mask(0x1234_5678_9abc_def0, n, keep);
            assert_eq!(mask.len(), n);
            assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
            // Binomial standard deviation at n = 2^20 is at most 0.0005: 10 of them.
            let share = mask.iter().sum::<f32>() as f64 / n as f64;
            assert!((share - keep).abs() < 0.005, "keep {keep}: kept {share}");
            // Neighbours (and elements a row apart) are kept together as often as chance says.
            for gap in [1, 7, 128, CHUNK] {
                let both = mask
                    .iter()
                    .zip(&mask[gap..])
                    .filter(|(a, b)| **a == 1.0 && **b == 1.0)
                    .count() as f64
                    / (n - gap) as f64;
                assert!((both - keep * keep).abs() < 0.005, "gap {gap}: {both}");
            }
        }
        // Past 2^32 elements the high half of the index still changes the draws.
        let far: Vec<u32> = (0..64).map(|i| draw(7, (1u64 << 32) + i)).collect();
        let near: Vec<u32> = (0..64).map(|i| draw(7, i)).collect();
        assert_ne!(far, near);
    }

    #[test]
    fn keys_give_different_masks_and_lengths_share_a_prefix() {
        let a = keep_mask(1, 50_000, 0.5);
        let b = keep_mask(2, 50_000, 0.5);
        let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!((20_000..30_000).contains(&agree), "{agree} of 50000 agree");
        assert_eq!(keep_mask(1, 20_001, 0.5), a[..20_001]);
        assert!(keep_mask(1, 0, 0.5).is_empty());
    }

    #[test]
    fn training_zeroes_or_scales_as_burn_does_and_gradients_follow_the_mask() {
        let _rng = rng_lock();
        let shape = [64, 300];
        let x = values(shape[0] * shape[1], 3);
        let upstream = values(shape[0] * shape[1], 4);
        let prob = 0.3;
        let input = tracked(x.clone(), shape).require_grad();
        let out = dropout(prob, input.clone());
        let got = out.clone().into_data().to_vec::<f32>().unwrap();
        let grads = (out * tracked(upstream.clone(), shape)).sum().backward();
        let grad = input
            .grad(&grads)
            .unwrap()
            .to_data()
            .to_vec::<f32>()
            .unwrap();
        let scale = (1.0 / (1.0 - prob)) as f32;
        let mut kept = 0;
        for i in 0..x.len() {
            // burn's Dropout: `(x * 1) * scale` where kept; the gradient `(g * scale) * 1`.
            if got[i].to_bits() == (x[i] * 1.0 * scale).to_bits() && x[i] != 0.0 {
                kept += 1;
                assert_eq!(grad[i].to_bits(), (upstream[i] * scale * 1.0).to_bits());
            } else {
                assert_eq!(got[i], 0.0, "element {i}: {} from {}", got[i], x[i]);
                assert_eq!(grad[i], 0.0);
            }
        }
        let share = kept as f64 / x.len() as f64;
        assert!((share - 0.7).abs() < 0.02, "kept {share}");
    }

    #[test]
    fn seeds_fix_the_masks_and_each_call_draws_a_new_one() {
        let _rng = rng_lock();
        let device = Default::default();
        let ones = || Tensor::<Tracked, 2>::ones([32, 100], &device);
        let run = |seed| {
            Tracked::seed(&device, seed);
            let first = dropout(0.5, ones()).into_data().to_vec::<f32>().unwrap();
            let second = dropout(0.5, ones()).into_data().to_vec::<f32>().unwrap();
            (first, second)
        };
        let (a1, a2) = run(11);
        assert_eq!(run(11), (a1.clone(), a2.clone()));
        assert_ne!(a1, a2, "two calls drew one mask");
        assert_ne!(run(12).0, a1, "two seeds drew one mask");
    }

    #[test]
    fn inference_and_zero_probability_pass_the_input_through() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::from_data(TensorData::new(values(600, 5), [20, 30]), &device);
        let plain = dropout(0.5, x.clone());
        assert_eq!(plain.into_data(), x.clone().into_data());
        let t = tracked(values(600, 5), [20, 30]);
        assert_eq!(dropout(0.0, t.clone()).into_data(), t.into_data());
    }
}
