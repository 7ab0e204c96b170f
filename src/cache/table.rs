//! Writing and reading cache tables in Lance or Parquet.
//!
//! A [`TableSink`] owns a writer thread fed through a bounded queue, so that encoding and
//! writing overlap with the teachers and memory stays flat. A table becomes visible only
//! when [`TableSink::finish`] commits it; a sink dropped without finishing aborts, and a
//! Lance dataset is then never committed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use futures::StreamExt;
use lance::dataset::{Dataset, ProjectionRequest, WriteMode, WriteParams};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::cache::store;
use crate::config::CacheFormat;
use crate::error::{lance_message, Error, Result};

/// Batches waiting in a sink's queue before `send` blocks.
pub const SINK_QUEUE: usize = 4;

/// Rows and bytes of a finished table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSummary {
    pub rows: usize,
    pub bytes: u64,
}

enum Message {
    Batch(RecordBatch),
    /// Commit what was sent so far and report the table version.
    Commit(SyncSender<Result<u64>>),
    Finish,
}

/// A table being written on its own thread.
pub struct TableSink {
    path: PathBuf,
    sender: Option<SyncSender<Message>>,
    handle: Option<JoinHandle<Result<()>>>,
    rows: usize,
}

impl TableSink {
    /// Starts writing a new table at `path` (which must not exist).
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when `path` exists already.
    pub fn create(path: &Path, format: CacheFormat, schema: SchemaRef) -> Result<TableSink> {
        if store::exists(path)? {
            return Err(Error::cache(path, "exists already"));
        }
        Self::start(path, format, schema)
    }

    /// Continues the table at `path` (a resumed run): batches are appended to it, as new
    /// Lance fragments or new Parquet parts.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when `path` does not exist.
    pub fn append(path: &Path, format: CacheFormat, schema: SchemaRef) -> Result<TableSink> {
        if !store::exists(path)? {
            return Err(Error::cache(
                path,
                "cannot be appended to: it does not exist",
            ));
        }
        Self::start(path, format, schema)
    }

    fn start(path: &Path, format: CacheFormat, schema: SchemaRef) -> Result<TableSink> {
        local_parquet(path, format)?;
        let (sender, receiver) = sync_channel(SINK_QUEUE);
        let target = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name(format!("write {}", path.display()))
            .spawn(move || match format {
                CacheFormat::Lance => write_lance(&target, schema, receiver),
                CacheFormat::Parquet => write_parquet(&target, schema, receiver),
            })
            .map_err(|e| Error::io(path, e))?;
        Ok(TableSink {
            path: path.to_path_buf(),
            sender: Some(sender),
            handle: Some(handle),
            rows: 0,
        })
    }

    /// Queues a batch; blocks while the queue is full.
    ///
    /// # Errors
    ///
    /// The writer's own error, when it has stopped.
    pub fn send(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.message(Message::Batch(batch))
    }

