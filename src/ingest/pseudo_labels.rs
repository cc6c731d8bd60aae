//! `xp ingest pseudo-labels FILE.jsonl --labeler NAME`: weak labels from a labeler (a VLM with
//! chain-of-thought and reflection prompts) into `pseudo_labels`.
//!
//! One JSON object per line. A labeler's answer to a prompt about a video is a fact: the same
//! (video, labeler, prompt) again with the same answer changes nothing, with another answer it
//! is refused, so a re-run never silently overwrites the labels an experiment trained on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int32Type};
use serde_json::Value;

use super::BadInput;
use crate::store::{Snapshot, Store};

/// The keys a line may have (aliases in brackets are accepted too).
const KEYS: &str = "video_id (video), label (pseudo_label), confidence, reasoning \
    (chain_of_thought), reflection, prompt, prompt_hash, raw_response (response), labeler";

/// One labelled video.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudoLabel {
    pub video_id: i32,
    pub labeler: String,
    pub prompt_hash: String,
    pub label: String,
    pub confidence: Option<f64>,
    pub reasoning: Option<String>,
    pub reflection: Option<String>,
    pub prompt: Option<String>,
    pub raw_response: Option<String>,
    /// blake3 of the file it came from.
    pub source_hash: String,
    /// Where it came from, for errors (not stored).
    pub line: u64,
}

impl PseudoLabel {
    fn key(&self) -> (i32, String, String) {
        (
            self.video_id,
            self.labeler.clone(),
            self.prompt_hash.clone(),
        )
    }
    /// Everything the labeler said; two rows with the same key must agree on it.
    fn answer(
        &self,
    ) -> (
        &str,
        Option<u64>,
        &Option<String>,
        &Option<String>,
        &Option<String>,
    ) {
        (
            &self.label,
            self.confidence.map(f64::to_bits),
            &self.reasoning,
            &self.reflection,
            &self.raw_response,
        )
    }
}

pub fn prompt_hash(prompt: &str) -> String {
    blake3::hash(prompt.as_bytes()).to_hex().to_string()
}

/// The label in xp's spelling.
fn normalize_label(text: &str) -> Option<&'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "win" => Some("win"),
        "lose" => Some("lose"),
        _ => None,
    }
}

fn text_field(
    obj: &serde_json::Map<String, Value>,
    names: &[&str],
    err: &dyn Fn(&str, String) -> BadInput,
) -> Result<Option<String>, BadInput> {
    for name in names {
        match obj.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(other) => return Err(err(name, format!("expected text, found {other}"))),
        }
    }
    Ok(None)
}

/// Parses a JSONL file. `default_prompt` is the prompt of lines that record none.
pub fn parse(
    path: &Path,
    bytes: &[u8],
    labeler: &str,
    default_prompt: Option<&str>,
) -> Result<Vec<PseudoLabel>, BadInput> {
    let source_hash = blake3::hash(bytes).to_hex().to_string();
    let mut out: Vec<PseudoLabel> = Vec::new();
    let mut seen: BTreeMap<(i32, String, String), usize> = BTreeMap::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let err = |field: &str, msg: String| BadInput::new(path, msg).line(line).field(field);
        let text = std::str::from_utf8(raw).map_err(|e| {
            BadInput::new(
                path,
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
            )
            .line(line)
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| BadInput::new(path, format!("not a JSON object: {e}")).line(line))?;
        let Value::Object(obj) = value else {
            return Err(BadInput::new(path, "each line must be one JSON object").line(line));
        };
        const KNOWN: &[&str] = &[
            "video_id",
            "video",
            "label",
            "pseudo_label",
            "confidence",
            "reasoning",
            "chain_of_thought",
            "reflection",
            "prompt",
            "prompt_hash",
            "raw_response",
            "response",
            "labeler",
        ];
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(err(unknown, format!("unknown key; a line may have {KEYS}")));
        }
        let video_id = match obj.get("video_id").or_else(|| obj.get("video")) {
            Some(Value::Number(n)) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|&v| v > 0)
        .ok_or_else(|| err("video_id", "missing, or not a positive integer".into()))?;
        let label_text = text_field(&obj, &["label", "pseudo_label"], &err)?
            .ok_or_else(|| err("label", "missing (expected win or lose)".into()))?;
        let label = normalize_label(&label_text).ok_or_else(|| {
            err(
                "label",
                format!("unknown label `{label_text}`: expected win or lose"),
            )
        })?;
        let confidence = match obj.get("confidence") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => {
                let c = n.as_f64().unwrap_or(f64::NAN);
                if !(0.0..=1.0).contains(&c) {
                    return Err(err("confidence", format!("{c} is outside [0, 1]")));
                }
                Some(c)
            }
            Some(other) => {
                return Err(err(
                    "confidence",
                    format!("expected a number, found {other}"),
                ));
            }
        };
        if let Some(given) = text_field(&obj, &["labeler"], &err)?
            && given != labeler
        {
            return Err(err(
                "labeler",
                format!("`{given}`, but --labeler is `{labeler}` (one labeler per file)"),
            ));
        }
        let prompt = text_field(&obj, &["prompt"], &err)?.or(default_prompt.map(str::to_string));
        let hash = match (&prompt, text_field(&obj, &["prompt_hash"], &err)?) {
            (Some(p), Some(given)) if given != prompt_hash(p) => {
                return Err(err(
                    "prompt_hash",
                    format!(
                        "`{given}` is not the blake3 of the line's prompt ({})",
                        prompt_hash(p)
                    ),
                ));
            }
            (Some(p), _) => prompt_hash(p),
            (None, Some(given)) => {
                let given = given.to_ascii_lowercase();
                if given.len() != 64 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(
                        "prompt_hash",
                        format!("`{given}` is not a blake3 hash (64 hex digits)"),
                    ));
                }
                given
            }
            (None, None) => prompt_hash(""),
        };
        let row = PseudoLabel {
            video_id,
            labeler: labeler.to_string(),
            prompt_hash: hash,
            label: label.to_string(),
            confidence,
            reasoning: text_field(&obj, &["reasoning", "chain_of_thought"], &err)?,
            reflection: text_field(&obj, &["reflection"], &err)?,
            prompt,
            raw_response: text_field(&obj, &["raw_response", "response"], &err)?,
            source_hash: source_hash.clone(),
            line,
        };
        match seen.get(&row.key()) {
            Some(&j) if out[j].answer() == row.answer() => {}
            Some(&j) => {
                return Err(BadInput::new(
                    path,
                    format!(
                        "video {video_id} is labelled again with a different answer (first at \
                         line {}: {}); one labeler gives one answer per video and prompt",
                        out[j].line, out[j].label
                    ),
                )
                .line(line));
            }
            None => {
                seen.insert(row.key(), out.len());
                out.push(row);
            }
        }
    }
    if out.is_empty() {
        return Err(BadInput::new(
            path,
            "no pseudo-labels in the file (expected one JSON object per line)",
        ));
    }
    Ok(out)
}

