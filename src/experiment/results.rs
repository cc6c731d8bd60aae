//! Run results as table rows: written after each run, read back for reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type};

use crate::model::Weights;
use crate::model::weights::NamedTensor;
use crate::store::{Snapshot, Store};
use crate::train::TrainOutcome;

/// One stored run, as `xp runs` and the reports see it.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub run_id: String,
    pub experiment: String,
    pub variant: String,
    pub seed: u64,
    pub config: String,
    pub data_snapshot: String,
    pub started: String,
    pub train_seconds: f64,
    pub epochs_run: i32,
    pub best_epoch: i32,
    pub params: i64,
    pub train_videos: i32,
    pub pseudo_videos: i32,
    pub missing_videos: i32,
    /// Probability of Win above which the run calls a video Win.
    pub threshold: f32,
    pub device: String,
    pub xp_version: String,
    /// The code fingerprint of the xp that made the run.
    pub code: String,
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub epoch: i32,
    pub split: String,
    pub name: String,
    pub value: f64,
}

/// Everything stored about one finished run.
pub struct RunRecord<'a> {
    pub row: RunRow,
    pub outcome: &'a TrainOutcome,
}

fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// The metric rows of an outcome: per epoch train loss and validation metrics, then the test
/// metrics at the best epoch.
pub fn metric_rows(outcome: &TrainOutcome) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    let mut push = |epoch: usize, split: &str, name: &str, value: f64| {
        rows.push(MetricRow {
            epoch: epoch as i32,
            split: split.into(),
            name: name.into(),
            value,
        })
    };
    for e in &outcome.epochs {
        push(e.epoch, "train", "loss", e.train_loss);
        push(e.epoch, "val", "loss", e.val_loss);
        for name in crate::train::metrics::METRIC_NAMES {
            push(e.epoch, "val", name, e.val.get(name).unwrap_or(f64::NAN));
        }
    }
    for name in crate::train::metrics::METRIC_NAMES {
        push(
            outcome.best_epoch,
            "test",
            name,
            outcome.test.get(name).unwrap_or(f64::NAN),
        );
    }
    rows
}

/// The result batches (runs, metrics, predictions, weights) of one run.
pub fn batches(record: &RunRecord) -> Result<[RecordBatch; 4]> {
    let r = &record.row;
    let runs = RecordBatch::try_new(
        crate::schema::table("runs").schema.clone(),
        vec![
            strings([r.run_id.as_str()].into_iter()),
            strings([r.experiment.as_str()].into_iter()),
            strings([r.variant.as_str()].into_iter()),
            Arc::new(Int64Array::from(vec![r.seed as i64])),
            strings([r.config.as_str()].into_iter()),
            strings([r.data_snapshot.as_str()].into_iter()),
            strings(["done"].into_iter()),
            strings([r.started.as_str()].into_iter()),
            Arc::new(Float64Array::from(vec![r.train_seconds])),
            Arc::new(Int32Array::from(vec![r.epochs_run])),
            Arc::new(Int32Array::from(vec![r.best_epoch])),
            Arc::new(Int64Array::from(vec![r.params])),
            Arc::new(Int32Array::from(vec![r.train_videos])),
            Arc::new(Int32Array::from(vec![r.pseudo_videos])),
            Arc::new(Int32Array::from(vec![r.missing_videos])),
            Arc::new(Float32Array::from(vec![r.threshold])),
            strings([r.device.as_str()].into_iter()),
            strings([r.xp_version.as_str()].into_iter()),
            strings([r.code.as_str()].into_iter()),
        ],
    )?;
    let m = metric_rows(record.outcome);
    let metrics = RecordBatch::try_new(
        crate::schema::table("metrics").schema.clone(),
        vec![
            strings(m.iter().map(|_| r.run_id.as_str())),
            Arc::new(Int32Array::from_iter_values(m.iter().map(|x| x.epoch))),
            strings(m.iter().map(|x| x.split.as_str())),
            strings(m.iter().map(|x| x.name.as_str())),
            Arc::new(Float64Array::from_iter_values(m.iter().map(|x| x.value))),
        ],
    )?;
    let p = &record.outcome.predictions;
    let word = |win: bool| if win { "win" } else { "lose" };
    let predictions = RecordBatch::try_new(
        crate::schema::table("predictions").schema.clone(),
        vec![
            strings(p.iter().map(|_| r.run_id.as_str())),
            Arc::new(Int32Array::from_iter_values(p.iter().map(|x| x.0))),
            Arc::new(Float32Array::from_iter_values(p.iter().map(|x| x.1))),
            strings(p.iter().map(|x| word(x.1 >= record.outcome.threshold))),
            strings(p.iter().map(|x| word(x.2 == 1))),
        ],
    )?;
    let weights = weights_batch(&r.run_id, &record.outcome.weights)?;
    Ok([runs, metrics, predictions, weights])
}

