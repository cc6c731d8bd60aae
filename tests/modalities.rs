//! Every modality round-trips: what goes in through `xp ingest` is what `xp sql` gives back
//! (vectors bit-exact, crop bytes identical, text identical), one test per source format.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int32Type, Schema};
use common::*;
use image::{Rgb, RgbImage};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use xp::ingest::boxes::PixelBox;
use xp::ingest::images::encode_jpeg;
use xp::ingest::{npy, safetensors_file};

/// A store with labels for videos 1..=4.
fn labelled_store(tmp: &Path) -> PathBuf {
    let store = tmp.join("store");
    let labels = write_labels(tmp, &[1, 2, 3, 4]);
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    store
}

/// Runs a query and reads its result back through Parquet, so values are compared exactly.
fn query(store: &Path, sql: &str) -> Vec<RecordBatch> {
    let out = store.parent().unwrap().join("query.parquet");
    xp_ok(
        store,
        &[
            "sql",
            sql,
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap())
        .unwrap()
        .build()
        .unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// Deterministic, varied floats (including tiny and large magnitudes).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32;
            (x - 0.5) * if i % 7 == 0 { 1e-3 } else { 40.0 }
        })
        .collect()
}

/// (frame, vector bits) of a video's embeddings of one model.
fn stored_vectors(
    store: &Path,
    table: &str,
    video: i32,
    index: &str,
) -> Vec<(Option<i32>, Vec<u32>)> {
    let mut out = Vec::new();
    for b in query(
        store,
        &format!("SELECT {index}, vector FROM {table} WHERE video_id = {video} ORDER BY {index}"),
    ) {
        let idx = b.column(0).as_primitive::<Int32Type>().clone();
        let vectors = b.column(1).as_list::<i32>().clone();
        for i in 0..b.num_rows() {
            let v = vectors.value(i);
            let bits = v
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            out.push(((!idx.is_null(i)).then(|| idx.value(i)), bits));
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn npy_float32_and_float16_round_trip_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let v32 = values(5 * 768, 1);
    let v16 = values(3 * 768, 2);
    npy::write_f32(&tmp.path().join("1.npy"), &[5, 768], &v32).unwrap();
    npy::write_f16(&tmp.path().join("2_dino.npy"), &[3, 768], &v16).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "dinov2-base",
            "--frame-stride",
            "4",
            tmp.path().join("1.npy").to_str().unwrap(),
            tmp.path().join("2_dino.npy").to_str().unwrap(),
        ],
    );
    let got = stored_vectors(&store, "embeddings", 1, "frame");
    assert_eq!(got.len(), 5);
    for (i, (frame, v)) in got.iter().enumerate() {
        assert_eq!(*frame, Some(4 * i as i32));
        assert_eq!(v, &bits(&v32[i * 768..(i + 1) * 768]));
    }
    let got = stored_vectors(&store, "embeddings", 2, "frame");
    assert_eq!(got.len(), 3);
    let widened: Vec<f32> = v16
        .iter()
        .map(|&x| half::f16::from_f32(x).to_f32())
        .collect();
    for (i, (frame, v)) in got.iter().enumerate() {
        assert_eq!(*frame, Some(4 * i as i32));
        assert_eq!(v, &bits(&widened[i * 768..(i + 1) * 768]));
    }
}

/// numpy writes `.npy` files of every kind xp reads; beside each, the same values as raw
/// little-endian float32 (`tofile`), the independent reference.
const NUMPY_WRITER: &str = r#"
import sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(7)
cases = {
    "f32": rng.standard_normal((3, 768)).astype("<f4"),
    "f16": rng.standard_normal((5, 768)).astype("<f2"),
    "big_endian": rng.standard_normal((2, 384)).astype(">f4"),
    "vector": rng.standard_normal(768).astype("<f4"),
    "many_rows": rng.standard_normal((1000, 64)).astype("<f4"),
    "fortran_one_row": np.asfortranarray(rng.standard_normal((1, 32)).astype("<f4")),
}
for name, a in cases.items():
    np.save(f"{out}/{name}.npy", a)
    a.astype("<f4").tofile(f"{out}/{name}.raw")