/// The stored pseudo-labels of a snapshot.
pub fn stored(store: &Store, snapshot: &Snapshot) -> Result<Vec<PseudoLabel>> {
    let mut out = Vec::new();
    for b in store.read_rows(snapshot, "pseudo_labels")? {
        let s = |name: &str| {
            b.column_by_name(name)
                .expect("schema column")
                .as_string::<i32>()
                .clone()
        };
        let video = b
            .column_by_name("video_id")
            .expect("column")
            .as_primitive::<Int32Type>()
            .clone();
        let conf = b
            .column_by_name("confidence")
            .expect("column")
            .as_primitive::<Float64Type>()
            .clone();
        let (labeler, hash, label) = (s("labeler"), s("prompt_hash"), s("label"));
        let (reasoning, reflection, prompt, raw) = (
            s("reasoning"),
            s("reflection"),
            s("prompt"),
            s("raw_response"),
        );
        let source = s("source_hash");
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            out.push(PseudoLabel {
                video_id: video.value(i),
                labeler: labeler.value(i).to_string(),
                prompt_hash: hash.value(i).to_string(),
                label: label.value(i).to_string(),
                confidence: (!conf.is_null(i)).then(|| conf.value(i)),
                reasoning: opt(&reasoning, i),
                reflection: opt(&reflection, i),
                prompt: opt(&prompt, i),
                raw_response: opt(&raw, i),
                source_hash: source.value(i).to_string(),
                line: 0,
            });
        }
    }
    Ok(out)
}

/// The table after adding `new` to `old`: refuses a new answer to an answered question.
pub fn merge(
    path: &Path,
    old: Vec<PseudoLabel>,
    new: &[PseudoLabel],
) -> Result<(Vec<PseudoLabel>, usize), BadInput> {
    let mut all: BTreeMap<(i32, String, String), PseudoLabel> =
        old.into_iter().map(|p| (p.key(), p)).collect();
    let mut added = 0;
    for row in new {
        match all.get(&row.key()) {
            Some(prev) if prev.answer() == row.answer() => {}
            Some(prev) => {
                return Err(BadInput::new(
                    path,
                    format!(
                        "video {} already has a pseudo-label from labeler `{}` for this prompt \
                         ({}…) in the store, with a different answer ({} there, {} here). \
                         Stored labels are never overwritten: ingest a new run under another \
                         --labeler name (e.g. `{}-v2`)",
                        row.video_id,
                        row.labeler,
                        row.prompt_hash.get(..12).unwrap_or(&row.prompt_hash),
                        prev.label,
                        row.label,
                        row.labeler
                    ),
                )
                .line(row.line));
            }
            None => {
                all.insert(row.key(), row.clone());
                added += 1;
            }
        }
    }
    Ok((all.into_values().collect(), added))
}

/// The `pseudo_labels` rows, in key order.
pub fn batch(rows: &[PseudoLabel]) -> Result<RecordBatch> {
    let s = |f: fn(&PseudoLabel) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.video_id),
        )),
        s(|r| Some(r.labeler.as_str())),
        s(|r| Some(r.prompt_hash.as_str())),
        s(|r| Some(r.label.as_str())),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.confidence))),
        s(|r| r.reasoning.as_deref()),
        s(|r| r.reflection.as_deref()),
        s(|r| r.prompt.as_deref()),
        s(|r| r.raw_response.as_deref()),
        s(|r| Some(r.source_hash.as_str())),
    ];
    Ok(RecordBatch::try_new(
        crate::schema::table("pseudo_labels").schema.clone(),
        columns,
    )?)
}
