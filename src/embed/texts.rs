//! `xp embed text`: BERT vectors of the transcripts the store holds, written to
//! `text_embeddings` as an ingest would write them.
//!
//! Per segment (every segment, whoever speaks: the trainer's `speakers: interviewee` picks the
//! interviewee's later) or per video (the transcript's segments joined by spaces: all speakers,
//! or only the interviewee's turns). Texts longer than the model takes are read in overlapping
//! windows ([`Bert::embed_text`]). Each commit writes the name's `embedders` row (weights,
//! config and tokenizer hashes, windowing, pooling, unit), and each vector row's `source_hash` is
//! `<embedder>:<text>`: that row's fingerprint and the blake3 of the text it embedded. So a video whose stored rows name exactly its current texts is skipped (re-running
//! encodes nothing; an edited transcript re-embeds that video), a text this name has embedded
//! anywhere is reused rather than encoded, and a name the store holds with another embedder is
//! refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int32Type};
use burn::tensor::backend::Backend;

use super::bert::{Bert, TextPooling, Tokenizer};
use super::provenance::{self, Embedder};
use crate::device::{BackendJob, Device, on_device};
use crate::ingest::embeddings::{VectorKind, VectorOptions, VideoVectors};
use crate::progress::Progress;
use crate::store::{Head, PartRef, Store, TableChange, Transaction, part};

/// What one vector covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextUnit {
    Segment,
    Video,
}

/// Whose words a per-video vector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextSpeakers {
    All,
    Interviewee,
}

#[derive(Debug, Clone)]
pub struct EmbedTextOptions {
    pub model_dir: PathBuf,
    pub name: Option<String>,
    pub pool: TextPooling,
    pub per: TextUnit,
    pub speakers: TextSpeakers,
    pub videos: Option<Vec<i32>>,
    /// Where the encoder runs.
    pub device: Device,
    pub videos_per_commit: usize,
    pub progress: Progress,
}

#[derive(Debug, Default)]
pub struct EmbedTextSummary {
    pub name: String,
    pub dim: usize,
    pub videos_done: usize,
    pub videos_skipped: usize,
    pub texts: u64,
    /// Distinct texts that went through the model.
    pub encoded: u64,
    pub reused: u64,
    pub seconds: f64,
}

/// (segment, speaker, text) of one video's transcript, in order.
fn transcript(
    store: &Store,
    head: &Head,
    video: i32,
) -> Result<Vec<(i32, Option<String>, String)>> {
    let mut out = Vec::new();
    for b in store.read_keyed_part(&head.snapshot, "transcripts", &format!("video={video}"))? {
        let seg = b
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<Int32Type>();
        let speaker = b.column_by_name("speaker").unwrap().as_string::<i32>();
        let text = b.column_by_name("text").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                seg.value(i),
                (!speaker.is_null(i)).then(|| speaker.value(i).to_string()),
                text.value(i).to_string(),
            ));
        }
    }
    out.sort_by_key(|r| r.0);
    Ok(out)
}

/// The texts to embed for one video: (segment or None for the whole video, text). A blank
/// text is an error (BERT would embed its two special tokens alone, a vector that says
/// nothing), named by video and segment; it is found before anything is committed.
fn units(
    video: i32,
    rows: &[(i32, Option<String>, String)],
    options: &EmbedTextOptions,
) -> Result<Vec<(Option<i32>, String)>> {
    match options.per {
        TextUnit::Segment => {
            if let Some((s, _, _)) = rows.iter().find(|(_, _, t)| t.trim().is_empty()) {
                bail!(
                    "video {video}, transcript segment {s}: the text is empty, nothing to embed \
                     (fix the transcript and ingest it again, or leave the video out)"
                );
            }
            Ok(rows.iter().map(|(s, _, t)| (Some(*s), t.clone())).collect())
        }
        TextUnit::Video => {
            let words: Vec<&str> = rows
                .iter()
                .filter(|(_, who, _)| {
                    options.speakers == TextSpeakers::All || who.as_deref() == Some("interviewee")
                })
                .map(|(_, _, t)| t.trim())
                .filter(|t| !t.is_empty())
                .collect();
            if words.is_empty() {
                let whose = match options.speakers {
                    TextSpeakers::All => "",
                    TextSpeakers::Interviewee => " of the interviewee",
                };
                bail!(
                    "video {video}: the transcript has no words{whose}, nothing to embed (use \
                     --speakers all, or leave the video out)"
                );
            }
            Ok(vec![(None, words.join(" "))])
        }
    }
}

fn text_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// A stored row: (segment, source hash, vector).
type StoredText = (Option<i32>, String, Vec<f32>);

