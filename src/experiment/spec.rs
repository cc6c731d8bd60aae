//! The experiment file: defaults, a grid of dotted-path overrides, and seeds.
//!
//! Parsing is strict: an unknown key, a wrong type, an empty grid or a grid key that names no
//! setting is an error that names the file, the line and the key's path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::ingest::BadInput;

/// Every setting that can change a result. Serialised canonically, it is part of a run's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `current`, `@N`, or a snapshot id: which data the runs read.
    pub snapshot: String,
    /// A protocol from `xp sql "SELECT DISTINCT protocol FROM protocols"`.
    pub protocol: String,
    /// Share of the training subjects held out for early stopping (never the test split).
    pub val_fraction: f64,
    /// Train and evaluate without the protocol videos that lack an input the run reads. Off:
    /// such videos are an error that lists them, so a test set never shrinks unnoticed.
    pub allow_missing: bool,
    /// What a multimodal run does with a video that lacks some (not all) of its modalities:
    /// `error` lists them; `mask` keeps the video and tells the fusion head which branches are
    /// absent (a presence flag per branch is one of its inputs).
    pub missing_modality: MissingModality,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingModality {
    Error,
    Mask,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            snapshot: "current".into(),
            protocol: "imigue-emotion".into(),
            val_fraction: 0.2,
            allow_missing: false,
            missing_modality: MissingModality::Error,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// OpenPose keypoint sequences (`keypoints`), through the frame backbone.
    Keypoints,
    /// Per-frame image embeddings (`embeddings`), through their own sequence encoder.
    Image,
    /// Transcript embeddings (`text_embeddings`), attention-pooled, through an MLP.
    Text,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Keypoints, Modality::Image, Modality::Text];

    pub fn name(self) -> &'static str {
        match self {
            Modality::Keypoints => "keypoints",
            Modality::Image => "image",
            Modality::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The branches of the model: any non-empty subset of keypoints, image, text. One branch
    /// is classified by its own head; several are concatenated and classified by an MLP.
    pub modalities: Vec<Modality>,
    pub keypoints: KeypointConfig,
    pub image: ImageConfig,
    pub text: TextConfig,
    pub sequence: SequenceConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            modalities: vec![Modality::Keypoints],
            keypoints: KeypointConfig::default(),
            image: ImageConfig::default(),
            text: TextConfig::default(),
            sequence: SequenceConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// The `model` column of `embeddings` whose vectors the image branch reads.
    pub embedding: String,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            embedding: "dinov2-base".into(),
        }
    }
}

