//! The command line: what each command is for, with examples, in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "xp",
    version,
    about = "Feature store and experiment tracker for video-based hidden-emotion recognition",
    long_about = "xp keeps every keypoint sequence, label and result of a study in a \
                  content-addressed Parquet store, and answers SQL over it.\n\n\
                  Every ingest is checked completely before anything is written, then committed \
                  atomically as a new snapshot; the same input always gives the same snapshot id.",
    after_help = "Start here:\n  xp run experiments/mlp_vs_gcn.yaml  train the keypoint ablation (on demo data if empty)\n  \
                  xp demo                             write and ingest the synthetic demo dataset\n  \
                  xp tables                           what the store holds\n  \
                  xp sql \"SELECT * FROM splits LIMIT 5\"\n\n\
                  Exit codes: 0 success, 1 failure, 2 bad command line, 3 bad input data (store \
                  unchanged), 4 store damaged (xp verify)."
)]
pub struct Cli {
    /// The store folder.
    #[arg(long, global = true, env = "XP_STORE", default_value = "store")]
    pub store: PathBuf,

    /// No progress bars (they are also off when standard error is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty store (ingest and demo also create one when needed).
    Init,
    /// List the tables of a snapshot: rows, bytes, parts and version.
    Tables(SnapshotArg),
    /// Show the commit history, newest first, with what each commit changed.
    Log {
        /// Show at most this many entries.
        #[arg(long, short = 'n')]
        limit: Option<usize>,
    },
    /// Re-hash every part and manifest and check every reference.
    #[command(
        long_about = "Re-hash every part and manifest and check every reference.\n\n\
        Exits with 4 and names each damaged or missing file if anything is wrong."
    )]
    Verify,
    /// Delete files that no kept snapshot references.
    #[command(
        long_about = "Delete files that no kept snapshot references: parts, table \
        versions and snapshots left by interrupted writers or superseded by later commits \
        (with --keep), and the staging folders of killed writers.\n\n\
        By default every snapshot in the log is kept, so only true garbage goes. gc takes the \
        store's lock exclusively and refuses to start while a writer holds it."
    )]
    Gc {
        /// Keep only the snapshots of the newest N log entries (the log itself stays).
        #[arg(long)]
        keep: Option<usize>,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read source files into the store.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Compute embeddings in xp: the stored crops through DINOv2, the transcripts through BERT.
    #[command(subcommand)]
    Embed(EmbedCommand),
    /// Run a read-only SQL query over a snapshot.
    #[command(
        long_about = "Run a read-only SQL query (DataFusion dialect) over every table \
        of a snapshot, the built-in `protocols` table and the views `splits` and \
        `video_frames`.\n\n\
        Examples:\n  xp sql \"SELECT label, COUNT(*) FROM videos GROUP BY label\"\n  \
        xp sql \"SELECT split, label, COUNT(*) FROM splits WHERE protocol = 'imigue-emotion' \
        GROUP BY 1, 2 ORDER BY 1, 2\"\n  \
        xp sql \"SELECT frame, body FROM keypoints WHERE video_id = 298\" --format csv \
        --output 298.csv\n  \
        xp sql \"SELECT * FROM information_schema.columns WHERE table_name = 'keypoints'\""
    )]
    Sql(SqlArgs),
    /// Describe the tables: columns, types and what they mean.
    Schema {
        /// One table (default: all).
        table: Option<String>,
    },
    /// Write the synthetic demo dataset in real source formats and ingest it.
    Demo(DemoArgs),
    /// Train an experiment's runs that are not done yet, then show its leaderboard.
    #[command(
        long_about = "Train the runs of an experiment file that are not done yet, \
        committing each run's results (runs, metrics, predictions) to the store as it \
        finishes, then print the leaderboard and write it with plots to --report-dir.\n\n\
        A run's id is the blake3 of its resolved config, seed and device, the data snapshot it \
        reads and the code fingerprint (the source that can change a result); a run whose id \
        has results is skipped (--force re-runs it). Runs made by another build of xp are \
        trained again, unless --reuse-other-code. A killed `xp run` loses at most the runs in \
        progress: run it again to resume. With --jobs N (or runtime.jobs in the file), N runs \
        train at once in worker processes, each on its share of the cores, with the same \
        numbers as one at a time.\n\n\
        The shipped experiments: mlp_vs_gcn.yaml (keypoint backbones, pseudo-labels off / on), \
        modalities.yaml (keypoints, image and text vectors alone, in pairs, all three), \
        pseudo_labels.yaml (thresholds, weights, class rebalancing) and paper.yaml (the \
        paper's fused, staged model). A grid may vary any setting, model.modalities included, \
        and may be a list of grids.\n\n\
        Examples:\n  xp run experiments/mlp_vs_gcn.yaml\n  \
        xp run experiments/paper.yaml\n  \
        xp run experiments/modalities.yaml --set train.schedule=joint\n  \
        xp run experiments/mlp_vs_gcn.yaml --dry-run\n  \
        xp run experiments/mlp_vs_gcn.yaml --set train.epochs=3 --set 'seeds=[0]'\n  \
        xp run experiments/mlp_vs_gcn.yaml --jobs 1   # one run at a time, on every core"
    )]
    Run(RunArgs),
    /// List stored runs.
    Runs {
        /// Only runs of this experiment.
        #[arg(long)]
        experiment: Option<String>,
        /// Only runs whose variant contains this text (e.g. `backbone=gcn`).
        #[arg(long)]
        variant: Option<String>,
    },
    /// Show one run: config, test metrics, confusion matrix and learning curve.
    Show {
        /// A run id or a unique prefix of one (see `xp runs`).
        run: String,
    },
    /// Compare two runs: only the config keys and metrics that differ.
    Diff {
        /// Run id or prefix.
        a: String,
        /// Run id or prefix.
        b: String,
    },
    /// Write a run's trained weights (safetensors) and resolved config (JSON) to a folder.
    #[command(
        long_about = "Write a run's trained weights and resolved config to a folder, so the \
        model can leave xp.\n\n\
        DIR/model.safetensors holds the parameters of the run's best validation epoch (the \
        model its test metrics come from), float32, each named by its path in the model \
        (e.g. keypoints.head.weight); its metadata names the run and the weights' blake3. \
        DIR/config.json holds the resolved config the run id hashes, the stage-1 runs a \
        staged run started from, and the test metrics. Existing files are never overwritten.",
        after_help = "Examples:\n  xp runs --experiment paper\n  xp export 3f2a9c model-dir"
    )]
    Export {
        /// A run id or a unique prefix of one (see `xp runs`).
        run: String,
        /// The folder to write (created if missing).
        dir: std::path::PathBuf,
    },
    /// The leaderboard of an experiment: mean and spread over seeds per configuration.
    #[command(
        long_about = "One row per configuration: mean ± standard deviation over seeds of \
        each test metric, the parameter count and the training time, sorted by the protocol \
        metric (accuracy). Rows group runs by their resolved config (all but the seed) and \
        code, never by the variant's name.\n\n\
        Named by the experiment, the board shows per variant the configuration this build ran \
        last; named by its YAML file, exactly the runs the file resolves to now. Runs of an \
        older configuration or of another build are hidden with a note; --all shows them, \
        each in its own row.\n\n\
        --regenerate re-runs the runs shown from scratch in a fresh scratch store and fails \
        (exit 1), listing the differences, if any number changes; it refuses runs made by \
        other code.\n\n\
        Examples:\n  xp leaderboard mlp_vs_gcn\n  \
        xp leaderboard experiments/mlp_vs_gcn.yaml --format md\n  \
        xp leaderboard mlp_vs_gcn --all"
    )]
    Leaderboard(LeaderboardArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotArg {
    /// Which snapshot: `current`, `@N` (log entry N), or an id prefix.
    #[arg(long, default_value = "current")]
    pub snapshot: String,
}

#[derive(Debug, Args)]
pub struct VideoCheckArgs {
    /// Accept videos that the `videos` table does not list (normally a sign of a wrong folder).
    #[arg(long)]
    pub allow_unknown_videos: bool,
}

#[derive(Debug, Subcommand)]
pub enum EmbedCommand {
    /// DINOv2 vectors of the store's person crops -> `embeddings`.
    #[command(
        long_about = "Run the person crops the store holds through a DINOv2 model read from a \
        Hugging Face folder on disk (config.json, model.safetensors, preprocessor_config.json; \
        small, base, large and giant follow from config.json; xp never downloads weights) and \
        store one vector per frame in `embeddings`, under --name.\n\n\
        Preprocessing is the folder's image processor (shortest-edge resize with PIL's bicubic \
        filter, centre crop, rescale, normalise), exactly as transformers does it. Each distinct \
        crop is encoded once, and a crop this name already has a vector for is not encoded \
        again: re-running encodes nothing, new crops encode only those. Every row records the \
        embedder's fingerprint (weights hash, preprocessing, pooling) in `source_hash`; a \
        name the store holds with another fingerprint is refused.",
        after_help = "Examples:\n  xp embed images --model ~/models/dinov2-base\n  \
        xp embed images --model ~/models/dinov2-base --pool mean --videos 298,299\n  \
        xp embed images --model ~/models/dinov2-base --sql \"SELECT video_id FROM videos WHERE \
        subject_id < 10\"\n\
        Then name the vectors in an experiment: model.image.embedding: dinov2-base"
    )]
    Images {
        /// The Hugging Face model folder (e.g. a download of facebook/dinov2-base).
        #[arg(long)]
        model: std::path::PathBuf,
        /// The name the vectors are stored under (default: the folder's name, plus -mean or
        /// -both for those poolings).
        #[arg(long)]
        name: Option<String>,
        /// Which vector: the CLS token (transformers' pooled output), the mean of the patch
        /// tokens, or both concatenated.
        #[arg(long, value_enum, default_value = "cls")]
        pool: crate::embed::images::ImagePooling,
        #[command(flatten)]
        scope: EmbedScope,
        /// Crops per forward pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// BERT vectors of the store's transcripts -> `text_embeddings`.
    #[command(
        long_about = "Run the transcripts the store holds through a BERT model read from a \
        Hugging Face folder on disk (config.json, model.safetensors, tokenizer.json; xp never \
        downloads weights) and store the vectors in `text_embeddings` under --name: one per \
        segment (every speaker's; experiments with speakers: interviewee pick the \
        interviewee's), or one per video (--per video: the segments joined, all speakers or \
        --speakers interviewee).\n\n\
        Tokenisation is the folder's tokenizer.json through Hugging Face's tokenizers library. \
        A text longer than the model takes is read in windows of max_position_embeddings - 2 \
        tokens, each in [CLS] .. [SEP], starting every half window; its vector is the mean of \
        the windows' vectors. Each row records the embedder (weights, tokenizer, pooling) and \
        the blake3 of its text: re-running encodes nothing, an edited transcript re-embeds \
        its video, and a text embedded before is reused.",
        after_help = "Examples:\n  xp embed text --model ~/models/bert-base-uncased\n  \
        xp embed text --model ~/models/bert-base-uncased --per video --speakers interviewee\n\
        Then name the vectors in an experiment: model.text.embedding: bert-base-uncased"
    )]
    Text {
        /// The Hugging Face model folder (e.g. a download of bert-base-uncased).
        #[arg(long)]
        model: std::path::PathBuf,
        /// The name the vectors are stored under (default: the folder's name, plus -mean,
        /// -video and -interviewee as the options say).
        #[arg(long)]
        name: Option<String>,
        /// The [CLS] token's final state, or the mean of the tokens'.
        #[arg(long, value_enum, default_value = "cls")]
        pool: crate::embed::bert::TextPooling,
        /// One vector per transcript segment, or per video.
        #[arg(long, value_enum, default_value = "segment")]
        per: crate::embed::texts::TextUnit,
        /// With --per video: whose turns the video's text joins.
        #[arg(long, value_enum, default_value = "all")]
        speakers: crate::embed::texts::TextSpeakers,
        #[command(flatten)]
        scope: EmbedScope,
    },
}

