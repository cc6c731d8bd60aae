//! One function per command: parse nothing, decide nothing about exit codes; print results.

mod experiment;
mod export;
mod workers;

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::{
    Cli, Command, CropFromArg, DemoArgs, IngestCommand, PickArg, SqlArgs, VectorArgs,
    VideoCheckArgs,
};
use crate::ingest::{self, IngestOptions};
use crate::output::{self, Format, new_table};
use crate::progress::Progress;
use crate::store::{self, Store};

/// The process exit code of a failed `xp verify`.
pub const EXIT_DAMAGED: i32 = 4;

/// Runs one command; returns the exit code for success paths that are not plain 0.
pub fn run(cli: Cli) -> Result<i32> {
    let progress = Progress::new(cli.quiet);
    let root = cli.store.as_path();
    match cli.command {
        Command::Init => init(root),
        Command::Tables(s) => tables(root, &s.snapshot),
        Command::Log { limit } => log(root, limit),
        Command::Verify => verify(root, progress),
        Command::Gc { keep, dry_run } => gc(root, keep, dry_run),
        Command::Ingest(cmd) => ingest_cmd(root, cmd, progress),
        Command::Embed(cmd) => embed_cmd(root, cmd, progress),
        Command::Sql(args) => sql(root, args),
        Command::Schema { table } => schema(table.as_deref()),
        Command::Demo(args) => demo(root, args, progress),
        Command::Run(args) => experiment::run(root, args, progress),
        Command::Runs {
            experiment: e,
            variant,
        } => experiment::runs(root, e.as_deref(), variant.as_deref()),
        Command::Show { run } => experiment::show(root, &run),
        Command::Diff { a, b } => experiment::diff(root, &a, &b),
        Command::Export { run, dir } => export::export(root, &run, &dir),
        Command::Leaderboard(args) => experiment::leaderboard_cmd(root, args, progress),
    }
}

fn embed_cmd(root: &Path, cmd: crate::cli::EmbedCommand, progress: Progress) -> Result<i32> {
    match cmd {
        crate::cli::EmbedCommand::Images {
            model,
            name,
            pool,
            scope,
            batch,
        } => {
            let options = crate::embed::images::EmbedImagesOptions {
                model_dir: model,
                name,
                pool,
                videos: videos_in_scope(root, &scope)?,
                device: scope.device,
                batch,
                videos_per_commit: 8,
                progress,
            };
            let s = crate::embed::images::embed_images(root, &options)?;
            println!(
                "embeddings ({}, {} values): {} videos embedded, {} already current | {} \
                 frames | {} crops encoded, {} reused | {:.1} s",
                s.name,
                s.dim,
                s.videos_done,
                s.videos_skipped,
                s.frames,
                s.encoded,
                s.reused,
                s.seconds
            );
        }
        crate::cli::EmbedCommand::Text {
            model,
            name,
            pool,
            per,
            speakers,
            scope,
        } => {
            let options = crate::embed::texts::EmbedTextOptions {
                model_dir: model,
                name,
                pool,
                per,
                speakers,
                videos: videos_in_scope(root, &scope)?,
                device: scope.device,
                videos_per_commit: 8,
                progress,
            };
            let s = crate::embed::texts::embed_text(root, &options)?;
            println!(
                "text_embeddings ({}, {} values): {} videos embedded, {} already current | {} \
                 texts | {} texts encoded, {} reused | {:.1} s",
                s.name,
                s.dim,
                s.videos_done,
                s.videos_skipped,
                s.texts,
                s.encoded,
                s.reused,
                s.seconds
            );
        }
    }
    Ok(0)
}

