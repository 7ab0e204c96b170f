//! Image sources: listing the samples of a dataset and reading their encoded bytes.
//!
//! Four layouts that real datasets come in:
//!
//! - `folder`: image files under a directory; files in a subfolder take its name as label.
//! - `list`: a CSV or Parquet file list with a `path` column and optional `label` and `id`
//!   columns; relative paths are taken from the list's directory.
//! - `webdataset`: tar shards (a `.tar` file or a directory of them) whose members are
//!   grouped by key, `key.jpg`/`key.png`/`key.webp` with `key.cls` or `key.json` labels.
//! - `table`: a Parquet file or Lance dataset with an image-bytes column, either plain
//!   binary or the Hugging Face struct of `bytes` and `path`.
//!
//! Every sample gets a stable id, a hash of the source kind and its key (or the list's
//! own `id`), so the same dataset always maps to the same ids. Decoding to RGB is in
//! [`decode`].

mod decode;
mod list;
mod table;
mod webdataset;

use std::path::{Path, PathBuf};

pub use decode::{decode_rgb, decode_rgb_bytes, MAX_DECODE_ALLOC, MAX_IMAGE_SIDE};

use crate::config::{SourceConfig, SourceKind};
use crate::error::{Error, Result};

/// File extensions that are treated as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Extensions of image formats this build does not decode. Such files are samples all
/// the same, so that each is recorded as rejected, with the reason, rather than dropped
/// unseen; files with any other extension are not images and are not listed.
pub const UNSUPPORTED_IMAGE_EXTENSIONS: [&str; 10] = [
    "tif", "tiff", "bmp", "gif", "heic", "heif", "avif", "jxl", "jp2", "ppm",
];

/// Where a sample's encoded bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A file of its own.
    File(PathBuf),
    /// A member of tar shard number `shard`: `len` bytes at `offset`.
    TarMember { shard: usize, offset: u64, len: u64 },
    /// Row `row` of the source table.
    Row(u64),
}

/// One sample of a source, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Stable id (see the module docs).
    pub id: u64,
    /// Path relative to the source root, or the sample key.
    pub key: String,
    /// Class label, if the source has one.
    pub label: Option<String>,
    pub locator: Locator,
}

/// An opened source: its records, in a deterministic order, and a way to read them.
pub struct Source {
    kind: SourceKind,
    root: PathBuf,
    records: Vec<ImageRecord>,
    reader: Reader,
}

enum Reader {
    Files,
    Tar(webdataset::Shards),
    Table(table::ImageTable),
}

/// The stable id of a sample of kind `kind` with key `key`.
pub fn stable_id(kind: SourceKind, key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{}:{key}", kind.name()).as_bytes())
}

impl Source {
    /// Lists the samples of the source described by `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Source`] naming the path when it cannot be read, is malformed, or holds no
    /// sample.
    pub fn open(config: &SourceConfig) -> Result<Source> {
        let root = config.path.clone();
        let (records, reader) = match config.kind {
            SourceKind::Folder => (list_folder(&root)?, Reader::Files),
            SourceKind::List => (list::read(&root)?, Reader::Files),
            SourceKind::Webdataset => {
                let (records, shards) = webdataset::list(&root)?;
                (records, Reader::Tar(shards))
            }
            SourceKind::Table => {
                let (records, table) = table::open(config)?;
                (records, Reader::Table(table))
            }
        };
        if records.is_empty() {
            return Err(source_error(&root, "holds no image"));
        }
        let mut ids = std::collections::HashSet::with_capacity(records.len());
        if let Some(dup) = records.iter().find(|r| !ids.insert(r.id)) {
            return Err(source_error(
                &root,
                format!(
                    "two samples share the id {} (the second is {:?})",
                    dup.id, dup.key
                ),
            ));
        }
        Ok(Source {
            kind: config.kind,
            root,
            records,
            reader,
        })
    }

    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// The path the source was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The samples, in the order they are cached.
    pub fn records(&self) -> &[ImageRecord] {
        &self.records
    }

    /// Reads the encoded bytes of `records`, one result per record, in order.
    pub fn read(&self, records: &[ImageRecord]) -> Vec<std::result::Result<Vec<u8>, String>> {
        match &self.reader {
            Reader::Files => records.iter().map(read_file).collect(),
            Reader::Tar(shards) => records.iter().map(|r| shards.read(r)).collect(),
            Reader::Table(table) => table.read(records),
        }
    }
}

pub(crate) fn source_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Source {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_file(record: &ImageRecord) -> std::result::Result<Vec<u8>, String> {
    let Locator::File(path) = &record.locator else {
        return Err("not a file record".into());
    };
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(crate) fn has_image_extension(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, e)| {
        let e = e.to_ascii_lowercase();
        IMAGE_EXTENSIONS.contains(&e.as_str()) || UNSUPPORTED_IMAGE_EXTENSIONS.contains(&e.as_str())
    })
}

/// Lists a folder recursively, sorted by relative path.
fn list_folder(root: &Path) -> Result<Vec<ImageRecord>> {
    if !root.is_dir() {
        return Err(source_error(root, "is not a directory"));
    }
    let mut records = Vec::new();
    walk(root, root, &mut records)?;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(records)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ImageRecord>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if file_type.is_dir() {
            walk(root, &path, out)?;
        } else if has_image_extension(&entry.file_name().to_string_lossy()) {
            out.push(folder_record(root, &path));
        } else {
            tracing::debug!(path = %path.display(), "skipping a file that is not an image");
        }
    }
    Ok(())
}

fn folder_record(root: &Path, path: &Path) -> ImageRecord {
    let relative = path.strip_prefix(root).expect("walk stays under the root");
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let key = parts.join("/");
    let label = (parts.len() > 1).then(|| parts[0].clone());
    ImageRecord {
        id: stable_id(SourceKind::Folder, &key),
        key,
        label,
        locator: Locator::File(path.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &Path) -> SourceConfig {
        SourceConfig {
            kind: SourceKind::Folder,
            path: path.to_path_buf(),
            column: None,
            label_column: None,
            id_column: None,
        }
    }

    #[test]
    fn folder_labels_come_from_subfolders_and_order_is_by_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cat")).unwrap();
        for p in ["b.png", "cat/a.JPG", "a.webp", "notes.txt", "scan.TIF"] {
            std::fs::write(dir.path().join(p), b"x").unwrap();
        }
        let source = Source::open(&folder(dir.path())).unwrap();
        let got: Vec<_> = source
            .records()
            .iter()
            .map(|r| (r.key.as_str(), r.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.webp", None),
                ("b.png", None),
                ("cat/a.JPG", Some("cat")),
                ("scan.TIF", None),
            ]
        );
        assert_eq!(
            source.records()[0].id,
            stable_id(SourceKind::Folder, "a.webp")
        );
        assert_eq!(source.read(&source.records()[..1]), vec![Ok(b"x".to_vec())]);
    }

    #[test]
    fn empty_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Source::open(&folder(dir.path())).err().unwrap().to_string();
        assert!(err.ends_with("holds no image"), "{err}");
    }
}
