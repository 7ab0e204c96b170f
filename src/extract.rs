//! Stage 1, `extract`: run the teachers once over a source and write the cache.
//!
//! Decoding, cropping and resizing run on the rayon pool in a producer thread; the
//! teachers run on the calling thread; every table is encoded and written on its own
//! thread. Bounded queues join the three, so memory stays flat whatever the dataset size.
//! The cache is built in `<output>.partial` and renamed into place only when complete, so
//! a failed run never leaves a half cache and never touches an existing one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array,
};
use image::RgbImage;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use crate::cache::store;
use crate::cache::{
    self, codec, FeatureEncodings, FeatureShape, Manifest, Rejected, TableSink, TableSummary,
    TeacherEntry, FORMAT_VERSION, MANIFEST_FILE,
};
use crate::config::{CacheFormat, Pipeline, TeacherConfig};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sources::{decode_rgb_bytes, ImageRecord, Source};
use crate::teacher::{parse_device, parse_precision, Teacher};
use crate::views::{filter_for, render, View, ViewSampler};

/// Chunks decoded ahead of the teachers.
const PREFETCH_CHUNKS: usize = 2;

/// What an extraction did.
#[derive(Debug, Clone)]
pub struct ExtractReport {
    pub output: PathBuf,
    pub images: usize,
    pub rejected: Vec<Rejected>,
    pub views_per_image: usize,
    pub rows: usize,
    pub teachers: Vec<TeacherReport>,
    pub images_table_bytes: u64,
    pub seconds: f64,
    /// Of `seconds`, the time spent loading and checking the teachers.
    pub load_seconds: f64,
    /// The process's peak resident memory at the end of the run (Linux), in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// Source records done at the checkpoint this run resumed from, if it resumed.
    pub resumed_from: Option<usize>,
}

/// Rows and bytes of one teacher's table.
#[derive(Debug, Clone)]
pub struct TeacherReport {
    pub name: String,
    pub rows: usize,
    pub bytes: u64,
    /// Bytes the feature columns would take as uncompressed float16.
    pub raw_f16_bytes: u64,
}

/// Runs `extract` as the pipeline says.
///
/// # Errors
///
/// Before any work: an output that exists (without `overwrite`), a teacher that does not
/// load or breaks its sidecar, a source that cannot be listed. During the run: write
/// errors. Unreadable images are not errors; they are recorded in the manifest.
pub fn run(pipeline: &Pipeline, progress: &dyn Progress) -> Result<ExtractReport> {
    let started = Instant::now();
    let pipeline = &with_absolute_paths(pipeline);
    let output = match pipeline.extract.shard {
        Some(shard) => shards_dir(&pipeline.extract.output).join(shard.dir_name()),
        None => pipeline.extract.output.clone(),
    };
    // Before any work: the tables would refuse it only once they are opened.
    cache::table::local_parquet(&output, pipeline.extract.format)?;
    check_output(&output, pipeline.extract.overwrite)?;
    if store::is_uri(&pipeline.source.path) {
        return Err(Error::Config(format!(
            "source {} is an object-store URI; sources are read from local paths",
            pipeline.source.path.display()
        )));
    }
    let loading = Instant::now();
    let teachers = load_teachers(pipeline)?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let source = Source::open(&pipeline.source)?;
    tracing::info!(
        images = source.records().len(),
        teachers = teachers.len(),
        "extracting {}",
        source.root().display()
    );

    let partial = cache::partial_dir(&output);
    if let Some(parent) = partial.parent() {
        store::create_dir_all(parent)?;
    }
    let resume = prepare_partial(pipeline, &partial)?;
    let resumed_from = resume.as_ref().map(|j| j.records_done);
    let result = extract_into(pipeline, &teachers, &source, &partial, resume, progress);
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            // Keep a checkpointed run for the next attempt; drop one with nothing saved.
            if !Journal::load(&partial)?.is_some_and(|j| j.checkpointed()) {
                let _ = store::remove_dir_all(&partial);
            }
            return Err(e);
        }
    };
    store::remove_file(&partial.join(JOURNAL_FILE))?;
    commit(&partial, &output)?;
    report.output = output;
    report.resumed_from = resumed_from;
    report.seconds = started.elapsed().as_secs_f64();
    report.load_seconds = load_seconds;
    report.peak_memory_bytes = peak_memory_bytes();
    Ok(report)
}

