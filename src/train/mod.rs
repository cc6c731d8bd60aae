//! The training loop: weighted cross-entropy, AdamW with warm-up and cosine decay, early
//! stopping on the validation split, and the final evaluation on the protocol's test split.

pub mod checkpoint;
pub mod metrics;
pub mod padding;
pub mod schedule;
pub mod threshold;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData, activation};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::dataset::{Example, Splits, normalize::POINTS};
use crate::experiment::spec::{
    BackboneName, LossName, Modality, RunConfig, Schedule, SelectBy, ThresholdRule,
};
use crate::model::sequence::SequenceEncoderConfig;
use crate::model::{
    Backbone, Batch, Classifier, ClassifierConfig, ImageBatch, ImageBranchConfig, KeypointBatch,
    KeypointModelConfig, TextBatch, TextBranchConfig, Weights,
};
use metrics::Metrics;
use padding::Padding;

/// The CPU backend: burn-flex (gemm-based matrix products on every core, SIMD element-wise
/// ops that work in place when they can). It trained xp's models 1.6-1.8x faster than
/// burn-ndarray (BENCHMARKS.md).
pub type CpuBackend = burn::backend::Flex;

/// What one epoch did.
#[derive(Debug, Clone)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val: Metrics,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub epochs: Vec<EpochLog>,
    pub best_epoch: usize,
    /// Probability of Win above which a video is called Win (see `threshold.rs`).
    pub threshold: f32,
    pub test: Metrics,
    /// (video id, probability of win, label) per test video.
    pub predictions: Vec<(i32, f32, u8)>,
    pub params: u64,
    /// The evaluated model's parameters (the best epoch's).
    pub weights: Weights,
    /// How long the training steps took.
    pub steps: StepTimes,
}

/// Wall-clock time of a run's training steps, the first apart from the rest: on CUDA the
/// first steps include compiling and autotuning kernels (warm-up), which later steps and
/// later runs reuse. Reported, not stored: timings are not results. (On CUDA a step's clock
/// stops when its loss is read back; work it queued after that counts in the next step.)
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    /// Seconds of the first step.
    pub first: f64,
    /// Median seconds of the other steps (0 when there are none).
    pub steady: f64,
    pub count: usize,
}

impl StepTimes {
    pub fn of(seconds: &[f64]) -> Self {
        let Some((&first, rest)) = seconds.split_first() else {
            return StepTimes::default();
        };
        let mut rest = rest.to_vec();
        rest.sort_by(f64::total_cmp);
        let steady = match rest.len() {
            0 => 0.0,
            n if n % 2 == 1 => rest[n / 2],
            n => (rest[n / 2 - 1] + rest[n / 2]) / 2.0,
        };
        StepTimes {
            first,
            steady,
            count: seconds.len(),
        }
    }
}

/// Progress reporting from the loop (a progress bar, or nothing).
pub trait TrainObserver {
    fn epoch_done(&self, _log: &EpochLog, _total_epochs: usize) {}
    fn step_done(&self) {}
}

impl TrainObserver for () {}

pub fn model_config(config: &RunConfig, channels: usize) -> KeypointModelConfig {
    let seq = &config.model.sequence;
    let kp = &config.model.keypoints;
    KeypointModelConfig {
        backbone: match kp.backbone {
            BackboneName::Mlp => Backbone::Mlp,
            BackboneName::Gcn => Backbone::Gcn,
        },
        channels,
        dim: seq.dim,
        layers: seq.layers,
        heads: seq.heads,
        max_tokens: seq.max_tokens,
        max_frames: seq.max_frames,
        dropout: seq.dropout,
        gcn_channels: kp.gcn_channels,
        mlp_hidden: kp.mlp_hidden,
        ..KeypointModelConfig::default()
    }
}

/// The sequence encoder of a run's image branch (the keypoint one's sizes, its own weights).
pub fn sequence_config(config: &RunConfig) -> SequenceEncoderConfig {
    let seq = &config.model.sequence;
    SequenceEncoderConfig {
        dim: seq.dim,
        layers: seq.layers,
        heads: seq.heads,
        max_tokens: seq.max_tokens,
        max_frames: seq.max_frames,
        dropout: seq.dropout,
    }
}

/// The classifier of a run: a branch per modality it reads.
pub fn classifier_config(config: &RunConfig, splits: &Splits) -> ClassifierConfig {
    let seq = &config.model.sequence;
    let has = |m| splits.modalities.contains(&m);
    let sequence = sequence_config(config);
    ClassifierConfig {
        keypoints: has(Modality::Keypoints).then(|| model_config(config, splits.channels)),
        image: has(Modality::Image).then_some(ImageBranchConfig {
            input: splits.image_dim,
            sequence,
        }),
        text: has(Modality::Text).then_some(TextBranchConfig {
            input: splits.text_dim,
            dim: seq.dim,
            dropout: seq.dropout,
        }),
        dim: seq.dim,
        dropout: seq.dropout,
    }
}

