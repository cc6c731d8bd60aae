//! The whole classifier: one branch per modality the run reads, and how their outputs become
//! win/lose logits.
//!
//! With one branch, the branch's own head classifies its vector (a keypoint-only model is the
//! keypoint classifier, unchanged). With several, the branch vectors are concatenated, each
//! multiplied by the video's presence flag for that branch, followed by the flags themselves,
//! and an MLP classifies the lot: a video whose image vectors are missing (`data.
//! missing_modality: mask`) reaches the head as "no image", not as an image that happens to be
//! zero.

use burn::nn::{Dropout, DropoutConfig, Gelu, Linear, LinearConfig};
use burn::prelude::*;

use super::classifier::{Materialize, NUM_CLASSES};
use super::image::{ImageBatch, ImageBranch, ImageBranchConfig};
use super::text::{TextBatch, TextBranch, TextBranchConfig};
use super::{KeypointBatch, KeypointModel, KeypointModelConfig};

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
    pub activation: Gelu,
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
            keypoints: self.keypoints.as_ref().map(|c| KeypointModel::new(c, device)),
            image: self.image.as_ref().map(|c| c.init(device)),
            text: self.text.as_ref().map(|c| c.init(device)),
            fusion: (branches > 1).then(|| FusionHead {
                dropout: DropoutConfig::new(self.dropout).init(),
                hidden: LinearConfig::new(branches * (self.dim + 1), self.dim).init(device),
                activation: Gelu::new(),
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
            vectors.push(i.embed(batch.image.as_ref().expect("image vectors for the image branch")));
        }
        if let Some(t) = &self.text {
            vectors.push(t.embed(batch.text.as_ref().expect("text vectors for the text branch")));
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
        let x = fusion.dropout.forward(Tensor::cat(parts, 1));
        fusion
            .out
            .forward(fusion.activation.forward(fusion.hidden.forward(x)))
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}