/// Which videos `xp embed` reads, and where its encoder runs.
#[derive(Debug, clap::Args)]
pub struct EmbedScope {
    /// Only these videos (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub videos: Option<Vec<i32>>,
    /// Only the videos a read-only SQL query returns, its first column holding video ids,
    /// e.g. "SELECT video_id FROM videos WHERE label = 'lose'" (with --videos: those in both).
    #[arg(long, value_name = "QUERY")]
    pub sql: Option<String>,
    /// Where the encoder runs (cuda needs a build with --features cuda).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu)]
    pub device: crate::device::Device,
}

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// The iMiGUE label CSV -> `videos` and `clips`.
    #[command(
        name = "imigue-labels",
        long_about = "Read an iMiGUE label file (one row per micro-gesture clip, columns \
            video_id,label_id,start_time,start_frame,end_time,end_frame,class,subject_id,\
            subject_gender,subject_nationality,win_or_lose) into `videos` and `clips`.\n\n\
            The videos in the file replace the same videos in the store; others stay.\n\n\
            Example:\n  xp ingest imigue-labels ../shared/data/imigue/labels_excerpt.csv"
    )]
    ImigueLabels {
        /// The label CSV.
        file: PathBuf,
    },
    /// Per-frame OpenPose JSON -> `keypoints`.
    #[command(long_about = "Read OpenPose's per-frame JSON files \
        (<video>_<frame:012>_keypoints.json, found recursively under each PATH) into \
        `keypoints`, one part per video. Zero, one or several people per frame, empty streams \
        and missing frames are all kept and counted.\n\n\
        Example:\n  xp ingest openpose Data/skeleton/raw/298")]
    Openpose {
        /// Folders (searched recursively) or single frame files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        keypoints: VideoCheckArgs,
    },
    /// Per-video keypoint tables (CSV, 137 x 3 columns) -> `keypoints`.
    #[command(
        name = "openpose-table",
        long_about = "Read keypoint tables as released for the iMiGUE challenges: one CSV \
            per video (the file name starts with the video id, e.g. 298.csv), one row per \
            frame, 411 value columns (x, y, confidence of body 0-24, face 0-69, left hand \
            0-20, right hand 0-20), optionally a leading `frame` column and a header row. An \
            all-zero row is a frame where nobody was detected.\n\n\
            Example:\n  xp ingest openpose-table tables/*.csv"
    )]
    OpenposeTable {
        /// The table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The video id, when a single file's name does not start with it.
        #[arg(long)]
        video: Option<i32>,
        #[command(flatten)]
        keypoints: VideoCheckArgs,
    },
    /// Person crops from frames + detections, a video file, or ready-made crops -> `crops`, `frames`.
    #[command(
        long_about = "Store person crops. Crop bytes go into `crops`, keyed by their \
        blake3 (a crop shown by many frames is stored once); `frames` maps each (video, frame) \
        to its crop and box.\n\n\
        With --from frames (the default), each PATH is a folder of frame images (<video>/<frame>.jpg \
        or <video>_<frame>.jpg, JPEG or PNG) or a video file (<video>.mp4, decoded through \
        ffmpeg when it is installed). Detections are per-frame files in the YOLO text format \
        (`class cx cy w h [conf]`, normalised) or Ultralytics JSON (`results[0].to_json()`, \
        pixels), named by frame like the images and found beside them, or under --boxes (in \
        <boxes>/<video>/ or as <boxes>/<video>_<frame>.txt). xp picks the person box, cuts it \
        out and stores it as JPEG. A frame without a detections file has no person.\n\n\
        With --from crops, each PATH holds crop images named the same way; they are stored as \
        they are.\n\n\
        Examples:\n  xp ingest crops frames/ --boxes runs/detect/predict/labels\n  \
        xp ingest crops videos/298.mp4 --boxes labels/ --box-frame-base 1\n  \
        xp ingest crops --from crops crops/"
    )]
    Crops {
        /// Folders of frames or crops, image files, or video files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What the paths hold.
        #[arg(long, value_enum, default_value_t = CropFromArg::Frames)]
        from: CropFromArg,
        /// Where the detection files are (default: beside the frames).
        #[arg(long)]
        boxes: Option<PathBuf>,
        /// The number the detection files of frame 0 carry (Ultralytics numbers video frames from 1).
        #[arg(long, default_value_t = 0)]
        box_frame_base: i32,
        /// Which person box to crop when a frame has several.
        #[arg(long, value_enum, default_value_t = PickArg::Largest)]
        pick: PickArg,
        /// The detector's class id of a person (COCO: 0).
        #[arg(long, default_value_t = 0)]
        person_class: i64,
        /// Ignore detections below this confidence.
        #[arg(long, default_value_t = 0.0)]
        min_confidence: f32,
        /// Extra border around the box, as a fraction of its size.
        #[arg(long, default_value_t = 0.0)]
        margin: f32,
        /// Shrink crops so the longer side is at most this many pixels (0: keep the box size).
        #[arg(long, default_value_t = 0)]
        max_side: u32,
        /// JPEG quality of the stored crops (1-100).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
        quality: u8,
        /// The video id, when the names do not carry it.
        #[arg(long)]
        video: Option<i32>,
        #[command(flatten)]
        check: VideoCheckArgs,
    },
    /// Image embeddings (.npy, .safetensors, Parquet) -> `embeddings`.
    #[command(
        long_about = "Store image embeddings of frames (the paper: DINOv2-Base, 768 \
        values per crop).\n\n\
        A .npy file holds one video ([frames, dim], float32 or float16; the name starts with the \
        video id: 298.npy); row i is frame FIRST + i * STRIDE. A .safetensors file holds one \
        tensor per video, named by its id (`298` or `video_298`), optionally with an integer \
        tensor `298.frames` giving each row's frame. A Parquet file has columns video_id, frame, \
        vector (a list of float32), optionally crop_hash and model, with each video's rows \
        together.\n\n\
        Every vector must have the model's size and finite values. Crop hashes are filled in \
        from the `frames` table where it knows the frame.\n\n\
        Example:\n  xp ingest embeddings dinov2/*.npy --model dinov2-base"
    )]
    Embeddings {
        #[command(flatten)]
        vectors: VectorArgs,
        /// Row i of an array is frame FIRST + i * STRIDE.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        frame_stride: i32,
        /// The frame of row 0 of an array.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
        first_frame: i32,
    },
    /// Text embeddings of transcripts (.npy, .safetensors, Parquet) -> `text_embeddings`.
    #[command(
        name = "text-embeddings",
        long_about = "Store text embeddings of transcripts (the paper: BERT, 768 values).\n\n\
            By default a video has one vector: a .npy of shape [dim] or [1, dim] named by the \
            video (298.npy), a .safetensors tensor per video, or Parquet rows (video_id, vector). \
            With --per-segment, the rows are the transcript's segments 0, 1, ... (Parquet: a \
            `segment` column; safetensors: an optional `298.segments` tensor).\n\n\
            Example:\n  xp ingest text-embeddings bert.safetensors --model bert-base-uncased"
    )]
    TextEmbeddings {
        #[command(flatten)]
        vectors: VectorArgs,
        /// The rows of an array are transcript segments, not one vector per video.
        #[arg(long)]
        per_segment: bool,
    },
    /// Interview transcripts (txt, JSON segments, SRT, VTT, iMiGUE-speech folders) -> `transcripts`.
    #[command(long_about = "Store interview transcripts, one row per segment.\n\n\
        Formats, by extension: .txt (one segment per line; a `Name:` prefix gives the speaker), \
        .json (a list of {start, end, speaker, text}, or Whisper's {\"segments\": [...]}), .srt \
        and .vtt (cues; a WebVTT voice tag <v Name> gives the speaker). The file name starts \
        with the video id (298.srt).\n\n\
        The iMiGUE-speech layout is a folder per video (298/) with one file per speaker \
        (interviewer.srt, interviewee.srt): the segments are merged in time order and the \
        speaker is the file's name.\n\n\
        Example:\n  xp ingest transcripts imigue-speech/")]
    Transcripts {
        /// Transcript files, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The video id of a single file or folder whose name does not start with it.
        #[arg(long)]
        video: Option<i32>,
        #[command(flatten)]
        check: VideoCheckArgs,
    },
    /// Pseudo-labels from a labeler (JSONL, one video per line) -> `pseudo_labels`.
    #[command(
        name = "pseudo-labels",
        long_about = "Store weak labels from a labeler, e.g. a vision-language model prompted \
            with chain of thought and a reflection pass.\n\n\
            One JSON object per line: video_id, label (win or lose), and optionally confidence \
            (0-1), reasoning, reflection, prompt, raw_response. Rows are keyed by (video, \
            labeler, blake3 of the prompt), so labelers and prompts coexist. The same answer \
            again changes nothing; a different answer to the same question is refused.\n\n\
            Example:\n  xp ingest pseudo-labels gemini.jsonl --labeler gemini-2.5-pro-cot\n\n\
            Compare with the gold labels:\n  xp sql 'SELECT * FROM pseudo_label_quality'"
    )]
    PseudoLabels {
        /// The JSONL file.
        file: PathBuf,
        /// Who labelled (model and setup), e.g. gemini-2.5-pro-cot.
        #[arg(long)]
        labeler: String,
        /// The prompt of lines that do not record one (a text file; a final line break is not
        /// part of the prompt).
        #[arg(long)]
        prompt_file: Option<PathBuf>,
        #[command(flatten)]
        check: VideoCheckArgs,
    },
}

