//! Image sources: listing the images of a dataset and decoding them to RGB.
//!
//! For now the one source is a folder. Files directly in it have no label; files under a
//! subfolder take the subfolder's name as their label (the ImageFolder convention).

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{Error, Result};

/// File extensions that are treated as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Largest width or height accepted by the decoder, against decompression bombs.
pub const MAX_IMAGE_SIDE: u32 = 32_768;

/// Largest decoder allocation, in bytes.
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// One image of a source, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Stable id: a hash of the source kind and the path relative to the source root.
    pub id: u64,
    /// Path relative to the source root, with `/` separators.
    pub path: String,
    /// Class label, from the subfolder the image is in.
    pub label: Option<String>,
}

/// A folder of images.
#[derive(Debug, Clone)]
pub struct FolderSource {
    root: PathBuf,
    records: Vec<ImageRecord>,
}

impl FolderSource {
    /// Lists the images under `root`, sorted by relative path.
    ///
    /// # Errors
    ///
    /// [`Error::Source`] when `root` is not a readable directory or holds no image.
    pub fn open(root: &Path) -> Result<FolderSource> {
        if !root.is_dir() {
            return Err(Error::Source {
                path: root.to_path_buf(),
                message: "is not a directory".into(),
            });
        }
        let mut records = Vec::new();
        walk(root, root, &mut records)?;
        records.sort_by(|a, b| a.path.cmp(&b.path));
        if records.is_empty() {
            return Err(Error::Source {
                path: root.to_path_buf(),
                message: format!("holds no image ({})", IMAGE_EXTENSIONS.join(", ")),
            });
        }
        Ok(FolderSource {
            root: root.to_path_buf(),
            records,
        })
    }

    /// The source root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The images, sorted by path.
    pub fn records(&self) -> &[ImageRecord] {
        &self.records
    }
}

/// The stable id of an image of a folder source.
pub fn image_id(relative_path: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("folder:{relative_path}").as_bytes())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ImageRecord>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if file_type.is_dir() {
            walk(root, &path, out)?;
        } else if has_image_extension(&path) {
            out.push(record_for(root, &path));
        } else {
            tracing::debug!(path = %path.display(), "skipping a file that is not an image");
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn record_for(root: &Path, path: &Path) -> ImageRecord {
    let relative = path.strip_prefix(root).expect("walk stays under the root");
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let rel = parts.join("/");
    let label = (parts.len() > 1).then(|| parts[0].clone());
    ImageRecord {
        id: image_id(&rel),
        path: rel,
        label,
    }
}

/// Decodes an image file to 8-bit RGB.
///
/// Grayscale, alpha and 16-bit images are converted by dropping alpha and scaling to
/// 8 bits. The decoder refuses images larger than [`MAX_IMAGE_SIDE`] on a side.
///
/// # Errors
///
/// A message saying why the file could not be decoded (empty, truncated, unknown format).
pub fn decode_rgb(path: &Path) -> std::result::Result<RgbImage, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() == 0 {
        return Err("empty file (0 bytes)".into());
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("cannot decode: {e}"))?;
    Ok(image.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_subfolders_and_order_is_by_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cat")).unwrap();
        for p in ["b.png", "cat/a.JPG", "a.webp", "notes.txt"] {
            std::fs::write(dir.path().join(p), b"x").unwrap();
        }
        let source = FolderSource::open(dir.path()).unwrap();
        let got: Vec<_> = source
            .records()
            .iter()
            .map(|r| (r.path.as_str(), r.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![("a.webp", None), ("b.png", None), ("cat/a.JPG", Some("cat"))]
        );
        assert_eq!(source.records()[0].id, image_id("a.webp"));
    }

    #[test]
    fn empty_and_garbage_files_fail_to_decode_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        let garbage = dir.path().join("garbage.jpg");
        std::fs::write(&empty, b"").unwrap();
        std::fs::write(&garbage, b"this is not a jpeg").unwrap();
        assert_eq!(decode_rgb(&empty).unwrap_err(), "empty file (0 bytes)");
        assert!(decode_rgb(&garbage).unwrap_err().starts_with("cannot decode"));
    }
}