/// Pads a batch of examples to its longest sequence (or, on CUDA, to a length bucket: see
/// [`padding`]). An input a video lacks (masked) is a placeholder of one zero frame or vector,
/// so every branch has something to pool; the presence flags tell the fusion head to ignore it
/// (and its gradients are zero).
fn batch<B: Backend>(
    examples: &[&Example],
    modalities: &[Modality],
    splits: &Splits,
    padding: Padding,
    device: &B::Device,
) -> Batch<B> {
    let n = examples.len();
    let t_max = padding.frames(examples.iter().map(|e| e.frames).max().unwrap_or(1).max(1));
    let has = |m| modalities.contains(&m);
    let keypoints = has(Modality::Keypoints).then(|| {
        let channels = splits.channels;
        let mut points = vec![0.0f32; n * t_max * POINTS * channels];
        let mut mask = vec![0.0f32; n * t_max];
        for (i, e) in examples.iter().enumerate() {
            let start = i * t_max * POINTS * channels;
            points[start..start + e.data.len()].copy_from_slice(&e.data);
            let real = if e.data.is_empty() { 1 } else { e.frames };
            mask[i * t_max..i * t_max + real].fill(1.0);
        }
        KeypointBatch {
            points: Tensor::from_data(
                TensorData::new(points, [n, t_max, POINTS, channels]),
                device,
            ),
            mask: Tensor::from_data(TensorData::new(mask, [n, t_max]), device),
        }
    });
    let image = has(Modality::Image).then(|| {
        let dim = splits.image_dim;
        let v_max = padding.items(
            examples
                .iter()
                .map(|e| e.image.as_ref().map_or(1, |i| i.vectors.len() / dim))
                .max()
                .unwrap_or(1)
                .max(1),
        );
        let mut vectors = vec![0.0f32; n * v_max * dim];
        let mut index = vec![0i64; n * t_max];
        let mut mask = vec![0.0f32; n * t_max];
        for (i, e) in examples.iter().enumerate() {
            let row = (i * v_max) as i64;
            index[i * t_max..(i + 1) * t_max].fill(row);
            match &e.image {
                Some(img) => {
                    vectors[i * v_max * dim..i * v_max * dim + img.vectors.len()]
                        .copy_from_slice(&img.vectors);
                    for (t, shown) in img.index.iter().enumerate() {
                        if let Some(k) = shown {
                            index[i * t_max + t] = row + i64::from(*k);
                            mask[i * t_max + t] = 1.0;
                        }
                    }
                }
                None => mask[i * t_max] = 1.0,
            }
        }
        ImageBatch {
            vectors: Tensor::from_data(TensorData::new(vectors, [n, v_max, dim]), device),
            index: Tensor::from_data(TensorData::new(index, [n * t_max]), device),
            mask: Tensor::from_data(TensorData::new(mask, [n, t_max]), device),
        }
    });
    let text = has(Modality::Text).then(|| {
        let dim = splits.text_dim;
        let s_max = padding.items(
            examples
                .iter()
                .map(|e| e.text.as_ref().map_or(1, |t| t.segments))
                .max()
                .unwrap_or(1)
                .max(1),
        );
        let mut vectors = vec![0.0f32; n * s_max * dim];
        let mut mask = vec![0.0f32; n * s_max];
        for (i, e) in examples.iter().enumerate() {
            let segments = e.text.as_ref().map_or(1, |t| t.segments);
            if let Some(t) = &e.text {
                vectors[i * s_max * dim..i * s_max * dim + t.vectors.len()]
                    .copy_from_slice(&t.vectors);
            }
            mask[i * s_max..i * s_max + segments].fill(1.0);
        }
        TextBatch {
            vectors: Tensor::from_data(TensorData::new(vectors, [n, s_max, dim]), device),
            mask: Tensor::from_data(TensorData::new(mask, [n, s_max]), device),
        }
    });
    let k = modalities.len();
    let present: Vec<f32> = examples
        .iter()
        .flat_map(|e| modalities.iter().map(|m| f32::from(u8::from(e.has(*m)))))
        .collect();
    Batch {
        keypoints,
        image,
        text,
        present: Tensor::from_data(TensorData::new(present, [n, k]), device),
    }
}

/// Mean of per-example weighted cross-entropy, normalised by the weights.
fn loss<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[u8],
    weights: &[f32],
    device: &B::Device,
) -> Tensor<B, 1> {
    let n = labels.len();
    let log_p = activation::log_softmax(logits, 1);
    let idx: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n, 1]),
        device,
    );
    let picked = log_p.gather(1, idx).reshape([n]);
    let w: Tensor<B, 1> = Tensor::from_data(TensorData::new(weights.to_vec(), [n]), device);
    let total: f32 = weights.iter().sum();
    picked
        .mul(w)
        .sum()
        .neg()
        .div_scalar(total.max(f32::MIN_POSITIVE))
}

