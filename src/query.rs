//! SQL over a snapshot: every table of the store, the built-in protocols and the views of
//! `schemas/views.sql`, registered in a DataFusion session. Read-only by construction.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::protocol::{self, SplitBy};
use crate::schema::{self, Layout};
use crate::store::Store;

const VIEWS: &str = include_str!("../schemas/views.sql");

/// The `protocols` table, built from `protocol.rs`.
fn protocols_batch() -> Result<RecordBatch> {
    let (mut names, mut by, mut ids, mut splits) = (vec![], vec![], vec![], vec![]);
    for p in protocol::ALL {
        for (split, list) in [("train", p.train), ("test", p.test)] {
            for &id in list {
                names.push(p.name);
                by.push(match p.split_by {
                    SplitBy::Video => "video",
                    SplitBy::Subject => "subject",
                });
                ids.push(id);
                splits.push(split);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(by)),
        Arc::new(Int32Array::from(ids)),
        Arc::new(StringArray::from(splits)),
    ];
    Ok(RecordBatch::try_new(
        schema::table("protocols").schema.clone(),
        columns,
    )?)
}

/// A DataFusion session over one snapshot of the store.
pub async fn session(store: &Store, snapshot_id: &str) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let snapshot = store.read_snapshot(snapshot_id)?;
    let root = store
        .root()
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", store.root().display()))?;
    for def in schema::all() {
        let table: Arc<dyn datafusion::datasource::TableProvider> = match def.layout {
            Layout::Builtin => Arc::new(MemTable::try_new(
                def.schema.clone(),
                vec![vec![protocols_batch()?]],
            )?),
            _ => match snapshot.tables.get(&def.name) {
                Some(version_id) => {
                    let version = store.read_table_version(version_id)?;
                    if version.parts.is_empty() {
                        Arc::new(MemTable::try_new(def.schema.clone(), vec![vec![]])?)
                    } else {
                        let urls = version
                            .parts
                            .iter()
                            .map(|p| {
                                let path = root.join("parts").join(format!("{}.parquet", p.file));
                                ListingTableUrl::parse(path.to_string_lossy())
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                            .with_file_extension(".parquet");
                        let config = ListingTableConfig::new_with_multi_paths(urls)
                            .with_listing_options(options)
                            .with_schema(def.schema.clone());
                        Arc::new(ListingTable::try_new(config)?)
                    }
                }
                None => Arc::new(MemTable::try_new(def.schema.clone(), vec![vec![]])?),
            },
        };
        ctx.register_table(def.name.as_str(), table)?;
    }
    // Comments first (they may contain `;`), then one view per statement.
    let without_comments: String = VIEWS
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for body in without_comments.split(';') {
        if body.trim().is_empty() {
            continue;
        }
        ctx.sql(body)
            .await
            .with_context(|| format!("built-in view failed: {body}"))?;
    }
    Ok(ctx)
}

/// Runs one read-only query and returns its rows (with the schema, even when empty).
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, read_only).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("not supported") || text.contains("DDL") || text.contains("DML") {
            anyhow!(
                "xp sql is read-only: it runs queries, and refuses statements that create, \
                 change or write anything ({text})"
            )
        } else {
            anyhow!("{text}")
        }
    })?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| anyhow!("{e}"))?;
    Ok((schema, batches))
}
