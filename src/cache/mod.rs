//! The cache: what `extract` writes and `train` and `stats` read.
//!
//! A cache is a directory holding `manifest.json`, an images table and one table per
//! teacher, in Lance (default) or Parquet. This module knows the format alone; it needs no
//! libtorch, so that tools which only read caches stay light. `schemas/` documents the
//! same format for readers without this code.

pub mod codec;
pub mod format;
pub mod manifest;
pub mod store;
pub mod table;

pub use format::*;
pub use manifest::{Manifest, Rejected, TeacherEntry};
pub use table::{
    join_lance, join_parquet, parquet_parts, JoinedFiles, TableReader, TableSink, TableSummary,
};

use std::path::Path;

use crate::error::{Error, Result};

/// A teacher table opened for reading, with the shape and encodings its schema records.
pub struct TeacherTable {
    pub reader: TableReader,
    pub shape: FeatureShape,
    pub encodings: FeatureEncodings,
}

/// Opens the table of `entry` in the cache at `dir` and reads its shape and encodings.
///
/// # Errors
///
/// [`Error::Cache`] naming the table when it is missing or its metadata is of a version
/// this build does not read.
pub fn open_teacher_table(
    dir: &Path,
    manifest: &Manifest,
    entry: &TeacherEntry,
) -> Result<TeacherTable> {
    let path = dir.join(&entry.table);
    let reader = TableReader::open(&path, manifest.table_format)?;
    let shape = feature_shape_of(reader.schema()).map_err(|m| Error::cache(&path, m))?;
    let encodings = feature_encodings_of(reader.schema()).map_err(|m| Error::cache(&path, m))?;
    Ok(TeacherTable {
        reader,
        shape,
        encodings,
    })
}
