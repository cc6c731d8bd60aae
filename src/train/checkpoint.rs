//! One training step (loss and gradients) with the frame backbone recomputed chunk by chunk:
//! activation checkpointing at the granularity of [`KeypointModel::chunks`].
//!
//! A backward pass over a whole interview would keep the backbone's activations for every
//! frame (GCN, model defaults: about 0.4 MB a frame, so 100 GB for 8 videos of 35,000
//! frames). Instead, when a batch has more than one chunk:
//! 1. every chunk's tokens are computed without a graph (the backbone's activations are freed
//!    chunk by chunk);
//! 2. the tokens become a leaf of the graph; the encoder, head and loss run forward and
//!    backward, which gives the encoder's and head's gradients and `dL/dtokens`;
//! 3. each chunk is run again with a graph and back-propagated with its slice of `dL/dtokens`
//!    (the gradient of `sum(tokens * dL/dtokens)`), and its backbone gradients are added up.
//!
//! Peak memory is then one chunk's activations plus the tokens, whatever the length; the cost
//! is one extra forward pass of the backbone. The backbone has no dropout or other randomness,
//! so step 3 recomputes exactly what step 1 computed, and the gradients equal those of a
//! single pass (up to float summation order).

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use crate::model::{Batch, Classifier, KeypointBatch};