/// Whose words the text branch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speakers {
    /// The whole transcript: its one vector when stored, else every segment's vector.
    All,
    /// Only the segments whose `transcripts.speaker` is `interviewee` (needs per-segment
    /// vectors).
    Interviewee,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// The `model` column of `text_embeddings` whose vectors the text branch reads.
    pub embedding: String,
    pub speakers: Speakers,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            embedding: "bert-base-uncased".into(),
            speakers: Speakers::All,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneName {
    Mlp,
    Gcn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Body,
    Face,
    Hands,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every k-th frame, k = ceil(len / max_frames), from the first frame.
    Uniform,
    /// max_frames equal segments; the middle frame of each.
    Segment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeypointConfig {
    pub backbone: BackboneName,
    /// Streams fed to the model; the others are zeroed.
    pub streams: Vec<StreamName>,
    /// Append inter-frame offsets (dx, dy) to every point.
    pub offsets: bool,
    /// Channels of the GCN's graph convolutions.
    pub gcn_channels: usize,
    /// Hidden width of the MLP backbone's per-stream MLPs.
    pub mlp_hidden: usize,
}

impl Default for KeypointConfig {
    fn default() -> Self {
        KeypointConfig {
            backbone: BackboneName::Mlp,
            streams: vec![StreamName::Body, StreamName::Face, StreamName::Hands],
            offsets: true,
            gcn_channels: 32,
            mlp_hidden: 128,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceConfig {
    /// Frames sampled from each video.
    pub max_frames: usize,
    pub sampling: Sampling,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    /// Frames are average-pooled to at most this many tokens before attention.
    pub max_tokens: usize,
    pub dropout: f64,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            max_frames: 512,
            sampling: Sampling::Uniform,
            dim: 64,
            layers: 1,
            heads: 4,
            max_tokens: 128,
            dropout: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossName {
    /// Plain cross-entropy.
    Ce,
    /// Cross-entropy weighted by inverse class frequency in the training set.
    WeightedCe,
}

/// Which validation number picks the epoch whose model is tested (and drives early stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    /// Lowest validation loss.
    Loss,
    /// Highest validation ROC-AUC, ties broken by the lower loss. On a validation split of a
    /// few dozen videos the loss favours an untrained, unconfident model (it never pays for a
    /// confident mistake), so an epoch-1 model that predicts one class would win; the AUC asks
    /// whether the model ranks the videos right, which is what it should have learned.
    RocAuc,
}

/// How the decision threshold (probability of Win above which a video is called Win) is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// 0.5.
    Half,
    /// The best balanced accuracy on the validation split (see `train/threshold.rs`).
    Validation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PseudoLabelConfig {
    /// Merge pseudo-labelled pool videos into the training set.
    #[serde(rename = "use")]
    pub use_: bool,
    /// Which labeler's pseudo-labels (the `labeler` column of `pseudo_labels`).
    pub labeler: Option<String>,
    /// Ignore pseudo-labels below this confidence.
    pub min_confidence: f64,
    /// Loss weight of a pseudo-labelled video relative to a gold one.
    pub weight: f64,
    /// How the pseudo-labelled videos' classes are brought to the gold training set's class
    /// ratio (see `dataset/pseudo.rs`): iMiGUE's pool videos are all Win, so merging them as
    /// they come shifts the training set towards Win.
    pub rebalance: Rebalance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rebalance {
    /// Merge every pseudo-labelled video that passes the confidence filter.
    None,
    /// Scale each class's pseudo-label weights so the two classes' pseudo-label loss mass is
    /// in the gold training ratio (same total mass).
    ClassWeight,
    /// Keep the largest subset of pseudo-labelled videos whose class counts are in the gold
    /// training ratio (a fixed, seed-independent choice).
    Subsample,
}

impl Default for PseudoLabelConfig {
    fn default() -> Self {
        PseudoLabelConfig {
            use_: false,
            labeler: None,
            min_confidence: 0.0,
            weight: 1.0,
            rebalance: Rebalance::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_epochs: usize,
    pub batch_size: usize,
    pub loss: LossName,
    /// Stop after this many epochs without a better validation score (`select_by`).
    pub patience: usize,
    /// The validation number that picks the tested epoch.
    pub select_by: SelectBy,
    /// How the decision threshold is set.
    pub threshold: ThresholdRule,
    pub pseudo_labels: PseudoLabelConfig,
    /// `joint`: the whole model from scratch. `staged` (with several modalities): each branch
    /// trained alone with its own head (the settings above), then the fused model built from
    /// those branches and fine-tuned (`stage2`).
    pub schedule: Schedule,
    pub stage2: StageTwoConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Joint,
    Staged,
}

/// The fine-tuning of a staged schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageTwoConfig {
    pub epochs: usize,
    pub lr: f64,
    /// Epochs at the start of stage 2 during which only the fusion head learns (the branches
    /// keep their stage-1 weights).
    pub freeze_epochs: usize,
}

impl Default for StageTwoConfig {
    fn default() -> Self {
        StageTwoConfig {
            epochs: 8,
            lr: 5e-4,
            freeze_epochs: 0,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            lr: 1e-3,
            weight_decay: 0.01,
            warmup_epochs: 2,
            batch_size: 8,
            loss: LossName::WeightedCe,
            patience: 6,
            select_by: SelectBy::RocAuc,
            threshold: ThresholdRule::Validation,
            pseudo_labels: PseudoLabelConfig::default(),
            schedule: Schedule::Joint,
            stage2: StageTwoConfig::default(),
        }
    }
}

/// Settings that cannot change a result: never part of a run's identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Runs trained at once, each in its own process (0 or 1 = one at a time); `xp run
    /// --jobs` overrides it.
    pub jobs: usize,
}

/// The experiment file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    data: DataConfig,
    #[serde(default)]
    model: ModelConfig,
    #[serde(default)]
    train: TrainConfig,
    #[serde(default)]
    runtime: RuntimeConfig,
    /// When the store holds no videos, create it with the synthetic demo dataset first.
    #[serde(default)]
    demo_if_empty: bool,
    seeds: Vec<u64>,
    #[serde(default)]
    grid: Option<Grid>,
}

/// The grid: one product of settings, or a list of products whose variants are all run
/// (e.g. pseudo-labels off once, and on at several thresholds).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Grid {
    One(BTreeMap<String, Vec<Value>>),
    Many(Vec<BTreeMap<String, Vec<Value>>>),
}

/// One resolved run of an experiment.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// e.g. `backbone=mlp,pseudo_labels.use=false`: the grid values that define the variant.
    pub variant: String,
    pub seed: u64,
    pub config: RunConfig,
}

/// A parsed experiment: its runs in a stable order (grid order, then seeds).
#[derive(Debug)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub runtime: RuntimeConfig,
    pub demo_if_empty: bool,
    pub runs: Vec<PlannedRun>,
}

fn yaml_error(path: &Path, err: serde_yaml::Error) -> BadInput {
    let line = err.location().map(|l| l.line() as u64);
    let mut e = BadInput::new(path, err.to_string());
    e.line = line;
    e
}

/// Sets `value` at a dotted path inside a YAML mapping; errors if the path does not exist in
/// `reference` (the fully defaulted config), so a misspelt grid key is caught.
fn set_path(target: &mut Value, reference: &Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = target;
    let mut reference = reference;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let key = Value::String((*part).to_string());
        reference = reference
            .get(part)
            .ok_or_else(|| format!("`{path}` is not a setting (no `{}`)", parts[..=i].join(".")))?;
        if !node.is_mapping() {
            *node = Value::Mapping(Default::default());
        }
        let map = node.as_mapping_mut().expect("made a mapping above");
        if i == parts.len() - 1 {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert(Value::Mapping(Default::default()));
    }
    Ok(())
}

/// The last part of a dotted path names the setting, unless it is a generic word like `use`:
/// then its parent does (`pseudo_labels=true`).
fn short_key(key: &str) -> &str {
    let mut parts = key.rsplit('.');
    let last = parts.next().unwrap_or(key);
    match (last, parts.next()) {
        ("use" | "enabled", Some(parent)) => parent,
        _ => last,
    }
}

/// The value at a dotted path of a config (null if absent).
fn get_path<'a>(config: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(config, |node, part| node.get(part))
        .unwrap_or(&Value::Null)
}

