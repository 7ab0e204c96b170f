//! `distillery commit`: joins the shards written by `extract --shard k/N` into one cache.
//!
//! Each shard is a complete cache of a contiguous slice of the source, so any scheduler
//! (a Slurm array, a Kubernetes indexed job) can run them anywhere, and a killed shard
//! resumes on its own. `commit` checks that all N shards are there and agree, then builds
//! the joined tables in shard order in `<output>.partial` and renames it into place: the
//! cache appears in one step or not at all.
//!
//! No row is rewritten: the shards' data files are hard-linked into the joined tables (or
//! copied whole across file systems), so a commit costs metadata whatever the size of the
//! cache. A joined Lance table's first version lists the shards' fragments; a joined
//! Parquet table numbers the shards' parts in order.

use std::path::{Path, PathBuf};

use crate::cache::{
    join_lance, join_parquet, partial_dir, store, JoinedFiles, Manifest, MANIFEST_FILE,
};
use crate::config::{CacheFormat, Shard};
use crate::error::{Error, Result};
use crate::extract::shards_dir;
use crate::progress::Progress;

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitReport {
    pub output: PathBuf,
    pub shards: usize,
    pub images: usize,
    pub rows: usize,
    /// Data files linked or copied into the cache.
    pub files: JoinedFiles,
}

/// Joins the shards of `output` (found in `<output>.shards`).
///
/// # Errors
///
/// [`Error::Cache`] naming the missing or disagreeing shard, or an `output` that exists.
pub fn commit(output: &Path, progress: &dyn Progress) -> Result<CommitReport> {
    let on_store = store::is_uri(output);
    if store::exists(&output.join(MANIFEST_FILE))? || (!on_store && output.exists()) {
        return Err(Error::cache(
            output,
            "exists already; the shards are not committed over it",
        ));
    }
    let (dirs, manifests) = load_shards(output)?;
    check_agreement(&dirs, &manifests)?;
    // Built aside and renamed into place; an object store has no rename, so there the
    // join is built in place and its manifest, written last, makes it a cache.
    let partial = partial_dir(output);
    if on_store && store::exists(output)? && !store::exists(&partial.join(MARKER))? {
        return Err(Error::cache(
            output,
            "holds objects that are not an unfinished commit; refusing to write there",
        ));
    }
    store::remove_dir_all(&partial)?;
    store::create_dir_all(&partial.join("teachers"))?;
    store::write(&partial.join(MARKER), b"{}")?;
    let result = join_tables(&dirs, &manifests, &partial, progress);
    let (manifest, files) = match result {
        Ok(joined) => joined,
        Err(e) => {
            let _ = store::remove_dir_all(&partial);
            return Err(e);
        }
    };
    manifest.save(&partial)?;
    store::remove_file(&partial.join(MARKER))?;
    if !on_store {
        std::fs::rename(&partial, output).map_err(|e| Error::io(output, e))?;
    }
    Ok(CommitReport {
        output: output.to_path_buf(),
        shards: dirs.len(),
        images: manifest.images,
        rows: manifest.rows,
        files,
    })
}

/// Marks a directory as an unfinished commit, until its manifest is written.
const MARKER: &str = "commit.json";

fn load_shards(output: &Path) -> Result<(Vec<PathBuf>, Vec<Manifest>)> {
    let root = shards_dir(output);
    let names = store::list_names(&root)
        .map_err(|e| Error::cache(&root, format!("cannot list shards: {e}")))?;
    let mut found: Vec<Shard> = Vec::new();
    for name in names {
        if let Some((k, n)) = name.split_once("-of-") {
            if let (Ok(index), Ok(count)) = (k.parse(), n.parse()) {
                found.push(Shard { index, count });
            }
        }
    }
    let count = found
        .first()
        .map(|s| s.count)
        .ok_or_else(|| Error::cache(&root, "holds no finished shard"))?;
    if let Some(other) = found.iter().find(|s| s.count != count) {
        return Err(Error::cache(
            &root,
            format!("mixes shards of {count} and of {}", other.count),
        ));
    }
    let mut dirs = Vec::with_capacity(count);
    let mut manifests = Vec::with_capacity(count);
    for index in 0..count {
        let dir = root.join(Shard { index, count }.dir_name());
        let manifest = Manifest::load(&dir).map_err(|_| {
            Error::cache(
                &root,
                format!(
                    "shard {index}/{count} is missing or unfinished ({})",
                    dir.display()
                ),
            )
        })?;
        dirs.push(dir);
        manifests.push(manifest);
    }
    Ok((dirs, manifests))
}

/// Shards must come from one pipeline: same source, views, teachers and encodings.
fn check_agreement(dirs: &[PathBuf], manifests: &[Manifest]) -> Result<()> {
    let first = &manifests[0];
    let key = |m: &Manifest| {
        let mut p = m.pipeline.clone();
        p.extract.shard = None;
        p.extract.overwrite = false;
        serde_json::to_string(&p).expect("pipeline serialises")
    };
    for (dir, m) in dirs.iter().zip(manifests).skip(1) {
        if key(m) != key(first) || m.table_format != first.table_format {
            let value = |m: &Manifest| serde_json::from_str(&key(m)).expect("valid JSON");
            let mut names = Vec::new();
            crate::config::json_differences("", &value(first), &value(m), &mut names);
            if m.table_format != first.table_format {
                names.push("table_format".into());
            }
            return Err(Error::cache(
                dir,
                format!(
                    "was made with another pipeline than shard 0 (other {})",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn join_tables(
    dirs: &[PathBuf],
    manifests: &[Manifest],
    partial: &Path,
    progress: &dyn Progress,
) -> Result<(Manifest, JoinedFiles)> {
    let first = &manifests[0];
    let format = first.table_format;
    let mut tables = vec![first.images_table.clone()];
    tables.extend(first.teachers.iter().map(|t| t.table.clone()));
    let rows: usize = manifests.iter().map(|m| m.rows).sum();
    let mut files = JoinedFiles::default();
    let mut sizes = Vec::new();
    progress.begin("commit", tables.len() as u64);
    for table in &tables {
        let sources: Vec<PathBuf> = dirs.iter().map(|d| d.join(table)).collect();
        let dest = partial.join(table);
        let joined = match format {
            CacheFormat::Lance => join_lance(&sources, &dest)?,
            CacheFormat::Parquet => join_parquet(&sources, &dest)?,
        };
        files.linked += joined.linked;
        files.copied += joined.copied;
        sizes.push(store::bytes_under(&dest)?);
        progress.advance(1, 0);
    }
    progress.finish();
    let mut manifest = first.clone();
    manifest.images = manifests.iter().map(|m| m.images).sum();
    manifest.rows = rows;
    manifest.rejected = manifests.iter().flat_map(|m| m.rejected.clone()).collect();
    manifest.pipeline.extract.shard = None;
    for (entry, bytes) in manifest.teachers.iter_mut().zip(&sizes[1..]) {
        entry.rows = rows;
        entry.bytes = *bytes;
    }
    Ok((manifest, files))
}
