//! Rendering query results: an aligned table for people, CSV / JSON / Parquet for programs.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{ContentArrangement, Table};

/// How `xp sql` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table that fits the terminal (long cells are shortened).
    Table,
    /// CSV with a header row; list columns as `[a, b, ...]` strings.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// Newline-delimited JSON, one object per row.
    Jsonl,
    /// A Parquet file (needs --output).
    Parquet,
}

/// Rules above, below and under the header only: dense, and easy to read and to grep.
const TABLE_STYLE: &str = "  ── ══      ──    ";

/// An empty table in xp's style that wraps to the terminal's width.
pub fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(TABLE_STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Longest cell shown in table output; the full value is one `--format csv` away.
const MAX_CELL: usize = 60;

fn is_nested(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Struct(_)
    )
}

fn format_column(array: &ArrayRef) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let fmt = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len()).map(|i| fmt.value(i).to_string()).collect())
}

fn shorten(cell: String) -> String {
    if cell.chars().count() <= MAX_CELL {
        return cell;
    }
    let head: String = cell.chars().take(MAX_CELL - 1).collect();
    format!("{head}…")
}

/// An aligned table; at most `max_rows` rows, with a note about the rest.
pub fn table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: usize,
    width: Option<u16>,
) -> Result<String> {
    let mut table = new_table();
    if let Some(w) = width {
        table.set_width(w);
    }
    table.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut shown = 0;
    'outer: for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(format_column)
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            if shown == max_rows {
                break 'outer;
            }
            table.add_row(columns.iter().map(|c| shorten(c[row].clone())));
            shown += 1;
        }
    }
    // Numbers read best right-aligned.
    for (i, field) in schema.fields().iter().enumerate() {
        if field.data_type().is_numeric()
            && let Some(col) = table.column_mut(i)
        {
            col.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    out.push('\n');
    if total > shown {
        out.push_str(&format!(
            "({total} rows, first {shown} shown; use LIMIT, --max-rows, or --format csv)\n"
        ));
    } else {
        out.push_str(&format!(
            "({total} row{})\n",
            if total == 1 { "" } else { "s" }
        ));
    }
    Ok(out)
}

/// CSV cannot hold lists: nested columns become their text form.
fn flatten_for_csv(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if is_nested(field.data_type()) {
            let text: StringArray = format_column(column)?
                .into_iter()
                .enumerate()
                .map(|(i, s)| column.is_valid(i).then_some(s))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Writes the result in a machine format.
pub fn write(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut (dyn Write + Send),
) -> Result<()> {
    match format {
        Format::Table => bail!("table output is rendered with output::table"),
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                let empty = RecordBatch::new_empty(schema.clone());
                writer.write(&flatten_for_csv(schema, &empty)?)?;
            }
            for batch in batches {
                writer.write(&flatten_for_csv(schema, batch)?)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Jsonl => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None)
                .context("cannot start Parquet output")?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
    }
    Ok(())
}