    fn message(&mut self, message: Message) -> Result<()> {
        let sender = self.sender.as_ref().expect("sink used after finish");
        if sender.send(message).is_err() {
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::cache(&self.path, "writer stopped without an error")));
        }
        Ok(())
    }

    /// Makes everything sent so far durable and visible, as one commit; returns the
    /// table's version: the Lance version, or the number of finished Parquet parts.
    ///
    /// # Errors
    ///
    /// The writer's error, if any.
    pub fn commit(&mut self) -> Result<u64> {
        let (reply, answer) = sync_channel(1);
        self.message(Message::Commit(reply))?;
        match answer.recv() {
            Ok(result) => result,
            Err(_) => Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::cache(&self.path, "writer stopped without an error"))),
        }
    }

    /// Commits the table and waits for the writer.
    ///
    /// # Errors
    ///
    /// The writer's error, if any.
    pub fn finish(mut self) -> Result<TableSummary> {
        if let Some(sender) = self.sender.take() {
            // A closed channel means the writer failed; join reports why.
            let _ = sender.send(Message::Finish);
        }
        self.join()?;
        Ok(TableSummary {
            rows: self.rows,
            bytes: store::bytes_under(&self.path)?,
        })
    }

    fn join(&mut self) -> Result<()> {
        self.sender.take();
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(Error::cache(&self.path, "writer thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for TableSink {
    fn drop(&mut self) {
        // Dropping the sender without Finish makes the writer abort.
        let _ = self.join();
    }
}

/// How a group of batches ended.
enum GroupEnd {
    Commit(SyncSender<Result<u64>>),
    Finish,
    Aborted,
}

type Shared<T> = Arc<std::sync::Mutex<T>>;

/// Feeds one commit group of queued batches to Lance. Ends the stream at `Commit` or
/// `Finish`; fails it when the sender went away, so that an aborted run commits nothing.
struct GroupReader {
    schema: SchemaRef,
    first: Option<RecordBatch>,
    receiver: Shared<Receiver<Message>>,
    end: Shared<Option<GroupEnd>>,
}

impl Iterator for GroupReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(batch) = self.first.take() {
            return Some(Ok(batch));
        }
        if self.end.lock().expect("end").is_some() {
            return None;
        }
        let message = self.receiver.lock().expect("receiver").recv();
        let end = match message {
            Ok(Message::Batch(batch)) => return Some(Ok(batch)),
            Ok(Message::Commit(reply)) => GroupEnd::Commit(reply),
            Ok(Message::Finish) => GroupEnd::Finish,
            Err(_) => GroupEnd::Aborted,
        };
        let aborted = matches!(end, GroupEnd::Aborted);
        *self.end.lock().expect("end") = Some(end);
        aborted.then(|| Err(ArrowError::ExternalError("write aborted".into())))
    }
}

impl RecordBatchReader for GroupReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))
}

/// Parquet tables are local: an object-store URI is for Lance tables.
///
/// # Errors
///
/// [`Error::Cache`] for a Parquet table at a URI.
pub fn local_parquet(path: &Path, format: CacheFormat) -> Result<()> {
    if format == CacheFormat::Parquet && store::is_uri(path) {
        return Err(Error::cache(
            path,
            "is an object-store URI; Parquet caches are local, use format = \"lance\"",
        ));
    }
    Ok(())
}

fn uri_of(path: &Path) -> Result<String> {
    if store::is_uri(path) {
        return Ok(path.to_string_lossy().into_owned());
    }
    let absolute = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    Ok(absolute.to_string_lossy().into_owned())
}

/// Writes commit groups to a Lance dataset: each group is one `Dataset::write`, creating
/// the dataset on the first and appending afterwards.
fn write_lance(path: &Path, schema: SchemaRef, receiver: Receiver<Message>) -> Result<()> {
    let uri = uri_of(path)?;
    let runtime = runtime()?;
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    let mut version = latest_version(&runtime, &uri);
    loop {
        let (first, last) = match receiver.lock().expect("receiver").recv() {
            Ok(Message::Batch(batch)) => (batch, None),
            Ok(Message::Commit(reply)) => {
                let _ = reply.send(Ok(version.unwrap_or(0)));
                continue;
            }
            Ok(Message::Finish) if version.is_some() => return Ok(()),
            // A table with no row is still created, so that readers find it.
            Ok(Message::Finish) => (
                RecordBatch::new_empty(schema.clone()),
                Some(GroupEnd::Finish),
            ),
            Err(_) => return Err(Error::cache(path, "write aborted")),
        };
        let end = Arc::new(std::sync::Mutex::new(last));
        let reader = GroupReader {
            schema: schema.clone(),
            first: Some(first),
            receiver: receiver.clone(),
            end: end.clone(),
        };
        let mode = if version.is_some() {
            WriteMode::Append
        } else {
            WriteMode::Create
        };
        let params = WriteParams {
            mode,
            ..Default::default()
        };
        let written = runtime.block_on(Dataset::write(reader, uri.as_str(), Some(params)));
        let end = end.lock().expect("end").take();
        let written = written.map(|d| d.version().version);
        match (end, written) {
            (Some(GroupEnd::Commit(reply)), Ok(v)) => {
                version = Some(v);
                let _ = reply.send(Ok(v));
            }
            (Some(GroupEnd::Finish), Ok(_)) | (None, Ok(_)) => return Ok(()),
            (Some(GroupEnd::Commit(reply)), Err(e)) => {
                let _ = reply.send(Err(Error::cache(
                    path,
                    format!("commit failed: {}", lance_message(&e)),
                )));
                return Err(e.into());
            }
            (_, Err(e)) => return Err(e.into()),
            (Some(GroupEnd::Aborted), Ok(_)) => return Err(Error::cache(path, "write aborted")),
        }
    }
}

