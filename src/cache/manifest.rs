//! `manifest.json`: what a cache holds and how it was made.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::format::{partial_dir, JOURNAL_FILE, MANIFEST_FILE, READABLE_VERSIONS};
use crate::cache::store;
use crate::config::{CacheFormat, Pipeline};
use crate::error::{Error, Result};
use crate::sidecar::Sidecar;

/// The manifest of a cache directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `distillery-cache`.
    pub format: String,
    /// Cache format version; see `schemas/`.
    pub format_version: u32,
    /// Version of distillery that wrote the cache.
    pub distillery_version: String,
    /// Seconds since the Unix epoch when the cache was committed.
    pub created_unix: u64,
    /// Format of the tables.
    pub table_format: CacheFormat,
    /// Absolute path of the source (folder, file list, shards or table); the source
    /// itself, with its kind, is `pipeline.source`.
    pub source_path: PathBuf,
    /// Relative path of the images table.
    pub images_table: String,
    /// Images cached (decoded successfully).
    pub images: usize,
    /// Views per image; every teacher table has `images * views_per_image` rows.
    pub views_per_image: usize,
    /// Rows of every teacher table, in the same order in all of them.
    pub rows: usize,
    /// Images that were skipped, with the reason.
    pub rejected: Vec<Rejected>,
    /// The teachers, in pipeline order.
    pub teachers: Vec<TeacherEntry>,
    /// The resolved pipeline the cache was made with (flags applied).
    pub pipeline: Pipeline,
}

/// An image that could not be cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The sample's key: its path relative to a folder source, or its source key.
    pub key: String,
    /// Why it was skipped.
    pub error: String,
}

/// One teacher of a cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherEntry {
    pub name: String,
    /// Relative path of the teacher's table.
    pub table: String,
    /// The TorchScript file the features came from.
    pub module_path: PathBuf,
    /// Inference precision.
    pub precision: String,
    /// How the summary is stored.
    pub summary_encoding: crate::cache::codec::Encoding,
    /// How the patch tokens are stored.
    pub patch_encoding: crate::cache::codec::Encoding,
    /// Rows in the table.
    pub rows: usize,
    /// Bytes on disk of the table.
    pub bytes: u64,
    /// The teacher's sidecar, as it was at extraction.
    pub sidecar: Sidecar,
}

impl Manifest {
    /// Reads the manifest of the cache at `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when `dir` holds no manifest, or one of another format version.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let unfinished = "holds an unfinished extract run; run the same extract again to finish it";
        let text = match store::read(&path)? {
            Some(bytes) => bytes,
            None if store::exists(&dir.join(JOURNAL_FILE))? => {
                return Err(Error::cache(dir, unfinished))
            }
            None if store::exists(dir)? => {
                return Err(Error::cache(
                    dir,
                    format!("holds no {MANIFEST_FILE}; is this a cache?"),
                ))
            }
            None => {
                let partial = partial_dir(dir);
                if store::exists(&partial.join(JOURNAL_FILE))? {
                    return Err(Error::cache(
                        dir,
                        format!("does not exist yet: {} {unfinished}", partial.display()),
                    ));
                }
                return Err(Error::cache(dir, "does not exist"));
            }
        };
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|source| Error::Json { path, source })?;
        if manifest.format != "distillery-cache"
            || !READABLE_VERSIONS.contains(&manifest.format_version)
        {
            return Err(Error::cache(
                dir,
                format!(
                    "format {} version {} is not supported (this build reads versions {:?})",
                    manifest.format, manifest.format_version, READABLE_VERSIONS
                ),
            ));
        }
        Ok(manifest)
    }

    /// Writes the manifest into `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        // Written whole: readers see the old manifest or the new one.
        let text = serde_json::to_string_pretty(self).expect("manifest serialises") + "\n";
        store::write(&dir.join(MANIFEST_FILE), text.as_bytes())
    }

    /// The entry of teacher `name`.
    pub fn teacher(&self, name: &str) -> Option<&TeacherEntry> {
        self.teachers.iter().find(|t| t.name == name)
    }
}