/// Class weights: inverse frequency in the training set (or 1, 1 for plain cross-entropy),
/// where each example counts with its own loss weight. Counting a pseudo-labelled video (weight
/// 0.5, say) as a whole one would under-weigh its class: with the demo's 132 Win pool videos,
/// Win would get about half the loss mass Lose gets, and every model would lean to Lose.
fn class_weights(train: &[&Example], loss: LossName) -> [f32; 2] {
    if loss == LossName::Ce {
        return [1.0, 1.0];
    }
    let mass = |label: u8| -> f32 {
        let m: f32 = train
            .iter()
            .filter(|e| e.label == label)
            .map(|e| e.weight)
            .sum();
        m.max(f32::MIN_POSITIVE)
    };
    let (lose, win) = (mass(0), mass(1));
    let n = win + lose;
    [n / (2.0 * lose), n / (2.0 * win)]
}

/// Probabilities of win and the mean (class-weighted) loss over examples, without gradients.
fn predict<B: Backend>(
    model: &Classifier<B>,
    examples: &[&Example],
    modalities: &[Modality],
    splits: &Splits,
    class_w: [f32; 2],
    config: &RunConfig,
    device: &B::Device,
) -> (Vec<f32>, f64) {
    let padding = Padding::for_backend::<B>(config.model.sequence.max_frames);
    let mut probs = Vec::with_capacity(examples.len());
    let mut loss_sum = 0.0f64;
    let mut weight_sum = 0.0f64;
    for chunk in examples.chunks(config.train.batch_size) {
        let input = batch::<B>(chunk, modalities, splits, padding, device);
        let logits = model.forward(&input);
        let log_p = activation::log_softmax(logits, 1);
        let values: Vec<f32> = log_p.into_data().to_vec().expect("f32 logits");
        for (i, e) in chunk.iter().enumerate() {
            let lp = values[i * 2 + e.label as usize] as f64;
            let w = (class_w[e.label as usize] * e.weight) as f64;
            loss_sum -= lp * w;
            weight_sum += w;
            probs.push(values[i * 2 + 1].exp());
        }
    }
    (probs, loss_sum / weight_sum.max(f64::MIN_POSITIVE))
}

/// How good an epoch looks on validation, higher is better: (primary, tie-break).
type Score = (f64, f64);

fn selection_score(select_by: SelectBy, log: &EpochLog) -> Score {
    let loss = -log.val_loss;
    match select_by {
        SelectBy::Loss => (loss, 0.0),
        // A single-class validation split has no AUC: fall back to the loss alone.
        SelectBy::RocAuc if log.val.roc_auc.is_nan() => (f64::NEG_INFINITY, loss),
        SelectBy::RocAuc => (log.val.roc_auc, loss),
    }
}

/// One training phase: a whole joint run, one branch's stage 1, or stage 2.
struct Phase<'a> {
    /// The inputs the model reads, in branch order.
    modalities: &'a [Modality],
    epochs: usize,
    lr: f64,
    /// Epochs at the start during which only the fusion head learns.
    freeze_epochs: usize,
}

/// What a phase ends with: the epoch that validated best, as a trainable model (to build on)
/// and as an inference model, with its validation probabilities (which set the threshold).
struct Fitted<B: AutodiffBackend> {
    epoch: usize,
    model: Classifier<B>,
    valid: Classifier<B::InnerBackend>,
    val_probs: Vec<f32>,
    logs: Vec<EpochLog>,
    /// Seconds of each training step, in order.
    step_seconds: Vec<f64>,
}

/// Removes the gradients of every parameter it visits (a frozen branch does not move).
struct DropGradients<'a>(&'a mut GradientsParams);

impl<B: AutodiffBackend> ModuleVisitor<B> for DropGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.remove::<B::InnerBackend, D>(param.id);
    }
}

