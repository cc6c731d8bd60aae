//! `xp ingest embeddings` and `xp ingest text-embeddings`: vectors from `.npy`, `.safetensors`
//! or Parquet files into `embeddings` (per frame) or `text_embeddings` (per transcript or
//! segment).
//!
//! Files are read one video at a time (a `.npy` is one video; a `.safetensors` holds one tensor
//! per video; a Parquet file's rows come grouped by video), so memory holds one video's vectors
//! however large the file. Every vector is checked: the model's size, finite values, no frame
//! twice.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Int32Array, ListArray, RecordBatch, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::BadInput;
use super::names::{extension, leading_id};
use super::npy::NpyReader;
use super::safetensors_file::SafetensorsFile;
use crate::store::{Head, PartRef, Stager, Store};

/// Rows read from a file at a time.
const CHUNK_ROWS: usize = 4096;

/// Which table the vectors go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// Image embeddings of frames: `embeddings`.
    Image,
    /// Text embeddings of transcripts: `text_embeddings`.
    Text,
}

impl VectorKind {
    pub fn table(self) -> &'static str {
        match self {
            VectorKind::Image => "embeddings",
            VectorKind::Text => "text_embeddings",
        }
    }
    fn index_name(self) -> &'static str {
        match self {
            VectorKind::Image => "frame",
            VectorKind::Text => "segment",
        }
    }
}

/// How vectors are read and where they go.
#[derive(Debug, Clone)]
pub struct VectorOptions {
    pub kind: VectorKind,
    /// Model name, lower case.
    pub model: String,
    /// The vector size every vector must have.
    pub dim: usize,
    /// The video of a single `.npy` whose name does not start with its id.
    pub video: Option<i32>,
    /// Row i of an array is frame `first_frame + i * frame_stride` (image embeddings).
    pub first_frame: i32,
    pub frame_stride: i32,
    /// Text: the rows of an array are transcript segments 0, 1, ... (else one vector per video).
    pub per_segment: bool,
}

/// One video's vectors from one file.
pub struct VideoVectors {
    pub video_id: i32,
    /// Frame (image) or segment (text; None = the whole transcript) of each vector.
    pub index: Vec<Option<i32>>,
    pub values: Vec<f32>,
    pub crop_hashes: Vec<Option<String>>,
    pub path: PathBuf,
    /// Where in the file, for errors: `tensor `298``, `rows 0..`.
    pub place: String,
    /// First row of this video in the file (Parquet), for errors.
    pub first_row: usize,
}

/// blake3 of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<String, BadInput> {
    let mut hasher = blake3::Hasher::new();
    let file = File::open(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    hasher
        .update_reader(file)
        .map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The video id in a tensor name: `298`, `video_298`, `video-298` or `video298`. Anything else
/// is refused rather than guessed (`dinov2_298` could be video 2 or 298).
fn id_in_name(name: &str) -> Option<i32> {
    let rest = name
        .strip_prefix("video")
        .map(|r| r.trim_start_matches(['_', '-']))
        .unwrap_or(name);
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| rest.parse().ok())
        .flatten()
        .filter(|&v| v > 0)
}

/// Row indices for `rows` vectors of a plain array.
fn array_index(
    rows: usize,
    options: &VectorOptions,
    path: &Path,
) -> Result<Vec<Option<i32>>, BadInput> {
    match options.kind {
        VectorKind::Image => (0..rows)
            .map(|i| {
                i32::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_mul(options.frame_stride))
                    .and_then(|i| i.checked_add(options.first_frame))
                    .map(Some)
                    .ok_or_else(|| BadInput::new(path, "frame numbers overflow"))
            })
            .collect(),
        VectorKind::Text if options.per_segment => Ok((0..rows as i32).map(Some).collect()),
        VectorKind::Text if rows == 1 => Ok(vec![None]),
        VectorKind::Text => Err(BadInput::new(
            path,
            format!(
                "{rows} vectors, but without --per-segment a video has one transcript vector \
                 (pass --per-segment if the rows are the transcript's segments)"
            ),
        )),
    }
}

