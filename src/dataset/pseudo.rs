//! Which pool videos a run merges into training, and with which pseudo-label.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};

use crate::experiment::spec::PseudoLabelConfig;
use crate::ingest::pseudo_labels;
use crate::store::{Snapshot, Store};

/// Video id -> pseudo-label (1 = win) from the configured labeler, after the confidence filter.
pub fn chosen(
    store: &Store,
    snapshot: &Snapshot,
    config: &PseudoLabelConfig,
) -> Result<BTreeMap<i32, u8>> {
    let rows = pseudo_labels::stored(store, snapshot)?;
    let labelers: BTreeSet<&str> = rows.iter().map(|r| r.labeler.as_str()).collect();
    let labeler = match (&config.labeler, labelers.len()) {
        (Some(l), _) if labelers.contains(l.as_str()) => l.clone(),
        (Some(l), _) => bail!(
            "train.pseudo_labels.labeler is `{l}`, but the store has pseudo-labels from: {}",
            list(&labelers)
        ),
        (None, 0) => bail!("the store holds no pseudo-labels (ingest some first)"),
        (None, 1) => labelers.first().expect("one").to_string(),
        (None, _) => bail!(
            "the store has pseudo-labels from several labelers ({}): choose one with \
             train.pseudo_labels.labeler",
            list(&labelers)
        ),
    };
    let mine: Vec<_> = rows.iter().filter(|r| r.labeler == labeler).collect();
    let prompts: BTreeSet<&str> = mine.iter().map(|r| r.prompt_hash.as_str()).collect();
    if prompts.len() > 1 {
        bail!(
            "labeler `{labeler}` answered {} different prompts; ingest each prompt's answers \
             under its own --labeler name so a run uses one",
            prompts.len()
        );
    }
    Ok(mine
        .into_iter()
        .filter(|r| match r.confidence {
            Some(c) => c >= config.min_confidence,
            None => config.min_confidence <= 0.0,
        })
        .map(|r| (r.video_id, u8::from(r.label == "win")))
        .collect())
}

fn list(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}
