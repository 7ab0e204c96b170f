//! Tables of encoded images: a Parquet file or a Lance dataset with an image column that
//! is plain binary or the Hugging Face `datasets` struct of `bytes` and `path`.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use super::list::{id_column, label_column};
use super::{source_error, stable_id, ImageRecord, Locator};
use crate::cache::TableReader;
use crate::config::{CacheFormat, SourceConfig, SourceKind};
use crate::error::Result;

/// Default name of the image column.
pub const DEFAULT_IMAGE_COLUMN: &str = "image";
/// Default name of the label column, used when present.
pub const DEFAULT_LABEL_COLUMN: &str = "label";

/// An opened image table.
pub struct ImageTable {
    reader: TableReader,
    column: String,
}

impl ImageTable {
    /// Reads the image bytes of `records` with one take.
    pub fn read(&self, records: &[ImageRecord]) -> Vec<std::result::Result<Vec<u8>, String>> {
        let rows: Vec<u64> = records
            .iter()
            .map(|r| match r.locator {
                Locator::Row(row) => row,
                _ => u64::MAX,
            })
            .collect();
        let batch = match self.reader.take(&rows, &[self.column.as_str()]) {
            Ok(batch) => batch,
            Err(e) => return vec![Err(format!("cannot read rows: {e}")); records.len()],
        };
        let column = batch.column(0);
        (0..batch.num_rows())
            .map(|i| image_bytes(column, i))
            .collect()
    }
}

fn format_of(path: &Path) -> Option<CacheFormat> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Some(CacheFormat::Parquet),
        Some("lance") => Some(CacheFormat::Lance),
        _ => None,
    }
}

/// Opens the table and lists its rows as records, in row order.
pub fn open(config: &SourceConfig) -> Result<(Vec<ImageRecord>, ImageTable)> {
    let path = &config.path;
    let format = format_of(path).ok_or_else(|| {
        source_error(
            path,
            "an image table must be a .parquet file or a .lance dataset",
        )
    })?;
    let reader = TableReader::open(path, format)?;
    let column = config
        .column
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE_COLUMN.into());
    let field = reader
        .schema()
        .field_with_name(&column)
        .map_err(|_| source_error(path, format!("has no image column `{column}`")))?;
    if !is_image_type(field.data_type()) {
        return Err(source_error(
            path,
            format!(
                concat!(
                    "column `{}` has type {}, ",
                    "expected binary or a struct with a binary `bytes` field"
                ),
                column,
                field.data_type()
            ),
        ));
    }
    let label = match &config.label_column {
        Some(name) => Some(name.clone()),
        None => reader
            .schema()
            .field_with_name(DEFAULT_LABEL_COLUMN)
            .ok()
            .map(|_| DEFAULT_LABEL_COLUMN.to_string()),
    };
    let records = list_rows(&reader, path, label.as_deref(), config.id_column.as_deref())?;
    Ok((records, ImageTable { reader, column }))
}

fn list_rows(
    reader: &TableReader,
    path: &Path,
    label: Option<&str>,
    id: Option<&str>,
) -> Result<Vec<ImageRecord>> {
    let mut columns: Vec<&str> = label.into_iter().chain(id).collect();
    let table_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut records = Vec::with_capacity(reader.num_rows());
    if columns.is_empty() {
        for row in 0..reader.num_rows() as u64 {
            records.push(row_record(&table_name, row, None, None));
        }
        return Ok(records);
    }
    columns.dedup();
    for batch in reader.scan(&columns, 8192)? {
        let batch = batch?;
        let labels = label.and_then(|l| label_column(&batch, l));
        let ids = match id {
            Some(name) => id_column(&batch, name).map_err(|m| source_error(path, m))?,
            None => None,
        };
        for i in 0..batch.num_rows() {
            let row = records.len() as u64;
            let label = labels.as_ref().and_then(|l| l[i].clone());
            let id = ids.as_ref().and_then(|v| v[i]);
            records.push(row_record(&table_name, row, label, id));
        }
    }
    Ok(records)
}

fn row_record(table: &str, row: u64, label: Option<String>, id: Option<u64>) -> ImageRecord {
    let key = format!("{table}:{row}");
    ImageRecord {
        id: id.unwrap_or_else(|| stable_id(SourceKind::Table, &key)),
        key,
        label,
        locator: Locator::Row(row),
    }
}

fn is_image_type(t: &DataType) -> bool {
    match t {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(fields) => fields.iter().any(|f| {
            f.name() == "bytes"
                && is_image_type(f.data_type())
                && !matches!(f.data_type(), DataType::Struct(_))
        }),
        _ => false,
    }
}

fn image_bytes(column: &ArrayRef, i: usize) -> std::result::Result<Vec<u8>, String> {
    if column.is_null(i) {
        return Err("image is null".into());
    }
    match column.data_type() {
        DataType::Binary => Ok(column.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Ok(column.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Ok(column.as_binary_view().value(i).to_vec()),
        DataType::Struct(_) => {
            let bytes = column
                .as_struct()
                .column_by_name("bytes")
                .ok_or("image struct has no `bytes` field")?;
            image_bytes(bytes, i)
        }
        other => Err(format!("image column has type {other}")),
    }
}