fn short_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // `[keypoints, image]` -> `keypoints+image`: one word in a variant's name.
        Value::Sequence(items) => items.iter().map(short_value).collect::<Vec<_>>().join("+"),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Reads and resolves an experiment file. `overrides` are `key=value` pairs from `--set`.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    let mut file: ExperimentFile = serde_yaml::from_str(&text).map_err(|e| yaml_error(path, e))?;
    // `--set seeds=[...]` replaces the seeds; every other key is a setting of the runs.
    let mut overrides: Vec<&String> = overrides.iter().collect();
    if let Some(i) = overrides.iter().position(|o| o.starts_with("seeds=")) {
        let text = &overrides[i]["seeds=".len()..];
        file.seeds = serde_yaml::from_str(text)
            .map_err(|e| anyhow!("--set seeds={text}: expected a list of integers ({e})"))?;
        overrides.remove(i);
    }
    if file.seeds.is_empty() {
        return Err(
            BadInput::new(path, "`seeds` is empty: give at least one seed")
                .field("seeds")
                .into(),
        );
    }
    // The fully defaulted config as YAML: grid keys and --set keys must exist in it.
    let mut base = serde_yaml::to_value(RunConfig {
        data: file.data,
        model: file.model,
        train: file.train,
    })?;
    let reference = base.clone();
    let mut blocks = match file.grid {
        None => vec![BTreeMap::new()],
        Some(Grid::One(g)) => vec![g],
        Some(Grid::Many(list)) if list.is_empty() => {
            return Err(BadInput::new(path, "`grid` is an empty list")
                .field("grid")
                .into());
        }
        Some(Grid::Many(list)) => list,
    };
    for o in overrides {
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {o}: expected KEY=VALUE, e.g. train.epochs=5"))?;
        // A --set of a grid key fixes it: the grid no longer varies it.
        for grid in &mut blocks {
            grid.remove(key);
        }
        let value: Value = serde_yaml::from_str(value)
            .with_context(|| format!("--set {o}: the value is not YAML"))?;
        set_path(&mut base, &reference, key, value).map_err(|m| anyhow!("--set {o}: {m}"))?;
    }

    let line_of = |key: &str| {
        text.lines()
            .position(|l| {
                let l = l
                    .trim_start()
                    .trim_start_matches("- ")
                    .trim_start_matches('{')
                    .trim_start();
                l.starts_with(&format!("{key}:"))
            })
            .map(|i| i as u64 + 1)
    };
    for grid in &blocks {
        for (key, values) in grid {
            let mut err = None;
            if values.is_empty() {
                err = Some(format!("grid key `{key}` has no values"));
            } else if let Err(m) = set_path(&mut base.clone(), &reference, key, values[0].clone()) {
                err = Some(format!("grid key {m}"));
            }
            if let Some(message) = err {
                let mut e = BadInput::new(path, message).field(format!("grid.{key}"));
                e.line = line_of(key);
                return Err(e.into());
            }
        }
    }
    // Every variant is named by all the keys any grid block varies, with its own value of
    // each: so two variants from different blocks that differ in one setting differ in one
    // word of their names (which is how the leaderboard pairs them).
    let all_keys: std::collections::BTreeSet<&String> =
        blocks.iter().flat_map(|g| g.keys()).collect();
    let mut variants: Vec<(Vec<String>, Value)> = Vec::new();
    for grid in &blocks {
        // Cartesian product of the block, in key order then value order.
        let mut configs: Vec<Value> = vec![base.clone()];
        for (key, values) in grid {
            let mut next = Vec::new();
            for config in &configs {
                for v in values {
                    let mut c = config.clone();
                    set_path(&mut c, &reference, key, v.clone()).expect("checked above");
                    next.push(c);
                }
            }
            configs = next;
        }
        for config in configs {
            let labels: Vec<String> = all_keys
                .iter()
                .map(|key| format!("{}={}", short_key(key), short_value(get_path(&config, key))))
                .collect();
            // Blocks may overlap: a variant runs once.
            if !variants.iter().any(|(l, _)| *l == labels) {
                variants.push((labels, config));
            }
        }
    }
    let mut runs = Vec::new();
    for (labels, value) in variants {
        let variant = if labels.is_empty() {
            "default".to_string()
        } else {
            labels.join(",")
        };
        let config: RunConfig = serde_yaml::from_value(value)
            .map_err(|e| BadInput::new(path, format!("variant {variant}: {e}")))?;
        validate(&config).map_err(|m| BadInput::new(path, format!("variant {variant}: {m}")))?;
        for &seed in &file.seeds {
            runs.push(PlannedRun {
                variant: variant.clone(),
                seed,
                config: config.clone(),
            });
        }
    }
    if crate::protocol::by_name(&runs[0].config.data.protocol).is_none() {
        bail!(
            BadInput::new(
                path,
                format!("unknown protocol `{}`", runs[0].config.data.protocol)
            )
            .field("data.protocol")
        );
    }
    Ok(Experiment {
        name: file.name,
        description: file.description,
        path: path.to_path_buf(),
        runtime: file.runtime,
        demo_if_empty: file.demo_if_empty,
        runs,
    })
}

