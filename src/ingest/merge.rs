//! Small tables are one part, rewritten on each change: the new rows replace the rows of the
//! videos they mention, and every other video's rows stay.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::Int32Type;

use crate::store::{Head, Store};

/// The table's rows after `new` replaces the rows of the videos it holds, sorted by key.
pub fn replace_videos(
    store: &Store,
    head: &Head,
    table: &str,
    new: &RecordBatch,
) -> Result<RecordBatch> {
    let def = crate::schema::table(table);
    let ids = |b: &RecordBatch| {
        b.column_by_name("video_id")
            .expect("table has video_id")
            .as_primitive::<Int32Type>()
            .clone()
    };
    let replaced: HashSet<i32> = ids(new).values().iter().copied().collect();
    let mut kept = Vec::new();
    for batch in store.read_rows(&head.snapshot, table)? {
        let keep: BooleanArray = ids(&batch)
            .values()
            .iter()
            .map(|v| Some(!replaced.contains(v)))
            .collect();
        kept.push(filter_record_batch(&batch, &keep)?);
    }
    kept.push(new.clone());
    let all = concat_batches(&def.schema, &kept)?;
    let sort: Vec<SortColumn> = def
        .key
        .iter()
        .map(|k| SortColumn {
            values: Arc::clone(all.column_by_name(k).expect("key column exists")),
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&sort, None)?;
    Ok(take_record_batch(&all, &order)?)
}
