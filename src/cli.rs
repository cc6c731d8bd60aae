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
        By default every snapshot in the log is kept, so only true garbage goes."
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
        reads and the xp version; a run whose id has results is skipped (--force re-runs it). A killed `xp run` \
        loses at most the run in progress: run it again to resume.\n\n\
        Examples:\n  xp run experiments/mlp_vs_gcn.yaml\n  \
        xp run experiments/mlp_vs_gcn.yaml --dry-run\n  \
        xp run experiments/mlp_vs_gcn.yaml --set train.epochs=3 --set 'seeds=[0]'"
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
    /// The leaderboard of an experiment: mean and spread over seeds per variant.
    #[command(
        long_about = "One row per variant: mean ± standard deviation over seeds of each \
        test metric, the parameter count and the training time, sorted by the protocol \
        metric (accuracy).\n\n\
        --regenerate re-runs every recorded run of the experiment from scratch in a fresh \
        scratch store and fails (exit 1), listing the differences, if any number changes."
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
pub struct KeypointArgs {
    /// Accept videos that the `videos` table does not list (normally a sign of a wrong folder).
    #[arg(long)]
    pub allow_unknown_videos: bool,
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
        keypoints: KeypointArgs,
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
        keypoints: KeypointArgs,
    },
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
    /// Override a setting: a dotted path and a YAML value, e.g. train.epochs=3 or seeds=[0].
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where training runs (cuda needs a build with --features cuda).
    #[arg(long, value_enum, default_value_t = crate::experiment::runner::Device::Cpu)]
    pub device: crate::experiment::runner::Device,
    /// Where the leaderboard's Markdown and plots are written.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// The experiment (default: every experiment in the store).
    pub experiment: Option<String>,
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
