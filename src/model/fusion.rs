//! The whole classifier: one branch per modality the run reads, and how their outputs become
//! win/lose logits.
//!
//! With one branch, the branch's own head classifies its vector (a keypoint-only model is the
//! keypoint classifier, unchanged). With several, the branch vectors are concatenated, each
//! multiplied by the video's presence flag for that branch, followed by the flags themselves,
//! and an MLP classifies the lot: a video whose image vectors are missing (`data.
//! missing_modality: mask`) reaches the head as "no image", not as an image that happens to be
//! zero.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::classifier::{Materialize, NUM_CLASSES};
use super::dropout::dropout;
use super::image::{ImageBatch, ImageBranch, ImageBranchConfig};
use super::text::{TextBatch, TextBranch, TextBranchConfig};
use super::{KeypointBatch, KeypointModel, KeypointModelConfig, gelu};

/// The inputs of one batch; a part is present exactly when the model has that branch.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    pub keypoints: Option<KeypointBatch<B>>,
    pub image: Option<ImageBatch<B>>,
    pub text: Option<TextBatch<B>>,
    /// `[B, branches]`: 1 where the video has the branch's input, in branch order (keypoints,
    /// image, text, each if used).
    pub present: Tensor<B, 2>,
}

impl<B: Backend> Batch<B> {
    /// A batch for a keypoint-only model.
    pub fn keypoints_only(keypoints: KeypointBatch<B>) -> Self {
        let [b, _] = keypoints.mask.dims();
        let present = Tensor::ones([b, 1], &keypoints.mask.device());
        Batch {
            keypoints: Some(keypoints),
            image: None,
            text: None,
            present,
        }
    }
}

/// Sizes of the classifier: a config per branch it has.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    pub keypoints: Option<KeypointModelConfig>,
    pub image: Option<ImageBranchConfig>,
    pub text: Option<TextBranchConfig>,
    /// Width of every branch's vector and of the fusion MLP's hidden layer.
    pub dim: usize,
    pub dropout: f64,
}

/// Concatenated branch vectors and presence flags -> logits.
#[derive(Module, Debug)]
pub struct FusionHead<B: Backend> {
    pub dropout: Dropout,
    pub hidden: Linear<B>,
    pub out: Linear<B>,
}

#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    pub keypoints: Option<KeypointModel<B>>,
    pub image: Option<ImageBranch<B>>,
    pub text: Option<TextBranch<B>>,
    /// Present when there are two branches or more.
    pub fusion: Option<FusionHead<B>>,
}

impl ClassifierConfig {
    pub fn branches(&self) -> usize {
        usize::from(self.keypoints.is_some())
            + usize::from(self.image.is_some())
            + usize::from(self.text.is_some())
    }

    /// Builds the model, branch by branch in the order keypoints, image, text, fusion, with
    /// every weight drawn now (so the weights depend on the seed alone).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Classifier<B> {
        let branches = self.branches();
        assert!(branches > 0, "a classifier needs at least one branch");
        let model = Classifier {
            keypoints: self
                .keypoints
                .as_ref()
                .map(|c| KeypointModel::new(c, device)),
            image: self.image.as_ref().map(|c| c.init(device)),
            text: self.text.as_ref().map(|c| c.init(device)),
            fusion: (branches > 1).then(|| FusionHead {
                dropout: DropoutConfig::new(self.dropout).init(),
                hidden: LinearConfig::new(branches * (self.dim + 1), self.dim).init(device),
                out: LinearConfig::new(self.dim, NUM_CLASSES).init(device),
            }),
        };
        model.visit(&mut Materialize);
        model
    }
}

impl<B: Backend> Classifier<B> {
    /// A keypoint-only classifier around an existing keypoint model.
    pub fn keypoints_only(model: KeypointModel<B>) -> Self {
        Classifier {
            keypoints: Some(model),
            image: None,
            text: None,
            fusion: None,
        }
    }