/// Trains `model` for one phase on the videos that have the phase's inputs, with early
/// stopping on validation.
#[allow(clippy::too_many_arguments)]
fn fit<B: AutodiffBackend>(
    mut model: Classifier<B>,
    phase: &Phase,
    splits: &Splits,
    config: &RunConfig,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &B::Device,
    observer: &dyn TrainObserver,
) -> Fitted<B> {
    let t = &config.train;
    let usable = |e: &&Example| phase.modalities.iter().any(|m| e.has(*m));
    let train: Vec<&Example> = splits.train.iter().filter(usable).collect();
    let val: Vec<&Example> = splits.val.iter().filter(usable).collect();
    // Without a validation split, the last epoch is the model evaluated.
    let val_set = if val.is_empty() { &train } else { &val };
    let val_labels: Vec<u8> = val_set.iter().map(|e| e.label).collect();
    let class_w = class_weights(&train, t.loss);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(t.weight_decay as f32)
        .init::<B, Classifier<B>>();
    let steps_per_epoch = train.len().div_ceil(t.batch_size);
    let total_steps = steps_per_epoch * phase.epochs;
    let warmup = steps_per_epoch * t.warmup_epochs;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut step = 0;
    let mut logs = Vec::new();
    let mut best: Option<(Score, Fitted<B>)> = None;
    let mut since_best = 0;
    let mut step_seconds = Vec::with_capacity(total_steps);
    let padding = Padding::for_backend::<B>(config.model.sequence.max_frames);
    for epoch in 1..=phase.epochs {
        order.shuffle(rng);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(t.batch_size) {
            let examples: Vec<&Example> = chunk.iter().map(|&i| train[i]).collect();
            let input = batch::<B>(&examples, phase.modalities, splits, padding, device);
            let labels: Vec<u8> = examples.iter().map(|e| e.label).collect();
            let weights: Vec<f32> = examples
                .iter()
                .map(|e| class_w[e.label as usize] * e.weight)
                .collect();
            let clock = std::time::Instant::now();
            let (value, mut grads) = checkpoint::loss_and_grads(&model, &input, |logits| {
                loss(logits, &labels, &weights, device)
            });
            if epoch <= phase.freeze_epochs {
                let mut drop = DropGradients(&mut grads);
                model.keypoints.visit(&mut drop);
                model.image.visit(&mut drop);
                model.text.visit(&mut drop);
            }
            loss_sum += value * examples.len() as f64;
            let lr = schedule::learning_rate(phase.lr, step, warmup, total_steps);
            model = optim.step(lr, model, grads);
            step_seconds.push(clock.elapsed().as_secs_f64());
            step += 1;
            observer.step_done();
        }
        let valid = model.valid();
        let (probs, val_loss) = predict(
            &valid,
            val_set,
            phase.modalities,
            splits,
            class_w,
            config,
            device,
        );
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / train.len().max(1) as f64,
            val_loss,
            val: metrics::evaluate(&val_labels, &probs, 0.5),
        };
        observer.epoch_done(&log, phase.epochs);
        let score = selection_score(t.select_by, &log);
        logs.push(log);
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            let fitted = Fitted {
                epoch,
                model: model.clone(),
                valid,
                val_probs: probs,
                logs: Vec::new(),
                step_seconds: Vec::new(),
            };
            best = Some((score, fitted));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= t.patience {
                break;
            }
        }
    }
    let (_, mut fitted) = best.expect("at least one epoch ran");
    fitted.logs = logs;
    fitted.step_seconds = step_seconds;
    fitted
}

/// The classifier of one branch alone (stage 1 of a staged schedule).
fn branch_only(full: &ClassifierConfig, modality: Modality) -> ClassifierConfig {
    ClassifierConfig {
        keypoints: full
            .keypoints
            .clone()
            .filter(|_| modality == Modality::Keypoints),
        image: full.image.clone().filter(|_| modality == Modality::Image),
        text: full.text.clone().filter(|_| modality == Modality::Text),
        ..full.clone()
    }
}

/// Training steps a run will take at most (for a progress bar).
pub fn planned_steps(config: &RunConfig, splits: &Splits) -> u64 {
    let t = &config.train;
    let n = splits
        .train
        .iter()
        .filter(|e| splits.modalities.iter().any(|m| e.has(*m)))
        .count();
    let epochs = if is_staged(config) {
        t.stage2.epochs
    } else {
        t.epochs
    };
    n.div_ceil(t.batch_size) as u64 * epochs as u64
}

/// Stage 2's starting point: the fused model with each branch taken from its stage-1 model
/// (its trained weights, its own head kept but unused), and a fresh fusion head.
fn fused_from_stage_one<B: AutodiffBackend>(
    mut fused: Classifier<B>,
    stage_one: Vec<Classifier<B>>,
) -> Classifier<B> {
    for alone in stage_one {
        if alone.keypoints.is_some() {
            fused.keypoints = alone.keypoints;
        } else if alone.image.is_some() {
            fused.image = alone.image;
        } else if alone.text.is_some() {
            fused.text = alone.text;
        }
    }
    fused
}

/// The trained branches a staged run's stage 2 starts from: each modality's stage-1 run's
/// best weights (a classifier of that branch alone, with its own head).
pub type StageOne = BTreeMap<Modality, Weights>;

/// Whether `config` trains in two stages: stage 1 (each branch alone, its own run) and stage 2
/// (the fused model, fine-tuned from the stage-1 weights). One modality has no stage 2.
pub fn is_staged(config: &RunConfig) -> bool {
    config.train.schedule == Schedule::Staged && config.model.modalities.len() > 1
}

