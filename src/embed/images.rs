//! `xp embed images`: DINOv2 vectors of the person crops the store holds, written to
//! `embeddings` as an ingest would write them, so experiments read them by model name.
//!
//! Content addressing: a video's frames name their crops by hash; each distinct crop is
//! decoded, preprocessed and encoded once per run, and a crop that this model has already
//! embedded (in any video) is not encoded again, its stored vector is reused. A video whose
//! stored vectors already cover exactly its frames' crops is skipped, so a re-run encodes
//! nothing. Videos are committed a few at a time: a killed run keeps what it committed and
//! the next run resumes after it.
//!
//! Provenance: each commit writes the `embedders` row of the name (architecture, weights and
//! config hashes, image processor settings, pooling), and every vector row's `source_hash` is
//! that row's fingerprint. A name that the store holds with another fingerprint is refused
//! (give the new vectors another `--name`), so vectors of two weights, configs or poolings
//! never mix under one name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int32Type};
use burn::prelude::*;

use super::dinov2::Dinov2;
use super::preprocess::ImageProcessor;
use super::provenance::{self, Embedder};
use crate::device::{BackendJob, Device, on_device};
use crate::ingest::embeddings::{self, VectorKind, VectorOptions, VideoVectors};
use crate::progress::Progress;
use crate::store::{Head, PartRef, Store, TableChange, Transaction, part};

/// A decoded RGB image: pixels `[height, width, 3]`, height, width.
type Rgb = (Vec<u8>, usize, usize);

/// Which vector of the encoder's output is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImagePooling {
    /// The CLS token (transformers' `pooler_output`).
    Cls,
    /// The mean of the patch tokens.
    Mean,
    /// CLS and mean concatenated (twice the width).
    Both,
}

impl ImagePooling {
    fn name(self) -> &'static str {
        match self {
            ImagePooling::Cls => "cls",
            ImagePooling::Mean => "mean",
            ImagePooling::Both => "both",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedImagesOptions {
    pub model_dir: PathBuf,
    /// The `model` name the vectors are stored under (default: the folder's name, plus the
    /// pooling when it is not `cls`).
    pub name: Option<String>,
    pub pool: ImagePooling,
    /// Only these videos (default: every video with crops).
    pub videos: Option<Vec<i32>>,
    /// Where the encoder runs.
    pub device: Device,
    /// Crops per forward pass.
    pub batch: usize,
    /// Videos per commit.
    pub videos_per_commit: usize,
    pub progress: Progress,
}

#[derive(Debug, Default)]
pub struct EmbedSummary {
    pub name: String,
    pub dim: usize,
    pub videos_done: usize,
    pub videos_skipped: usize,
    pub frames: u64,
    /// Distinct crops that went through the model.
    pub encoded: u64,
    /// Crops whose vector this model had already stored.
    pub reused: u64,
    pub seconds: f64,
}

/// The model name for `dir` and `pool` when the user gives none.
fn default_name(dir: &Path, pool: ImagePooling) -> String {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "dinov2".into());
    match pool {
        ImagePooling::Cls => base,
        other => format!("{base}-{}", other.name()),
    }
}

/// The encoder with its preprocessing, counting the images it encodes.
struct Encoder<B: Backend> {
    model: Dinov2<B>,
    processor: ImageProcessor,
    pool: ImagePooling,
    device: B::Device,
    encoded: u64,
}

impl<B: Backend> Encoder<B> {
    fn dim(&self) -> usize {
        match self.pool {
            ImagePooling::Both => 2 * self.model.hidden,
            _ => self.model.hidden,
        }
    }

    /// Vectors of decoded RGB images, batched by preprocessed size.
    fn encode(
        &mut self,
        images: &[(Vec<u8>, usize, usize)],
        batch: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut prepared = Vec::with_capacity(images.len());
        for (pixels, h, w) in images {
            prepared.push(self.processor.apply(pixels, *h, *w)?);
        }
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); images.len()];
        let mut by_size: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, (_, h, w)) in prepared.iter().enumerate() {
            by_size.entry((*h, *w)).or_default().push(i);
        }
        for ((h, w), members) in by_size {
            for chunk in members.chunks(batch.max(1)) {
                let mut flat = Vec::with_capacity(chunk.len() * 3 * h * w);
                for &i in chunk {
                    flat.extend_from_slice(&prepared[i].0);
                }
                let pixels = Tensor::<B, 4>::from_data(
                    TensorData::new(flat, [chunk.len(), 3, h, w]),
                    &self.device,
                );
                let output = self.model.forward(pixels);
                self.encoded += chunk.len() as u64;
                let vectors = match self.pool {
                    ImagePooling::Cls => output.cls(),
                    ImagePooling::Mean => output.patch_mean(),
                    ImagePooling::Both => Tensor::cat(vec![output.cls(), output.patch_mean()], 1),
                };
                let dim = self.dim();
                let values = vectors.into_data().convert::<f32>().to_vec::<f32>()?;
                for (k, &i) in chunk.iter().enumerate() {
                    out[i] = values[k * dim..(k + 1) * dim].to_vec();
                }
            }
        }
        Ok(out)
    }
}