fn latest_version(runtime: &tokio::runtime::Runtime, uri: &str) -> Option<u64> {
    runtime
        .block_on(Dataset::open(uri))
        .ok()
        .map(|d| d.version().version)
}

/// Puts the table at `path` back to `version`, as [`TableSink::commit`] returned it,
/// dropping what was written after (the rows of an interrupted run since its last
/// checkpoint).
///
/// # Errors
///
/// When the table or the version cannot be opened, or a Parquet part cannot be removed.
pub fn restore_version(path: &Path, format: CacheFormat, version: u64) -> Result<()> {
    match format {
        CacheFormat::Lance => restore_lance_version(path, version),
        CacheFormat::Parquet => restore_parquet_parts(path, version as usize),
    }
}

fn restore_lance_version(path: &Path, version: u64) -> Result<()> {
    let runtime = runtime()?;
    let uri = uri_of(path)?;
    let dataset = runtime.block_on(Dataset::open(&uri))?;
    if dataset.version().version == version {
        return Ok(());
    }
    let mut old = runtime.block_on(dataset.checkout_version(version))?;
    runtime.block_on(old.restore())?;
    Ok(())
}

/// Keeps the first `parts` parts of a Parquet table and removes every other file of it,
/// finished or not.
fn restore_parquet_parts(path: &Path, parts: usize) -> Result<()> {
    let keep: Vec<String> = (0..parts).map(parquet_part_name).collect();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    let found = parquet_parts(path)?.len();
    if found != parts {
        return Err(Error::cache(
            path,
            format!("holds {found} finished parts; the checkpoint recorded {parts}"),
        ));
    }
    Ok(())
}

/// File name of part `index` of a Parquet table.
pub fn parquet_part_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// The parts of the Parquet table at `path`, in row order: the finished part files of a
/// table directory, or the file itself for a single-file table (cache format 1).
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be listed.
pub fn parquet_parts(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") && name.ends_with(".parquet") {
            parts.push(entry.path());
        }
    }
    // Zero-padded numbers: name order is row order.
    parts.sort();
    Ok(parts)
}

/// Creates the Parquet table `dest` from the parts of the tables `sources`, in that
/// order, hard-linking each part (or copying it across file systems) under its new number.
///
/// # Errors
///
/// I/O errors naming the part.
pub fn join_parquet(sources: &[PathBuf], dest: &Path) -> Result<JoinedFiles> {
    if dest.exists() {
        return Err(Error::cache(dest, "exists already"));
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut files = JoinedFiles::default();
    let mut next = 0;
    for source in sources {
        for part in parquet_parts(source)? {
            link_or_copy(&part, &dest.join(parquet_part_name(next)), &mut files)?;
            next += 1;
        }
    }
    Ok(files)
}

/// Hard-links `from` as `to`, or copies it where no link can be made: across local file
/// systems, or on an object store (a copy made by the store itself).
fn link_or_copy(from: &Path, to: &Path, files: &mut JoinedFiles) -> Result<()> {
    if !store::is_uri(from) && std::fs::hard_link(from, to).is_ok() {
        files.linked += 1;
    } else {
        store::copy(from, to)?;
        files.copied += 1;
    }
    Ok(())
}

/// What [`join_lance`] or [`join_parquet`] did with the data files of its sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinedFiles {
    /// Data files hard-linked: no byte was copied.
    pub linked: usize,
    /// Data files copied, where no link could be made: from another file system, or on
    /// an object store (by the store).
    pub copied: usize,
}