/// Where `extract --shard` writes its shards and `distillery commit` finds them.
pub fn shards_dir(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".shards");
    PathBuf::from(name)
}

pub use crate::cache::JOURNAL_FILE;

/// The last checkpoint of a run: every table committed up to `records_done` source
/// records, at the recorded versions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Journal {
    /// The resolved pipeline the run was started with, as JSON: a resume must match it.
    fingerprint: String,
    records_done: usize,
    images: usize,
    rejected: Vec<Rejected>,
    /// Version of each table (relative path) at the checkpoint: its Lance version, or its
    /// number of Parquet parts.
    versions: BTreeMap<String, u64>,
}

/// What a resumed run must share with the interrupted one: everything that shapes the
/// rows (source, views, teachers, batches, device, format), not `[train]`, `overwrite` or
/// `checkpoint_every`.
fn fingerprint(pipeline: &Pipeline) -> String {
    let mut p = pipeline.clone();
    p.extract.overwrite = false;
    p.extract.checkpoint_every = 0;
    p.train = Default::default();
    format!(
        "{}\n{}",
        env!("CARGO_PKG_VERSION"),
        serde_json::to_string(&p).expect("pipeline serialises")
    )
}

/// The settings in which two fingerprints differ, as `extract.batch_size` and the like.
fn differences(theirs: &str, ours: &str) -> String {
    let split = |f: &str| -> (String, serde_json::Value) {
        let (version, json) = f.split_once('\n').unwrap_or((f, "null"));
        let value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
        (version.to_string(), value)
    };
    let ((their_version, theirs), (our_version, ours)) = (split(theirs), split(ours));
    let mut names = Vec::new();
    if their_version != our_version {
        names.push(format!("distillery {their_version} then {our_version}"));
    }
    crate::config::json_differences("", &theirs, &ours, &mut names);
    if names.is_empty() {
        "its journal is unreadable".into()
    } else {
        format!("other {}", names.join(", "))
    }
}

impl Journal {
    /// The journal in `dir`, if there is one that parses.
    fn load(dir: &Path) -> Result<Option<Journal>> {
        let text = store::read(&dir.join(JOURNAL_FILE))?;
        Ok(text.and_then(|t| serde_json::from_slice(&t).ok()))
    }

    /// Writes the journal whole.
    fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string(self).expect("journal serialises");
        store::write(&dir.join(JOURNAL_FILE), text.as_bytes())
    }

    /// Whether a checkpoint was reached: before it, the journal only marks a run as ours.
    fn checkpointed(&self) -> bool {
        !self.versions.is_empty()
    }

    fn start(pipeline: &Pipeline) -> Journal {
        Journal {
            fingerprint: fingerprint(pipeline),
            records_done: 0,
            images: 0,
            rejected: Vec::new(),
            versions: BTreeMap::new(),
        }
    }
}

/// Readies `<output>.partial`: resumes the checkpoint of an interrupted run of the same
/// pipeline (rolling every table back to it), or starts afresh.
fn prepare_partial(pipeline: &Pipeline, partial: &Path) -> Result<Option<Journal>> {
    if let Some(journal) = Journal::load(partial)? {
        let ours = fingerprint(pipeline);
        if journal.fingerprint == ours && journal.checkpointed() {
            let format = pipeline.extract.format;
            for (table, version) in &journal.versions {
                cache::table::restore_version(&partial.join(table), format, *version)?;
            }
            tracing::info!(
                records = journal.records_done,
                "resuming the interrupted run in {}",
                partial.display()
            );
            return Ok(Some(journal));
        }
        if journal.checkpointed() {
            tracing::warn!(
                "{} holds a run of another pipeline ({}); starting afresh",
                partial.display(),
                differences(&journal.fingerprint, &ours)
            );
        }
    }
    store::remove_dir_all(partial)?;
    store::create_dir_all(&partial.join("teachers"))?;
    // Marks the directory as this run's, before any table: on an object store, where the
    // run writes in place, this is what tells an interrupted run from foreign data.
    Journal::start(pipeline).save(partial)?;
    Ok(None)
}