/// The videos `--videos` and `--sql` select (both: those in both), or None for every video.
fn videos_in_scope(root: &Path, scope: &crate::cli::EmbedScope) -> Result<Option<Vec<i32>>> {
    let Some(query) = &scope.sql else {
        return Ok(scope.videos.clone());
    };
    let store = Store::open(root)?;
    let head = store.head()?;
    let (schema, batches) = runtime()?.block_on(async {
        let ctx = crate::query::session(&store, &head.snapshot.id()).await?;
        crate::query::run(&ctx, query).await
    })?;
    let first = schema
        .fields()
        .first()
        .ok_or_else(|| anyhow::anyhow!("--sql: the query returns no columns"))?;
    if !first.data_type().is_integer() {
        bail!(
            "--sql: the first column, `{}`, is {}: it must hold video ids (integers)",
            first.name(),
            first.data_type()
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for b in &batches {
        let column = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int32)?;
        let column = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int32Type>(&column);
        // A null, or (after the cast) a value beyond 32 bits.
        if arrow::array::Array::null_count(column) > 0 {
            bail!(
                "--sql: the first column, `{}`, holds a null or a number too large for a \
                 video id",
                first.name()
            );
        }
        ids.extend(column.values().iter().copied());
    }
    let mut ids: Vec<i32> = ids.into_iter().collect();
    if let Some(only) = &scope.videos {
        ids.retain(|v| only.contains(v));
    }
    if ids.is_empty() {
        bail!(
            "--sql{}: no video selected",
            if scope.videos.is_some() {
                " with --videos"
            } else {
                ""
            }
        );
    }
    Ok(Some(ids))
}

/// The first 12 characters of an id, as the tables show it.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn init(root: &Path) -> Result<i32> {
    let (_, created) = Store::init(root)?;
    if created {
        println!("created an empty store at {}", root.display());
    } else {
        println!("{} already holds a store; nothing changed", root.display());
    }
    Ok(0)
}