# Format version 2.0 (a 4-byte header length), as numpy writes for very long headers.
a = rng.standard_normal((4, 16)).astype("<f4")
with open(f"{out}/version2.npy", "wb") as f:
    np.lib.format.write_array(f, a, version=(2, 0))
a.tofile(f"{out}/version2.raw")
"#;

#[test]
fn npy_files_numpy_wrote_read_back_exactly() {
    if !python_with(
        "numpy",
        "npy_files_numpy_wrote_read_back_exactly",
        "XP_REQUIRE_NUMPY",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    run_python(NUMPY_WRITER, &[tmp.path().to_str().unwrap()]);
    let cases = [
        ("f32", 3, 768),
        ("f16", 5, 768),
        ("big_endian", 2, 384),
        ("vector", 1, 768),
        ("many_rows", 1000, 64),
        ("fortran_one_row", 1, 32),
        ("version2", 4, 16),
    ];
    for (name, rows, dim) in cases {
        let mut reader = npy::NpyReader::open(&tmp.path().join(format!("{name}.npy")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((reader.rows(), reader.dim()), (rows, dim), "{name}");
        let mut got = Vec::new();
        while reader.read_rows(7, &mut got).unwrap() > 0 {}
        let raw = std::fs::read(tmp.path().join(format!("{name}.raw"))).unwrap();
        let expected: Vec<u32> = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(bits(&got), expected, "{name}: values differ from numpy's");
    }
}

#[test]
fn safetensors_with_frame_numbers_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let a = values(4 * 384, 3);
    let b = values(2 * 384, 4);
    let path = tmp.path().join("dino.safetensors");
    use safetensors_file::TensorData;
    safetensors_file::write(
        &path,
        &[
            ("video_3", &[4, 384], TensorData::F32(&a)),
            ("video_3.frames", &[4], TensorData::I64(&[40, 10, 30, 20])),
            ("4", &[2, 384], TensorData::F32(&b)),
        ],
        None,
    )
    .unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "dinov2-small",
            path.to_str().unwrap(),
        ],
    );
    let got = stored_vectors(&store, "embeddings", 3, "frame");
    // Stored in frame order: frame 10 is the file's row 1.
    let frames: Vec<_> = got.iter().map(|g| g.0.unwrap()).collect();
    assert_eq!(frames, [10, 20, 30, 40]);
    assert_eq!(got[0].1, bits(&a[384..768]));
    assert_eq!(got[3].1, bits(&a[..384]));
    let got = stored_vectors(&store, "embeddings", 4, "frame");
    assert_eq!(got[1].1, bits(&b[384..]));
}

#[test]
fn parquet_vectors_round_trip_and_text_embeddings_per_video_and_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    // Parquet image embeddings: video_id, frame, fixed-size vector.
    let dim = 16;
    let vals = values(6 * dim, 5);
    let schema = Arc::new(Schema::new(vec![
        Field::new("video_id", DataType::Int32, false),
        Field::new("frame", DataType::Int32, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 1, 1, 2, 2, 2])),
            Arc::new(Int32Array::from(vec![0, 5, 9, 0, 1, 2])),
            Arc::new(FixedSizeListArray::new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
                Arc::new(Float32Array::from(vals.clone())),
                None,
            )),
        ],
    )
    .unwrap();
    let path = tmp.path().join("vectors.parquet");
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "my-encoder",
            "--dim",
            "16",
            path.to_str().unwrap(),
        ],
    );
    let got = stored_vectors(&store, "embeddings", 1, "frame");
    assert_eq!(got[1], (Some(5), bits(&vals[dim..2 * dim])));
    let got = stored_vectors(&store, "embeddings", 2, "frame");
    assert_eq!(got[2], (Some(2), bits(&vals[5 * dim..])));

    // Text: one vector per video (.npy [dim]) and per segment (--per-segment).
    let whole = values(768, 6);
    npy::write_f32(&tmp.path().join("1.npy"), &[768], &whole).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "text-embeddings",
            "--model",
            "bert-base-uncased",
            tmp.path().join("1.npy").to_str().unwrap(),
        ],
    );
    let got = stored_vectors(&store, "text_embeddings", 1, "segment");
    assert_eq!(got, vec![(None, bits(&whole))]);
    let segs = values(3 * 8, 7);
    npy::write_f32(&tmp.path().join("2.npy"), &[3, 8], &segs).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "text-embeddings",
            "--model",
            "tiny-text",
            "--dim",
            "8",
            "--per-segment",
            tmp.path().join("2.npy").to_str().unwrap(),
        ],
    );
    let got = stored_vectors(&store, "text_embeddings", 2, "segment");
    assert_eq!(got[2], (Some(2), bits(&segs[16..])));
}

