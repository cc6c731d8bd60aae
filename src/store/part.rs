//! Parquet parts: written deterministically (same rows, same bytes, same hash) and laid out
//! for the reads that matter.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per row group. A keypoint part is one video sorted by frame, so 8,192 frames per group
/// lets a reader skip most of a long video when it asks for a frame range.
pub const ROW_GROUP_ROWS: usize = 8192;

/// Written into every part instead of the library version, so that upgrading the Parquet crate
/// does not change the bytes (and so the hashes) of unchanged data.
const CREATED_BY: &str = "xp";

fn writer_properties(batch: &RecordBatch) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_created_by(CREATED_BY.to_string())
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page);
    for field in batch.schema().fields() {
        match field.data_type() {
            DataType::FixedSizeList(item, _) | DataType::List(item) => {
                // Float vectors: a dictionary never pays off, and byte-stream-split makes the
                // bytes of similar floats line up so zstd compresses them far better.
                let path = ColumnPath::new(vec![
                    field.name().to_string(),
                    "list".to_string(),
                    item.name().to_string(),
                ]);
                props = props
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
            }
            DataType::Binary => {
                // Encoded images: already compressed, all distinct, and min/max statistics of
                // kilobyte blobs would only bloat the page headers.
                let path = ColumnPath::new(vec![field.name().to_string()]);
                props = props
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
                    .set_column_statistics_enabled(path, EnabledStatistics::None);
            }
            _ => {}
        }
    }
    props.build()
}

/// Encodes one batch as a complete Parquet file in memory.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, batch.schema(), Some(writer_properties(batch)))
            .context("cannot start a Parquet writer")?;
    writer
        .write(batch)
        .context("cannot encode rows as Parquet")?;
    writer.close().context("cannot finish a Parquet file")?;
    Ok(bytes)
}

/// Reads every row of a Parquet file.
pub fn read_all(path: &Path) -> Result<Vec<RecordBatch>> {
    read_columns(path, None)
}

/// Reads every row of a Parquet file, only the named columns when `columns` is given (so a
/// question about crop hashes never reads the image bytes).
pub fn read_columns(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?
        .with_batch_size(ROW_GROUP_ROWS);
    if let Some(columns) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder.build()?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float32Array, Int32Array};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(values: &[f32]) -> RecordBatch {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("v", DataType::FixedSizeList(item.clone(), 3), true),
        ]));
        let n = values.len() / 3;
        let ids = Int32Array::from((0..n as i32).collect::<Vec<_>>());
        let list =
            FixedSizeListArray::new(item, 3, Arc::new(Float32Array::from(values.to_vec())), None);
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(list)]).unwrap()
    }

    #[test]
    fn encoding_is_deterministic_and_round_trips() {
        let b = batch(&[1.5, 2.25, 0.5, 640.123, 360.0, 0.0]);
        let one = encode(&b).unwrap();
        let two = encode(&b).unwrap();
        assert_eq!(one, two);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        std::fs::write(&path, &one).unwrap();
        let back = read_all(&path).unwrap();
        assert_eq!(back, vec![b]);
    }
}