/// (frame, crop hash) of each frame of `video` that has a crop, in frame order.
fn frames_with_crops(store: &Store, head: &Head, video: i32) -> Result<Vec<(i32, String)>> {
    let mut out = Vec::new();
    for b in store.read_keyed_part(&head.snapshot, "frames", &format!("video={video}"))? {
        let frames = b
            .column_by_name("frame")
            .unwrap()
            .as_primitive::<Int32Type>();
        let hashes = b.column_by_name("crop_hash").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            if !hashes.is_null(i) {
                out.push((frames.value(i), hashes.value(i).to_string()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// (frame, crop hash, vector, source hash) rows of one stored part.
type StoredRow = (i32, Option<String>, Vec<f32>, String);

fn read_part_rows(store: &Store, file: &str) -> Result<Vec<StoredRow>> {
    let mut out = Vec::new();
    for b in part::read_columns(
        &store.part_path(file),
        Some(&["frame", "crop_hash", "vector", "source_hash"]),
    )? {
        let frames = b
            .column_by_name("frame")
            .unwrap()
            .as_primitive::<Int32Type>();
        let hashes = b.column_by_name("crop_hash").unwrap().as_string::<i32>();
        let vectors = b.column_by_name("vector").unwrap().as_list::<i32>();
        let sources = b.column_by_name("source_hash").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let v = vectors.value(i);
            out.push((
                frames.value(i),
                (!hashes.is_null(i)).then(|| hashes.value(i).to_string()),
                v.as_primitive::<Float32Type>().values().to_vec(),
                sources.value(i).to_string(),
            ));
        }
    }
    Ok(out)
}

/// Decoded crops (RGB) for the given hashes, read from the `crops` parts that hold them.
fn decode_crops(
    store: &Store,
    head: &Head,
    wanted: &BTreeSet<String>,
) -> Result<HashMap<String, Rgb>> {
    let mut out = HashMap::new();
    let Some(version) = head.snapshot.tables.get("crops") else {
        return Ok(out);
    };
    for p in store.read_table_version(version)?.parts {
        if out.len() == wanted.len() {
            break;
        }
        let path = store.part_path(&p.file);
        // The hashes first: a part without a wanted crop is not read further.
        let hashes = part::read_columns(&path, Some(&["crop_hash"]))?;
        let hit = hashes.iter().any(|b| {
            let h = b.column(0).as_string::<i32>();
            (0..b.num_rows()).any(|i| wanted.contains(h.value(i)))
        });
        if !hit {
            continue;
        }
        for b in part::read_columns(&path, Some(&["crop_hash", "bytes"]))? {
            let h = b.column(0).as_string::<i32>();
            let bytes = b.column(1).as_binary::<i32>();
            for i in 0..b.num_rows() {
                let hash = h.value(i);
                if !wanted.contains(hash) || out.contains_key(hash) {
                    continue;
                }
                let image = image::load_from_memory(bytes.value(i))
                    .with_context(|| {
                        format!(
                            "crop {hash} in the store does not decode as an image (ingest \
                             decodes every crop, so the stored copy is damaged: run `xp verify`)"
                        )
                    })?
                    .to_rgb8();
                let (w, h) = image.dimensions();
                out.insert(hash.to_string(), (image.into_raw(), h as usize, w as usize));
            }
        }
    }
    if let Some(missing) = wanted.iter().find(|h| !out.contains_key(*h)) {
        bail!(
            "the frames name crop {missing}, which the `crops` table does not hold (run `xp verify`)"
        );
    }
    Ok(out)
}

/// Embeds the crops of the store's videos (see the module documentation).
pub fn embed_images(store_root: &Path, options: &EmbedImagesOptions) -> Result<EmbedSummary> {
    on_device(options.device, Job(store_root, options))
}

struct Job<'a>(&'a Path, &'a EmbedImagesOptions);

impl BackendJob for Job<'_> {
    type Output = EmbedSummary;
    fn run<B: Backend>(self, device: &B::Device) -> Result<EmbedSummary> {
        embed_on::<B>(self.0, self.1, device)
    }
}

fn embed_on<B: Backend>(
    store_root: &Path,
    options: &EmbedImagesOptions,
    device: &B::Device,
) -> Result<EmbedSummary> {
    let start = Instant::now();
    let store = Store::open(store_root)?;
    let device = device.clone();
    let model = Dinov2::<B>::load(&options.model_dir, &device)?;
    let processor = ImageProcessor::load(&options.model_dir)?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| default_name(&options.model_dir, options.pool));
    let embedder = Embedder {
        vectors: "embeddings",
        model: name.clone(),
        architecture: if model.registers() > 0 {
            "dinov2_with_registers"
        } else {
            "dinov2"
        },
        weights_hash: model.weights_hash.clone(),
        config_hash: provenance::config_hash(&options.model_dir)?,
        preprocessing: processor.canonical(),
        pooling: options.pool.name(),
        unit: "crop",
        dim: match options.pool {
            ImagePooling::Both => 2 * model.hidden,
            _ => model.hidden,
        },
    };
    let fingerprint = embedder.fingerprint();
    let mut encoder = Encoder {
        model,
        processor,
        pool: options.pool,
        device,
        encoded: 0,
    };
    let dim = encoder.dim();
    let vector_options = VectorOptions {
        kind: VectorKind::Image,
        model: name.clone(),
        dim,
        video: None,
        first_frame: 0,
        frame_stride: 1,
        per_segment: false,
    };
    let head = store.head()?;
    let stored = crate::dataset::parts_by_video(&store, &head.snapshot, "embeddings", Some(&name))?;
    if let Some(file) = stored.values().next() {
        let rows = read_part_rows(&store, file)?;
        if let Some((_, _, v, source)) = rows.first()
            && (source != &fingerprint || v.len() != dim)
        {
            bail!(
                "the store holds image vectors named `{name}` made by other weights, \
                 preprocessing or pooling: give these another --name (e.g. `{name}-2`), and name \
                 it in the experiment's model.image.embedding"
            );
        }
    }
    let videos = super::videos_with(
        &store,
        &head,
        "frames",
        options.videos.as_deref(),
        "crops",
        "xp ingest crops",
    )?;
    let mut summary = EmbedSummary {
        name: name.clone(),
        dim,
        ..EmbedSummary::default()
    };
    // Which videos need vectors: those whose stored part does not match their frames' crops.
    let mut todo = Vec::new();
    for &v in &videos {
        let frames = frames_with_crops(&store, &head, v)?;
        let current = match stored.get(&v) {
            Some(file) => {
                let rows = read_part_rows(&store, file)?;
                rows.iter()
                    .map(|(f, h, _, _)| (*f, h.clone().unwrap_or_default()))
                    .eq(frames.iter().cloned())
            }
            None => false,
        };
        if current || frames.is_empty() {
            summary.videos_skipped += 1;
        } else {
            todo.push((v, frames));
        }
    }
    let bar = options
        .progress
        .bar(todo.len() as u64, "embed images", "videos");
    // Vectors known for this model, by crop hash, filled as stored parts are consulted.
    let mut known: HashMap<String, Vec<f32>> = HashMap::new();
    for chunk in todo.chunks(options.videos_per_commit.max(1)) {
        let head = store.head()?;
        let needed: BTreeSet<String> = chunk
            .iter()
            .flat_map(|(_, frames)| frames.iter().map(|(_, h)| h.clone()))
            .filter(|h| !known.contains_key(h))
            .collect();
        // Reuse what this model already stored for these crops (in any video).
        for file in
            crate::dataset::parts_by_video(&store, &head.snapshot, "embeddings", Some(&name))?
                .values()
        {
            if needed.iter().all(|h| known.contains_key(h)) {
                break;
            }
            for (_, hash, vector, _) in read_part_rows(&store, file)? {
                if let Some(hash) = hash
                    && needed.contains(&hash)
                {
                    if !known.contains_key(&hash) {
                        summary.reused += 1;
                    }
                    known.entry(hash).or_insert(vector);
                }
            }
        }
        let fresh: BTreeSet<String> = needed
            .into_iter()
            .filter(|h| !known.contains_key(h))
            .collect();
        let images = decode_crops(&store, &head, &fresh)?;
        let order: Vec<&String> = fresh.iter().collect();
        let decoded: Vec<Rgb> = order.iter().map(|h| images[*h].clone()).collect();
        let vectors = encoder.encode(&decoded, options.batch)?;
        for (h, v) in order.into_iter().zip(vectors) {
            known.insert(h.clone(), v);
        }
        let mut txn = Transaction::begin(&store)?;
        let mut parts: Vec<PartRef> = Vec::new();
        for (video, frames) in chunk {
            let mut values = Vec::with_capacity(frames.len() * dim);
            for (_, h) in frames {
                values.extend_from_slice(&known[h]);
            }
            summary.frames += frames.len() as u64;
            let v = VideoVectors {
                video_id: *video,
                index: frames.iter().map(|(f, _)| Some(*f)).collect(),
                values,
                crop_hashes: frames.iter().map(|(_, h)| Some(h.clone())).collect(),
                path: options.model_dir.clone(),
                place: format!("video {video}"),
                first_row: 0,
            };
            parts.push(embeddings::stage(
                txn.stager(),
                v,
                &vector_options,
                &fingerprint,
            )?);
        }
        let provenance = embedder.stage(txn.stager())?;
        txn.commit("embed images", |_, _| {
            Ok(vec![
                TableChange {
                    table: "embeddings".into(),
                    parts: parts.clone(),
                },
                Embedder::change(&provenance),
            ])
        })?;
        crate::fault::crash_point(crate::fault::EMBED_COMMITTED);
        summary.videos_done += chunk.len();
        bar.inc(chunk.len() as u64);
        bar.set_message(format!(
            "{} crops encoded, {:.1} crops/s",
            encoder.encoded,
            encoder.encoded as f64 / start.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    bar.finish_and_clear();
    summary.encoded = encoder.encoded;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}