/// Creates the Lance table `dest` from the rows of the tables `sources`, in that order,
/// without rewriting any row: each source's data files are hard-linked into `dest` (or
/// copied whole, across file systems or by an object store) and the fragments that name them are
/// committed together as the first version of `dest`. The sources stay intact.
///
/// # Errors
///
/// [`Error::Cache`] naming a source whose schema differs from the first one, or that has
/// deleted rows or files outside its own directory; I/O and Lance errors otherwise.
pub fn join_lance(sources: &[PathBuf], dest: &Path) -> Result<JoinedFiles> {
    use lance::dataset::transaction::{Operation, TransactionBuilder};
    use lance::dataset::CommitBuilder;

    let first = sources
        .first()
        .ok_or_else(|| Error::cache(dest, "has no table to join"))?;
    if store::exists(dest)? {
        return Err(Error::cache(dest, "exists already"));
    }
    let runtime = runtime()?;
    let open = |path: &Path| -> Result<Dataset> {
        runtime
            .block_on(Dataset::open(&uri_of(path)?))
            .map_err(|e| Error::cache(path, format!("cannot open as lance: {}", lance_message(&e))))
    };
    let schema = open(first)?.schema().clone();
    let data = dest.join("data");
    store::create_dir_all(&data)?;
    let mut files = JoinedFiles::default();
    let mut fragments = Vec::new();
    for source in sources {
        let dataset = open(source)?;
        if dataset.schema() != &schema {
            return Err(Error::cache(
                source,
                format!("has another schema than {}", first.display()),
            ));
        }
        for fragment in dataset.fragments().iter() {
            if fragment.deletion_file.is_some() || !fragment.overlays.is_empty() {
                return Err(Error::cache(
                    source,
                    format!("fragment {} has deleted or overlaid rows", fragment.id),
                ));
            }
            for file in &fragment.files {
                if file.base_id.is_some() || file.path.contains('/') {
                    return Err(Error::cache(
                        source,
                        format!("data file {} is outside the table", file.path),
                    ));
                }
                let from = source.join("data").join(&file.path);
                link_or_copy(&from, &data.join(&file.path), &mut files)?;
            }
            fragments.push(fragment.clone());
        }
    }
    // Overwrite is how a table's first version is made; it numbers the fragments afresh.
    let operation = Operation::Overwrite {
        fragments,
        schema,
        config_upsert_values: None,
        initial_bases: None,
    };
    let transaction = TransactionBuilder::new(0, operation).build();
    let uri = uri_of(dest)?;
    runtime.block_on(CommitBuilder::new(uri.as_str()).execute(transaction))?;
    Ok(files)
}

/// Bytes a Parquet row group may buffer before it is flushed, so that memory stays flat
/// whatever the size of the rows.
const PARQUET_ROW_GROUP_BYTES: usize = 128 << 20;

/// Writes commit groups as the parts of a Parquet table directory: each group is one file,
/// written as `<part>.partial` and renamed when complete, numbered after the parts already
/// there (a resumed run).
fn write_parquet(path: &Path, schema: SchemaRef, receiver: Receiver<Message>) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    let mut done = parquet_parts(path)?.len();
    let mut part: Option<ParquetPart> = None;
    loop {
        match receiver.recv() {
            Ok(Message::Batch(batch)) => {
                let writer = match &mut part {
                    Some(part) => part,
                    None => part.insert(ParquetPart::start(path, done, schema.clone())?),
                };
                writer.write(&batch)?;
            }
            Ok(Message::Commit(reply)) => {
                if let Some(finished) = part.take() {
                    finished.finish()?;
                    done += 1;
                }
                let _ = reply.send(Ok(done as u64));
            }
            Ok(Message::Finish) => {
                // A table with no row still gets one part, so that readers find its schema.
                match part.take() {
                    Some(finished) => finished.finish()?,
                    None if done == 0 => ParquetPart::start(path, 0, schema)?.finish()?,
                    None => {}
                }
                return Ok(());
            }
            Err(_) => {
                if let Some(aborted) = part.take() {
                    aborted.abort();
                }
                return Err(Error::cache(path, "write aborted"));
            }
        }
    }
}

/// One Parquet part being written.
struct ParquetPart {
    writer: ArrowWriter<File>,
    partial: PathBuf,
    path: PathBuf,
}

impl ParquetPart {
    fn start(table: &Path, index: usize, schema: SchemaRef) -> Result<ParquetPart> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_dictionary_enabled(false)
            .build();
        let path = table.join(parquet_part_name(index));
        let partial = path.with_extension("parquet.partial");
        let file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(ParquetPart {
            writer,
            partial,
            path,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        if self.writer.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
            self.writer.flush()?;
        }
        Ok(())
    }

