//! Where a cache lives: a local directory, or an object-store URI that Lance supports
//! (`s3://`, `gs://`, `az://`, and `file-object-store://`, a local directory used the way
//! a remote store is).
//!
//! A location is kept as a `Path` either way, since joining relative names with `/` is the
//! same for both. For a URI, the small files of a cache (manifest, journal) go through
//! Lance's object store, credentials and options coming from the environment as Lance
//! reads them (`AWS_*`, `GOOGLE_*`, `AZURE_*`); tables are opened by URI.

use std::path::Path;
use std::sync::OnceLock;

use futures::StreamExt;
use lance::io::ObjectStore;

use crate::error::{Error, Result};

/// Whether `path` is an object-store URI (`scheme://...`) rather than a local path.
pub fn is_uri(path: &Path) -> bool {
    let text = path.to_string_lossy();
    match text.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("object-store")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// Errors of the store, named by the location they concern.
fn at(path: &Path) -> impl Fn(lance::Error) -> Error + '_ {
    move |e| Error::cache(path, crate::error::lance_message(&e))
}

/// The bytes of the file at `path`, or `None` when there is none.
///
/// # Errors
///
/// When the file exists but cannot be read.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    if !is_uri(path) {
        return match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        };
    }
    runtime().block_on(async {
        let (store, object) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        if !store.exists(&object).await.map_err(at(path))? {
            return Ok(None);
        }
        let bytes = store.read_one_all(&object).await.map_err(at(path))?;
        Ok(Some(bytes.to_vec()))
    })
}

/// Writes `bytes` to `path` whole: a reader sees the old content or the new, never a part.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if !is_uri(path) {
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        return std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e));
    }
    // An object-store put is atomic.
    runtime().block_on(async {
        let (store, object) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        store.put(&object, bytes).await.map_err(at(path))?;
        Ok(())
    })
}

/// Removes the file at `path`, if there is one.
///
/// # Errors
///
/// When it exists and cannot be removed.
pub fn remove_file(path: &Path) -> Result<()> {
    if !is_uri(path) {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        };
    }
    runtime().block_on(async {
        let (store, object) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        if store.exists(&object).await.map_err(at(path))? {
            store.delete(&object).await.map_err(at(path))?;
        }
        Ok(())
    })
}

/// Removes the directory `path` (every object under the prefix) and all it holds.
///
/// # Errors
///
/// When something under it cannot be removed.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    if !is_uri(path) {
        return match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        };
    }
    if !exists(path)? {
        return Ok(());
    }
    runtime().block_on(async {
        let (store, prefix) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        store.remove_dir_all(prefix).await.map_err(at(path))
    })
}

/// Whether anything is at `path`: a file, or a directory (any object under the prefix).
///
/// # Errors
///
/// When the store cannot be listed.
pub fn exists(path: &Path) -> Result<bool> {
    if !is_uri(path) {
        return Ok(path.exists());
    }
    runtime().block_on(async {
        let (store, object) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        if store.exists(&object).await.map_err(at(path))? {
            return Ok(true);
        }
        match store.list(Some(object)).next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(at(path)(e)),
            None => Ok(false),
        }
    })
}

/// Bytes stored at `path`: a file's size, or the sum over a directory.
///
/// # Errors
///
/// When something under it cannot be read.
pub fn bytes_under(path: &Path) -> Result<u64> {
    if !is_uri(path) {
        return crate::cache::table::disk_bytes(path);
    }
    runtime().block_on(async {
        let (store, prefix) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        let mut total = 0;
        let mut listing = store.list(Some(prefix));
        while let Some(meta) = listing.next().await {
            total += meta.map_err(at(path))?.size;
        }
        Ok(total)
    })
}

/// Copies the file `from` to `to`; on an object store the copy is made by the store, so
/// no byte passes through this machine.
///
/// # Errors
///
/// When the file cannot be read or written.
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    if !is_uri(from) && !is_uri(to) {
        return std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| Error::io(from, e));
    }
    runtime().block_on(async {
        let (store, source) = ObjectStore::from_uri(&from.to_string_lossy())
            .await
            .map_err(at(from))?;
        let (_, dest) = ObjectStore::from_uri(&to.to_string_lossy())
            .await
            .map_err(at(to))?;
        store.copy(&source, &dest).await.map_err(at(from))
    })
}

/// Names of the entries directly under the directory `path` (files and subdirectories).
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn list_names(path: &Path) -> Result<Vec<String>> {
    if !is_uri(path) {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        return Ok(names);
    }
    runtime().block_on(async {
        let (store, prefix) = ObjectStore::from_uri(&path.to_string_lossy())
            .await
            .map_err(at(path))?;
        store.read_dir(prefix).await.map_err(at(path))
    })
}

/// Makes the local directory `path`; object stores have no directories to make.
///
/// # Errors
///
/// When the directory cannot be made.
pub fn create_dir_all(path: &Path) -> Result<()> {
    if is_uri(path) {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_told_from_local_paths() {
        for uri in [
            "s3://bucket/cache",
            "gs://b/c",
            "az://c/p",
            "file-object-store:///tmp/c",
        ] {
            assert!(is_uri(Path::new(uri)), "{uri}");
        }
        for path in ["/tmp/cache", "cache", "./a://b", "weird:name/x", "://x"] {
            assert!(!is_uri(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn files_round_trip_through_the_object_store_as_through_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local");
        let uri = format!("file-object-store://{}/remote", dir.path().display());
        for root in [local.as_path(), Path::new(&uri)] {
            create_dir_all(root).unwrap();
            let file = root.join("sub").join("manifest.json");
            assert_eq!(read(&file).unwrap(), None);
            assert!(!exists(&file).unwrap());
            remove_file(&file).unwrap();
            if !is_uri(root) {
                create_dir_all(&root.join("sub")).unwrap();
            }
            write(&file, b"{\"a\": 1}").unwrap();
            write(&file, b"{\"a\": 2}").unwrap();
            assert_eq!(read(&file).unwrap().as_deref(), Some(&b"{\"a\": 2}"[..]));
            assert!(exists(root).unwrap() && exists(&file).unwrap());
            assert_eq!(bytes_under(root).unwrap(), 8);
            let names = list_names(&root.join("sub")).unwrap();
            assert_eq!(names, vec!["manifest.json".to_string()]);
            copy(&file, &root.join("sub/copy.json")).unwrap();
            assert_eq!(
                read(&root.join("sub/copy.json")).unwrap(),
                read(&file).unwrap()
            );
            remove_file(&file).unwrap();
            remove_file(&file).unwrap();
            assert_eq!(read(&file).unwrap(), None);
            write(&file, b"x").unwrap();
            // The URI writes real files under the directory it names.
            assert!(dir
                .path()
                .join(if is_uri(root) { "remote" } else { "local" })
                .join("sub/manifest.json")
                .is_file());
            remove_dir_all(root).unwrap();
            remove_dir_all(root).unwrap();
            assert!(!exists(&file).unwrap() && !exists(root).unwrap());
        }
    }
}
