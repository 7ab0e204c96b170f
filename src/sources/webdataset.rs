//! WebDataset tar shards: members grouped by key (the member name up to the first dot of
//! its file name), one image per sample, `key.cls` (text) or `key.json` (a `label` or
//! `cls` field) as the label. This is how LAION and DataComp are distributed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{has_image_extension, source_error, stable_id, ImageRecord, Locator};
use crate::config::SourceKind;
use crate::error::{Error, Result};

/// The shard files of a WebDataset source.
pub struct Shards {
    paths: Vec<PathBuf>,
}

impl Shards {
    /// Reads one member's bytes.
    pub fn read(&self, record: &ImageRecord) -> std::result::Result<Vec<u8>, String> {
        let Locator::TarMember { shard, offset, len } = record.locator else {
            return Err("not a tar member".into());
        };
        let path = &self.paths[shard];
        let mut file =
            File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("cannot seek: {e}"))?;
        let mut bytes = vec![0; len as usize];
        file.read_exact(&mut bytes).map_err(|e| {
            format!(
                "cannot read {len} bytes at {offset} of {}: {e}",
                path.display()
            )
        })?;
        Ok(bytes)
    }
}

/// Lists the samples of a shard, or of every `.tar` in a directory (sorted by name).
pub fn list(path: &Path) -> Result<(Vec<ImageRecord>, Shards)> {
    let paths = shard_paths(path)?;
    let mut records = Vec::new();
    for (index, shard) in paths.iter().enumerate() {
        records.extend(list_shard(index, shard)?);
    }
    Ok((records, Shards { paths }))
}

fn shard_paths(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(source_error(
            path,
            "is neither a .tar shard nor a directory of shards",
        ));
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    paths.sort();
    Ok(paths)
}

#[derive(Default)]
struct Sample {
    image: Option<(String, u64, u64)>,
    label: Option<String>,
}

fn list_shard(index: usize, path: &Path) -> Result<Vec<ImageRecord>> {
    let fail = |m: String| source_error(path, m);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = tar::Archive::new(file);
    let mut samples: BTreeMap<String, Sample> = BTreeMap::new();
    let entries = archive
        .entries_with_seek()
        .map_err(|e| fail(format!("not a tar file: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("bad tar entry: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| fail(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some((key, ext)) = split_key(&name) else {
            continue;
        };
        let sample = samples.entry(key.to_string()).or_default();
        match ext.to_ascii_lowercase().as_str() {
            "cls" | "json" => {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| fail(format!("{name}: {e}")))?;
                sample.label = label_of(ext, &text);
            }
            _ if has_image_extension(&name) && sample.image.is_none() => {
                sample.image = Some((name.clone(), entry.raw_file_position(), entry.size()));
            }
            _ => {}
        }
    }
    let shard_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(samples
        .into_iter()
        .filter_map(|(key, sample)| {
            let (_, offset, len) = sample.image?;
            let key = format!("{shard_name}/{key}");
            Some(ImageRecord {
                id: stable_id(SourceKind::Webdataset, &key),
                key,
                label: sample.label,
                locator: Locator::TarMember {
                    shard: index,
                    offset,
                    len,
                },
            })
        })
        .collect())
}

/// `dir/000123.seg.jpg` -> (`dir/000123`, `seg.jpg`), splitting at the first dot of the
/// file name as WebDataset does.
fn split_key(name: &str) -> Option<(&str, &str)> {
    let start = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let dot = name[start..].find('.')? + start;
    Some((&name[..dot], &name[dot + 1..]))
}

fn label_of(ext: &str, text: &str) -> Option<String> {
    if ext.eq_ignore_ascii_case("cls") {
        let t = text.trim();
        return (!t.is_empty()).then(|| t.to_string());
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let label = value.get("label").or_else(|| value.get("cls"))?;
    Some(match label {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(builder: &mut tar::Builder<File>, name: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }

    #[test]
    fn samples_are_grouped_by_key_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("shard-000.tar");
        let mut builder = tar::Builder::new(File::create(&shard).unwrap());
        add(&mut builder, "a/0001.jpg", b"jpeg-bytes-1");
        add(&mut builder, "a/0001.cls", b"3\n");
        add(&mut builder, "a/0002.png", b"png-bytes-2");
        add(
            &mut builder,
            "a/0002.json",
            br#"{"label": "dog", "width": 4}"#,
        );
        add(&mut builder, "a/0003.txt", b"caption without an image");
        builder.finish().unwrap();
        drop(builder);

        let (records, shards) = list(dir.path()).unwrap();
        let keys: Vec<_> = records
            .iter()
            .map(|r| (r.key.as_str(), r.label.as_deref()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("shard-000.tar/a/0001", Some("3")),
                ("shard-000.tar/a/0002", Some("dog"))
            ]
        );
        assert_eq!(shards.read(&records[1]).unwrap(), b"png-bytes-2");
        assert_eq!(
            records[0].id,
            stable_id(SourceKind::Webdataset, "shard-000.tar/a/0001")
        );
    }

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("x.y/000.seg.jpg"), Some(("x.y/000", "seg.jpg")));
        assert_eq!(split_key("noext"), None);
    }
}