fn tables(root: &Path, snapshot: &str) -> Result<i32> {
    let store = Store::open(root)?;
    let id = store.resolve_snapshot(snapshot)?;
    let snap = store.read_snapshot(&id)?;
    let versions = store.tables_of(&snap)?;
    let mut t = new_table();
    t.set_header(["table", "rows", "bytes", "parts", "version"]);
    for def in crate::schema::stored_tables() {
        match versions.get(&def.name) {
            Some(v) => t.add_row([
                def.name.clone(),
                v.rows().to_string(),
                v.bytes().to_string(),
                v.parts.len().to_string(),
                short(&snap.tables[&def.name]).to_string(),
            ]),
            None => t.add_row([
                def.name.clone(),
                "0".into(),
                "0".into(),
                "0".into(),
                "-".into(),
            ]),
        };
    }
    for col in 1..=3 {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    println!("snapshot {id}");
    println!("{t}");
    Ok(0)
}

fn log(root: &Path, limit: Option<usize>) -> Result<i32> {
    let store = Store::open(root)?;
    let seqs = store.log_seqs()?;
    if seqs.is_empty() {
        println!("no commits yet (the store is empty)");
        return Ok(0);
    }
    let collected = store::gc_collected(&store);
    let mut t = new_table();
    t.set_header(["#", "time (UTC)", "snapshot", "operation", "changes"]);
    for &seq in seqs.iter().rev().take(limit.unwrap_or(usize::MAX)) {
        let e = store.read_log(seq)?;
        let changes: Vec<String> = e
            .changes
            .iter()
            .map(|c| {
                let delta = c.rows_after as i64 - c.rows_before as i64;
                format!(
                    "{}: {:+} rows ({} -> {}), {} parts added, {} replaced",
                    c.table, delta, c.rows_before, c.rows_after, c.parts_added, c.parts_removed
                )
            })
            .collect();
        let mut snap = short(&e.snapshot).to_string();
        if collected.contains(&e.snapshot) {
            snap.push_str(" (collected)");
        }
        t.add_row([
            seq.to_string(),
            e.time.replace('T', " ").trim_end_matches('Z').to_string(),
            snap,
            e.operation.clone(),
            changes.join("\n"),
        ]);
    }
    println!("{t}");
    Ok(0)
}

fn verify(root: &Path, progress: Progress) -> Result<i32> {
    let store = Store::open(root)?;
    let parts = std::fs::read_dir(store.parts_dir())?.count() as u64;
    let bar = progress.bar(parts, "verify", "parts");
    let report = store::verify(&store, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    for p in &report.problems {
        eprintln!("DAMAGED {p}");
    }
    println!(
        "checked {} files ({} bytes of parts): {}",
        report.files_checked,
        report.bytes_checked,
        if report.ok() {
            "all good".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    if report.staging_leftovers > 0 {
        println!(
            "note: {} staging folders of interrupted writers remain (harmless; `xp gc` removes them)",
            report.staging_leftovers
        );
    }
    Ok(if report.ok() { 0 } else { EXIT_DAMAGED })
}

fn gc(root: &Path, keep: Option<usize>, dry_run: bool) -> Result<i32> {
    let store = Store::open(root)?;
    let report = store::gc(&store, keep, dry_run)?;
    for f in &report.removed_files {
        println!(
            "{} {}",
            if dry_run { "would remove" } else { "removed" },
            f.display()
        );
    }
    println!(
        "{} {} files ({} bytes); {} snapshots kept",
        if dry_run { "would remove" } else { "removed" },
        report.removed_files.len(),
        report.removed_bytes,
        report.kept_snapshots
    );
    Ok(0)
}

fn ingest_cmd(root: &Path, cmd: IngestCommand, progress: Progress) -> Result<i32> {
    // An ingest that creates the store and then fails must not leave an empty store behind:
    // "unchanged" includes "still absent".
    let existed = root.exists();
    let result = ingest_into(root, cmd, progress);
    if result.is_err() && !existed {
        let _ = std::fs::remove_dir_all(root);
    }
    result
}

fn ingest_into(root: &Path, cmd: IngestCommand, progress: Progress) -> Result<i32> {
    let options = |check: VideoCheckArgs| IngestOptions {
        allow_unknown_videos: check.allow_unknown_videos,
        origin: "",
        progress,
    };
    let summary = match cmd {
        IngestCommand::ImigueLabels { file } => ingest::ingest_labels(root, &file, "")?,
        IngestCommand::Openpose { paths, keypoints } => {
            ingest::ingest_openpose(root, &paths, &options(keypoints))?
        }
        IngestCommand::OpenposeTable {
            files,
            video,
            keypoints,
        } => ingest::ingest_openpose_tables(root, &files, video, &options(keypoints))?,
        IngestCommand::Crops {
            paths,
            from,
            boxes,
            box_frame_base,
            pick,
            person_class,
            min_confidence,
            margin,
            max_side,
            quality,
            video,
            check,
        } => {
            if !(0.0..=2.0).contains(&margin) {
                anyhow::bail!("--margin {margin}: expected a fraction of the box size, 0 to 2");
            }
            let crop = ingest::crops::CropOptions {
                from: match from {
                    CropFromArg::Frames => ingest::crops::CropFrom::Frames,
                    CropFromArg::Crops => ingest::crops::CropFrom::Crops,
                },
                boxes,
                box_frame_base,
                pick: match pick {
                    PickArg::Largest => ingest::boxes::PickRule::Largest,
                    PickArg::Confident => ingest::boxes::PickRule::MostConfident,
                },
                person_class,
                min_confidence,
                style: ingest::images::CropStyle {
                    margin,
                    max_side,
                    quality,
                },
                video,
            };
            ingest::ingest_crops(root, &paths, &crop, &options(check))?
        }
        IngestCommand::Embeddings {
            vectors,
            frame_stride,
            first_frame,
        } => {
            let (v, check, files) = vector_options(vectors, ingest::embeddings::VectorKind::Image)?;
            let v = ingest::embeddings::VectorOptions {
                frame_stride,
                first_frame,
                ..v
            };
            ingest::ingest_vectors(root, &files, &v, &options(check))?
        }
        IngestCommand::TextEmbeddings {
            vectors,
            per_segment,
        } => {
            let (v, check, files) = vector_options(vectors, ingest::embeddings::VectorKind::Text)?;
            let v = ingest::embeddings::VectorOptions { per_segment, ..v };
            ingest::ingest_vectors(root, &files, &v, &options(check))?
        }
        IngestCommand::Transcripts {
            paths,
            video,
            check,
        } => ingest::ingest_transcripts(root, &paths, video, &options(check))?,
        IngestCommand::PseudoLabels {
            file,
            labeler,
            prompt_file,
            check,
        } => ingest::ingest_pseudo_labels(
            root,
            &file,
            &labeler,
            prompt_file.as_deref(),
            &options(check),
        )?,
    };
    println!("{summary}");
    Ok(0)
}

/// The vector options common to image and text embeddings.
fn vector_options(
    args: VectorArgs,
    kind: ingest::embeddings::VectorKind,
) -> Result<(
    ingest::embeddings::VectorOptions,
    VideoCheckArgs,
    Vec<std::path::PathBuf>,
)> {
    let model = args.model.to_ascii_lowercase();
    ingest::models::check_name(&model).map_err(|m| anyhow::anyhow!("--model: {m}"))?;
    let dim = ingest::models::expected_dim(&model, args.dim).map_err(|m| anyhow::anyhow!(m))?;
    Ok((
        ingest::embeddings::VectorOptions {
            kind,
            model,
            dim,
            video: args.video,
            first_frame: 0,
            frame_stride: 1,
            per_segment: false,
        },
        args.check,
        args.files,
    ))
}

/// The runtime DataFusion queries run on. Its blocking threads (where DataFusion reads local
/// files) are bounded by the cores: by default tokio starts one per pending read, up to 512,
/// and each new thread allocated its read buffers in fresh memory pages, so a `count(*)` over
/// the demo's keypoints touched 560 MiB (148 MiB bounded) and spent most of its time having the
/// kernel zero pages.
fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores)
        .enable_all()
        .build()
        .context("cannot start the query runtime")
}

fn sql(root: &Path, args: SqlArgs) -> Result<i32> {
    let store = Store::open(root)?;
    let id = store.resolve_snapshot(&args.snapshot.snapshot)?;
    let rt = runtime()?;
    let (schema, batches) = rt.block_on(async {
        let ctx = crate::query::session(&store, &id).await?;
        crate::query::run(&ctx, &args.query).await
    })?;
    match (args.format, &args.output) {
        (Format::Table, out) => {
            let width = if out.is_none() && io::stdout().is_terminal() {
                None // comfy-table measures the terminal itself
            } else {
                Some(160)
            };
            let text = output::table(&schema, &batches, args.max_rows, width)?;
            match out {
                Some(path) => std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        (Format::Parquet, None) if io::stdout().is_terminal() => {
            bail!("Parquet is binary: give --output FILE (or redirect standard output)")
        }
        (format, Some(path)) => {
            let mut file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            output::write(format, &schema, &batches, &mut file)?;
            file.flush()?;
        }
        (format, None) => {
            let mut stdout = io::stdout();
            output::write(format, &schema, &batches, &mut stdout)?;
            stdout.flush()?;
        }
    }
    Ok(0)
}

fn schema(table: Option<&str>) -> Result<i32> {
    let defs: Vec<_> = match table {
        Some(name) => match crate::schema::all().find(|d| d.name == name) {
            Some(d) => vec![d],
            None => bail!(
                "no table `{name}`; tables: {}",
                crate::schema::all()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => crate::schema::all().collect(),
    };
    for def in defs {
        let layout = match def.layout {
            crate::schema::Layout::Whole => "stored as one part",
            crate::schema::Layout::PerVideo => "stored as one part per video",
            crate::schema::Layout::PerRun => "experiment results, one part per run",
            crate::schema::Layout::PerModel => "one part per vector name",
            crate::schema::Layout::Content => "content-addressed, parts only ever added",
            crate::schema::Layout::Builtin => "built into xp, not stored",
        };
        println!("{} (key: {}; {layout})", def.name, def.key.join(", "));
        println!("  {}", def.meaning);
        let mut t = new_table();
        t.set_header(["column", "type", "null", "meaning"]);
        for (field, (_, meaning)) in def.schema.fields().iter().zip(&def.column_meanings) {
            t.add_row([
                field.name().clone(),
                field.data_type().to_string(),
                if field.is_nullable() { "yes" } else { "no" }.into(),
                meaning.clone(),
            ]);
        }
        println!("{t}\n");
    }
    Ok(0)
}

pub(crate) fn demo(root: &Path, args: DemoArgs, progress: Progress) -> Result<i32> {
    let options = crate::demo::DemoOptions {
        seed: args.seed,
        videos: args.videos,
        frame_scale: args.frame_scale,
        json_videos: args.json_videos,
    };
    let total = args.videos.unwrap_or(359) as u64;
    let bar = progress.bar(total, "demo", "videos");
    let started = std::time::Instant::now();
    let summary = crate::demo::generate(&options, &args.out, &|| bar.inc(1))?;
    bar.finish_and_clear();
    println!(
        "wrote SYNTHETIC demo data (seed {}) to {}: {} videos, {} clips, {} keypoint frames \
         ({} tables, {} JSON folders), {} images, {} embedding files, {} transcripts, \
         pseudo-labels in {:.1} s",
        args.seed,
        args.out.display(),
        summary.videos,
        summary.clips,
        summary.frames,
        summary.table_files.len(),
        summary.json_dirs.len(),
        summary.images,
        summary.embedding_files.len(),
        summary.text_embedding_files.len(),
        started.elapsed().as_secs_f64()
    );
    for line in crate::demo::describe_checks(&summary.checks) {
        println!("{line}");
    }
    if args.no_ingest {
        return Ok(0);
    }
    let keypoints = IngestOptions {
        allow_unknown_videos: false,
        origin: "demo",
        progress,
    };
    println!(
        "{}",
        ingest::ingest_labels(root, &summary.labels_csv, "demo")?
    );
    if !summary.table_files.is_empty() {
        println!(
            "{}",
            ingest::ingest_openpose_tables(root, &summary.table_files, None, &keypoints)?
        );
    }
    if !summary.json_dirs.is_empty() {
        println!(
            "{}",
            ingest::ingest_openpose(root, &summary.json_dirs, &keypoints)?
        );
        let frames = ingest::crops::CropOptions {
            boxes: Some(summary.boxes_dir.clone()),
            ..Default::default()
        };
        println!(
            "{}",
            ingest::ingest_crops(
                root,
                std::slice::from_ref(&summary.frames_dir),
                &frames,
                &keypoints
            )?
        );
    }
    let ready = ingest::crops::CropOptions {
        from: ingest::crops::CropFrom::Crops,
        ..Default::default()
    };
    println!(
        "{}",
        ingest::ingest_crops(
            root,
            std::slice::from_ref(&summary.crops_dir),
            &ready,
            &keypoints
        )?
    );
    let image = ingest::embeddings::VectorOptions {
        kind: ingest::embeddings::VectorKind::Image,
        model: crate::demo::media::IMAGE_MODEL.into(),
        dim: ingest::models::known_dim(crate::demo::media::IMAGE_MODEL).expect("known model"),
        video: None,
        first_frame: 0,
        frame_stride: 1,
        per_segment: false,
    };
    println!(
        "{}",
        ingest::ingest_vectors(root, &summary.embedding_files, &image, &keypoints)?
    );
    println!(
        "{}",
        ingest::ingest_transcripts(
            root,
            std::slice::from_ref(&summary.transcripts_dir),
            None,
            &keypoints
        )?
    );
    let text = ingest::embeddings::VectorOptions {
        kind: ingest::embeddings::VectorKind::Text,
        model: crate::demo::media::TEXT_MODEL.into(),
        dim: ingest::models::known_dim(crate::demo::media::TEXT_MODEL).expect("known model"),
        ..image
    };
    println!(
        "{}",
        ingest::ingest_vectors(root, &summary.text_embedding_files, &text, &keypoints)?
    );
    println!(
        "{}",
        ingest::ingest_pseudo_labels(
            root,
            &summary.pseudo_labels,
            crate::demo::media::LABELER,
            None,
            &keypoints
        )?
    );
    println!(
        "store {} now holds the synthetic demo dataset",
        root.display()
    );
    Ok(0)
}
