//! Table schemas, built from the declarative files in `schemas/`.
//!
//! The YAML files are compiled into the binary and are the single source of truth: every Arrow
//! schema the code uses comes from here, so code and documentation cannot drift apart.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;

/// The schema files, by table name. A test checks that this list matches the `schemas/` folder.
const SOURCES: &[(&str, &str)] = &[
    ("videos", include_str!("../schemas/videos.yaml")),
    ("clips", include_str!("../schemas/clips.yaml")),
    ("keypoints", include_str!("../schemas/keypoints.yaml")),
    ("frames", include_str!("../schemas/frames.yaml")),
    ("crops", include_str!("../schemas/crops.yaml")),
    ("embeddings", include_str!("../schemas/embeddings.yaml")),
    ("transcripts", include_str!("../schemas/transcripts.yaml")),
    (
        "text_embeddings",
        include_str!("../schemas/text_embeddings.yaml"),
    ),
    (
        "pseudo_labels",
        include_str!("../schemas/pseudo_labels.yaml"),
    ),
    ("protocols", include_str!("../schemas/protocols.yaml")),
    ("runs", include_str!("../schemas/runs.yaml")),
    ("metrics", include_str!("../schemas/metrics.yaml")),
    ("predictions", include_str!("../schemas/predictions.yaml")),
    ("weights", include_str!("../schemas/weights.yaml")),
    ("embedders", include_str!("../schemas/embedders.yaml")),
];

/// How a table's rows are split into Parquet parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One part holding the whole table; a change rewrites it (small tables).
    Whole,
    /// One part per video; a change replaces the parts of the videos it touches.
    PerVideo,
    /// Content-addressed rows (crops): parts are only ever added, each holding rows that no
    /// earlier part holds, keyed by the hash of what they hold.
    Content,
    /// Experiment results: one part per run, keyed `run=<id>`.
    PerRun,
    /// One part per vector name (`embedders`), keyed `vectors=<table>/model=<name>`.
    PerModel,
    /// Not stored: built into xp and registered for SQL only.
    Builtin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
    meaning: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSpec {
    table: String,
    meaning: String,
    layout: Layout,
    key: Vec<String>,
    columns: Vec<ColumnSpec>,
}

/// One table's definition: its Arrow schema plus what the schema file says about it.
#[derive(Debug)]
pub struct TableDef {
    pub name: String,
    pub meaning: String,
    pub layout: Layout,
    pub key: Vec<String>,
    pub schema: SchemaRef,
    /// Column name -> meaning, in schema order.
    pub column_meanings: Vec<(String, String)>,
    /// blake3 of the schema file, recorded in table manifests so a schema change is visible.
    pub fingerprint: String,
}

/// Parses a type written in a schema file, e.g. `Int32` or `FixedSizeList(Float32, 75)`.
pub fn parse_type(text: &str) -> Result<DataType> {
    let text = text.trim();
    Ok(match text {
        "Boolean" => DataType::Boolean,
        "Int16" => DataType::Int16,
        "Int32" => DataType::Int32,
        "Int64" => DataType::Int64,
        "UInt64" => DataType::UInt64,
        "Float32" => DataType::Float32,
        "Float64" => DataType::Float64,
        "Utf8" => DataType::Utf8,
        "Binary" => DataType::Binary,
        "List(Float32)" => DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
        "List(Int64)" => DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
        _ => {
            let Some(inner) = text
                .strip_prefix("FixedSizeList(")
                .and_then(|t| t.strip_suffix(')'))
            else {
                bail!("unknown type `{text}`");
            };
            let (item, size) = inner
                .rsplit_once(',')
                .with_context(|| format!("`{text}`: expected FixedSizeList(ITEM, SIZE)"))?;
            let size: i32 = size
                .trim()
                .parse()
                .with_context(|| format!("`{text}`: size is not an integer"))?;
            let item = parse_type(item)?;
            DataType::FixedSizeList(Arc::new(Field::new("item", item, false)), size)
        }
    })
}

fn build(name: &str, source: &str) -> Result<TableDef> {
    let spec: TableSpec = serde_yaml::from_str(source)
        .with_context(|| format!("schemas/{name}.yaml is not a valid schema file"))?;
    if spec.table != name {
        bail!("schemas/{name}.yaml declares table `{}`", spec.table);
    }
    let mut fields = Vec::new();
    for col in &spec.columns {
        let ty = parse_type(&col.data_type)
            .with_context(|| format!("schemas/{name}.yaml, column `{}`", col.name))?;
        fields.push(Field::new(&col.name, ty, col.nullable));
    }
    for k in &spec.key {
        if !spec.columns.iter().any(|c| &c.name == k) {
            bail!("schemas/{name}.yaml: key column `{k}` is not a column");
        }
    }
    Ok(TableDef {
        name: spec.table,
        meaning: spec.meaning.trim().to_string(),
        layout: spec.layout,
        key: spec.key,
        schema: Arc::new(Schema::new(fields)),
        column_meanings: spec
            .columns
            .into_iter()
            .map(|c| (c.name, c.meaning))
            .collect(),
        fingerprint: blake3::hash(source.as_bytes()).to_hex().to_string(),
    })
}

fn registry() -> &'static BTreeMap<&'static str, TableDef> {
    static REGISTRY: OnceLock<BTreeMap<&'static str, TableDef>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(name, src)| {
                // The files are compiled in and covered by tests, so a failure here is a bug.
                let def = build(name, src).unwrap_or_else(|e| panic!("{e:#}"));
                (*name, def)
            })
            .collect()
    })
}

/// The definition of a table. Panics on an unknown name: table names are code constants.
pub fn table(name: &str) -> &'static TableDef {
    registry()
        .get(name)
        .unwrap_or_else(|| panic!("no schema file for table `{name}`"))
}

/// Every table definition, sorted by name.
pub fn all() -> impl Iterator<Item = &'static TableDef> {
    registry().values()
}

/// The names of the tables that are stored as Parquet parts.
pub fn stored_tables() -> impl Iterator<Item = &'static TableDef> {
    all().filter(|t| t.layout != Layout::Builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_is_compiled_in_and_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .map(|n| n.trim_end_matches(".yaml").to_string())
            .collect();
        on_disk.sort();
        let mut compiled: Vec<String> = SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        compiled.sort();
        assert_eq!(on_disk, compiled, "schemas/ and schema::SOURCES differ");
        for (name, _) in SOURCES {
            let file = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
            let def = build(name, &file).unwrap();
            assert_eq!(def.schema, table(name).schema);
        }
    }

    #[test]
    fn keypoint_streams_have_openpose_sizes() {
        let schema = &table("keypoints").schema;
        for (col, size) in [
            ("body", 75),
            ("face", 210),
            ("hand_left", 63),
            ("hand_right", 63),
        ] {
            match schema.field_with_name(col).unwrap().data_type() {
                DataType::FixedSizeList(item, n) => {
                    assert_eq!(*n, size, "{col}");
                    assert_eq!(item.data_type(), &DataType::Float32);
                }
                other => panic!("{col} is {other:?}"),
            }
        }
    }

    #[test]
    fn type_parser_rejects_garbage() {
        assert!(parse_type("Int33").is_err());
        assert!(parse_type("FixedSizeList(Float32)").is_err());
        assert!(parse_type("FixedSizeList(Float32, x)").is_err());
        assert_eq!(
            parse_type(" FixedSizeList(Float32, 3) ").unwrap(),
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), 3)
        );
    }
}