fn picture(w: u32, h: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 3) as u8 ^ seed,
            (y * 5) as u8,
            (x + y) as u8 ^ seed.wrapping_mul(7),
        ])
    })
}

/// (frame, crop bytes) of a video, through the frames -> crops join.
fn stored_crops(store: &Path, video: i32) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    for b in query(
        store,
        &format!(
            "SELECT f.frame, c.bytes FROM frames f JOIN crops c ON c.crop_hash = f.crop_hash \
             WHERE f.video_id = {video} ORDER BY f.frame"
        ),
    ) {
        let frames = b.column(0).as_primitive::<Int32Type>().clone();
        let bytes = b.column(1).as_binary::<i32>().clone();
        for i in 0..b.num_rows() {
            out.push((frames.value(i), bytes.value(i).to_vec()));
        }
    }
    out
}

#[test]
fn ready_made_crops_keep_their_bytes_and_a_shared_crop_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let dir = tmp.path().join("crops");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    let a = encode_jpeg(&picture(32, 48, 1), 90);
    let b = encode_jpeg(&picture(20, 20, 2), 75);
    // Frames 0 and 8 of video 1 and frame 3 of video 2 show the same crop.
    std::fs::write(dir.join("1/000000.jpg"), &a).unwrap();
    std::fs::write(dir.join("1/000004.jpg"), &b).unwrap();
    std::fs::write(dir.join("1/000008.jpg"), &a).unwrap();
    std::fs::write(dir.join("2_000003.jpg"), &a).unwrap();
    xp_ok(
        &store,
        &["ingest", "crops", "--from", "crops", dir.to_str().unwrap()],
    );
    assert_eq!(
        stored_crops(&store, 1),
        vec![(0, a.clone()), (4, b.clone()), (8, a.clone())]
    );
    assert_eq!(stored_crops(&store, 2), vec![(3, a.clone())]);
    let counts = query(&store, "SELECT COUNT(*), SUM(size) FROM crops");
    assert_eq!(
        counts[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
    assert_eq!(
        counts[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        (a.len() + b.len()) as i64
    );
    let frames = query(&store, "SELECT COUNT(*) FROM frames");
    assert_eq!(
        frames[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        4
    );

    // A later ingest of the same crop for another video adds no crop.
    std::fs::write(dir.join("3_000001.jpg"), &a).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "crops",
            "--from",
            "crops",
            dir.join("3_000001.jpg").to_str().unwrap(),
        ],
    );
    let counts = query(&store, "SELECT COUNT(*) FROM crops");
    assert_eq!(
        counts[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
    let use_ = query(
        &store,
        "SELECT frames, videos FROM crop_use ORDER BY frames DESC",
    );
    assert_eq!(
        use_[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        4
    );
    assert_eq!(
        use_[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        3
    );
}

#[test]
fn frames_with_yolo_and_ultralytics_boxes_are_cut_at_the_person() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let frames = tmp.path().join("frames/1");
    let labels = tmp.path().join("labels/1");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    let (w, h) = (160, 90);
    let pics: Vec<RgbImage> = (0..3).map(|i| picture(w, h, i as u8 * 40)).collect();
    // PNG frames, so the decoded pixels are exactly these.
    for (i, p) in pics.iter().enumerate() {
        p.save(frames.join(format!("{i:06}.png"))).unwrap();
    }
    // Frame 0: a small person and a larger one (picked: largest) plus a chair (class 56).
    std::fs::write(
        labels.join("000000.txt"),
        "0 0.25 0.5 0.1 0.2 0.9\n0 0.5 0.5 0.5 0.6 0.4\n56 0.9 0.9 0.1 0.1 0.8\n",
    )
    .unwrap();
    // Frame 1: Ultralytics JSON in pixels.
    std::fs::write(
        labels.join("000001.json"),
        r#"[{"name": "person", "class": 0, "confidence": 0.88, "box": {"x1": 10.0, "y1": 20.0, "x2": 50.0, "y2": 80.0}}]"#,
    )
    .unwrap();
    // Frame 2: no detections file: no person.
    xp_ok(
        &store,
        &[
            "ingest",
            "crops",
            tmp.path().join("frames").to_str().unwrap(),
            "--boxes",
            tmp.path().join("labels").to_str().unwrap(),
        ],
    );
    let rows = query(
        &store,
        "SELECT frame, box_x, box_y, box_w, box_h, detections, crop_hash IS NULL FROM frames ORDER BY frame",
    );
    let r = &rows[0];
    let col = |c: usize| r.column(c).as_primitive::<Int32Type>().clone();
    let pixel_box = |i: usize| PixelBox {
        x: col(1).value(i) as u32,
        y: col(2).value(i) as u32,
        w: col(3).value(i) as u32,
        h: col(4).value(i) as u32,
    };
    // The larger person of frame 0: centre (80, 45), size 80 x 54, give or take rounding.
    let b0 = pixel_box(0);
    assert!(b0.x.abs_diff(40) <= 1 && b0.y.abs_diff(18) <= 1, "{b0:?}");
    assert!(b0.w.abs_diff(80) <= 1 && b0.h.abs_diff(54) <= 1, "{b0:?}");
    assert_eq!(
        pixel_box(1),
        PixelBox {
            x: 10,
            y: 20,
            w: 40,
            h: 60
        }
    );
    assert_eq!(
        r.column(5)
            .as_primitive::<arrow::datatypes::Int16Type>()
            .value(0),
        2
    );
    assert!(r.column(6).as_boolean().value(2), "frame 2 has no crop");
    // The stored JPEGs show those pixels of those frames.
    let got = stored_crops(&store, 1);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[1].0), (0, 1));
    assert_is_crop_of(&got[0].1, &pics[0], b0);
    assert_is_crop_of(&got[1].1, &pics[1], pixel_box(1));
}

/// Mean absolute difference per channel between an image and a region of another.
fn mean_abs_diff(a: &RgbImage, b: &RgbImage, x: u32, y: u32) -> f64 {
    let mut sum = 0u64;
    for (px, py, p) in a.enumerate_pixels() {
        let q = b.get_pixel(x + px, y + py);
        sum += (0..3).map(|c| u64::from(p[c].abs_diff(q[c]))).sum::<u64>();
    }
    sum as f64 / (3 * a.width() * a.height()) as f64
}

/// Checks a stored crop against the source frame itself (not against xp's own encoder): it
/// decodes to the box's size, its pixels match the box's region within JPEG loss, and match
/// it far better than the same region one pixel off.
fn assert_is_crop_of(jpeg: &[u8], frame: &RgbImage, b: PixelBox) {
    let decoded = image::load_from_memory(jpeg).unwrap().to_rgb8();
    assert_eq!((decoded.width(), decoded.height()), (b.w, b.h), "{b:?}");
    let right = mean_abs_diff(&decoded, frame, b.x, b.y);
    let shifted_x = if b.x > 0 { b.x - 1 } else { b.x + 1 };
    let shifted = mean_abs_diff(&decoded, frame, shifted_x, b.y);
    assert!(
        right < 12.0,
        "{b:?}: mean difference {right} from the source region"
    );
    assert!(
        right * 2.0 < shifted,
        "{b:?}: {right} vs {shifted} one pixel off"
    );
}

#[test]
fn transcripts_in_every_format_keep_their_text() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let d = tmp.path().join("tr");
    std::fs::create_dir_all(d.join("4")).unwrap();
    std::fs::write(
        d.join("1.srt"),
        "1\n00:00:01,000 --> 00:00:02,500\nHow was it?\n\n2\n00:00:03,000 --> 00:00:05,250\nGreat, thank you.\nReally great.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("2.vtt"),
        "WEBVTT\n\nNOTE made by hand\n\n00:01.000 --> 00:02.000 align:start\n<v Interviewer>Ready?</v>\n\n00:02.500 --> 00:04.000\n<v Player>Yes — ça va, 谢谢.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("3.json"),
        r#"{"language": "en", "segments": [{"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there.", "tokens": [1, 2]}, {"id": 1, "start": 1.5, "end": 3.0, "speaker": "SPEAKER_01", "text": " Hi!"}]}"#,
    )
    .unwrap();
    std::fs::write(d.join("4/interviewer.srt"), "1\n00:00:00,000 --> 00:00:01,000\nQuestion one?\n\n2\n00:00:04,000 --> 00:00:05,000\nQuestion two?\n").unwrap();
    std::fs::write(
        d.join("4/interviewee.srt"),
        "1\n00:00:01,500 --> 00:00:03,000\nAnswer one.\n",
    )
    .unwrap();
    xp_ok(&store, &["ingest", "transcripts", d.to_str().unwrap()]);
    let txt = tmp.path().join("5_notes.txt");
    std::fs::write(&txt, "Interviewer: What now?\nI rest.   Then train.\n").unwrap();
    let out = xp_out(&store, &["ingest", "transcripts", txt.to_str().unwrap()]);
    // Video 5 has no labels: refused, and the hint says so.
    assert_eq!(out.status.code(), Some(3));
    xp_ok(
        &store,
        &[
            "ingest",
            "transcripts",
            txt.to_str().unwrap(),
            "--video",
            "2",
            "--allow-unknown-videos",
        ],
    );

    let rows = query(
        &store,
        "SELECT video_id, segment, start_s, end_s, speaker, text FROM transcripts ORDER BY video_id, segment",
    );
    let mut got = Vec::new();
    for b in rows {
        let v = b.column(0).as_primitive::<Int32Type>().clone();
        let s = b.column(1).as_primitive::<Int32Type>().clone();
        let start = b.column(2).as_primitive::<Float64Type>().clone();
        let end = b.column(3).as_primitive::<Float64Type>().clone();
        let who = b.column(4).as_string::<i32>().clone();
        let text = b.column(5).as_string::<i32>().clone();
        for i in 0..b.num_rows() {
            got.push((
                v.value(i),
                s.value(i),
                (!start.is_null(i)).then(|| start.value(i)),
                (!end.is_null(i)).then(|| end.value(i)),
                (!who.is_null(i)).then(|| who.value(i).to_string()),
                text.value(i).to_string(),
            ));
        }
    }
    let s = |x: &str| Some(x.to_string());
    let expected = vec![
        (1, 0, Some(1.0), Some(2.5), None, "How was it?".to_string()),
        (
            1,
            1,
            Some(3.0),
            Some(5.25),
            None,
            "Great, thank you.\nReally great.".to_string(),
        ),
        // Video 2's VTT was replaced by the text file.
        (2, 0, None, None, s("Interviewer"), "What now?".to_string()),
        (2, 1, None, None, None, "I rest.   Then train.".to_string()),
        (
            3,
            0,
            Some(0.0),
            Some(1.5),
            None,
            " Hello there.".to_string(),
        ),
        (
            3,
            1,
            Some(1.5),
            Some(3.0),
            s("SPEAKER_01"),
            " Hi!".to_string(),
        ),
        (
            4,
            0,
            Some(0.0),
            Some(1.0),
            s("interviewer"),
            "Question one?".to_string(),
        ),
        (
            4,
            1,
            Some(1.5),
            Some(3.0),
            s("interviewee"),
            "Answer one.".to_string(),
        ),
        (
            4,
            2,
            Some(4.0),
            Some(5.0),
            s("interviewer"),
            "Question two?".to_string(),
        ),
    ];
    assert_eq!(got, expected);
}

#[test]
fn webvtt_voices_and_unicode_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let f = tmp.path().join("2.vtt");
    std::fs::write(
        &f,
        "WEBVTT\n\n00:01.000 --> 00:02.000 align:start\n<v Interviewer>Ready?</v>\n\n00:02.500 --> 00:04.000\n<v Player>Yes — ça va, 谢谢.\n",
    )
    .unwrap();
    xp_ok(&store, &["ingest", "transcripts", f.to_str().unwrap()]);
    let rows = query(
        &store,
        "SELECT speaker, text FROM transcripts ORDER BY segment",
    );
    let who = rows[0].column(0).as_string::<i32>();
    let text = rows[0].column(1).as_string::<i32>();
    assert_eq!((who.value(0), text.value(0)), ("Interviewer", "Ready?"));
    assert_eq!(
        (who.value(1), text.value(1)),
        ("Player", "Yes — ça va, 谢谢.")
    );
}

