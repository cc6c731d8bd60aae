//! Image and text encoders computed in xp itself (burn, any backend), loaded from Hugging Face
//! model folders on disk and checked against transformers on tiny models whose every weight is
//! random (`tests/fixtures/embed/make_fixtures.py` writes the fixtures; `tests/embed.rs` compares).
//!
//! - [`dinov2`]: DINOv2 image encoder (CLS or mean-of-patches vectors of person crops).
//! - [`bert`]: BERT text encoder.
//! - [`images`]: `xp embed images`, the store's crops through DINOv2 into `embeddings`.
//! - [`texts`]: `xp embed text`, the store's transcripts through BERT into `text_embeddings`.
//! - [`folder`]: reading a model folder (config, weights, the file a user must fetch).
//! - [`layers`]: linear, LayerNorm and attention from PyTorch-layout tensors.
//! - [`resize`]: PyTorch's bicubic resampling of the position-embedding grid.
//! - [`provenance`]: the `embedders` row that says how a set of vectors was made.

pub mod bert;
pub mod dinov2;
pub mod folder;
pub mod images;
pub mod layers;
pub mod preprocess;
pub mod provenance;
pub mod resize;
pub mod texts;

use anyhow::{Result, bail};

use crate::store::{Head, Store};

/// The videos `xp embed` reads: those with parts in the per-video table `table` (`frames`,
/// `transcripts`), or the `only` ones, each of which must have one. `what` names the input
/// (`crops`, `transcripts`) and `ingest` the command that stores it, for the errors.
pub(crate) fn videos_with(
    store: &Store,
    head: &Head,
    table: &str,
    only: Option<&[i32]>,
    what: &str,
    ingest: &str,
) -> Result<Vec<i32>> {
    let mut videos: Vec<i32> = crate::dataset::parts_by_video(store, &head.snapshot, table, None)?
        .into_keys()
        .collect();
    if let Some(only) = only {
        let missing: Vec<String> = only
            .iter()
            .filter(|v| !videos.contains(v))
            .map(i32::to_string)
            .collect();
        if !missing.is_empty() {
            bail!(
                "no {what} stored for video {} (ingest them with `{ingest}`)",
                missing.join(", ")
            );
        }
        videos.retain(|v| only.contains(v));
    }
    if videos.is_empty() {
        bail!("the store holds no {what} (ingest some with `{ingest}`)");
    }
    Ok(videos)
}