    /// Logits `[B, 2]` (class 0 = lose, 1 = win).
    pub fn forward(&self, batch: &Batch<B>) -> Tensor<B, 2> {
        let tokens = self.keypoints.as_ref().map(|k| {
            k.tokens(
                batch
                    .keypoints
                    .as_ref()
                    .expect("a keypoint model needs keypoints"),
            )
        });
        self.forward_with_tokens(batch, tokens)
    }

    /// Logits from the keypoint branch's pooled tokens (as `KeypointModel::tokens` makes them,
    /// possibly computed elsewhere: see `train::checkpoint`) and the batch's other inputs.
    pub fn forward_with_tokens(
        &self,
        batch: &Batch<B>,
        keypoint_tokens: Option<(Tensor<B, 3>, Tensor<B, 2>)>,
    ) -> Tensor<B, 2> {
        let mut vectors = Vec::new();
        if let Some(k) = &self.keypoints {
            let (tokens, mask) = keypoint_tokens.expect("keypoint tokens for the keypoint branch");
            vectors.push(k.embed(tokens, mask));
        }
        if let Some(i) = &self.image {
            vectors.push(
                i.embed(
                    batch
                        .image
                        .as_ref()
                        .expect("image vectors for the image branch"),
                ),
            );
        }
        if let Some(t) = &self.text {
            vectors.push(
                t.embed(
                    batch
                        .text
                        .as_ref()
                        .expect("text vectors for the text branch"),
                ),
            );
        }
        let Some(fusion) = &self.fusion else {
            let v = vectors.pop().expect("one branch");
            return match (&self.keypoints, &self.image, &self.text) {
                (Some(k), _, _) => k.head_logits(v),
                (_, Some(i), _) => i.head_logits(v),
                (_, _, Some(t)) => t.head_logits(v),
                _ => unreachable!("a classifier has a branch"),
            };
        };
        let [b, k] = batch.present.dims();
        assert_eq!(k, vectors.len(), "one presence flag per branch");
        let mut parts: Vec<Tensor<B, 2>> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| v * batch.present.clone().slice([0..b, i..i + 1]))
            .collect();
        parts.push(batch.present.clone());
        let x = dropout(fusion.dropout.prob, Tensor::cat(parts, 1));
        fusion.out.forward(gelu(fusion.hidden.forward(x)))
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Backbone;
    use crate::model::classifier::FrameBackbone;
    use crate::model::test_util::{TestBackend, fused_batch, rng_lock, small_classifier, to_inner};
    use burn::module::AutodiffModule;

    type B = TestBackend;

