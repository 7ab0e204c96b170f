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

use crate::config::CacheFormat;
use crate::error::{Error, Result};

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
        if path.exists() {
            return Err(Error::cache(path, "exists already"));
        }
        Self::start(path, format, schema)
    }

    /// Continues a Lance table at `path`: batches are appended to it.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] for Parquet, which cannot be appended to.
    pub fn append(path: &Path, format: CacheFormat, schema: SchemaRef) -> Result<TableSink> {
        if format != CacheFormat::Lance {
            return Err(Error::cache(path, "only Lance tables can be appended to"));
        }
        Self::start(path, format, schema)
    }

    fn start(path: &Path, format: CacheFormat, schema: SchemaRef) -> Result<TableSink> {
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
    /// table's version (Lance) or 0 (Parquet, whose file is committed at `finish`).
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
            bytes: disk_bytes(&self.path)?,
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

fn uri_of(path: &Path) -> Result<String> {
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
        let first = match receiver.lock().expect("receiver").recv() {
            Ok(Message::Batch(batch)) => batch,
            Ok(Message::Commit(reply)) => {
                let _ = reply.send(Ok(version.unwrap_or(0)));
                continue;
            }
            Ok(Message::Finish) if version.is_some() => return Ok(()),
            // A table with no row is still created, so that readers find it.
            Ok(Message::Finish) => RecordBatch::new_empty(schema.clone()),
            Err(_) => return Err(Error::cache(path, "write aborted")),
        };
        let end = Arc::new(std::sync::Mutex::new(None));
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
                let _ = reply.send(Err(Error::cache(path, format!("commit failed: {e}"))));
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

/// Puts the Lance table at `path` back to `version`, dropping later commits (rows
/// written after the last checkpoint of an interrupted run).
///
/// # Errors
///
/// When the table or the version cannot be opened.
pub fn restore_lance_version(path: &Path, version: u64) -> Result<()> {
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

/// What [`join_lance`] did with the data files of its sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinedFiles {
    /// Data files hard-linked: no byte was copied.
    pub linked: usize,
    /// Data files copied, where a link could not be made (another file system).
    pub copied: usize,
}

/// Creates the Lance table `dest` from the rows of the tables `sources`, in that order,
/// without rewriting any row: each source's data files are hard-linked into `dest` (or
/// copied byte for byte across file systems) and the fragments that name them are
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
    if dest.exists() {
        return Err(Error::cache(dest, "exists already"));
    }
    let runtime = runtime()?;
    let open = |path: &Path| -> Result<Dataset> {
        runtime
            .block_on(Dataset::open(&uri_of(path)?))
            .map_err(|e| Error::cache(path, format!("cannot open as lance: {e}")))
    };
    let schema = open(first)?.schema().clone();
    let data = dest.join("data");
    std::fs::create_dir_all(&data).map_err(|e| Error::io(&data, e))?;
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
                let to = data.join(&file.path);
                if std::fs::hard_link(&from, &to).is_ok() {
                    files.linked += 1;
                } else {
                    std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
                    files.copied += 1;
                }
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

fn write_parquet(path: &Path, schema: SchemaRef, receiver: Receiver<Message>) -> Result<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(false)
        .build();
    let partial = path.with_extension("parquet.partial");
    let file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    loop {
        match receiver.recv() {
            Ok(Message::Batch(batch)) => writer.write(&batch)?,
            Ok(Message::Commit(reply)) => {
                let _ = reply.send(Ok(0));
            }
            Ok(Message::Finish) => break,
            Err(_) => {
                drop(writer);
                let _ = std::fs::remove_file(&partial);
                return Err(Error::cache(path, "write aborted"));
            }
        }
    }
    writer.close()?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
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
    Parquet,
}

impl TableReader {
    /// Opens the table at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when it is missing or not a table of `format`.
    pub fn open(path: &Path, format: CacheFormat) -> Result<TableReader> {
        if !path.exists() {
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
        let dataset = runtime
            .block_on(Dataset::open(&uri))
            .map_err(|e| Error::cache(path, format!("cannot open as lance: {e}")))?;
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
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| Error::cache(path, format!("cannot open as parquet: {e}")))?;
        let rows = builder.metadata().file_metadata().num_rows() as usize;
        Ok(TableReader {
            path: path.to_path_buf(),
            schema: builder.schema().clone(),
            rows,
            inner: Inner::Parquet,
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
            Inner::Parquet => {
                let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
                let mut sizes: Vec<(String, u64)> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), 0))
                    .collect();
                for group in builder.metadata().row_groups() {
                    for chunk in group.columns() {
                        let root = chunk.column_path().parts()[0].clone();
                        if let Some(entry) = sizes.iter_mut().find(|(n, _)| *n == root) {
                            entry.1 += chunk.compressed_size() as u64;
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
            Inner::Parquet => {
                let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
                let mask = projection_mask(&builder, columns);
                let reader = builder
                    .with_projection(mask)
                    .with_batch_size(batch_size)
                    .build()?;
                Ok(Box::new(reader.map(|r| r.map_err(Error::from))))
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
            Inner::Parquet => self.take_parquet(indices, columns),
        }
    }

    /// Reads only the rows asked for, with a row selection, then restores their order.
    fn take_parquet(&self, indices: &[u64], columns: &[&str]) -> Result<RecordBatch> {
        let mut sorted: Vec<u64> = indices.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let mask = projection_mask(&builder, columns);
        let reader = builder
            .with_projection(mask)
            .with_row_selection(row_selection(&sorted))
            .with_batch_size(8192)
            .build()?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        let selected = arrow_select::concat::concat_batches(&schema, &batches)?;
        let position: std::collections::HashMap<u64, u64> = sorted
            .iter()
            .enumerate()
            .map(|(i, row)| (*row, i as u64))
            .collect();
        let order = arrow_array::UInt64Array::from_iter_values(indices.iter().map(|r| position[r]));
        Ok(arrow_select::take::take_record_batch(&selected, &order)?)
    }
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

    #[test]
    fn commits_make_versions_that_can_be_restored() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
        let path = dir.path().join("groups.lance");
        let batch = |a: u64, b: u64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(UInt64Array::from_iter_values(a..b))],
            )
            .unwrap()
        };
        let mut sink = TableSink::create(&path, CacheFormat::Lance, schema.clone()).unwrap();
        sink.send(batch(0, 5)).unwrap();
        let first = sink.commit().unwrap();
        sink.send(batch(5, 8)).unwrap();
        sink.send(batch(8, 9)).unwrap();
        let second = sink.commit().unwrap();
        assert!(second > first);
        sink.send(batch(9, 12)).unwrap();
        drop(sink); // aborted: the third group is never committed
        let reader = TableReader::open(&path, CacheFormat::Lance).unwrap();
        assert_eq!(reader.num_rows(), 9);

        restore_lance_version(&path, first).unwrap();
        let mut sink = TableSink::append(&path, CacheFormat::Lance, schema.clone()).unwrap();
        sink.send(batch(5, 7)).unwrap();
        sink.finish().unwrap();
        let reader = TableReader::open(&path, CacheFormat::Lance).unwrap();
        let all: Vec<u64> = (0..reader.num_rows() as u64).collect();
        let got = reader.take(&all, &["x"]).unwrap();
        let got = got
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(got.values().to_vec(), (0..7).collect::<Vec<u64>>());
    }

    #[test]
    fn a_dropped_sink_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt64, false)]));
        let path = dir.path().join("aborted.lance");
        let mut sink = TableSink::create(&path, CacheFormat::Lance, schema.clone()).unwrap();
        let values = UInt64Array::from_iter_values(0..3);
        sink.send(RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap())
            .unwrap();
        drop(sink);
        assert!(TableReader::open(&path, CacheFormat::Lance).is_err());
    }
}