/// The `weights` rows of one run: a row per tensor.
fn weights_batch(run_id: &str, weights: &Weights) -> Result<RecordBatch> {
    let t = &weights.tensors;
    let list = |item: DataType, lengths: Vec<usize>, values: ArrayRef| -> ArrayRef {
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", item, false)),
            OffsetBuffer::from_lengths(lengths),
            values,
            None,
        ))
    };
    let shapes: Vec<i64> = t
        .iter()
        .flat_map(|x| x.shape.iter().map(|&d| d as i64))
        .collect();
    let values: Vec<f32> = t.iter().flat_map(|x| x.values.iter().copied()).collect();
    let hash = weights.hash();
    Ok(RecordBatch::try_new(
        crate::schema::table("weights").schema.clone(),
        vec![
            strings(t.iter().map(|_| run_id)),
            strings(t.iter().map(|x| x.name.as_str())),
            list(
                DataType::Int64,
                t.iter().map(|x| x.shape.len()).collect(),
                Arc::new(Int64Array::from(shapes)),
            ),
            list(
                DataType::Float32,
                t.iter().map(|x| x.values.len()).collect(),
                Arc::new(Float32Array::from(values)),
            ),
            strings(t.iter().map(|_| hash.as_str())),
        ],
    )?)
}

/// A run's stored weights (its part of `weights`, in the order they were written), checked
/// against the hash stored with them. None when the run has none stored.
pub fn read_weights(store: &Store, snapshot: &Snapshot, run_id: &str) -> Result<Option<Weights>> {
    let batches = store.read_keyed_part(snapshot, "weights", &format!("run={run_id}"))?;
    let mut weights = Weights::default();
    let mut stored_hash = None;
    for b in &batches {
        let shapes = b.column_by_name("shape").unwrap().as_list::<i32>();
        let values = b.column_by_name("values").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            let shape = shapes.value(i);
            let vals = values.value(i);
            weights.tensors.push(NamedTensor {
                name: col_str(b, "tensor", i),
                shape: shape
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|&d| d as usize)
                    .collect(),
                values: vals.as_primitive::<Float32Type>().values().to_vec(),
            });
            stored_hash.get_or_insert_with(|| col_str(b, "weights_hash", i));
        }
    }
    let Some(stored_hash) = stored_hash else {
        return Ok(None);
    };
    let hash = weights.hash();
    if hash != stored_hash {
        bail!(
            "the stored weights of run {run_id} do not match their hash ({} stored, {} read): \
             the part is damaged (`xp verify` checks every part)",
            &stored_hash[..12.min(stored_hash.len())],
            &hash[..12]
        );
    }
    Ok(Some(weights))
}

fn col_str(b: &RecordBatch, name: &str, i: usize) -> String {
    b.column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .value(i)
        .to_string()
}

/// Every stored run of a snapshot, in (experiment, variant, seed) order.
pub fn read_runs(store: &Store, snapshot: &Snapshot) -> Result<Vec<RunRow>> {
    let mut out = Vec::new();
    for b in store.read_rows(snapshot, "runs")? {
        for i in 0..b.num_rows() {
            let f64_of = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .value(i)
            };
            let i32_of = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .value(i)
            };
            let i64_of = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .value(i)
            };
            out.push(RunRow {
                run_id: col_str(&b, "run_id", i),
                experiment: col_str(&b, "experiment", i),
                variant: col_str(&b, "variant", i),
                seed: i64_of("seed") as u64,
                config: col_str(&b, "config", i),
                data_snapshot: col_str(&b, "data_snapshot", i),
                started: col_str(&b, "started", i),
                train_seconds: f64_of("train_seconds"),
                epochs_run: i32_of("epochs_run"),
                best_epoch: i32_of("best_epoch"),
                params: i64_of("params"),
                train_videos: i32_of("train_videos"),
                pseudo_videos: i32_of("pseudo_videos"),
                missing_videos: i32_of("missing_videos"),
                threshold: b
                    .column_by_name("threshold")
                    .unwrap()
                    .as_primitive::<Float32Type>()
                    .value(i),
                device: col_str(&b, "device", i),
                xp_version: col_str(&b, "xp_version", i),
                code: col_str(&b, "code", i),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.experiment, &a.variant, a.seed).cmp(&(&b.experiment, &b.variant, b.seed))
    });
    Ok(out)
}

/// Metric rows by run id.
pub fn read_metrics(
    store: &Store,
    snapshot: &Snapshot,
) -> Result<BTreeMap<String, Vec<MetricRow>>> {
    let mut out: BTreeMap<String, Vec<MetricRow>> = BTreeMap::new();
    for b in store.read_rows(snapshot, "metrics")? {
        let epochs = b
            .column_by_name("epoch")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        let values = b
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        for i in 0..b.num_rows() {
            out.entry(col_str(&b, "run_id", i))
                .or_default()
                .push(MetricRow {
                    epoch: epochs.value(i),
                    split: col_str(&b, "split", i),
                    name: col_str(&b, "name", i),
                    value: values.value(i),
                });
        }
    }
    Ok(out)
}

/// One stored prediction: (video, probability of win, gold label).
pub type StoredPrediction = (i32, f32, String);

/// Predictions by run id.
pub fn read_predictions(
    store: &Store,
    snapshot: &Snapshot,
) -> Result<BTreeMap<String, Vec<StoredPrediction>>> {
    let mut out: BTreeMap<String, Vec<StoredPrediction>> = BTreeMap::new();
    for b in store.read_rows(snapshot, "predictions")? {
        let videos = b
            .column_by_name("video_id")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        let probs = b
            .column_by_name("prob_win")
            .unwrap()
            .as_primitive::<Float32Type>()
            .clone();
        for i in 0..b.num_rows() {
            if probs.is_null(i) {
                continue;
            }
            out.entry(col_str(&b, "run_id", i)).or_default().push((
                videos.value(i),
                probs.value(i),
                col_str(&b, "label", i),
            ));
        }
    }
    Ok(out)
}