    /// Writes the footer, syncs the file and gives it its final name.
    fn finish(self) -> Result<()> {
        let file = self.writer.into_inner()?;
        file.sync_all().map_err(|e| Error::io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))
    }

    fn abort(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Bytes on disk of a file, or of a directory and everything under it.
///
/// # Errors
///
/// [`Error::Io`] when a path cannot be read.
pub fn disk_bytes(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        total += disk_bytes(&entry.path())?;
    }
    Ok(total)
}

/// A table opened for reading.
pub struct TableReader {
    path: PathBuf,
    schema: SchemaRef,
    rows: usize,
    inner: Inner,
}

enum Inner {
    Lance {
        dataset: Arc<Dataset>,
        runtime: tokio::runtime::Runtime,
    },
    /// The part files, in row order, with their row counts.
    Parquet { parts: Vec<(PathBuf, usize)> },
}

impl TableReader {
    /// Opens the table at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when it is missing or not a table of `format`.
    pub fn open(path: &Path, format: CacheFormat) -> Result<TableReader> {
        local_parquet(path, format)?;
        if !store::exists(path)? {
            return Err(Error::cache(path, "table is missing"));
        }
        match format {
            CacheFormat::Lance => Self::open_lance(path),
            CacheFormat::Parquet => Self::open_parquet(path),
        }
    }

    fn open_lance(path: &Path) -> Result<TableReader> {
        let runtime = runtime()?;
        let uri = uri_of(path)?;
        let dataset = runtime.block_on(Dataset::open(&uri)).map_err(|e| {
            Error::cache(path, format!("cannot open as lance: {}", lance_message(&e)))
        })?;
        let rows = runtime.block_on(dataset.count_rows(None))?;
        let schema = Arc::new(arrow_schema::Schema::from(dataset.schema()));
        Ok(TableReader {
            path: path.to_path_buf(),
            schema,
            rows,
            inner: Inner::Lance {
                dataset: Arc::new(dataset),
                runtime,
            },
        })
    }

    fn open_parquet(path: &Path) -> Result<TableReader> {
        let mut parts = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        for part in parquet_parts(path)? {
            let builder = open_part(&part)?;
            let rows = builder.metadata().file_metadata().num_rows() as usize;
            match &schema {
                Some(first) if first != builder.schema() => {
                    return Err(Error::cache(
                        &part,
                        "has another schema than the table's first part",
                    ));
                }
                Some(_) => {}
                None => schema = Some(builder.schema().clone()),
            }
            parts.push((part, rows));
        }
        let schema = schema.ok_or_else(|| Error::cache(path, "holds no Parquet part"))?;
        Ok(TableReader {
            path: path.to_path_buf(),
            schema,
            rows: parts.iter().map(|(_, rows)| rows).sum(),
            inner: Inner::Parquet { parts },
        })
    }

    /// The table's Arrow schema, with its metadata.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows in the table.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Rows of each of the table's parts, in order: a Parquet table's part files (one
    /// per checkpoint of the run that wrote it); a Lance table counts as one part.
    pub fn part_rows(&self) -> Vec<usize> {
        match &self.inner {
            Inner::Lance { .. } => vec![self.rows],
            Inner::Parquet { parts } => parts.iter().map(|(_, rows)| *rows).collect(),
        }
    }