/// The pipeline with source and teacher paths made absolute, as the manifest records it,
/// so that `train` finds them from any working directory.
fn with_absolute_paths(pipeline: &Pipeline) -> Pipeline {
    let mut resolved = pipeline.clone();
    resolved.source.path = absolute(&pipeline.source.path);
    for t in &mut resolved.teachers {
        t.path = absolute(&t.path);
    }
    resolved
}

fn check_output(output: &Path, overwrite: bool) -> Result<()> {
    if store::is_uri(output) {
        return check_uri_output(output, overwrite);
    }
    if !output.exists() {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::cache(
            output,
            "exists already; pass --overwrite to replace it",
        ));
    }
    if !output.join(MANIFEST_FILE).is_file() {
        return Err(Error::cache(
            output,
            "exists and is not a distillery cache (no manifest.json); refusing to replace it",
        ));
    }
    Ok(())
}

/// An object store has no rename: a run writes in place, and its manifest, written last,
/// is what makes it a cache. So an existing cache is never replaced there.
fn check_uri_output(output: &Path, overwrite: bool) -> Result<()> {
    if store::exists(&output.join(MANIFEST_FILE))? {
        let why = if overwrite {
            "holds a cache, which --overwrite does not replace on an object store (there is \
             no atomic rename there); remove it first"
        } else {
            "exists already"
        };
        return Err(Error::cache(output, why));
    }
    if store::exists(output)? && !store::exists(&output.join(JOURNAL_FILE))? {
        return Err(Error::cache(
            output,
            "holds objects that are not a distillery cache nor an interrupted run; refusing \
             to write there",
        ));
    }
    Ok(())
}

/// Loads every teacher and runs its contract check, so a bad file fails before work.
fn load_teachers(pipeline: &Pipeline) -> Result<Vec<Teacher>> {
    let device = parse_device(&pipeline.extract.device)?;
    pipeline
        .teachers
        .iter()
        .map(|t| {
            let teacher = Teacher::load(&t.name, &t.path, device, parse_precision(&t.precision)?)?;
            teacher.check_contract()?;
            tracing::info!(
                teacher = t.name,
                model = teacher.sidecar().timm_model,
                pretrained = teacher.sidecar().pretrained,
                "loaded {}",
                t.path.display()
            );
            Ok(teacher)
        })
        .collect()
}

