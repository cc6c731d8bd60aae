//! `xp embed images` on a store: each distinct crop encoded once, nothing encoded again, the
//! embedder's provenance kept apart by name, bad input leaving the store as it was, and the
//! trainer reading the vectors like ingested ones.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed/dinov2-tiny")
}

/// (embedded videos, encoded crops, reused crops) from `xp embed images`' summary line.
fn embed(store: &Path, extra: &[&str]) -> (u64, u64, u64) {
    let model = model();
    let mut args = vec!["embed", "images", "--model", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = xp_ok(store, &args);
    let number = |before: &str| -> u64 {
        let head = out.split(before).next().unwrap_or_else(|| panic!("{out}"));
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (
        number(" videos embedded"),
        number(" crops encoded"),
        number(" reused"),
    )
}

fn sql_one(store: &Path, query: &str) -> String {
    xp_ok(store, &["sql", query, "--format", "csv"])
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string()
}

fn jpeg(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(20, 26, |x, y| {
        image::Rgb([(x * 9) as u8 ^ seed, (y * 7) as u8, (x + y) as u8 ^ seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[test]
fn each_distinct_crop_is_encoded_once_and_never_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let crops: u64 = sql_one(&store, "SELECT COUNT(DISTINCT crop_hash) FROM frames")
        .parse()
        .unwrap();
    let videos: u64 = sql_one(&store, "SELECT COUNT(DISTINCT video_id) FROM frames")
        .parse()
        .unwrap();
    assert_eq!(embed(&store, &[]), (videos, crops, 0));

    // Two frames of one video show the same new crop, a third another new one: two encodings.
    let ids: Vec<String> = xp_ok(
        &store,
        &[
            "sql",
            "SELECT DISTINCT video_id FROM frames ORDER BY video_id LIMIT 2",
            "--format",
            "csv",
        ],
    )
    .lines()
    .skip(1)
    .map(|l| l.trim().to_string())
    .collect();
    let (v1, v2) = (&ids[0], &ids[1]);
    let dir = tmp.path().join("crops");
    std::fs::create_dir_all(dir.join(v1)).unwrap();
    std::fs::write(dir.join(format!("{v1}/000000.jpg")), jpeg(1)).unwrap();
    std::fs::write(dir.join(format!("{v1}/000004.jpg")), jpeg(2)).unwrap();
    std::fs::write(dir.join(format!("{v1}/000008.jpg")), jpeg(1)).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "crops",
            "--from",
            "crops",
            dir.join(v1).to_str().unwrap(),
        ],
    );
    assert_eq!(embed(&store, &[]), (1, 2, 0));
    // Another video shows a crop the model has a vector for already: reused, not encoded.
    let dir2 = tmp.path().join("crops2");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::write(dir2.join(format!("{v2}_000003.jpg")), jpeg(1)).unwrap();
    xp_ok(
        &store,
        &["ingest", "crops", "--from", "crops", dir2.to_str().unwrap()],
    );
    assert_eq!(embed(&store, &[]), (1, 0, 1));
    assert_eq!(embed(&store, &[]), (0, 0, 0));
    // The frames that show one crop have one vector.
    let same = sql_one(
        &store,
        &format!(
            "SELECT COUNT(DISTINCT CAST(vector AS VARCHAR)) FROM embeddings \
             WHERE model = 'dinov2-tiny' AND ((video_id = {v1} AND frame IN (0, 8)) \
             OR (video_id = {v2} AND frame = 3))"
        ),
    );
    assert_eq!(same, "1");

    // Another pooling under the same name is refused and changes nothing; under its own
    // name (the default) its rows sit beside the others.
    let before = fingerprint(&store);
    let out = xp_out(
        &store,
        &[
            "embed",
            "images",
            "--model",
            model().to_str().unwrap(),
            "--pool",
            "mean",
            "--name",
            "dinov2-tiny",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("made by other weights, preprocessing or pooling"),
        "{err}"
    );
    assert_eq!(before, fingerprint(&store));
    embed(&store, &["--pool", "mean"]);
    let rows = xp_ok(
        &store,
        &[
            "sql",
            "SELECT model, COUNT(*) FROM embeddings WHERE model LIKE 'dinov2-tiny%' GROUP BY model ORDER BY model",
            "--format",
            "csv",
        ],
    );
    let counts: Vec<&str> = rows.lines().skip(1).collect();
    assert_eq!(counts.len(), 2, "{rows}");
    assert_eq!(
        counts[0].split(',').nth(1),
        counts[1].split(',').nth(1),
        "{rows}"
    );

    // Each name's embedder is recorded: the weights file's blake3 (hashed here, independently),
    // the pooling, and a fingerprint that every one of its vector rows carries.
    let weights = blake3::hash(&std::fs::read(model().join("model.safetensors")).unwrap());
    let recorded = xp_ok(
        &store,
        &[
            "sql",
            "SELECT model, architecture, weights_hash, pooling, unit, dim FROM embedders \
             WHERE vectors = 'embeddings' ORDER BY model",
            "--format",
            "csv",
        ],
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model().join("config.json")).unwrap()).unwrap();
    let hidden = &config["hidden_size"];
    assert_eq!(
        recorded.lines().skip(1).collect::<Vec<_>>(),
        vec![
            format!("dinov2-tiny,dinov2,{},cls,crop,{hidden}", weights.to_hex()),
            format!(
                "dinov2-tiny-mean,dinov2,{},mean,crop,{hidden}",
                weights.to_hex()
            ),
        ],
        "{recorded}"
    );
    let unmatched = sql_one(
        &store,
        "SELECT COUNT(*) FROM embeddings e LEFT JOIN embedders d \
         ON d.vectors = 'embeddings' AND d.model = e.model AND d.fingerprint = e.source_hash \
         WHERE e.model LIKE 'dinov2-tiny%' AND d.model IS NULL",
    );
    assert_eq!(unmatched, "0");

    // A folder without weights: the file and the model to get are named; nothing changes.
    let empty = tmp.path().join("no-weights");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(model().join("config.json"), empty.join("config.json")).unwrap();
    let before = fingerprint(&store);
    let out = xp_out(
        &store,
        &["embed", "images", "--model", empty.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.safetensors") && err.contains("facebook/dinov2"),
        "{err}"
    );
    assert_eq!(before, fingerprint(&store));

    // The trainer reads them by name, as it reads ingested vectors.
    let experiment =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_multimodal.yaml");
    let out = xp_ok(
        &store,
        &[
            "run",
            experiment.to_str().unwrap(),
            "--set",
            "model.modalities=[image]",
            "--set",
            "model.image.embedding=dinov2-tiny",
            "--set",
            "train.schedule=joint",
        ],
    );
    assert!(out.contains("trained 1 runs"), "{out}");
}

fn bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed/bert-tiny")
}

/// (embedded videos, encoded texts, reused texts) from `xp embed text`'s summary line.
fn embed_text(store: &Path, extra: &[&str]) -> (u64, u64, u64) {
    let model = bert();
    let mut args = vec!["embed", "text", "--model", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = xp_ok(store, &args);
    let number = |before: &str| -> u64 {
        let head = out.split(before).next().unwrap_or_else(|| panic!("{out}"));
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (
        number(" videos embedded"),
        number(" texts encoded"),
        number(" reused"),
    )
}

#[test]
fn each_distinct_text_is_encoded_once_and_an_edited_transcript_re_embeds_its_video() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let texts: u64 = sql_one(&store, "SELECT COUNT(DISTINCT text) FROM transcripts")
        .parse()
        .unwrap();
    let segments: u64 = sql_one(&store, "SELECT COUNT(*) FROM transcripts")
        .parse()
        .unwrap();
    assert!(
        texts < segments,
        "the demo repeats sentences: {texts} of {segments}"
    );
    let videos: u64 = sql_one(&store, "SELECT COUNT(DISTINCT video_id) FROM transcripts")
        .parse()
        .unwrap();
    assert_eq!(embed_text(&store, &[]), (videos, texts, 0));
    assert_eq!(embed_text(&store, &[]), (0, 0, 0));
    let unmatched = sql_one(
        &store,
        "SELECT COUNT(*) FROM text_embeddings e LEFT JOIN embedders d \
         ON d.vectors = 'text_embeddings' AND d.model = e.model \
         AND e.source_hash LIKE d.fingerprint || ':%' \
         WHERE e.model = 'bert-tiny' AND d.model IS NULL",
    );
    assert_eq!(unmatched, "0");
    assert_eq!(
        sql_one(
            &store,
            "SELECT pooling || ' ' || unit FROM embedders WHERE model = 'bert-tiny'"
        ),
        "cls segment"
    );
    assert_eq!(
        sql_one(
            &store,
            "SELECT COUNT(*) FROM text_embeddings WHERE model = 'bert-tiny'"
        ),
        segments.to_string()
    );

    // One video's interviewee says one new sentence and repeats an old one: that video alone
    // is embedded again, with one new text encoded.
    let video = sql_one(&store, "SELECT MIN(video_id) FROM transcripts");
    let old = sql_one(
        &store,
        &format!("SELECT text FROM transcripts WHERE video_id = {video} ORDER BY segment LIMIT 1"),
    );
    let old = old.trim_matches('"');
    let dir = tmp.path().join("edited").join(&video);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("interviewee.srt"),
        format!(
            "1\n00:00:01,000 --> 00:00:02,000\nA sentence nobody said before.\n\n\
             2\n00:00:03,000 --> 00:00:04,000\n{old}\n"
        ),
    )
    .unwrap();
    xp_ok(&store, &["ingest", "transcripts", dir.to_str().unwrap()]);
    assert_eq!(embed_text(&store, &[]), (1, 1, 1));

    // Per video, interviewee only: its own name, beside the segment vectors.
    embed_text(&store, &["--per", "video", "--speakers", "interviewee"]);
    assert_eq!(
        sql_one(
            &store,
            "SELECT COUNT(*) FROM text_embeddings \
             WHERE model = 'bert-tiny-video-interviewee' AND segment IS NULL"
        ),
        videos.to_string()
    );

    // A RoBERTa folder (byte-level BPE) is read the same way, under its own name.
    let roberta = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed/roberta-tiny");
    xp_ok(
        &store,
        &["embed", "text", "--model", roberta.to_str().unwrap()],
    );
    assert_eq!(
        sql_one(
            &store,
            "SELECT COUNT(*) FROM text_embeddings WHERE model = 'roberta-tiny'"
        ),
        sql_one(&store, "SELECT COUNT(*) FROM transcripts")
    );
    assert_eq!(
        sql_one(
            &store,
            "SELECT architecture FROM embedders WHERE model = 'roberta-tiny'"
        ),
        "roberta"
    );

    // The trainer reads them by name, interviewee segments only.
    let experiment =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_multimodal.yaml");
    let out = xp_ok(
        &store,
        &[
            "run",
            experiment.to_str().unwrap(),
            "--set",
            "model.modalities=[text]",
            "--set",
            "model.text.embedding=bert-tiny",
            "--set",
            "model.text.speakers=interviewee",
            "--set",
            "train.schedule=joint",
        ],
    );
    assert!(out.contains("trained 1 runs"), "{out}");
}

/// Runs `xp embed text` expecting exit code 1 and an error that mentions each of `needles`;
/// the store must be byte-for-byte as it was.
fn embed_text_refused(store: &Path, extra: &[&str], needles: &[&str]) {
    let model = bert();
    let mut args = vec!["embed", "text", "--model", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    let before = fingerprint(store);
    let out = xp_out(store, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
    }
    assert_eq!(before, fingerprint(store), "{args:?} changed the store");
}

#[test]
fn a_query_picks_the_videos_and_bad_text_input_leaves_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    // The videos a query returns, and only those.
    let query = "SELECT video_id FROM transcripts GROUP BY video_id ORDER BY video_id DESC LIMIT 2";
    assert_eq!(embed_text(&store, &["--sql", query]).0, 2);
    let picked = xp_ok(&store, &["sql", query, "--format", "csv"]);
    let stored = xp_ok(
        &store,
        &[
            "sql",
            "SELECT DISTINCT video_id FROM text_embeddings WHERE model = 'bert-tiny' \
             ORDER BY video_id DESC",
            "--format",
            "csv",
        ],
    );
    assert_eq!(picked, stored);
    // With --videos: the videos in both.
    let first = picked.lines().nth(1).unwrap().trim().to_string();
    let second = picked.lines().nth(2).unwrap().trim().to_string();
    let both = format!("{first},1");
    let (done, _, _) = embed_text(
        &store,
        &["--sql", query, "--videos", &both, "--pool", "mean"],
    );
    assert_eq!(done, 1);
    assert_eq!(
        sql_one(
            &store,
            "SELECT MIN(video_id) FROM text_embeddings WHERE model = 'bert-tiny-mean'"
        ),
        first
    );

    // A query whose first column does not hold video ids, or that selects nothing.
    embed_text_refused(
        &store,
        &["--sql", "SELECT gender FROM videos"],
        &["--sql", "`gender`", "video ids"],
    );
    embed_text_refused(
        &store,
        &["--sql", "SELECT video_id FROM videos WHERE video_id < 0"],
        &["no video selected"],
    );
    embed_text_refused(&store, &["--sql", "DROP TABLE videos"], &["read-only"]);

    // A video whose transcript has no interviewee turns has no interviewee text to embed:
    // refused by name before anything is written, the other videos included.
    let dir = tmp.path().join("interviewer_only").join(&second);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("interviewer.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nHow did the match go?\n",
    )
    .unwrap();
    xp_ok(&store, &["ingest", "transcripts", dir.to_str().unwrap()]);
    embed_text_refused(
        &store,
        &["--per", "video", "--speakers", "interviewee"],
        &[&format!("video {second}"), "no words of the interviewee"],
    );

    // A device this build cannot use.
    #[cfg(not(feature = "cuda"))]
    embed_text_refused(&store, &["--device", "cuda"], &["built without CUDA"]);
}

#[test]
fn a_killed_embed_keeps_what_it_committed_and_resumes_to_the_same_vectors() {
    let dump = |store: &Path| {
        xp_ok(
            store,
            &[
                "sql",
                "SELECT video_id, segment, source_hash, CAST(vector AS VARCHAR) AS v \
                 FROM text_embeddings WHERE model = 'bert-tiny' ORDER BY video_id, segment",
                "--format",
                "csv",
            ],
        )
    };
    let whole = tempfile::tempdir().unwrap();
    let whole = demo_store(whole.path());
    embed_text(&whole, &[]);

    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let videos: usize = sql_one(&store, "SELECT COUNT(DISTINCT video_id) FROM transcripts")
        .parse()
        .unwrap();
    let bert = bert();
    let out = xp(&store)
        .env("XP_CRASH_AT", "embed-committed")
        .args(["embed", "text", "--model", bert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "did not crash");
    // The first commit (8 videos) survived the kill; the next run embeds only the rest.
    assert_eq!(
        sql_one(
            &store,
            "SELECT COUNT(DISTINCT video_id) FROM text_embeddings WHERE model = 'bert-tiny'"
        ),
        "8"
    );
    assert_eq!(embed_text(&store, &[]).0 as usize, videos - 8);
    xp_ok(&store, &["verify"]);
    assert_eq!(dump(&store), dump(&whole));
}

/// Rewrites a crops part in place with every crop's bytes replaced by garbage (a damaged disk:
/// the part keeps its name and hashes), and returns one crop hash it held.
fn damage_a_crops_part(store: &Path) -> String {
    use arrow::array::{Array, AsArray, BinaryArray, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    for entry in walk(store) {
        if entry.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&entry).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = reader.schema().clone();
        let Ok(bytes_at) = schema.index_of("bytes") else {
            continue;
        };
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let hash = batches[0].column(0).as_string::<i32>().value(0).to_string();
        let mut out =
            ArrowWriter::try_new(std::fs::File::create(&entry).unwrap(), schema.clone(), None)
                .unwrap();
        for b in batches {
            let garbage = BinaryArray::from_iter_values(
                (0..b.num_rows()).map(|_| b"not an image at all".as_slice()),
            );
            let mut columns = b.columns().to_vec();
            assert_eq!(columns[bytes_at].len(), garbage.len());
            columns[bytes_at] = std::sync::Arc::new(garbage);
            out.write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                .unwrap();
        }
        out.close().unwrap();
        return hash;
    }
    panic!("no crops part under {}", store.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn a_stored_crop_that_does_not_decode_is_named_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    // Ingest decodes every crop, so only damage on disk can put one in the store.
    let hash = damage_a_crops_part(&store);
    let video = sql_one(
        &store,
        &format!("SELECT MIN(video_id) FROM frames WHERE crop_hash = '{hash}'"),
    );
    let before = fingerprint(&store);
    let model = model();
    let out = xp_out(
        &store,
        &[
            "embed",
            "images",
            "--model",
            model.to_str().unwrap(),
            "--videos",
            &video,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not decode as an image") && err.contains("xp verify"),
        "{err}"
    );
    assert_eq!(before, fingerprint(&store));
    // And `xp verify`, which the error points to, finds the damage.
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(4));
}