/// The loss of `batch` and the gradients of every parameter. `loss_of` maps logits `[B, 2]` to
/// the scalar loss. The other branches (image, text) are cheap and run in one pass.
pub fn loss_and_grads<B: AutodiffBackend>(
    model: &Classifier<B>,
    batch: &Batch<B>,
    loss_of: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 1>,
) -> (f64, GradientsParams) {
    let chunked = match (&model.keypoints, &batch.keypoints) {
        (Some(k), Some(kb)) => {
            let [b, t, _, _] = kb.points.dims();
            let chunks = k.chunks(b, t);
            (chunks.len() > 1).then_some((k, kb, chunks))
        }
        _ => None,
    };
    let Some((keypoints, kb, chunks)) = chunked else {
        let loss = loss_of(model.forward(batch));
        let value = loss.clone().into_scalar().elem::<f64>();
        return (value, GradientsParams::from_grads(loss.backward(), model));
    };
    let [b, t, _, _] = kb.points.dims();

    // 1. Tokens without a graph.
    let frozen = keypoints.valid();
    let frozen_batch = KeypointBatch {
        points: kb.points.clone().inner(),
        mask: kb.mask.clone().inner(),
    };
    let (tokens, token_mask) = frozen.tokens(&frozen_batch);
    drop(frozen);

    // 2. Everything after the backbone, with the tokens as a leaf.
    let tokens = Tensor::<B, 3>::from_inner(tokens).require_grad();
    let logits = model.forward_with_tokens(
        batch,
        Some((tokens.clone(), Tensor::from_inner(token_mask))),
    );
    let loss = loss_of(logits);
    let value = loss.clone().into_scalar().elem::<f64>();
    let mut grads = loss.backward();
    let token_grads = tokens
        .grad_remove(&mut grads)
        .expect("the loss depends on the tokens");
    let mut total = GradientsAccumulator::<Classifier<B>>::new();
    total.accumulate(model, GradientsParams::from_grads(grads, model));

    // 3. The backbone, chunk by chunk, with its slice of dL/dtokens.
    let stride = keypoints.sequence.stride;
    let mut first_token = 0;
    for range in chunks {
        let (chunk_tokens, _) = keypoints.chunk_tokens(kb, range);
        let count = chunk_tokens.dims()[1];
        let upstream = token_grads
            .clone()
            .slice([0..b, first_token..first_token + count]);
        first_token += count;
        let surrogate = (chunk_tokens * Tensor::from_inner(upstream)).sum();
        total.accumulate(
            model,
            GradientsParams::from_grads(surrogate.backward(), model),
        );
    }
    debug_assert_eq!(first_token, t.div_ceil(stride));
    (value, total.grads())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{
        TestBackend, fused_batch, rng_lock, small_classifier, small_config, to_inner,
    };
    use crate::model::{Backbone, ClassifierConfig, KeypointModelConfig};
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::backend::Backend;

    type B = TestBackend;
    type Inner = <B as AutodiffBackend>::InnerBackend;

    /// Largest |a - b| over every parameter's gradient in two gradient sets, and how many
    /// parameters both have.
    struct Compare<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        max_diff: f32,
        max_grad: f32,
        compared: usize,
    }

    impl ModuleVisitor<B> for Compare<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            // A fused model's branch heads take no part (and get no gradient).
            let Some(a) = self.a.get::<Inner, D>(param.id) else {
                return;
            };
            let b = self.b.get::<Inner, D>(param.id).expect("gradient in b");
            let a = a.into_data().to_vec::<f32>().unwrap();
            let b = b.into_data().to_vec::<f32>().unwrap();
            for (x, y) in a.iter().zip(&b) {
                self.max_diff = self.max_diff.max((x - y).abs());
                self.max_grad = self.max_grad.max(x.abs());
            }
            self.compared += 1;
        }
    }

    #[test]
    fn chunked_steps_give_the_gradients_of_a_single_pass() {
        let _rng = rng_lock();
        let device = Default::default();
        for backbone in [Backbone::Mlp, Backbone::Gcn] {
            // Keypoints (4 frames a token, one chunk unless told otherwise), image and text,
            // fused; the second video has no image (masked).
            let config = ClassifierConfig {
                keypoints: Some(KeypointModelConfig {
                    frame_chunk: 1000,
                    ..small_config(backbone, 5)
                }),
                ..small_classifier(None, true, true)
            };
            <B as Backend>::seed(&device, 3);
            let whole = config.init::<B>(&device);
            // Chunks of 8 frames: 7 chunks, each GCN chunk reading 8 halo frames per side.
            let mut chunked = whole.clone();
            chunked.keypoints.as_mut().unwrap().frame_chunk = 8;
            assert_eq!(whole.keypoints.as_ref().unwrap().chunks(2, 50).len(), 1);
            assert_eq!(chunked.keypoints.as_ref().unwrap().chunks(2, 50).len(), 7);
            let input = fused_batch::<B>(
                &[50, 23],
                50,
                11,
                &[[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]],
                &device,
            );
            let loss_of = |logits: Tensor<B, 2>| logits.powf_scalar(2.0).mean();
            // The same dropout draws on both sides.
            <B as Backend>::seed(&device, 5);
            let (loss_a, grads_a) = loss_and_grads(&whole, &input, loss_of);
            <B as Backend>::seed(&device, 5);
            let (loss_b, grads_b) = loss_and_grads(&chunked, &input, loss_of);
            assert!(
                (loss_a - loss_b).abs() < 1e-6,
                "{backbone:?}: loss {loss_a} vs {loss_b}"
            );
            let mut compare = Compare {
                a: &grads_a,
                b: &grads_b,
                max_diff: 0.0,
                max_grad: 0.0,
                compared: 0,
            };
            whole.visit(&mut compare);
            assert_eq!(compare.compared, grads_a.len(), "{backbone:?}");
            assert_eq!(grads_a.len(), grads_b.len(), "{backbone:?}");
            assert!(compare.max_grad > 0.0, "{backbone:?}: all gradients zero");
            assert!(
                compare.max_diff <= 1e-5 * compare.max_grad.max(1.0),
                "{backbone:?}: gradients differ by {} (largest {})",
                compare.max_diff,
                compare.max_grad
            );
            // And the frozen forward pass matches too.
            let inner = to_inner(&input);
            whole
                .valid()
                .forward(&inner)
                .into_data()
                .assert_approx_eq::<f32>(
                    &chunked.valid().forward(&inner).into_data(),
                    burn::tensor::Tolerance::absolute(1e-6),
                );
        }
    }
}