/// Trains one run on `splits`. Deterministic on CPU for a given seed. A staged run trains only
/// its stage 2, from `stage_one` (which must hold every modality it reads); any other run
/// trains from a fresh initialisation and ignores `stage_one`.
pub fn train<B: AutodiffBackend>(
    splits: &Splits,
    config: &RunConfig,
    seed: u64,
    stage_one: &StageOne,
    device: &B::Device,
    observer: &dyn TrainObserver,
) -> Result<TrainOutcome> {
    B::seed(device, seed);
    let t = &config.train;
    let full = classifier_config(config, splits);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let whole = Phase {
        modalities: &splits.modalities,
        epochs: t.epochs,
        lr: t.lr,
        freeze_epochs: 0,
    };
    let fitted = if is_staged(config) {
        // Stage 2: the fused model from the stage-1 branches, fine-tuned.
        let mut branches = Vec::new();
        for m in &splits.modalities {
            let Some(weights) = stage_one.get(m) else {
                bail!(
                    "stage 2 needs the stage-1 weights of the {} branch, and none were given",
                    m.name()
                );
            };
            let alone = branch_only(&full, *m).init::<B>(device);
            branches.push(
                weights
                    .load_into::<B, _>(alone)
                    .with_context(|| format!("the stage-1 weights of the {} branch", m.name()))?,
            );
        }
        let fused = fused_from_stage_one(full.init::<B>(device), branches);
        let phase = Phase {
            epochs: t.stage2.epochs,
            lr: t.stage2.lr,
            freeze_epochs: t.stage2.freeze_epochs,
            ..whole
        };
        fit(fused, &phase, splits, config, &mut rng, device, observer)
    } else {
        let model = full.init::<B>(device);
        fit(model, &whole, splits, config, &mut rng, device, observer)
    };
    let params = fitted.model.num_params() as u64;
    let gold: Vec<&Example> = splits.train.iter().collect();
    let class_w = class_weights(&gold, t.loss);
    let val_labels: Vec<u8> = if splits.val.is_empty() {
        splits.train.iter().map(|e| e.label).collect()
    } else {
        splits.val.iter().map(|e| e.label).collect()
    };
    let threshold = match t.threshold {
        ThresholdRule::Half => 0.5,
        ThresholdRule::Validation => threshold::calibrate(&val_labels, &fitted.val_probs),
    };
    let test: Vec<&Example> = splits.test.iter().collect();
    let (probs, _) = predict(
        &fitted.valid,
        &test,
        &splits.modalities,
        splits,
        class_w,
        config,
        device,
    );
    let labels: Vec<u8> = splits.test.iter().map(|e| e.label).collect();
    let metrics = metrics::evaluate(&labels, &probs, threshold);
    let predictions = splits
        .test
        .iter()
        .zip(&probs)
        .map(|(e, &p)| (e.video_id, p, e.label))
        .collect();
    Ok(TrainOutcome {
        epochs: fitted.logs,
        best_epoch: fitted.epoch,
        threshold,
        test: metrics,
        predictions,
        params,
        weights: Weights::of::<B::InnerBackend, _>(&fitted.valid),
        steps: StepTimes::of(&fitted.step_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::spec::{BackboneName, RunConfig};

    type B = burn::backend::Autodiff<CpuBackend>;

    /// Videos whose label shows plainly: in Win videos the right wrist is raised.
    fn separable(n: usize, frames: usize, offset: usize) -> Vec<Example> {
        (0..n)
            .map(|i| {
                let label = (i % 2) as u8;
                let mut data = vec![0.0f32; frames * POINTS * 3];
                for t in 0..frames {
                    let wrist = (t * POINTS + 4) * 3;
                    data[wrist] = 0.5 + 0.01 * ((i + t) % 7) as f32;
                    data[wrist + 1] = if label == 1 { -1.0 } else { 1.0 };
                    data[wrist + 2] = 0.9;
                    let neck = (t * POINTS + 1) * 3;
                    data[neck + 2] = 0.9;
                }
                Example {
                    video_id: (offset + i) as i32,
                    subject_id: (i % 5) as i32,
                    label,
                    weight: 1.0,
                    pseudo: false,
                    frames,
                    data,
                    image: None,
                    text: None,
                }
            })
            .collect()
    }

    fn config(backbone: BackboneName) -> RunConfig {
        let mut c = RunConfig {
            data: Default::default(),
            model: Default::default(),
            train: Default::default(),
        };
        c.model.keypoints.backbone = backbone;
        c.model.keypoints.offsets = false;
        c.model.keypoints.gcn_channels = 8;
        c.model.keypoints.mlp_hidden = 16;
        c.model.sequence.dim = 16;
        c.model.sequence.max_tokens = 4;
        c.model.sequence.dropout = 0.0;
        c.train.epochs = 30;
        c.train.lr = 1e-2;
        c.train.patience = 30;
        c
    }

    fn epoch(val_loss: f64, roc_auc: f64) -> EpochLog {
        let mut val = metrics::evaluate(&[0, 1], &[0.2, 0.8], 0.5);
        val.roc_auc = roc_auc;
        EpochLog {
            epoch: 1,
            train_loss: 0.0,
            val_loss,
            val,
        }
    }

    #[test]
    fn selection_prefers_ranking_then_loss() {
        let s = |l, a| selection_score(SelectBy::RocAuc, &epoch(l, a));
        // A better AUC wins even at a higher loss; equal AUCs go to the lower loss.
        assert!(s(0.9, 0.8) > s(0.69, 0.5));
        assert!(s(0.6, 0.8) > s(0.7, 0.8));
        // No AUC (one class in validation): below any real AUC, ordered by loss.
        assert!(s(0.1, f64::NAN) < s(0.9, 0.1));
        assert!(s(0.1, f64::NAN) > s(0.2, f64::NAN));
        let l = |l, a| selection_score(SelectBy::Loss, &epoch(l, a));
        assert!(l(0.69, 0.5) > l(0.9, 0.8));
    }

    #[test]
    fn both_backbones_learn_a_plain_signal() {
        // The CPU backend's random generator is global to the process: hold the tests' lock.
        let _guard = crate::model::test_util::rng_lock();
        let splits = Splits {
            train: separable(24, 8, 0),
            val: separable(8, 8, 100),
            test: separable(10, 8, 200),
            channels: 3,
            modalities: vec![Modality::Keypoints],
            image_dim: 0,
            text_dim: 0,
            masked: 0,
            missing: vec![],
            pseudo_labelled: 0,
        };
        for backbone in [BackboneName::Mlp, BackboneName::Gcn] {
            let outcome = train::<B>(
                &splits,
                &config(backbone),
                0,
                &StageOne::new(),
                &Default::default(),
                &(),
            )
            .unwrap();
            assert!(
                outcome.test.accuracy >= 0.9,
                "{backbone:?} did not learn: test accuracy {}",
                outcome.test.accuracy
            );
            let first = outcome.epochs.first().unwrap().train_loss;
            let last = outcome.epochs.last().unwrap().train_loss;
            assert!(
                last < first,
                "{backbone:?}: training loss went from {first} to {last}"
            );
        }
    }

    #[test]
    fn the_kept_weights_are_the_model_that_was_evaluated() {
        let _guard = crate::model::test_util::rng_lock();
        let splits = Splits {
            train: separable(16, 8, 0),
            val: separable(6, 8, 100),
            test: separable(8, 8, 200),
            channels: 3,
            modalities: vec![Modality::Keypoints],
            image_dim: 0,
            text_dim: 0,
            masked: 0,
            missing: vec![],
            pseudo_labelled: 0,
        };
        let mut c = config(BackboneName::Mlp);
        c.train.epochs = 6;
        let device = Default::default();
        let outcome = train::<B>(&splits, &c, 0, &StageOne::new(), &device, &()).unwrap();
        assert_eq!(outcome.weights.params() as u64, outcome.params);
        // A fresh model with the kept weights gives the stored test probabilities, bit for bit.
        type Inner = <B as AutodiffBackend>::InnerBackend;
        <Inner as Backend>::seed(&device, 99);
        let fresh = classifier_config(&c, &splits).init::<Inner>(&device);
        let model = outcome.weights.load_into::<Inner, _>(fresh).unwrap();
        let test: Vec<&Example> = splits.test.iter().collect();
        let (probs, _) = predict(
            &model,
            &test,
            &splits.modalities,
            &splits,
            [1.0; 2],
            &c,
            &device,
        );
        let stored: Vec<f32> = outcome.predictions.iter().map(|p| p.1).collect();
        assert_eq!(probs, stored);

        // A staged run trains only stage 2, and refuses to start without its stage-1 weights.
        let mut staged = c.clone();
        staged.train.schedule = Schedule::Staged;
        staged.model.modalities = vec![Modality::Keypoints, Modality::Text];
        let two = Splits {
            modalities: staged.model.modalities.clone(),
            ..splits
        };
        let err = train::<B>(&two, &staged, 0, &StageOne::new(), &device, &())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stage-1 weights of the keypoints branch"),
            "{err}"
        );
    }

    /// Videos with all three inputs, where only `carrier`'s input shows the label: keypoints
    /// are noise (or the raised wrist when they carry it), image vectors are noise plus +/-1
    /// on coordinate 0 when they carry it, the transcript likewise on coordinate 3.
    fn three_modalities(n: usize, offset: usize, carrier: Modality) -> Vec<Example> {
        use crate::dataset::vectors::{ImageFrames, TextVectors};
        use crate::model::test_util::values;
        let frames = 8;
        (0..n)
            .map(|i| {
                let label = (i % 2) as u8;
                let sign = if label == 1 { 1.0 } else { -1.0 };
                let seed = (offset + i) as u64;
                let mut e = if carrier == Modality::Keypoints {
                    separable(n, frames, offset).swap_remove(i)
                } else {
                    Example {
                        data: values(frames * POINTS * 3, seed),
                        ..separable(n, frames, offset).swap_remove(i)
                    }
                };
                let mut image = values(2 * 6, 1000 + seed);
                if carrier == Modality::Image {
                    image[0] = sign;
                    image[6] = sign;
                }
                let mut text = values(5, 2000 + seed);
                if carrier == Modality::Text {
                    text[3] = sign;
                }
                e.image = Some(ImageFrames {
                    vectors: image,
                    dim: 6,
                    index: (0..frames).map(|t| Some(u32::from(t >= 4))).collect(),
                });
                e.text = Some(TextVectors {
                    vectors: text,
                    dim: 5,
                    segments: 1,
                });
                e
            })
            .collect()
    }

    #[test]
    fn a_planted_signal_is_learned_through_the_branch_that_reads_it() {
        let _guard = crate::model::test_util::rng_lock();
        let mut c = config(BackboneName::Mlp);
        c.train.epochs = 25;
        for carrier in [Modality::Image, Modality::Text] {
            let splits = |modalities: Vec<Modality>| Splits {
                train: three_modalities(32, 0, carrier),
                val: three_modalities(8, 100, carrier),
                test: three_modalities(20, 200, carrier),
                channels: 3,
                modalities,
                image_dim: 6,
                text_dim: 5,
                masked: 0,
                missing: vec![],
                pseudo_labelled: 0,
            };
            let accuracy = |modalities: Vec<Modality>| {
                train::<B>(
                    &splits(modalities),
                    &c,
                    0,
                    &StageOne::new(),
                    &Default::default(),
                    &(),
                )
                .unwrap()
                .test
                .accuracy
            };
            let others: Vec<Modality> = Modality::ALL
                .into_iter()
                .filter(|m| *m != carrier)
                .collect();
            let alone = accuracy(vec![carrier]);
            let fused = accuracy(Modality::ALL.to_vec());
            let without = accuracy(others);
            assert!(alone >= 0.9, "{carrier:?} alone: {alone}");
            assert!(fused >= 0.9, "all three, {carrier:?} carrying: {fused}");
            assert!(
                without <= 0.75,
                "the other branches learned {carrier:?}'s signal: {without}"
            );
        }
    }

    #[test]
    fn stage_two_starts_from_the_stage_one_branches() {
        use crate::model::test_util::small_classifier;
        let _guard = crate::model::test_util::rng_lock();
        let device = Default::default();
        let full = small_classifier(Some(crate::model::Backbone::Mlp), true, true);
        B::seed(&device, 1);
        let stage_one: Vec<Classifier<B>> = Modality::ALL
            .iter()
            .map(|m| branch_only(&full, *m).init(&device))
            .collect();
        assert!(stage_one.iter().all(|c| c.fusion.is_none()));
        let fresh = full.init::<B>(&device);
        let fresh_image = fresh.image.as_ref().unwrap().project.weight.val();
        let fused = fused_from_stage_one(fresh, stage_one.clone());
        let values = |t: Tensor<B, 2>| t.into_data().to_vec::<f32>().unwrap();
        let kp = |c: &Classifier<B>| values(c.keypoints.as_ref().unwrap().head.weight.val());
        let image = |c: &Classifier<B>| values(c.image.as_ref().unwrap().project.weight.val());
        let text = |c: &Classifier<B>| values(c.text.as_ref().unwrap().hidden.weight.val());
        assert_eq!(kp(&fused), kp(&stage_one[0]));
        assert_eq!(image(&fused), image(&stage_one[1]));
        assert_eq!(text(&fused), text(&stage_one[2]));
        assert_ne!(
            image(&fused),
            values(fresh_image),
            "not the fresh initialisation"
        );
        assert!(fused.fusion.is_some(), "a fusion head to fine-tune");
    }

    #[test]
    fn class_weights_balance_the_loss_mass_of_each_class() {
        // 10 gold Lose, 10 gold Win and 20 pseudo-labelled Win at weight 0.5: Win's loss mass
        // is 10 + 20 x 0.5 = 20, Lose's 10, together 30 (by hand), so Lose weighs 30 / (2 x 10)
        // = 1.5 and Win 30 / (2 x 20) = 0.75. Counting videos instead would give 2 and 0.667.
        let mut train = separable(20, 2, 0);
        for (i, e) in separable(40, 2, 100).into_iter().enumerate() {
            if i % 2 == 1 {
                train.push(Example {
                    weight: 0.5,
                    pseudo: true,
                    ..e
                });
            }
        }
        let train: Vec<&Example> = train.iter().collect();
        let [lose, win] = class_weights(&train, LossName::WeightedCe);
        assert_eq!((lose, win), (1.5, 0.75));
        // Each class then carries the same total weight.
        let total = |label: u8, w: f32| -> f32 {
            train
                .iter()
                .filter(|e| e.label == label)
                .map(|e| e.weight * w)
                .sum()
        };
        assert_eq!(total(0, lose), total(1, win));
        assert_eq!(class_weights(&train, LossName::Ce), [1.0, 1.0]);
    }

    #[test]
    fn training_is_bit_identical_for_a_seed() {
        let _guard = crate::model::test_util::rng_lock();
        let splits = Splits {
            train: separable(12, 6, 0),
            val: separable(4, 6, 100),
            test: separable(6, 6, 200),
            channels: 3,
            modalities: vec![Modality::Keypoints],
            image_dim: 0,
            text_dim: 0,
            masked: 0,
            missing: vec![],
            pseudo_labelled: 0,
        };
        let mut c = config(BackboneName::Mlp);
        c.train.epochs = 2;
        let a = train::<B>(&splits, &c, 3, &StageOne::new(), &Default::default(), &()).unwrap();
        let b = train::<B>(&splits, &c, 3, &StageOne::new(), &Default::default(), &()).unwrap();
        let bits = |o: &TrainOutcome| -> Vec<u32> {
            o.predictions.iter().map(|p| p.1.to_bits()).collect()
        };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(
            a.epochs[1].train_loss.to_bits(),
            b.epochs[1].train_loss.to_bits()
        );
    }

    /// Padding to length buckets (as on CUDA) leaves every video's logits as they are, bit
    /// for bit, on all three padded axes: frames, image vectors, transcript segments.
    #[test]
    fn bucketed_batches_give_the_same_logits() {
        let _guard = crate::model::test_util::rng_lock();
        type Inner = CpuBackend;
        let device = Default::default();
        let (image_dim, text_dim) = (4, 6);
        let examples: Vec<Example> = [37usize, 70, 5, 100, 66]
            .iter()
            .enumerate()
            .map(|(i, &frames)| {
                let mut e = separable(1, frames, i).remove(0);
                e.label = (i % 2) as u8;
                let distinct = frames / 10 + 1;
                let value = |k: usize| ((k * 7 + i) % 11) as f32 / 11.0 - 0.5;
                e.image = Some(crate::dataset::vectors::ImageFrames {
                    vectors: (0..distinct * image_dim).map(value).collect(),
                    dim: image_dim,
                    index: (0..frames)
                        .map(|t| (t >= 3).then_some((t / 10) as u32))
                        .collect(),
                });
                e.text = Some(crate::dataset::vectors::TextVectors {
                    vectors: (0..(i + 1) * text_dim).map(value).collect(),
                    dim: text_dim,
                    segments: i + 1,
                });
                e
            })
            .collect();
        let all = vec![Modality::Keypoints, Modality::Image, Modality::Text];
        let splits = Splits {
            train: examples,
            val: vec![],
            test: vec![],
            channels: 3,
            modalities: all.clone(),
            image_dim,
            text_dim,
            masked: 0,
            missing: vec![],
            pseudo_labelled: 0,
        };
        for backbone in [BackboneName::Mlp, BackboneName::Gcn] {
            let mut c = config(backbone);
            c.model.modalities = all.clone();
            c.model.sequence.max_frames = 128;
            let model = classifier_config(&c, &splits).init::<Inner>(&device);
            let videos: Vec<&Example> = splits.train.iter().collect();
            let logits = |padding: Padding| {
                let input = batch::<Inner>(&videos, &all, &splits, padding, &device);
                let frames = input.keypoints.as_ref().unwrap().points.dims()[1];
                let values: Vec<u32> = model
                    .forward(&input)
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                (frames, values)
            };
            let (longest, exact) = logits(Padding::Longest);
            let (bucketed, padded) = logits(Padding::Buckets { max_frames: 128 });
            assert_eq!((longest, bucketed), (100, 112));
            assert_eq!(exact, padded, "{backbone:?}");
        }
    }

    #[test]
    fn step_times_keep_the_first_apart_and_take_the_median_of_the_rest() {
        assert_eq!(StepTimes::of(&[]), StepTimes::default());
        let one = StepTimes::of(&[9.0]);
        assert_eq!((one.first, one.steady, one.count), (9.0, 0.0, 1));
        let odd = StepTimes::of(&[30.0, 0.2, 0.9, 0.1]);
        assert_eq!((odd.first, odd.steady, odd.count), (30.0, 0.2, 4));
        let even = StepTimes::of(&[30.0, 0.4, 0.1, 0.2, 5.0]);
        assert!((even.steady - 0.3).abs() < 1e-12);
    }
}