/// The rows of one stored part.
fn read_rows(store: &Store, file: &str) -> Result<Vec<StoredText>> {
    let mut out = Vec::new();
    for b in part::read_columns(
        &store.part_path(file),
        Some(&["segment", "source_hash", "vector"]),
    )? {
        let seg = b
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<Int32Type>();
        let source = b.column_by_name("source_hash").unwrap().as_string::<i32>();
        let vectors = b.column_by_name("vector").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                (!seg.is_null(i)).then(|| seg.value(i)),
                source.value(i).to_string(),
                vectors
                    .value(i)
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec(),
            ));
        }
    }
    Ok(out)
}

/// Embeds the transcripts of the store's videos (see the module documentation).
pub fn embed_text(store_root: &Path, options: &EmbedTextOptions) -> Result<EmbedTextSummary> {
    on_device(options.device, Job(store_root, options))
}

struct Job<'a>(&'a Path, &'a EmbedTextOptions);

impl BackendJob for Job<'_> {
    type Output = EmbedTextSummary;
    fn run<B: Backend>(self, device: &B::Device) -> Result<EmbedTextSummary> {
        embed_on::<B>(self.0, self.1, device)
    }
}

fn embed_on<B: Backend>(
    store_root: &Path,
    options: &EmbedTextOptions,
    device: &B::Device,
) -> Result<EmbedTextSummary> {
    let start = Instant::now();
    let store = Store::open(store_root)?;
    let model = Bert::<B>::load(&options.model_dir, device)?;
    let tokenizer = Tokenizer::load(&options.model_dir)?;
    let tokenizer_bytes = std::fs::read(options.model_dir.join("tokenizer.json"))
        .context("cannot read tokenizer.json")?;
    let pool_name = match options.pool {
        TextPooling::Cls => "cls",
        TextPooling::Mean => "mean",
    };

    let name = options.name.clone().unwrap_or_else(|| {
        let base = options
            .model_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "bert".into());
        let mut name = base;
        if options.pool == TextPooling::Mean {
            name.push_str("-mean");
        }
        if options.per == TextUnit::Video {
            name.push_str("-video");
            if options.speakers == TextSpeakers::Interviewee {
                name.push_str("-interviewee");
            }
        }
        name
    });
    let dim = model.hidden;
    let record = Embedder {
        vectors: "text_embeddings",
        model: name.clone(),
        architecture: model.architecture,
        weights_hash: model.weights_hash.clone(),
        config_hash: provenance::config_hash(&options.model_dir)?,
        preprocessing: format!(
            "tokenizer.json {}; texts over {} tokens: windows of {} every {}, mean of their vectors",
            blake3::hash(&tokenizer_bytes).to_hex(),
            model.max_positions,
            model.max_positions - 2,
            (model.max_positions - 2) / 2
        ),
        pooling: pool_name,
        unit: match (options.per, options.speakers) {
            (TextUnit::Segment, _) => "segment",
            (TextUnit::Video, TextSpeakers::All) => "video",
            (TextUnit::Video, TextSpeakers::Interviewee) => "video-interviewee",
        },
        dim,
    };
    let embedder = record.fingerprint();
    let head = store.head()?;
    let stored =
        crate::dataset::parts_by_video(&store, &head.snapshot, "text_embeddings", Some(&name))?;
    if let Some(file) = stored.values().next()
        && let Some((_, source, _)) = read_rows(&store, file)?.first()
        && !source.starts_with(&format!("{embedder}:"))
    {
        bail!(
            "the store holds text vectors named `{name}` made by other weights, tokenizer or \
             pooling: give these another --name, and name it in the experiment's \
             model.text.embedding"
        );
    }
    let videos = super::videos_with(
        &store,
        &head,
        "transcripts",
        options.videos.as_deref(),
        "transcripts",
        "xp ingest transcripts",
    )?;
    let mut summary = EmbedTextSummary {
        name: name.clone(),
        dim,
        ..Default::default()
    };
    let source_of = |text: &str| format!("{embedder}:{}", text_hash(text));
    let mut todo = Vec::new();
    for &v in &videos {
        let wanted = units(v, &transcript(&store, &head, v)?, options)?;
        let current = match stored.get(&v) {
            Some(file) => read_rows(&store, file)?
                .iter()
                .map(|(s, src, _)| (*s, src.clone()))
                .eq(wanted.iter().map(|(s, t)| (*s, source_of(t)))),
            None => false,
        };
        if current {
            summary.videos_skipped += 1;
        } else {
            todo.push((v, wanted));
        }
    }
    let bar = options
        .progress
        .bar(todo.len() as u64, "embed text", "videos");
    let mut known: HashMap<String, Vec<f32>> = HashMap::new();
    let vector_options = VectorOptions {
        kind: VectorKind::Text,
        model: name.clone(),
        dim,
        video: None,
        first_frame: 0,
        frame_stride: 1,
        per_segment: options.per == TextUnit::Segment,
    };
    for chunk in todo.chunks(options.videos_per_commit.max(1)) {
        let head = store.head()?;
        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        for (_, units) in chunk {
            for (_, text) in units {
                let source = source_of(text);
                if !known.contains_key(&source) {
                    needed.insert(source, text.clone());
                }
            }
        }
        for file in
            crate::dataset::parts_by_video(&store, &head.snapshot, "text_embeddings", Some(&name))?
                .values()
        {
            if needed.keys().all(|s| known.contains_key(s)) {
                break;
            }
            for (_, source, vector) in read_rows(&store, file)? {
                if needed.contains_key(&source) && !known.contains_key(&source) {
                    summary.reused += 1;
                    known.insert(source, vector);
                }
            }
        }
        // The rest through the model; texts of equal token length share a batch (no padding,
        // so a batched vector is the vector of the text alone).
        let mut by_length: BTreeMap<usize, Vec<(String, Vec<i64>)>> = BTreeMap::new();
        for (source, text) in needed.into_iter().filter(|(s, _)| !known.contains_key(s)) {
            let ids = tokenizer.ids(&text)?;
            let key = if ids.len() <= model.max_positions {
                ids.len()
            } else {
                usize::MAX
            };
            by_length.entry(key).or_default().push((source, ids));
        }
        for (length, group) in by_length {
            if length == usize::MAX {
                for (source, ids) in group {
                    known.insert(source, model.embed_text(&ids, options.pool));
                    summary.encoded += 1;
                }
                continue;
            }
            for batch in group.chunks(16) {
                let vectors =
                    model.embed_batch(batch.iter().map(|(_, ids)| ids.as_slice()), options.pool);
                for ((source, _), v) in batch.iter().zip(vectors) {
                    known.insert(source.clone(), v);
                }
                summary.encoded += batch.len() as u64;
            }
        }
        let mut txn = Transaction::begin(&store)?;
        let mut parts: Vec<PartRef> = Vec::new();
        for (video, units) in chunk {
            let mut values = Vec::with_capacity(units.len() * dim);
            let mut sources = Vec::with_capacity(units.len());
            for (_, text) in units {
                let source = source_of(text);
                values.extend_from_slice(&known[&source]);
                sources.push(source);
            }
            summary.texts += units.len() as u64;
            let v = VideoVectors {
                video_id: *video,
                index: units.iter().map(|(s, _)| *s).collect(),
                values,
                crop_hashes: vec![None; units.len()],
                path: options.model_dir.clone(),
                place: format!("video {video}"),
                first_row: 0,
            };
            parts.push(stage_with_sources(
                txn.stager(),
                v,
                &vector_options,
                &sources,
            )?);
        }
        let provenance = record.stage(txn.stager())?;
        txn.commit("embed text", |_, _| {
            Ok(vec![
                TableChange {
                    table: "text_embeddings".into(),
                    parts: parts.clone(),
                },
                Embedder::change(&provenance),
            ])
        })?;
        crate::fault::crash_point(crate::fault::EMBED_COMMITTED);
        summary.videos_done += chunk.len();
        bar.inc(chunk.len() as u64);
        bar.set_message(format!(
            "{} texts encoded, {:.1} texts/s",
            summary.encoded,
            summary.encoded as f64 / start.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    bar.finish_and_clear();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Stages a video's text vectors with one source hash per row.
fn stage_with_sources(
    stager: &mut crate::store::Stager,
    v: VideoVectors,
    options: &VectorOptions,
    sources: &[String],
) -> Result<PartRef> {
    let n = v.index.len();
    let key = crate::ingest::embeddings::part_key(v.video_id, &options.model);
    let batch = crate::ingest::embeddings::batch(v, options, "")?;
    let column = batch.schema().index_of("source_hash")?;
    let mut columns = batch.columns().to_vec();
    assert_eq!(sources.len(), n);
    columns[column] = std::sync::Arc::new(arrow::array::StringArray::from_iter_values(sources));
    let batch = arrow::array::RecordBatch::try_new(batch.schema(), columns)?;
    stager.stage(key, &batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(per: TextUnit, speakers: TextSpeakers) -> EmbedTextOptions {
        EmbedTextOptions {
            model_dir: PathBuf::new(),
            name: None,
            pool: TextPooling::Cls,
            per,
            speakers,
            videos: None,
            device: Device::Cpu,
            videos_per_commit: 8,
            progress: Progress::new(true),
        }
    }

    #[test]
    fn a_blank_segment_is_refused_by_video_and_segment() {
        let rows = vec![
            (
                0,
                Some("interviewee".to_string()),
                "Fine, thanks.".to_string(),
            ),
            (1, Some("interviewer".to_string()), " \t".to_string()),
        ];
        let err = units(7, &rows, &options(TextUnit::Segment, TextSpeakers::All))
            .unwrap_err()
            .to_string();
        assert!(err.contains("video 7, transcript segment 1"), "{err}");
        // Per video the blank turn adds nothing, and the rest is embedded.
        let whole = units(7, &rows, &options(TextUnit::Video, TextSpeakers::All)).unwrap();
        assert_eq!(whole, vec![(None, "Fine, thanks.".to_string())]);
    }
}