/// Moves the finished cache into place, replacing an old one only after the new one is
/// complete.
fn commit(partial: &Path, output: &Path) -> Result<()> {
    if partial == output {
        return Ok(()); // an object store: the manifest, written last, made it a cache
    }
    if output.exists() {
        let mut old = output.as_os_str().to_os_string();
        old.push(".replaced");
        let old = PathBuf::from(old);
        std::fs::rename(output, &old).map_err(|e| Error::io(output, e))?;
        std::fs::rename(partial, output).map_err(|e| Error::io(output, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    } else {
        std::fs::rename(partial, output).map_err(|e| Error::io(output, e))?;
    }
    Ok(())
}

/// Input size and filter of a teacher: teachers that agree share rendered views.
type RenderKey = (u32, u32, String);

fn render_key(teacher: &Teacher) -> RenderKey {
    let (h, w) = teacher.sidecar().input_hw();
    (h, w, teacher.sidecar().interpolation.clone())
}

/// A chunk of decoded images and their rendered views.
struct Chunk {
    images: Vec<(ImageRecord, u32, u32)>,
    rejected: Vec<Rejected>,
    views: Vec<(u64, View)>,
    rendered: BTreeMap<RenderKey, Vec<RgbImage>>,
}

struct Sinks {
    images: TableSink,
    teachers: Vec<TableSink>,
}

fn extract_into(
    pipeline: &Pipeline,
    teachers: &[Teacher],
    source: &Source,
    dir: &Path,
    resume: Option<Journal>,
    progress: &dyn Progress,
) -> Result<ExtractReport> {
    let format = pipeline.extract.format;
    let mut sinks = open_sinks(dir, format, teachers, &pipeline.teachers, resume.is_some())?;
    let keys: Vec<RenderKey> = teachers.iter().map(render_key).collect();
    let (sender, receiver) = sync_channel(PREFETCH_CHUNKS);
    let sampler = sampler_of(pipeline);
    let views = pipeline.extract.views_per_image;
    let per_chunk = (pipeline.extract.batch_size / views).max(1);
    let mut state = resume.unwrap_or_else(|| Journal::start(pipeline));
    let all = source.records();
    let mine = match pipeline.extract.shard {
        Some(shard) => &all[shard.range(all.len())],
        None => all,
    };
    let remaining = &mine[state.records_done..];

    progress.begin("extract", mine.len() as u64);
    progress.advance(state.records_done as u64, 0);
    let consumed = std::thread::scope(|scope| {
        scope.spawn(|| produce_chunks(remaining, source, sampler, views, per_chunk, &keys, sender));
        consume_chunks(
            pipeline, teachers, &mut sinks, receiver, &mut state, dir, progress,
        )
    });
    progress.finish();
    consumed?;

    // A shard may hold no image (more shards than images); it is still a shard to commit.
    if state.images == 0 && pipeline.extract.shard.is_none() {
        return Err(Error::Source {
            path: source.root().to_path_buf(),
            message: format!(
                "no image could be decoded ({} rejected)",
                state.rejected.len()
            ),
        });
    }
    finish_cache(
        pipeline,
        teachers,
        source,
        dir,
        sinks,
        state.images,
        state.rejected,
    )
}

pub(crate) fn sampler_of(pipeline: &Pipeline) -> ViewSampler {
    let e = &pipeline.extract;
    ViewSampler {
        seed: e.seed,
        scale: e.crop_scale,
        ratio: e.crop_ratio,
        flip_probability: e.flip_probability,
        full_image: e.patch_mode == crate::config::PatchMode::FullImage,
    }
}

fn open_sinks(
    dir: &Path,
    format: CacheFormat,
    teachers: &[Teacher],
    configs: &[TeacherConfig],
    resume: bool,
) -> Result<Sinks> {
    let open = |path: &Path, schema| {
        if resume {
            TableSink::append(path, format, schema)
        } else {
            TableSink::create(path, format, schema)
        }
    };
    let images = open(
        &dir.join(cache::images_table_path(format)),
        cache::images_schema(),
    )?;
    let teachers = teachers
        .iter()
        .zip(configs)
        .map(|(t, c)| {
            let path = dir.join(cache::teacher_table_path(t.name(), format));
            open(
                &path,
                cache::teacher_schema(t.name(), shape_of(t), encodings_of(c)),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Sinks { images, teachers })
}

/// The feature shape a teacher's sidecar promises.
pub fn shape_of(teacher: &Teacher) -> FeatureShape {
    let s = teacher.sidecar();
    FeatureShape {
        summary_dim: s.summary_dim,
        grid_h: s.grid[0],
        grid_w: s.grid[1],
        patch_dim: s.patch_dim,
    }
}

pub(crate) fn encodings_of(config: &TeacherConfig) -> FeatureEncodings {
    FeatureEncodings {
        summary: config.summary_encoding(),
        patch_tokens: config.patch_encoding(),
    }
}

fn produce_chunks(
    records: &[ImageRecord],
    source: &Source,
    sampler: ViewSampler,
    views: usize,
    per_chunk: usize,
    keys: &[RenderKey],
    sender: SyncSender<Chunk>,
) {
    let mut unique: Vec<RenderKey> = keys.to_vec();
    unique.sort();
    unique.dedup();
    for records in records.chunks(per_chunk) {
        let bytes = source.read(records);
        let prepared = prepare_chunk(records, bytes, sampler, views, &unique);
        if sender.send(prepared).is_err() {
            return; // the consumer stopped; its error is reported there
        }
    }
}

/// Decodes a chunk in parallel and renders every view at every distinct teacher input.
fn prepare_chunk(
    records: &[ImageRecord],
    bytes: Vec<std::result::Result<Vec<u8>, String>>,
    sampler: ViewSampler,
    views: usize,
    keys: &[RenderKey],
) -> Chunk {
    type Decoded = std::result::Result<(Vec<View>, Vec<Vec<RgbImage>>, u32, u32), String>;
    let decoded: Vec<Decoded> = records
        .par_iter()
        .zip(bytes)
        .map(|(record, bytes)| {
            let image = decode_rgb_bytes(&bytes?)?;
            let (w, h) = image.dimensions();
            let drawn = sampler.sample(record.id, w, h, views);
            let per_key = keys
                .iter()
                .map(|(th, tw, interp)| {
                    let filter = filter_for(interp);
                    drawn
                        .iter()
                        .map(|v| render(&image, v, *tw, *th, filter))
                        .collect()
                })
                .collect();
            Ok((drawn, per_key, w, h))
        })
        .collect();

    let mut chunk = Chunk {
        images: Vec::new(),
        rejected: Vec::new(),
        views: Vec::new(),
        rendered: keys.iter().map(|k| (k.clone(), Vec::new())).collect(),
    };
    for (record, result) in records.iter().zip(decoded) {
        match result {
            Ok((drawn, per_key, w, h)) => {
                chunk.views.extend(drawn.iter().map(|v| (record.id, *v)));
                for (key, rendered) in keys.iter().zip(per_key) {
                    chunk.rendered.get_mut(key).expect("key").extend(rendered);
                }
                chunk.images.push((record.clone(), w, h));
            }
            Err(error) => {
                tracing::info!(key = record.key, %error, "skipping image");
                chunk.rejected.push(Rejected {
                    key: record.key.clone(),
                    error,
                });
            }
        }
    }
    chunk
}

fn consume_chunks(
    pipeline: &Pipeline,
    teachers: &[Teacher],
    sinks: &mut Sinks,
    receiver: Receiver<Chunk>,
    state: &mut Journal,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let batch_size = pipeline.extract.batch_size;
    let checkpoint_every = pipeline.extract.checkpoint_every.max(1);
    let mut since_checkpoint = 0;
    for chunk in receiver {
        let done = chunk.images.len() + chunk.rejected.len();
        state.rejected.extend(chunk.rejected.iter().cloned());
        let mut bytes = 0;
        if !chunk.images.is_empty() {
            state.images += chunk.images.len();
            sinks.images.send(images_batch(&chunk.images)?)?;
            let configs = &pipeline.teachers;
            let tables = teachers.iter().zip(configs).zip(sinks.teachers.iter_mut());
            for ((teacher, config), sink) in tables {
                let rendered = &chunk.rendered[&render_key(teacher)];
                let batches = chunk
                    .views
                    .chunks(batch_size)
                    .zip(rendered.chunks(batch_size));
                for (views, pixels) in batches {
                    let out = teacher.forward(&crate::teacher::stack_views(pixels))?;
                    let batch =
                        teacher_batch(teacher, config, views, &out.summary, &out.patch_tokens)?;
                    bytes += batch.get_array_memory_size() as u64;
                    tracing::debug!(
                        teacher = teacher.name(),
                        rows = batch.num_rows(),
                        bytes,
                        "batch"
                    );
                    sink.send(batch)?;
                }
            }
        }
        state.records_done += done;
        since_checkpoint += done;
        if since_checkpoint >= checkpoint_every {
            checkpoint(pipeline, teachers, sinks, state, dir)?;
            since_checkpoint = 0;
        }
        progress.advance(done as u64, bytes);
    }
    Ok(())
}

/// Commits every table, then records the checkpoint: a run killed after this resumes
/// from `state.records_done`.
fn checkpoint(
    pipeline: &Pipeline,
    teachers: &[Teacher],
    sinks: &mut Sinks,
    state: &mut Journal,
    dir: &Path,
) -> Result<()> {
    let format = pipeline.extract.format;
    let images = sinks.images.commit()?;
    state
        .versions
        .insert(cache::images_table_path(format), images);
    for (teacher, sink) in teachers.iter().zip(sinks.teachers.iter_mut()) {
        let version = sink.commit()?;
        state
            .versions
            .insert(cache::teacher_table_path(teacher.name(), format), version);
    }
    state.save(dir)?;
    tracing::debug!(records = state.records_done, "checkpoint");
    Ok(())
}

fn images_batch(images: &[(ImageRecord, u32, u32)]) -> Result<RecordBatch> {
    let ids = UInt64Array::from_iter_values(images.iter().map(|(r, _, _)| r.id));
    let keys = StringArray::from_iter_values(images.iter().map(|(r, _, _)| r.key.as_str()));
    let widths = UInt32Array::from_iter_values(images.iter().map(|(_, w, _)| *w));
    let heights = UInt32Array::from_iter_values(images.iter().map(|(_, _, h)| *h));
    let labels: StringArray = images.iter().map(|(r, _, _)| r.label.as_deref()).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(keys),
        Arc::new(widths),
        Arc::new(heights),
        Arc::new(labels),
    ];
    Ok(RecordBatch::try_new(cache::images_schema(), columns)?)
}

pub(crate) fn teacher_batch(
    teacher: &Teacher,
    config: &TeacherConfig,
    views: &[(u64, View)],
    summary: &Tensor,
    patches: &Tensor,
) -> Result<RecordBatch> {
    let shape = shape_of(teacher);
    let encodings = encodings_of(config);
    let crop = |f: fn(&View) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(
            views.iter().map(|(_, v)| f(v)),
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            views.iter().map(|(id, _)| *id),
        )),
        Arc::new(UInt16Array::from_iter_values(
            views.iter().map(|(_, v)| v.index),
        )),
        crop(|v| v.crop.x),
        crop(|v| v.crop.y),
        crop(|v| v.crop.width),
        crop(|v| v.crop.height),
        Arc::new(BooleanArray::from_iter(
            views.iter().map(|(_, v)| Some(v.flip)),
        )),
    ];
    if shape.summary_dim > 0 {
        let values = floats(summary)?;
        columns.extend(codec::encode(
            &values,
            encodings.summary,
            shape.summary_dim,
            1,
        ));
    }
    let values = floats(patches)?;
    columns.extend(codec::encode(
        &values,
        encodings.patch_tokens,
        shape.patch_values(),
        shape.num_tokens(),
    ));
    let schema = cache::teacher_schema(teacher.name(), shape, encodings);
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The values of a float tensor, flattened in row-major order.
fn floats(tensor: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::try_from(
        tensor.to_kind(Kind::Float).contiguous().flatten(0, -1),
    )?)
}

fn finish_cache(
    pipeline: &Pipeline,
    teachers: &[Teacher],
    source: &Source,
    dir: &Path,
    sinks: Sinks,
    images: usize,
    rejected: Vec<Rejected>,
) -> Result<ExtractReport> {
    let format = pipeline.extract.format;
    let images_summary = sinks.images.finish()?;
    let summaries: Vec<TableSummary> = sinks
        .teachers
        .into_iter()
        .map(TableSink::finish)
        .collect::<Result<_>>()?;
    let views = pipeline.extract.views_per_image;
    let rows = images * views;
    // A resumed run sent only part of the rows itself: count what the tables hold.
    for t in teachers {
        let path = dir.join(cache::teacher_table_path(t.name(), format));
        let held = cache::TableReader::open(&path, format)?.num_rows();
        if held != rows {
            return Err(Error::cache(
                &path,
                format!("holds {held} rows, expected {rows}"),
            ));
        }
    }
    let entries: Vec<TeacherEntry> = teachers
        .iter()
        .zip(&pipeline.teachers)
        .zip(&summaries)
        .map(|((t, cfg), s)| TeacherEntry {
            name: t.name().to_string(),
            table: cache::teacher_table_path(t.name(), format),
            module_path: cfg.path.clone(),
            precision: cfg.precision.clone(),
            summary_encoding: cfg.summary_encoding(),
            patch_encoding: cfg.patch_encoding(),
            rows,
            bytes: s.bytes,
            sidecar: t.sidecar().clone(),
        })
        .collect();
    let manifest = Manifest {
        format: "distillery-cache".into(),
        format_version: FORMAT_VERSION,
        distillery_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: unix_now(),
        table_format: format,
        source_path: absolute(source.root()),
        images_table: cache::images_table_path(format),
        images,
        views_per_image: views,
        rows,
        rejected: rejected.clone(),
        teachers: entries,
        pipeline: pipeline.clone(),
    };
    manifest.save(dir)?;
    let teachers = teachers
        .iter()
        .zip(&summaries)
        .map(|(t, s)| {
            let shape = shape_of(t);
            TeacherReport {
                name: t.name().to_string(),
                rows,
                bytes: s.bytes,
                raw_f16_bytes: (rows * (shape.summary_dim + shape.patch_values()) * 2) as u64,
            }
        })
        .collect();
    Ok(ExtractReport {
        output: dir.to_path_buf(),
        images,
        rejected,
        views_per_image: views,
        rows,
        teachers,
        images_table_bytes: images_summary.bytes,
        seconds: 0.0,
        load_seconds: 0.0,
        peak_memory_bytes: None,
        resumed_from: None,
    })
}

/// `path` made absolute; an object-store URI is left as it is.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if store::is_uri(path) {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The peak resident set size of this process (`VmHWM` in /proc/self/status), where
/// the system reports one.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What `bench-teachers` measured: the teachers alone, the bound on `extract`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeacherBench {
    pub images: usize,
    pub views: usize,
    pub batch_size: usize,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// Runs every teacher of the pipeline over as many views as `extract` would make from
/// the source, on pre-made uint8 views, with the same batch size: the throughput that
/// `extract` would reach if decoding and writing cost nothing.
///
/// # Errors
///
/// As [`run`], for the teachers and the source.
pub fn bench_teachers(pipeline: &Pipeline) -> Result<TeacherBench> {
    let teachers = load_teachers(pipeline)?;
    let images = Source::open(&pipeline.source)?.records().len();
    let views = images * pipeline.extract.views_per_image;
    let batch_size = pipeline.extract.batch_size;
    let inputs: Vec<Tensor> = teachers
        .iter()
        .map(|t| {
            let (h, w) = t.sidecar().input_hw();
            Tensor::randint(
                256,
                [batch_size as i64, h as i64, w as i64, 3],
                (Kind::Uint8, tch::Device::Cpu),
            )
        })
        .collect();
    let started = Instant::now();
    let mut done = 0;
    while done < views {
        let n = batch_size.min(views - done) as i64;
        for (teacher, input) in teachers.iter().zip(&inputs) {
            let out = teacher.forward(&input.narrow(0, 0, n))?;
            // Match extract's conversion of the outputs to float16 on the host.
            let _ = floats(&out.patch_tokens)?;
        }
        done += n as usize;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TeacherBench {
        images,
        views,
        batch_size,
        seconds,
        images_per_s: images as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        toml::from_str(
            "[source]\npath = \"photos\"\n[extract]\noutput = \"cache\"\n\
             [[teacher]]\nname = \"clip\"\npath = \"clip.pt\"\n",
        )
        .unwrap()
    }

    #[test]
    fn a_run_resumes_whatever_the_train_section_but_not_with_other_batches() {
        let first = pipeline();
        let mut other_training = first.clone();
        other_training.train.epochs += 5;
        other_training.extract.checkpoint_every += 1;
        other_training.extract.overwrite = true;
        assert_eq!(fingerprint(&first), fingerprint(&other_training));
        let mut other_batches = first.clone();
        other_batches.extract.batch_size = 7;
        other_batches.teachers[0].precision = "fp16".into();
        let said = differences(&fingerprint(&first), &fingerprint(&other_batches));
        assert_eq!(said, "other extract.batch_size, teacher[0].precision");
    }
}