#[derive(Debug, Args)]
pub struct VectorArgs {
    /// Vector files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The model that made the vectors, e.g. dinov2-base (its size is checked).
    #[arg(long)]
    pub model: String,
    /// The vector size, for a model xp does not know.
    #[arg(long)]
    pub dim: Option<usize>,
    /// The video of a single .npy whose name does not start with its id.
    #[arg(long)]
    pub video: Option<i32>,
    #[command(flatten)]
    pub check: VideoCheckArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CropFromArg {
    /// Frame images or video files, cut at the person box.
    Frames,
    /// Ready-made crop images, stored as they are.
    Crops,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PickArg {
    /// The largest person box.
    Largest,
    /// The most confident person box.
    Confident,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query.
    pub query: String,
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Table format only: show at most this many rows.
    #[arg(long, default_value_t = 200)]
    pub max_rows: usize,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// List the resolved runs and which are done; train nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-run runs that already have results.
    #[arg(long)]
    pub force: bool,
    /// Count a run as done when another build of xp (other code) made it with the same
    /// settings and data, instead of training it again with this code. Its results stay
    /// marked as made by other code.
    #[arg(long, conflicts_with = "force")]
    pub reuse_other_code: bool,
    /// Override a setting: a dotted path and a YAML value, e.g. train.epochs=3 or seeds=[0].
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where training runs (cuda needs a build with --features cuda).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu)]
    pub device: crate::device::Device,
    /// Train this many runs at once, each in its own process with an equal share of the CPU
    /// cores; each run commits its results as it finishes, and its numbers are the same as
    /// when runs train one at a time. Pays off for small models, whose matrix products are
    /// too small to keep every core busy. Default: the experiment's runtime.jobs, else 1.
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Train only the planned run with this id (how `--jobs` hands a run to a worker).
    #[arg(long, hide = true, value_name = "RUN_ID")]
    pub only: Option<String>,
    /// Where the leaderboard's Markdown and plots are written.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// The experiment: its name, or its YAML file (then exactly the runs that file resolves
    /// to are shown). Default: every experiment in the store.
    pub experiment: Option<String>,
    /// Also show runs made with an older configuration or by other code (hidden by default,
    /// each in a row of its own).
    #[arg(long)]
    pub all: bool,
    /// table for the terminal, md for Markdown (stable byte for byte).
    #[arg(long, short, value_enum, default_value_t = BoardFormat::Table)]
    pub format: BoardFormat,
    /// Re-run every recorded run from scratch and fail if any number changes.
    #[arg(long)]
    pub regenerate: bool,
    /// Also write leaderboard.md and SVG plots to this folder.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BoardFormat {
    Table,
    Md,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the synthetic source files.
    #[arg(long, default_value = "demo-data")]
    pub out: PathBuf,
    /// Random seed: the same seed gives the same files, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many of the 359 videos to generate (default: all).
    #[arg(long)]
    pub videos: Option<usize>,
    /// Scale of video lengths against the real dataset (real median ~7,000 frames).
    #[arg(long, default_value_t = 0.05)]
    pub frame_scale: f64,
    /// How many videos to write as per-frame OpenPose JSON instead of tables.
    #[arg(long, default_value_t = 3)]
    pub json_videos: usize,
    /// Only write the files; do not ingest them.
    #[arg(long)]
    pub no_ingest: bool,
}

impl DemoArgs {
    /// The defaults of `xp demo` with no options.
    pub fn defaults() -> Self {
        DemoArgs {
            out: PathBuf::from("demo-data"),
            seed: 0,
            videos: None,
            frame_scale: 0.05,
            json_videos: 3,
            no_ingest: false,
        }
    }
}