    /// Names of the table's columns, in schema order.
    pub fn column_names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// Bytes on disk of each top-level column, after encoding and compression.
    ///
    /// # Errors
    ///
    /// When the table's metadata cannot be read.
    pub fn column_bytes(&self) -> Result<Vec<(String, u64)>> {
        match &self.inner {
            Inner::Lance { dataset, runtime } => {
                use lance::dataset::statistics::DatasetStatisticsExt;
                let stats = runtime.block_on(dataset.calculate_data_stats())?;
                let by_id: std::collections::HashMap<u32, u64> = stats
                    .fields
                    .iter()
                    .map(|f| (f.id, f.bytes_on_disk))
                    .collect();
                Ok(dataset
                    .schema()
                    .fields
                    .iter()
                    .map(|f| (f.name.clone(), field_bytes(f, &by_id)))
                    .collect())
            }
            Inner::Parquet { parts } => {
                let mut sizes: Vec<(String, u64)> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), 0))
                    .collect();
                for (part, _) in parts {
                    let builder = open_part(part)?;
                    for group in builder.metadata().row_groups() {
                        for chunk in group.columns() {
                            let root = &chunk.column_path().parts()[0];
                            if let Some(entry) = sizes.iter_mut().find(|(n, _)| n == root) {
                                entry.1 += chunk.compressed_size() as u64;
                            }
                        }
                    }
                }
                Ok(sizes)
            }
        }
    }

    fn check_columns(&self, columns: &[&str]) -> Result<()> {
        for c in columns {
            if self.schema.field_with_name(c).is_err() {
                return Err(Error::cache(&self.path, format!("has no column {c}")));
            }
        }
        Ok(())
    }

    /// Streams `columns` in row order, `batch_size` rows at a time.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] for an unknown column; read errors come through the iterator.
    pub fn scan<'a>(
        &'a self,
        columns: &[&str],
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + 'a>> {
        self.check_columns(columns)?;
        match &self.inner {
            Inner::Lance { dataset, runtime } => {
                let mut scanner = dataset.scan();
                scanner.project(columns)?;
                scanner.batch_size(batch_size);
                scanner.scan_in_order(true);
                let mut stream = runtime.block_on(scanner.try_into_stream())?;
                Ok(Box::new(std::iter::from_fn(move || {
                    runtime
                        .block_on(stream.next())
                        .map(|r| r.map_err(Error::from))
                })))
            }
            Inner::Parquet { parts } => {
                let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
                Ok(Box::new(parts.iter().flat_map(move |(part, _)| {
                    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
                    let reader = open_part(part).and_then(|builder| {
                        let mask = projection_mask(&builder, &names);
                        Ok(builder
                            .with_projection(mask)
                            .with_batch_size(batch_size)
                            .build()?)
                    });
                    let batches: Box<dyn Iterator<Item = Result<RecordBatch>>> = match reader {
                        Ok(reader) => Box::new(reader.map(|r| r.map_err(Error::from))),
                        Err(e) => Box::new(std::iter::once(Err(e))),
                    };
                    batches
                })))
            }
        }
    }

    /// Reads the rows at `indices` (in that order) of `columns`.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] for an unknown column or a row out of range.
    pub fn take(&self, indices: &[u64], columns: &[&str]) -> Result<RecordBatch> {
        self.check_columns(columns)?;
        if let Some(bad) = indices.iter().find(|&&i| i as usize >= self.rows) {
            return Err(Error::cache(
                &self.path,
                format!("row {bad} is out of range ({} rows)", self.rows),
            ));
        }
        match &self.inner {
            Inner::Lance { dataset, runtime } => {
                let projection = ProjectionRequest::from_columns(columns, dataset.schema());
                Ok(runtime.block_on(dataset.take(indices, projection))?)
            }
            Inner::Parquet { parts } => self.take_parquet(parts, indices, columns),
        }
    }

    /// Reads only the rows asked for, part by part with a row selection, then restores
    /// their order.
    fn take_parquet(
        &self,
        parts: &[(PathBuf, usize)],
        indices: &[u64],
        columns: &[&str],
    ) -> Result<RecordBatch> {
        let mut sorted: Vec<u64> = indices.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut batches = Vec::new();
        let mut start = 0u64;
        let mut wanted = sorted.as_slice();
        for (part, rows) in parts {
            let end = start + *rows as u64;
            let here = wanted.partition_point(|&r| r < end);
            let (mine, rest) = wanted.split_at(here);
            wanted = rest;
            if !mine.is_empty() {
                let local: Vec<u64> = mine.iter().map(|r| r - start).collect();
                let builder = open_part(part)?;
                let mask = projection_mask(&builder, columns);
                let reader = builder
                    .with_projection(mask)
                    .with_row_selection(row_selection(&local))
                    .with_batch_size(8192)
                    .build()?;
                for batch in reader {
                    batches.push(batch?);
                }
            }
            start = end;
        }
        let projected = Arc::new(
            self.schema
                .project(&column_indices(&self.schema, columns))?,
        );
        let selected = arrow_select::concat::concat_batches(&projected, &batches)?;
        let position: std::collections::HashMap<u64, u64> = sorted
            .iter()
            .enumerate()
            .map(|(i, row)| (*row, i as u64))
            .collect();
        let order = arrow_array::UInt64Array::from_iter_values(indices.iter().map(|r| position[r]));
        Ok(arrow_select::take::take_record_batch(&selected, &order)?)
    }
}

