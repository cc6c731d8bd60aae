//! What made a set of computed vectors: the `embedders` row `xp embed` commits with them.
//!
//! The fingerprint hashes everything that decides a vector's values from its input (the
//! architecture, the weights and config files, the preprocessing or tokenizer, the pooling and
//! the unit), so vectors of two embedders never share a name, and a re-run of the same embedder
//! recognises its own rows.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};

use crate::store::{PartRef, Stager, TableChange};

/// One `embedders` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedder {
    /// `embeddings` or `text_embeddings`.
    pub vectors: &'static str,
    pub model: String,
    pub architecture: &'static str,
    pub weights_hash: String,
    pub config_hash: String,
    pub preprocessing: String,
    pub pooling: &'static str,
    pub unit: &'static str,
    pub dim: usize,
}

/// The blake3 of a model folder's `config.json`.
pub fn config_hash(model_dir: &Path) -> Result<String> {
    let path = model_dir.join("config.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

impl Embedder {
    /// The embedder's identity: every field but the name and the vector length (which follows
    /// from the others), each length-prefixed so no two field lists hash alike.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        for field in [
            self.vectors,
            self.architecture,
            &self.weights_hash,
            &self.config_hash,
            &self.preprocessing,
            self.pooling,
            self.unit,
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    fn batch(&self) -> Result<RecordBatch> {
        let schema = crate::schema::table("embedders").schema.clone();
        let text = |s: &str| Arc::new(StringArray::from(vec![s])) as ArrayRef;
        let columns = vec![
            text(self.vectors),
            text(&self.model),
            text(self.architecture),
            text(&self.fingerprint()),
            text(&self.weights_hash),
            text(&self.config_hash),
            text(&self.preprocessing),
            text(self.pooling),
            text(self.unit),
            Arc::new(Int32Array::from(vec![self.dim as i32])) as ArrayRef,
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// Stages the row (the same bytes every time, so committing it again changes nothing).
    pub fn stage(&self, stager: &mut Stager) -> Result<PartRef> {
        let key = format!("vectors={}/model={}", self.vectors, self.model);
        stager.stage(key, &self.batch()?)
    }

    /// The change that records this embedder, for a commit that also writes its vectors.
    pub fn change(part: &PartRef) -> TableChange {
        TableChange {
            table: "embedders".into(),
            parts: vec![part.clone()],
        }
    }
}
