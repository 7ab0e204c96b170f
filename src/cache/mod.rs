//! The cache: what `extract` writes and `train` and `stats` read.
//!
//! A cache is a directory holding `manifest.json`, an images table and one table per
//! teacher, in Lance (default) or Parquet. This module knows the format alone; it needs no
//! libtorch, so that tools which only read caches stay light. `schemas/` documents the
//! same format for readers without this code.

pub mod codec;
pub mod format;
pub mod manifest;
pub mod table;

pub use format::*;
pub use manifest::{Manifest, Rejected, TeacherEntry};
pub use table::{TableReader, TableSink, TableSummary};