fn check_width(
    path: &Path,
    place: &str,
    dim: usize,
    options: &VectorOptions,
) -> Result<(), BadInput> {
    if dim != options.dim {
        return Err(BadInput::new(
            path,
            format!(
                "{place}: vectors have {dim} values, but model {} has {} (wrong --model, or \
                 the file holds another model's vectors)",
                options.model, options.dim
            ),
        ));
    }
    Ok(())
}

/// Calls `each` with the vectors of every video in `path`.
pub fn read_file(
    path: &Path,
    options: &VectorOptions,
    each: &mut dyn FnMut(VideoVectors) -> Result<()>,
) -> Result<()> {
    let ext = extension(path);
    let ignored = |what: &str| {
        BadInput::new(
            path,
            format!("{what} applies to .npy files; a .{ext} file names its videos and rows itself"),
        )
    };
    if (ext == "parquet" || ext == "safetensors") && options.video.is_some() {
        return Err(ignored("--video").into());
    }
    if ext == "parquet" && (options.first_frame != 0 || options.frame_stride != 1) {
        return Err(ignored("--first-frame / --frame-stride").into());
    }
    match ext.as_str() {
        "npy" => each(read_npy(path, options)?),
        "safetensors" => read_safetensors(path, options, each),
        "parquet" => read_parquet(path, options, each),
        _ => Err(BadInput::new(
            path,
            "unsupported file: xp reads vectors from .npy, .safetensors or .parquet",
        )
        .into()),
    }
}

fn read_npy(path: &Path, options: &VectorOptions) -> Result<VideoVectors, BadInput> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let video_id = options.video.or_else(|| leading_id(&name)).ok_or_else(|| {
        BadInput::new(
            path,
            "cannot tell the video id: the file name must start with it (e.g. 298.npy), or \
             pass --video",
        )
    })?;
    let mut reader = NpyReader::open(path)?;
    if options.kind == VectorKind::Image && reader.shape().len() != 2 {
        return Err(BadInput::new(
            path,
            format!(
                "shape {:?}: image embeddings of a video are a [frames, dim] array",
                reader.shape()
            ),
        ));
    }
    check_width(path, "the array", reader.dim(), options)?;
    let rows = reader.rows();
    let mut values = Vec::with_capacity(rows * reader.dim());
    while reader.read_rows(CHUNK_ROWS, &mut values)? > 0 {}
    Ok(VideoVectors {
        video_id,
        index: array_index(rows, options, path)?,
        values,
        crop_hashes: vec![None; rows],
        path: path.to_path_buf(),
        place: "row".into(),
        first_row: 0,
    })
}