#[test]
fn pseudo_labels_round_trip_coexist_and_compare_with_gold() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let f = tmp.path().join("vlm.jsonl");
    let reasoning = "Step 1: arms crossed.\nStep 2: \"tight\" smile — nervous.";
    let lines = [
        serde_json::json!({"video_id": 1, "label": "Win", "confidence": 0.8, "reasoning": reasoning, "reflection": "I keep win.", "prompt": "Did they win?", "raw_response": "{\"label\":\"win\"}"}),
        serde_json::json!({"video_id": 2, "label": "win", "reasoning": "r2", "prompt": "Did they win?"}),
        serde_json::json!({"video": "3", "label": "lose", "prompt": "Did they win?"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&f, &text).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm-a",
        ],
    );
    // Same answers again: nothing changes.
    let before = fingerprint(&store);
    let out = xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm-a",
        ],
    );
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(fingerprint(&store), before);
    // Another labeler answers differently: both are kept.
    std::fs::write(
        &f,
        "{\"video_id\": 1, \"label\": \"lose\", \"prompt\": \"Did they win?\"}\n",
    )
    .unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm-b",
        ],
    );

    let rows = query(
        &store,
        "SELECT labeler, video_id, label, confidence, reasoning, reflection, prompt_hash, raw_response FROM pseudo_labels ORDER BY labeler, video_id",
    );
    let b = &rows[0];
    assert_eq!(b.num_rows(), 4);
    let labels = b.column(2).as_string::<i32>();
    assert_eq!(
        (0..4).map(|i| labels.value(i)).collect::<Vec<_>>(),
        ["win", "win", "lose", "lose"]
    );
    assert_eq!(b.column(4).as_string::<i32>().value(0), reasoning);
    assert_eq!(b.column(3).as_primitive::<Float64Type>().value(0), 0.8);
    assert!(b.column(3).is_null(1));
    assert_eq!(
        b.column(6).as_string::<i32>().value(0),
        blake3::hash(b"Did they win?").to_hex().as_str()
    );
    assert_eq!(
        b.column(7).as_string::<i32>().value(0),
        "{\"label\":\"win\"}"
    );

    // Gold labels (write_labels): odd videos win, even lose.
    let q = query(
        &store,
        "SELECT labeler, videos, agree FROM pseudo_label_quality ORDER BY labeler",
    );
    let agree = q[0].column(2).as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(
        agree.value(0),
        1,
        "vlm-a: 1 win (right), 2 win (wrong), 3 lose (wrong)"
    );
    assert_eq!(agree.value(1), 0);
    let o = query(
        &store,
        "SELECT video_id, pseudo_label, labelers FROM video_overview ORDER BY video_id",
    );
    let pl = o[0].column(1).as_string::<i32>();
    assert_eq!(pl.value(0), "mixed");
    assert_eq!(pl.value(1), "win");
    assert!(pl.is_null(3));
}