fn open_part(part: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(part).map_err(|e| Error::io(part, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::cache(part, format!("cannot open as parquet: {e}")))
}

/// Skip/select runs that pick the sorted, distinct `rows`.
fn row_selection(rows: &[u64]) -> RowSelection {
    let mut selectors = Vec::new();
    let mut next = 0u64;
    for &row in rows {
        if row > next {
            selectors.push(RowSelector::skip((row - next) as usize));
        }
        match selectors.last_mut() {
            Some(last) if !last.skip && row == next => last.row_count += 1,
            _ => selectors.push(RowSelector::select(1)),
        }
        next = row + 1;
    }
    RowSelection::from(selectors)
}

/// Bytes of a Lance field and its children.
fn field_bytes(
    field: &lance::datatypes::Field,
    by_id: &std::collections::HashMap<u32, u64>,
) -> u64 {
    let own = by_id.get(&(field.id as u32)).copied().unwrap_or(0);
    own + field
        .children
        .iter()
        .map(|c| field_bytes(c, by_id))
        .sum::<u64>()
}

fn column_indices(schema: &SchemaRef, columns: &[&str]) -> Vec<usize> {
    columns
        .iter()
        .map(|c| schema.index_of(c).expect("columns are checked"))
        .collect()
}

fn projection_mask(
    builder: &ParquetRecordBatchReaderBuilder<File>,
    columns: &[&str],
) -> ProjectionMask {
    let indices = column_indices(builder.schema(), columns);
    ProjectionMask::roots(builder.parquet_schema(), indices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    use arrow_array::{Array, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn numbers_table(dir: &Path, format: CacheFormat, n: u64) -> PathBuf {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
        let path = dir.join(format!("t.{}", format.extension()));
        let mut sink = TableSink::create(&path, format, schema.clone()).unwrap();
        for start in (0..n).step_by(7) {
            let values = UInt64Array::from_iter_values(start..(start + 7).min(n));
            sink.send(RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap())
                .unwrap();
        }
        assert_eq!(sink.finish().unwrap().rows, n as usize);
        path
    }

    #[test]
    fn take_returns_rows_in_the_order_asked_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for format in [CacheFormat::Lance, CacheFormat::Parquet] {
            let reader = TableReader::open(&numbers_table(dir.path(), format, 50), format).unwrap();
            assert_eq!(reader.num_rows(), 50);
            let rows = [49, 0, 13, 14, 15, 2, 13];
            let batch = reader.take(&rows, &["x"]).unwrap();
            let got = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap();
            assert_eq!(got.values().to_vec(), rows.to_vec(), "{format:?}");
            let err = reader.take(&[50], &["x"]).err().unwrap().to_string();
            assert!(err.contains("row 50 is out of range (50 rows)"), "{err}");
        }
    }

    fn numbers(schema: &SchemaRef, range: std::ops::Range<u64>) -> RecordBatch {
        let values = UInt64Array::from_iter_values(range);
        RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
    }

    fn all_numbers(path: &Path, format: CacheFormat) -> Vec<u64> {
        let reader = TableReader::open(path, format).unwrap();
        let all: Vec<u64> = (0..reader.num_rows() as u64).collect();
        let taken = reader.take(&all, &["x"]).unwrap();
        let scanned: Vec<u64> = reader
            .scan(&["x"], 3)
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                b.column(0).as_primitive::<UInt64Type>().values().to_vec()
            })
            .collect();
        let taken = taken
            .column(0)
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec();
        assert_eq!(taken, scanned, "{format:?}: take and scan disagree");
        taken
    }

    #[test]
    fn commits_make_versions_that_can_be_restored() {
        for format in [CacheFormat::Lance, CacheFormat::Parquet] {
            let dir = tempfile::tempdir().unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
            let path = dir.path().join(format!("groups.{}", format.extension()));
            let mut sink = TableSink::create(&path, format, schema.clone()).unwrap();
            sink.send(numbers(&schema, 0..5)).unwrap();
            let first = sink.commit().unwrap();
            sink.send(numbers(&schema, 5..8)).unwrap();
            sink.send(numbers(&schema, 8..9)).unwrap();
            let second = sink.commit().unwrap();
            assert!(second > first, "{format:?}");
            sink.send(numbers(&schema, 9..12)).unwrap();
            drop(sink); // aborted: the third group is never committed
            assert_eq!(all_numbers(&path, format), (0..9).collect::<Vec<u64>>());
            // Rows far apart, across parts, in any order.
            let reader = TableReader::open(&path, format).unwrap();
            let batch = reader.take(&[8, 0, 4, 5, 8], &["x"]).unwrap();
            let got = batch
                .column(0)
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec();
            assert_eq!(got, vec![8, 0, 4, 5, 8], "{format:?}");

            restore_version(&path, format, first).unwrap();
            let mut sink = TableSink::append(&path, format, schema.clone()).unwrap();
            sink.send(numbers(&schema, 5..7)).unwrap();
            sink.finish().unwrap();
            assert_eq!(all_numbers(&path, format), (0..7).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn a_table_with_no_row_is_created_with_its_schema() {
        for format in [CacheFormat::Lance, CacheFormat::Parquet] {
            let dir = tempfile::tempdir().unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
            let path = dir.path().join(format!("empty.{}", format.extension()));
            let summary = TableSink::create(&path, format, schema.clone())
                .unwrap()
                .finish();
            assert_eq!(summary.unwrap().rows, 0, "{format:?}");
            let reader = TableReader::open(&path, format).unwrap();
            assert_eq!(reader.num_rows(), 0, "{format:?}");
            assert_eq!(reader.column_names(), vec!["x"], "{format:?}");
        }
    }

    #[test]
    fn a_dropped_sink_commits_nothing() {
        for format in [CacheFormat::Lance, CacheFormat::Parquet] {
            let dir = tempfile::tempdir().unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
            let path = dir.path().join(format!("aborted.{}", format.extension()));
            let mut sink = TableSink::create(&path, format, schema.clone()).unwrap();
            sink.send(numbers(&schema, 0..3)).unwrap();
            drop(sink);
            assert!(TableReader::open(&path, format).is_err(), "{format:?}");
        }
    }

    #[test]
    fn joined_tables_hold_the_rows_of_their_sources_in_order_without_a_copy() {
        use std::os::unix::fs::MetadataExt;
        for format in [CacheFormat::Lance, CacheFormat::Parquet] {
            let dir = tempfile::tempdir().unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
            let mut sources = Vec::new();
            for (k, range) in [(0, 0..4), (1, 4..5), (2, 5..11)] {
                let path = dir.path().join(format!("shard{k}.{}", format.extension()));
                let mut sink = TableSink::create(&path, format, schema.clone()).unwrap();
                sink.send(numbers(&schema, range.start..range.start + 1))
                    .unwrap();
                sink.commit().unwrap();
                sink.send(numbers(&schema, range.start + 1..range.end))
                    .unwrap();
                sink.finish().unwrap();
                sources.push(path);
            }
            let dest = dir.path().join(format!("joined.{}", format.extension()));
            let join = match format {
                CacheFormat::Lance => join_lance,
                CacheFormat::Parquet => join_parquet,
            };
            let files = join(&sources, &dest).unwrap();
            assert_eq!(files.copied, 0, "{format:?}");
            assert!(files.linked >= 3, "{format:?}");
            assert_eq!(all_numbers(&dest, format), (0..11).collect::<Vec<u64>>());
            // Every data file is shared with a source: two names, one inode.
            let data = match format {
                CacheFormat::Lance => dest.join("data"),
                CacheFormat::Parquet => dest.clone(),
            };
            for entry in std::fs::read_dir(data).unwrap() {
                let meta = entry.unwrap().metadata().unwrap();
                assert_eq!(meta.nlink(), 2, "{format:?}");
            }
            let err = join(&sources, &dest).unwrap_err().to_string();
            assert!(err.contains("exists already"), "{err}");
        }
    }
}
