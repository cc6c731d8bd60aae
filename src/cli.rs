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
    after_help = "Start here:\n  xp demo                      write and ingest the synthetic demo dataset\n  \
                  xp tables                    what the store holds\n  \
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
