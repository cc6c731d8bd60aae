//! A Hugging Face model folder on disk: `config.json`, `model.safetensors` and the processor
//! files. xp never downloads weights: a folder that lacks a file is an error naming the file
//! and the model id to fetch it from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;

use crate::ingest::safetensors_file::{SafetensorsFile, TensorInfo};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";

/// An opened model folder: its config and its weights file's header (tensors are read on
/// demand, each once).
pub struct ModelFolder {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    weights: SafetensorsFile,
    by_name: BTreeMap<String, TensorInfo>,
    /// blake3 of the weights file: part of every vector's provenance.
    pub weights_hash: String,
}

/// A hint where a model's files come from, by the architecture the caller expects.
pub fn model_id_hint(architecture: &str) -> &'static str {
    match architecture {
        "roberta" => "roberta-base",
        "dinov2" => {
            "facebook/dinov2-base (or -small, -large, -giant, and facebook/dinov2-with-registers-*)"
        }
        _ => "bert-base-uncased",
    }
}

/// The path of a file the folder must have, or an error naming it.
pub fn required(dir: &Path, file: &str, architecture: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    if !path.is_file() {
        bail!(
            "{} has no {file}: xp reads models from disk and never downloads them; get the \
             folder of the Hugging Face model {} (e.g. `huggingface-cli download <id> --local-dir \
             {}`) and point --model at it",
            dir.display(),
            model_id_hint(architecture),
            dir.display()
        );
    }
    Ok(path)
}

impl ModelFolder {
    /// Opens `dir`, checking that its config declares one of the `architectures` as its
    /// `model_type` (the first names the model to get, when a file is missing).
    pub fn open(dir: &Path, architectures: &[&str]) -> Result<ModelFolder> {
        let architecture = architectures[0];
        let config_path = required(dir, CONFIG, architecture)?;
        let weights_path = required(dir, WEIGHTS, architecture)?;
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&config_path)
                .with_context(|| format!("cannot read {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", config_path.display()))?;
        let model_type = config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("(none)");
        if !architectures.contains(&model_type) {
            bail!(
                "{}: model_type is `{model_type}`, but this reads `{}` models",
                config_path.display(),
                architectures.join("` or `")
            );
        }
        let weights = SafetensorsFile::open(&weights_path)?;
        let by_name = weights
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        let weights_hash = hash_file(&weights_path)?;
        Ok(ModelFolder {
            dir: dir.to_path_buf(),
            config,
            weights,
            by_name,
            weights_hash,
        })
    }

    /// A number from the config, or `default` when absent.
    pub fn number(&self, key: &str, default: Option<f64>) -> Result<f64> {
        match self.config.get(key) {
            Some(v) => v.as_f64().with_context(|| {
                format!(
                    "{}: `{key}` is not a number",
                    self.dir.join(CONFIG).display()
                )
            }),
            None => default.with_context(|| {
                format!("{}: `{key}` is missing", self.dir.join(CONFIG).display())
            }),
        }
    }

    pub fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        let v = self.number(key, default.map(|d| d as f64))?;
        if v < 0.0 || v.fract() != 0.0 {
            bail!(
                "{}: `{key}` is {v}, not a whole number",
                self.dir.join(CONFIG).display()
            );
        }
        Ok(v as usize)
    }

    pub fn flag(&self, key: &str, default: bool) -> bool {
        self.config
            .get(key)
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.config
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    }

    /// The first of `names` the weights hold (checkpoints name some tensors in more than one
    /// way), or None.
    pub fn find(&self, names: &[String]) -> Option<&TensorInfo> {
        names.iter().find_map(|n| self.by_name.get(n))
    }

    /// A tensor of the given shape, read as f32, under the first of `names` the file has.
    pub fn tensor<B: Backend, const D: usize>(
        &mut self,
        names: &[String],
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let Some(info) = self.find(names).cloned() else {
            bail!(
                "{} has no tensor `{}`{}: the weights do not belong to this config's architecture",
                self.dir.join(WEIGHTS).display(),
                names[0],
                if names.len() > 1 {
                    format!(" (nor {})", names[1..].join(", "))
                } else {
                    String::new()
                }
            );
        };
        if info.shape != shape {
            bail!(
                "{}: tensor `{}` has shape {:?}, but {} says {:?}",
                self.dir.join(WEIGHTS).display(),
                info.name,
                info.shape,
                CONFIG,
                shape
            );
        }
        let values = self.weights.read_f32_all(&info)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    hasher
        .update_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}
