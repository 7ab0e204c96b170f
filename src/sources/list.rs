//! File lists: CSV or Parquet with a `path` column and optional `label` and `id`.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use super::{source_error, stable_id, ImageRecord, Locator};
use crate::config::SourceKind;
use crate::error::Result;

/// Reads a file list; rows keep the list's order.
pub fn read(path: &Path) -> Result<Vec<ImageRecord>> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => read_csv(path)?,
        Some("parquet") => read_parquet(path)?,
        _ => {
            return Err(source_error(
                path,
                "a file list must be a .csv or .parquet file",
            ))
        }
    };
    Ok(rows
        .into_iter()
        .map(|(file, label, id)| {
            let full = if Path::new(&file).is_absolute() {
                PathBuf::from(&file)
            } else {
                base.join(&file)
            };
            ImageRecord {
                id: id.unwrap_or_else(|| stable_id(SourceKind::List, &file)),
                key: file,
                label,
                locator: Locator::File(full),
            }
        })
        .collect())
}

type Row = (String, Option<String>, Option<u64>);

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let fail = |m: String| source_error(path, m);
    let mut reader = csv::Reader::from_path(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| fail(format!("bad header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let path_col = column("path").ok_or_else(|| fail("has no `path` column".into()))?;
    let (label_col, id_col) = (column("label"), column("id"));
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| fail(format!("line {}: {e}", i + 2)))?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let file = field(Some(path_col))
            .ok_or_else(|| fail(format!("line {}: empty path", i + 2)))?
            .to_string();
        let id = match field(id_col) {
            Some(v) => Some(v.parse::<u64>().map_err(|e| {
                fail(format!(
                    "line {}: id {v:?} is not an unsigned integer: {e}",
                    i + 2
                ))
            })?),
            None => None,
        };
        rows.push((file, field(label_col).map(str::to_string), id));
    }
    Ok(rows)
}

fn read_parquet(path: &Path) -> Result<Vec<Row>> {
    let fail = |m: String| source_error(path, m);
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
        .map_err(|e| fail(format!("cannot read as parquet: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let paths = string_column(&batch, "path")
            .ok_or_else(|| fail("has no string `path` column".into()))?;
        let labels = label_column(&batch, "label");
        let ids = id_column(&batch, "id").map_err(fail)?;
        for i in 0..batch.num_rows() {
            let label = labels.as_ref().and_then(|l| l[i].clone());
            rows.push((paths[i].clone(), label, ids.as_ref().and_then(|v| v[i])));
        }
    }
    Ok(rows)
}

fn string_column(batch: &RecordBatch, name: &str) -> Option<Vec<String>> {
    let array = arrow_cast_utf8(batch.column_by_name(name)?)?;
    Some(
        (0..array.len())
            .map(|i| array.value(i).to_string())
            .collect(),
    )
}

/// Labels as strings, whatever their integer or string type.
pub(crate) fn label_column(batch: &RecordBatch, name: &str) -> Option<Vec<Option<String>>> {
    let column = batch.column_by_name(name)?;
    Some(
        (0..column.len())
            .map(|i| {
                if column.is_null(i) {
                    return None;
                }
                arrow_schema_value(column.as_ref(), i)
            })
            .collect(),
    )
}

fn arrow_schema_value(column: &dyn Array, i: usize) -> Option<String> {
    match column.data_type() {
        DataType::Utf8 => Some(column.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Some(column.as_string::<i64>().value(i).to_string()),
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::Int32 => Some(
            column
                .as_primitive::<arrow_array::types::Int32Type>()
                .value(i)
                .to_string(),
        ),
        DataType::UInt64 => Some(column.as_primitive::<UInt64Type>().value(i).to_string()),
        DataType::UInt32 => Some(
            column
                .as_primitive::<arrow_array::types::UInt32Type>()
                .value(i)
                .to_string(),
        ),
        DataType::Int16 => Some(
            column
                .as_primitive::<arrow_array::types::Int16Type>()
                .value(i)
                .to_string(),
        ),
        _ => None,
    }
}

/// Ids as u64 from an unsigned or non-negative signed integer column.
pub(crate) fn id_column(
    batch: &RecordBatch,
    name: &str,
) -> std::result::Result<Option<Vec<Option<u64>>>, String> {
    let Some(column) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let values: Vec<Option<u64>> = match column.data_type() {
        DataType::UInt64 => column.as_primitive::<UInt64Type>().iter().collect(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| {
                v.map(|v| u64::try_from(v).map_err(|_| format!("id {v} is negative")))
                    .transpose()
            })
            .collect::<std::result::Result<_, _>>()?,
        other => {
            return Err(format!(
                "column `{name}` has type {other}, expected an integer"
            ))
        }
    };
    Ok(Some(values))
}

fn arrow_cast_utf8(column: &dyn Array) -> Option<arrow_array::StringArray> {
    match column.data_type() {
        DataType::Utf8 => Some(column.as_string::<i32>().clone()),
        DataType::LargeUtf8 => Some(column.as_string::<i64>().iter().collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_list_with_labels_ids_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.csv");
        std::fs::write(&list, "path,label,id\na.jpg,cat,7\n/abs/b.png,,\n").unwrap();
        let records = read(&list).unwrap();
        assert_eq!(records[0].id, 7);
        assert_eq!(records[0].label.as_deref(), Some("cat"));
        assert_eq!(records[0].locator, Locator::File(dir.path().join("a.jpg")));
        assert_eq!(records[1].id, stable_id(SourceKind::List, "/abs/b.png"));
        assert_eq!(records[1].label, None);
    }

    #[test]
    fn csv_list_without_path_column_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.csv");
        std::fs::write(&list, "file\na.jpg\n").unwrap();
        let err = read(&list).err().unwrap().to_string();
        assert!(err.contains("has no `path` column"), "{err}");
    }
}