/// Checks the values that types alone cannot.
fn validate(c: &RunConfig) -> Result<(), String> {
    let s = &c.model.sequence;
    let t = &c.train;
    let p = &t.pseudo_labels;
    let m = &c.model.modalities;
    let distinct: std::collections::BTreeSet<&str> = m.iter().map(|x| x.name()).collect();
    let checks: [(bool, &str); 17] = [
        (
            t.stage2.epochs >= 1,
            "train.stage2.epochs must be at least 1",
        ),
        (
            t.stage2.lr > 0.0 && t.stage2.lr.is_finite(),
            "train.stage2.lr must be positive",
        ),
        (
            !m.is_empty(),
            "model.modalities is empty: name at least one of keypoints, image, text",
        ),
        (
            distinct.len() == m.len(),
            "model.modalities names a modality twice",
        ),
        (
            c.data.missing_modality == MissingModality::Error || m.len() >= 2,
            "data.missing_modality: mask needs at least two modalities (a video with none of \
             the run's inputs has nothing to classify; data.allow_missing leaves such videos out)",
        ),
        (
            s.max_frames >= 2,
            "model.sequence.max_frames must be at least 2",
        ),
        (s.dim >= 4, "model.sequence.dim must be at least 4"),
        (
            s.heads >= 1 && s.dim.is_multiple_of(s.heads) && s.dim.is_multiple_of(2),
            "model.sequence.dim must be even and a multiple of heads",
        ),
        (
            s.max_tokens >= 1,
            "model.sequence.max_tokens must be at least 1",
        ),
        (
            (0.0..1.0).contains(&s.dropout),
            "model.sequence.dropout must be in [0, 1)",
        ),
        (t.epochs >= 1, "train.epochs must be at least 1"),
        (t.batch_size >= 1, "train.batch_size must be at least 1"),
        (t.lr > 0.0 && t.lr.is_finite(), "train.lr must be positive"),
        (
            !c.model.keypoints.streams.is_empty(),
            "model.keypoints.streams is empty",
        ),
        (
            (0.0..0.9).contains(&c.data.val_fraction),
            "data.val_fraction must be in [0, 0.9)",
        ),
        (
            p.weight > 0.0 && p.weight.is_finite(),
            "train.pseudo_labels.weight must be positive (a pseudo-labelled video's loss weight \
             relative to a gold one)",
        ),
        (
            (0.0..=1.0).contains(&p.min_confidence),
            "train.pseudo_labels.min_confidence must be in [0, 1]",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, m)) => Err(m.to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str, overrides: &[&str]) -> Result<Experiment> {
        let dir = std::env::temp_dir().join(crate::store::fsutil::unique_name("xp-spec"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.yaml");
        std::fs::write(&path, yaml).unwrap();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let out = load(&path, &overrides);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    fn variants(e: &Experiment) -> Vec<&str> {
        let mut v: Vec<&str> = e.runs.iter().map(|r| r.variant.as_str()).collect();
        v.dedup();
        v
    }

    #[test]
    fn a_list_of_grids_runs_each_and_names_every_setting() {
        let e = parse(
            "name: t\nseeds: [0]\ngrid:\n  - { train.pseudo_labels.use: [false] }\n  - train.pseudo_labels.use: [true]\n    train.pseudo_labels.min_confidence: [0.0, 0.8]\n",
            &[],
        )
        .unwrap();
        // Off once, on twice; each name gives both settings (off at the default threshold),
        // so "off" and "on at 0.0" differ in one word.
        assert_eq!(
            variants(&e),
            [
                "min_confidence=0.0,pseudo_labels=false",
                "min_confidence=0.0,pseudo_labels=true",
                "min_confidence=0.8,pseudo_labels=true",
            ]
        );
        assert!(!e.runs[0].config.train.pseudo_labels.use_);
        assert_eq!(e.runs[2].config.train.pseudo_labels.min_confidence, 0.8);
        // Overlapping blocks run a variant once.
        let e = parse(
            "name: t\nseeds: [0, 1]\ngrid:\n  - { train.epochs: [1, 2] }\n  - { train.epochs: [2, 3] }\n",
            &[],
        )
        .unwrap();
        assert_eq!(variants(&e), ["epochs=1", "epochs=2", "epochs=3"]);
        assert_eq!(e.runs.len(), 6);
    }

    #[test]
    fn modalities_vary_like_any_setting_and_are_checked() {
        let e = parse(
            "name: t\nseeds: [0]\ngrid:\n  model.modalities: [[keypoints], [image, text]]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            variants(&e),
            ["modalities=keypoints", "modalities=image+text"]
        );
        assert_eq!(
            e.runs[1].config.model.modalities,
            [Modality::Image, Modality::Text]
        );
        for (set, message) in [
            ("model.modalities=[]", "model.modalities is empty"),
            ("model.modalities=[text, text]", "names a modality twice"),
            ("model.modalities=[sound]", "unknown variant `sound`"),
            (
                "data.missing_modality=mask",
                "needs at least two modalities",
            ),
        ] {
            let err = parse("name: t\nseeds: [0]\n", &[set]).unwrap_err();
            assert!(format!("{err:#}").contains(message), "{set}: {err:#}");
        }
    }
}