    /// The batch narrowed to the branches a model has (its presence columns too).
    fn narrow(batch: &Batch<B>, kp: bool, image: bool, text: bool) -> Batch<B> {
        let [b, _] = batch.present.dims();
        let columns: Vec<usize> = [kp, image, text]
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| i)
            .collect();
        let present = Tensor::cat(
            columns
                .iter()
                .map(|&i| batch.present.clone().slice([0..b, i..i + 1]))
                .collect(),
            1,
        );
        Batch {
            keypoints: kp.then(|| batch.keypoints.clone().unwrap()),
            image: image.then(|| batch.image.clone().unwrap()),
            text: text.then(|| batch.text.clone().unwrap()),
            present,
        }
    }

    #[test]
    fn every_subset_of_branches_gives_logits_and_gradients() {
        let _rng = rng_lock();
        let device = Default::default();
        let full = fused_batch::<B>(&[40, 17, 33], 40, 3, &[[1.0; 3]; 3], &device);
        for kp in [false, true] {
            for image in [false, true] {
                for text in [false, true] {
                    if !(kp || image || text) {
                        continue;
                    }
                    let name = format!("kp {kp} image {image} text {text}");
                    let config = small_classifier(kp.then_some(Backbone::Gcn), image, text);
                    let model = config.init::<B>(&device);
                    assert_eq!(model.fusion.is_some(), config.branches() > 1, "{name}");
                    let input = narrow(&full, kp, image, text);
                    let logits = model.forward(&input);
                    assert_eq!(logits.dims(), [3, 2], "{name}");
                    let grads = logits.powf_scalar(2.0).mean().backward();
                    // Every branch in use gets a gradient on its first weight.
                    let mut firsts = Vec::new();
                    if let Some(k) = &model.keypoints {
                        let first = match &k.backbone {
                            FrameBackbone::Gcn(g) => g.blocks[0].spatial.weight.val(),
                            FrameBackbone::Mlp(m) => m.streams[0].input.weight.val(),
                        };
                        firsts.push(("keypoints", first.grad(&grads)));
                    }
                    if let Some(i) = &model.image {
                        firsts.push(("image", i.project.weight.val().grad(&grads)));
                    }
                    if let Some(t) = &model.text {
                        firsts.push(("text", t.hidden.weight.val().grad(&grads)));
                    }
                    for (branch, grad) in firsts {
                        let grad = grad.unwrap_or_else(|| panic!("{name}: no {branch} gradient"));
                        assert!(
                            grad.abs().sum().into_scalar() > 0.0,
                            "{name}: zero {branch} gradient"
                        );
                    }
                    // A fused model classifies with its fusion head, not a branch head.
                    if let (Some(f), Some(i)) = (&model.fusion, &model.image) {
                        assert!(f.out.weight.val().grad(&grads).is_some(), "{name}");
                        assert!(i.head.weight.val().grad(&grads).is_none(), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_absent_input_does_not_reach_the_logits() {
        let _rng = rng_lock();
        let device = Default::default();
        let model = small_classifier(Some(Backbone::Mlp), true, true)
            .init::<B>(&device)
            .valid();
        // Video 1 has no image: whatever its placeholder vectors hold, the logits are the same.
        let present = [[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]];
        let a = to_inner(&fused_batch::<B>(&[30, 30], 30, 5, &present, &device));
        let mut b = a.clone();
        let image = b.image.as_mut().unwrap();
        let [n, v, d] = image.vectors.dims();
        let noise = Tensor::random(
            [1, v, d],
            burn::tensor::Distribution::Normal(0.0, 5.0),
            &device,
        );
        image.vectors = Tensor::cat(
            vec![image.vectors.clone().slice([0..1, 0..v, 0..d]), noise],
            0,
        );
        assert_eq!(n, 2);
        let la = model.forward(&a).into_data();
        let lb = model.forward(&b).into_data();
        la.assert_approx_eq::<f32>(&lb, burn::tensor::Tolerance::absolute(1e-6));
        // The presence flag itself is an input: flipping it changes the logits.
        let mut c = a.clone();
        c.present = Tensor::ones([2, 3], &device);
        let lc: Vec<f32> = model.forward(&c).into_data().to_vec().unwrap();
        let la: Vec<f32> = la.to_vec().unwrap();
        assert_ne!(
            la[2..],
            lc[2..],
            "the mask must be an input, not a silent zero"
        );
        assert_eq!(la[..2], lc[..2], "video 0 is unaffected");
    }

    #[test]
    fn a_keypoint_only_classifier_is_the_keypoint_model() {
        let _rng = rng_lock();
        let device = Default::default();
        B::seed(&device, 9);
        let config = small_classifier(Some(Backbone::Mlp), false, false);
        let classifier = config.init::<B>(&device);
        B::seed(&device, 9);
        let alone = KeypointModel::<B>::new(config.keypoints.as_ref().unwrap(), &device);
        let batch = fused_batch::<B>(&[20, 9], 20, 4, &[[1.0; 3]; 2], &device);
        let kp = batch.keypoints.clone().unwrap();
        let a = classifier
            .valid()
            .forward(&to_inner(&Batch::keypoints_only(kp.clone())))
            .into_data();
        let b = alone
            .valid()
            .forward(&to_inner(&Batch::keypoints_only(kp)).keypoints.unwrap())
            .into_data();
        assert_eq!(a, b, "same seed, same weights, same logits");
    }
}