fn read_safetensors(
    path: &Path,
    options: &VectorOptions,
    each: &mut dyn FnMut(VideoVectors) -> Result<()>,
) -> Result<()> {
    let mut file = SafetensorsFile::open(path)?;
    let tensors = file.tensors().to_vec();
    let by_name: HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let index_suffix = format!(".{}s", options.kind.index_name());
    let mut seen: HashMap<i32, String> = HashMap::new();
    for tensor in &tensors {
        if tensor.name.ends_with(&index_suffix) {
            continue;
        }
        let place = format!("tensor `{}`", tensor.name);
        if !tensor.is_float() {
            return Err(BadInput::new(
                path,
                format!(
                    "{place} holds integers; only `<name>{index_suffix}` tensors may (they \
                     give the {}s of the vectors in `<name>`)",
                    options.kind.index_name()
                ),
            )
            .into());
        }
        let video_id = id_in_name(&tensor.name).ok_or_else(|| {
            BadInput::new(
                path,
                format!(
                    "{place}: cannot tell the video id (name each tensor by it: `298` or \
                     `video_298`)"
                ),
            )
        })?;
        if let Some(other) = seen.insert(video_id, tensor.name.clone()) {
            return Err(BadInput::new(
                path,
                format!("{place}: video {video_id} also has tensor `{other}`"),
            )
            .into());
        }
        if options.kind == VectorKind::Image && tensor.shape.len() != 2 {
            return Err(BadInput::new(
                path,
                format!(
                    "{place}: shape {:?}: image embeddings of a video are [frames, dim]",
                    tensor.shape
                ),
            )
            .into());
        }
        check_width(path, &place, tensor.dim(), options)?;
        let rows = tensor.rows();
        let index = match by_name.get(format!("{}{index_suffix}", tensor.name).as_str()) {
            Some(&i) => {
                let numbers = file.read_i64(&tensors[i])?;
                if numbers.len() != rows {
                    return Err(BadInput::new(
                        path,
                        format!(
                            "tensor `{}` has {} numbers for {rows} vectors",
                            tensors[i].name,
                            numbers.len()
                        ),
                    )
                    .into());
                }
                numbers
                    .into_iter()
                    .map(|n| {
                        i32::try_from(n).map(Some).map_err(|_| {
                            BadInput::new(
                                path,
                                format!("tensor `{}`: {n} is out of range", tensors[i].name),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => array_index(rows, options, path)?,
        };
        let mut values = Vec::with_capacity(rows * tensor.dim());
        let mut row = 0;
        while row < rows {
            let n = file.read_f32_rows(tensor, row, CHUNK_ROWS, &mut values)?;
            if n == 0 {
                break;
            }
            row += n;
        }
        each(VideoVectors {
            video_id,
            index,
            values,
            crop_hashes: vec![None; rows],
            path: path.to_path_buf(),
            place: format!("{place}, row"),
            first_row: 0,
        })?;
    }
    if seen.is_empty() {
        return Err(BadInput::new(path, "the file holds no float tensors").into());
    }
    Ok(())
}

/// A Parquet integer column as i32 values, by name.
fn int_column(
    batch: &RecordBatch,
    name: &str,
    path: &Path,
) -> Result<Option<Vec<Option<i32>>>, BadInput> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    if !col.data_type().is_integer() {
        return Err(
            BadInput::new(path, format!("type {}: expected integers", col.data_type())).field(name),
        );
    }
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = arrow::compute::cast_with_options(col, &DataType::Int32, &strict)
        .map_err(|e| BadInput::new(path, format!("out of range: {e}")).field(name))?;
    Ok(Some(cast.as_primitive::<Int32Type>().iter().collect()))
}

fn read_parquet(
    path: &Path,
    options: &VectorOptions,
    each: &mut dyn FnMut(VideoVectors) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| BadInput::new(path, format!("not a readable Parquet file: {e}")))?
        .with_batch_size(CHUNK_ROWS)
        .build()
        .map_err(|e| BadInput::new(path, format!("not a readable Parquet file: {e}")))?;
    let index_name = options.kind.index_name();
    let mut current: Option<VideoVectors> = None;
    let mut done: HashMap<i32, usize> = HashMap::new();
    let mut row_base = 0usize;
    for batch in reader {
        let batch =
            batch.map_err(|e| BadInput::new(path, format!("cannot read the Parquet rows: {e}")))?;
        let videos = int_column(&batch, "video_id", path)?.ok_or_else(|| {
            BadInput::new(
                path,
                "no `video_id` column (expected video_id, frame, vector)",
            )
        })?;
        let index = int_column(&batch, index_name, path)?;
        if index.is_none() && options.kind == VectorKind::Image {
            return Err(BadInput::new(
                path,
                "no `frame` column (expected video_id, frame, vector)",
            )
            .into());
        }
        if let Some(models) = batch.column_by_name("model") {
            let models = arrow::compute::cast(models, &DataType::Utf8)
                .map_err(|e| BadInput::new(path, e.to_string()).field("model"))?;
            for (r, m) in models.as_string::<i32>().iter().enumerate() {
                if let Some(m) = m
                    && !m.eq_ignore_ascii_case(&options.model)
                {
                    return Err(BadInput::new(
                        path,
                        format!(
                            "row {}: model `{m}`, but --model is {}",
                            row_base + r,
                            options.model
                        ),
                    )
                    .field("model")
                    .into());
                }
            }
        }
        let crop_hashes: Option<Vec<Option<String>>> = match batch.column_by_name("crop_hash") {
            Some(c) if options.kind == VectorKind::Image => Some(
                arrow::compute::cast(c, &DataType::Utf8)
                    .map_err(|e| BadInput::new(path, e.to_string()).field("crop_hash"))?
                    .as_string::<i32>()
                    .iter()
                    .map(|h| h.map(str::to_ascii_lowercase))
                    .collect(),
            ),
            _ => None,
        };
        if let Some((r, bad)) = crop_hashes.iter().flatten().enumerate().find_map(|(r, h)| {
            h.as_ref()
                .filter(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|h| (r, h.clone()))
        }) {
            return Err(BadInput::new(
                path,
                format!(
                    "row {}: `{bad}` is not a crop hash (64 hex digits)",
                    row_base + r
                ),
            )
            .field("crop_hash")
            .into());
        }
        let vectors = batch
            .column_by_name("vector")
            .ok_or_else(|| BadInput::new(path, "no `vector` column (a list of float32 per row)"))?;
        let (offsets, values) = list_parts(vectors, path)?;
        for r in 0..batch.num_rows() {
            let row = row_base + r;
            let Some(video_id) = videos[r] else {
                return Err(BadInput::new(path, format!("row {row}: video_id is null"))
                    .field("video_id")
                    .into());
            };
            let idx = match &index {
                Some(ix) => match ix[r] {
                    Some(v) => Some(v),
                    None if options.kind == VectorKind::Text => None,
                    None => {
                        return Err(BadInput::new(path, format!("row {row}: frame is null"))
                            .field("frame")
                            .into());
                    }
                },
                None => None,
            };
            let (start, end) = offsets[r];
            check_width(path, &format!("row {row}"), end - start, options)?;
            if current.as_ref().is_some_and(|c| c.video_id != video_id) {
                let finished = current.take().expect("checked");
                done.insert(finished.video_id, row);
                each(finished)?;
            }
            if current.is_none() {
                if done.contains_key(&video_id) {
                    return Err(BadInput::new(
                        path,
                        format!(
                            "row {row}: video {video_id} again after other videos; xp reads \
                             Parquet vectors one video at a time, so sort the file by video_id"
                        ),
                    )
                    .into());
                }
                current = Some(VideoVectors {
                    video_id,
                    index: Vec::new(),
                    values: Vec::new(),
                    crop_hashes: Vec::new(),
                    path: path.to_path_buf(),
                    place: "row".into(),
                    first_row: row,
                });
            }
            let c = current.as_mut().expect("set above");
            c.index.push(idx);
            c.values.extend_from_slice(&values.values()[start..end]);
            c.crop_hashes
                .push(crop_hashes.as_ref().and_then(|h| h[r].clone()));
        }
        row_base += batch.num_rows();
    }
    match current {
        Some(c) => each(c),
        None => Err(BadInput::new(path, "the file has no rows").into()),
    }
}

/// (start, end) of each list relative to the first, and the values they span.
fn list_offsets<O: arrow::array::OffsetSizeTrait>(
    l: &arrow::array::GenericListArray<O>,
) -> (Vec<(usize, usize)>, ArrayRef) {
    let o = l.value_offsets();
    let base = o[0].as_usize();
    let spans = o
        .windows(2)
        .map(|w| (w[0].as_usize() - base, w[1].as_usize() - base))
        .collect();
    (
        spans,
        l.values().slice(base, o[o.len() - 1].as_usize() - base),
    )
}

/// Offsets and float32 values of a list column (list, large list or fixed-size list of
/// float32 or float16).
fn list_parts(
    column: &ArrayRef,
    path: &Path,
) -> Result<(Vec<(usize, usize)>, Float32Array), BadInput> {
    let bad = |what: String| BadInput::new(path, what).field("vector");
    let (offsets, values): (Vec<(usize, usize)>, ArrayRef) = match column.data_type() {
        DataType::List(_) => list_offsets(column.as_list::<i32>()),
        DataType::LargeList(_) => list_offsets(column.as_list::<i64>()),
        DataType::FixedSizeList(_, n) => {
            let l = column.as_fixed_size_list();
            let n = *n as usize;
            (
                (0..l.len()).map(|i| (i * n, (i + 1) * n)).collect(),
                l.values().slice(l.offset() * n, l.len() * n),
            )
        }
        other => return Err(bad(format!("type {other}: expected a list of float32"))),
    };
    if column.null_count() > 0 {
        return Err(bad("a vector is null".into()));
    }
    let values = match values.data_type() {
        DataType::Float32 | DataType::Float16 => {
            arrow::compute::cast(&values, &DataType::Float32).map_err(|e| bad(e.to_string()))?
        }
        other => {
            return Err(bad(format!(
                "items are {other}: xp reads float32 or float16 vectors (cast float64 to float32 first)"
            )));
        }
    };
    if values.null_count() > 0 {
        return Err(bad("a vector holds a null value".into()));
    }
    Ok((offsets, values.as_primitive::<Float32Type>().clone()))
}

/// Checks one video's vectors and puts them in index order: finite values, no index twice.
pub fn check_and_sort(v: &mut VideoVectors, options: &VectorOptions) -> Result<(), BadInput> {
    let dim = options.dim;
    if v.index.is_empty() {
        return Err(BadInput::new(
            &v.path,
            format!(
                "video {}: no vectors (an empty array would erase the stored ones)",
                v.video_id
            ),
        ));
    }
    if options.kind == VectorKind::Image
        && let Some(&i) = v
            .index
            .iter()
            .flatten()
            .find(|&&i| i64::from(i) > super::names::MAX_FRAME)
    {
        let why = super::names::plausible_frame(i64::from(i)).expect_err("above the bound");
        return Err(BadInput::new(
            &v.path,
            format!("video {}: {why}", v.video_id),
        ));
    }
    if let Some(i) = v.index.iter().flatten().find(|&&i| i < 0) {
        return Err(BadInput::new(
            &v.path,
            format!(
                "video {}: {} {i} is negative ({}s count from 0)",
                v.video_id,
                options.kind.index_name(),
                options.kind.index_name()
            ),
        ));
    }
    for (r, chunk) in v.values.chunks(dim).enumerate() {
        if let Some((j, x)) = chunk.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(BadInput::new(
                &v.path,
                format!(
                    "{} {}: value {j} of the vector is {x}; embeddings must be finite (a NaN \
                     usually means a failed forward pass or an empty crop)",
                    v.place,
                    v.first_row + r
                ),
            ));
        }
    }
    let mut order: Vec<usize> = (0..v.index.len()).collect();
    order.sort_by_key(|&i| v.index[i]);
    for w in order.windows(2) {
        if v.index[w[0]] == v.index[w[1]] {
            let what = match v.index[w[0]] {
                Some(i) => format!("{} {i}", options.kind.index_name()),
                None => "the whole-transcript vector".to_string(),
            };
            return Err(BadInput::new(
                &v.path,
                format!("video {}: {what} appears twice", v.video_id),
            ));
        }
    }
    if order.windows(2).any(|w| w[0] > w[1]) {
        let mut values = Vec::with_capacity(v.values.len());
        for &i in &order {
            values.extend_from_slice(&v.values[i * dim..(i + 1) * dim]);
        }
        v.values = values;
        v.index = order.iter().map(|&i| v.index[i]).collect();
        v.crop_hashes = order.iter().map(|&i| v.crop_hashes[i].clone()).collect();
    }
    Ok(())
}

/// The part key of one video's vectors of one model.
pub fn part_key(video_id: i32, model: &str) -> String {
    format!("video={video_id}/model={model}")
}

/// Fills in the crop hash of each frame from the store's `frames` table, where it knows one.
pub fn attach_crop_hashes(store: &Store, head: &Head, v: &mut VideoVectors) -> Result<()> {
    let mut by_frame: HashMap<i32, String> = HashMap::new();
    let key = super::keypoints::part_key(v.video_id);
    for batch in store.read_keyed_part(&head.snapshot, "frames", &key)? {
        let frames = batch
            .column_by_name("frame")
            .expect("frames has frame")
            .as_primitive::<Int32Type>();
        let hashes = batch
            .column_by_name("crop_hash")
            .expect("frames has crop_hash")
            .as_string::<i32>();
        for (f, h) in frames.iter().zip(hashes.iter()) {
            if let (Some(f), Some(h)) = (f, h) {
                by_frame.insert(f, h.to_string());
            }
        }
    }
    if by_frame.is_empty() {
        return Ok(());
    }
    for (slot, idx) in v.crop_hashes.iter_mut().zip(&v.index) {
        if slot.is_none() {
            *slot = idx.and_then(|f| by_frame.get(&f).cloned());
        }
    }
    Ok(())
}

/// The table rows of one video's checked vectors (moved into the batch, not copied: a long
/// video's vectors are the largest thing an ingest holds).
pub fn batch(v: VideoVectors, options: &VectorOptions, source_hash: &str) -> Result<RecordBatch> {
    let n = v.index.len();
    let dim = options.dim;
    let vector: ArrayRef = Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        OffsetBuffer::from_lengths(std::iter::repeat_n(dim, n)),
        Arc::new(Float32Array::from(v.values)),
        None,
    ));
    let video: ArrayRef = Arc::new(Int32Array::from(vec![v.video_id; n]));
    let model: ArrayRef = Arc::new(StringArray::from(vec![options.model.as_str(); n]));
    let dims: ArrayRef = Arc::new(Int32Array::from(vec![dim as i32; n]));
    let index: ArrayRef = Arc::new(Int32Array::from(v.index));
    let source: ArrayRef = Arc::new(StringArray::from(vec![source_hash; n]));
    let columns = match options.kind {
        VectorKind::Image => vec![
            video,
            index,
            model,
            dims,
            Arc::new(StringArray::from(v.crop_hashes)) as ArrayRef,
            vector,
            source,
        ],
        VectorKind::Text => vec![video, model, index, dims, vector, source],
    };
    let schema = crate::schema::table(options.kind.table()).schema.clone();
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Stages one video's vectors.
pub fn stage(
    stager: &mut Stager,
    v: VideoVectors,
    options: &VectorOptions,
    source_hash: &str,
) -> Result<PartRef> {
    let key = part_key(v.video_id, &options.model);
    let b = batch(v, options, source_hash)?;
    stager.stage(key, &b)
}

/// Refuses a model whose vectors in the store have another size than `options.dim`. Every
/// part of a model was checked when it was ingested, so one part tells.
pub fn check_stored_dim(
    store: &Store,
    head: &Head,
    options: &VectorOptions,
    file: &Path,
) -> Result<()> {
    let Some(version) = head.snapshot.tables.get(options.kind.table()) else {
        return Ok(());
    };
    let suffix = format!("/model={}", options.model);
    let version = store.read_table_version(version)?;
    let Some(part) = version.parts.iter().find(|p| p.key.ends_with(&suffix)) else {
        return Ok(());
    };
    let batches = crate::store::part::read_columns(&store.part_path(&part.file), Some(&["dim"]))?;
    let stored = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int32Type>().value(0));
    match stored {
        Some(d) if d != options.dim as i32 => Err(BadInput::new(
            file,
            format!(
                "the store holds {} vectors of model {} with {d} values; these have {}",
                options.kind.table(),
                options.model,
                options.dim
            ),
        )
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_carry_the_video() {
        assert_eq!(id_in_name("298"), Some(298));
        assert_eq!(id_in_name("video_298"), Some(298));
        assert_eq!(id_in_name("video-12"), Some(12));
        assert_eq!(id_in_name("dinov2_298"), None);
        assert_eq!(id_in_name("298_cls"), None);
        assert_eq!(id_in_name("cls"), None);
    }
}