/// The ffmpeg xp will use (`XP_FFMPEG`, else `ffmpeg` on the PATH), if it runs.
fn ffmpeg() -> Option<std::ffi::OsString> {
    let exe = std::env::var_os("XP_FFMPEG").unwrap_or_else(|| "ffmpeg".into());
    std::process::Command::new(&exe)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(exe)
}

#[test]
fn video_files_decode_through_ffmpeg_or_say_it_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = labelled_store(tmp.path());
    let frames = tmp.path().join("src");
    std::fs::create_dir_all(&frames).unwrap();
    let pics: Vec<RgbImage> = (0..4).map(|i| picture(64, 48, i as u8 * 50)).collect();
    for (i, p) in pics.iter().enumerate() {
        p.save(frames.join(format!("{i:03}.png"))).unwrap();
    }
    let boxes = tmp.path().join("boxes");
    std::fs::create_dir_all(&boxes).unwrap();
    // Ultralytics numbers the label files of a video from 1: 1_1.txt is frame 0.
    for i in 1..=4 {
        std::fs::write(boxes.join(format!("1_{i}.txt")), "0 0.5 0.5 0.5 0.5 0.9\n").unwrap();
    }
    let video = tmp.path().join("1.mkv");
    let Some(exe) = ffmpeg() else {
        assert!(
            std::env::var_os("XP_REQUIRE_FFMPEG").is_none(),
            "XP_REQUIRE_FFMPEG is set but no ffmpeg runs (set XP_FFMPEG or install ffmpeg)"
        );
        // No ffmpeg: the ingest must refuse with advice, and write nothing.
        std::fs::write(&video, b"not decoded").unwrap();
        let before = fingerprint(&store);
        let out = xp_out(&store, &["ingest", "crops", video.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains("ffmpeg") && err.contains("not installed"),
            "{err}"
        );
        assert_eq!(fingerprint(&store), before);
        eprintln!("SKIPPED the video decoding round trip: ffmpeg is not installed here");
        return;
    };
    // A lossless video, so decoded pixels equal the PNGs.
    let status = std::process::Command::new(exe)
        .args(["-v", "error", "-framerate", "25", "-i"])
        .arg(frames.join("%03d.png"))
        .args(["-c:v", "ffv1", "-pix_fmt", "bgr0"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    xp_ok(
        &store,
        &[
            "ingest",
            "crops",
            video.to_str().unwrap(),
            "--boxes",
            boxes.to_str().unwrap(),
            "--box-frame-base",
            "1",
        ],
    );
    let got = stored_crops(&store, 1);
    assert_eq!(got.len(), 4);
    let b = PixelBox {
        x: 16,
        y: 12,
        w: 32,
        h: 24,
    };
    for (i, (frame, bytes)) in got.iter().enumerate() {
        assert_eq!(*frame, i as i32);
        assert_is_crop_of(bytes, &pics[i], b);
        // Each frame's own pixels, not a neighbour's.
        let decoded = image::load_from_memory(bytes).unwrap().to_rgb8();
        let other = &pics[(i + 1) % pics.len()];
        assert!(
            mean_abs_diff(&decoded, &pics[i], b.x, b.y) * 2.0
                < mean_abs_diff(&decoded, other, b.x, b.y)
        );
    }
}
