//! Stage 2, `train`: train the student from a cache alone.
//!
//! No teacher is loaded or run. For each row the student's input is rebuilt from the
//! source image, the stored crop box and flip, at the student's resolution; targets are
//! read from the teacher tables by row (Lance `take`), in shuffled batches.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::BooleanArray;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::cache::{
    self, codec, teacher_columns as tc, FeatureEncodings, FeatureShape, Manifest, TableReader,
};
use crate::config::PatchMode;
use crate::config::{LossWeights, TrainConfig};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sources::{decode_rgb_bytes, ImageRecord, Source};
use crate::student::{teacher_loss, Student, STUDENT_MEAN, STUDENT_STD};
use crate::teacher::parse_device;
use crate::views::{render, CropBox, View, ViewSampler};

/// File name of the checkpoint in the training output.
pub const CHECKPOINT_FILE: &str = "student.safetensors";
/// File name of the per-step loss log (JSON lines).
pub const LOG_FILE: &str = "train_log.jsonl";

/// Bytes of decoded images kept in memory between steps.
pub const DECODED_BUDGET: usize = 2 << 30;

/// Source images by id, decoded on first use and kept while they fit the budget.
struct ImageStore {
    source: Source,
    records: HashMap<u64, ImageRecord>,
    decoded: std::sync::Mutex<(usize, HashMap<u64, std::sync::Arc<image::RgbImage>>)>,
    budget: usize,
}

impl ImageStore {
    /// Reopens the cache's source; only the images the cache holds are kept.
    fn open(
        cache_dir: &Path,
        manifest: &Manifest,
        cached: &HashSet<u64>,
        budget: usize,
    ) -> Result<Self> {
        let source = Source::open(&manifest.pipeline.source)?;
        let records = source
            .records()
            .iter()
            .filter(|r| cached.contains(&r.id))
            .map(|r| (r.id, r.clone()))
            .collect::<HashMap<_, _>>();
        if let Some(missing) = cached.iter().find(|id| !records.contains_key(id)) {
            let key = cached_key(cache_dir, manifest, *missing).unwrap_or_else(|| "?".into());
            return Err(Error::Train(format!(
                "image {key} (id {missing}) of the cache is no longer in the source {}",
                source.root().display()
            )));
        }
        Ok(ImageStore {
            source,
            records,
            decoded: std::sync::Mutex::new((0, HashMap::new())),
            budget,
        })
    }

    fn get(&self, id: u64) -> Result<std::sync::Arc<image::RgbImage>> {
        if let Some(image) = self.decoded.lock().expect("image store").1.get(&id) {
            return Ok(image.clone());
        }
        let record = &self.records[&id];
        let bytes = self.source.read(std::slice::from_ref(record)).remove(0);
        let image = bytes
            .and_then(|b| decode_rgb_bytes(&b))
            .map_err(|m| Error::Train(format!("cannot read image {}: {m}", record.key)))?;
        let image = std::sync::Arc::new(image);
        let mut guard = self.decoded.lock().expect("image store");
        let (used, map) = &mut *guard;
        let size = image.as_raw().len();
        if *used + size <= self.budget {
            *used += size;
            map.insert(id, image.clone());
        }
        Ok(image)
    }
}

/// One step's record in the loss log.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    pub step: usize,
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    /// Loss terms by name: `<teacher>/summary` and `<teacher>/patch`, unweighted.
    pub terms: std::collections::BTreeMap<String, f64>,
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub output: PathBuf,
    pub steps: usize,
    pub epochs: usize,
    pub rows: usize,
    pub first: StepLog,
    pub last: StepLog,
    pub seconds: f64,
}

/// The view of each row, read once from the cache.
pub(crate) struct RowView {
    pub(crate) image_id: u64,
    pub(crate) view: View,
    /// For a fresh view of a full-image row: the whole image's width and height.
    pub(crate) full: Option<(u32, u32)>,
}

struct TeacherTable {
    name: String,
    shape: FeatureShape,
    encodings: FeatureEncodings,
    reader: TableReader,
    weights: LossWeights,
}

/// The source key (path) that the images table of the cache gives image `id`.
fn cached_key(cache_dir: &Path, manifest: &Manifest, id: u64) -> Option<String> {
    use cache::images_columns::{ID, PATH};
    let table = cache_dir.join(&manifest.images_table);
    let reader = TableReader::open(&table, manifest.table_format).ok()?;
    for batch in reader.scan(&[ID, PATH], 4096).ok()? {
        let batch = batch.ok()?;
        let ids = batch[ID].as_primitive::<UInt64Type>();
        let paths = batch[PATH].as_string::<i32>();
        if let Some(row) = ids.values().iter().position(|&v| v == id) {
            return Some(paths.value(row).to_string());
        }
    }
    None
}

/// Trains a student from the cache at `cache_dir`.
///
/// # Errors
///
/// A cache that is missing or inconsistent, an image that can no longer be read, or a
/// training value out of range.
pub fn run(cache_dir: &Path, config: &TrainConfig, progress: &dyn Progress) -> Result<TrainReport> {
    config.validate()?;
    refuse_earlier_run(config)?;
    let started = Instant::now();
    let manifest = Manifest::load(cache_dir)?;
    let tables = open_teachers(cache_dir, &manifest, config)?;
    let rows = read_views(&tables[0].reader)?;
    check_alignment(&tables, &rows)?;
    let cached: HashSet<u64> = rows.iter().map(|r| r.image_id).collect();
    let images = ImageStore::open(cache_dir, &manifest, &cached, DECODED_BUDGET)?;
    let device = parse_device(&config.device)?;
    std::fs::create_dir_all(&config.output).map_err(|e| Error::io(&config.output, e))?;

    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let shapes: Vec<(String, FeatureShape)> =
        tables.iter().map(|t| (t.name.clone(), t.shape)).collect();
    let student = Student::new(&vs.root(), &config.student, &shapes);
    let mut opt = nn::AdamW {
        wd: config.weight_decay,
        ..Default::default()
    }
    .build(&vs, config.lr)?;

    // Full-image caches: every step draws fresh views and crops the stored maps to them.
    let fresh = (manifest.pipeline.extract.patch_mode == PatchMode::FullImage).then(|| {
        let mut sampler = crate::extract::sampler_of(&manifest.pipeline);
        sampler.full_image = false;
        sampler.seed ^= config.seed.rotate_left(17);
        sampler
    });
    let steps_per_epoch = rows.len().div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let log_path = config.output.join(LOG_FILE);
    let mut log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let mut first = None;
    let mut last = None;
    let mut step = 0;
    progress.begin("train", total as u64);
    for epoch in 0..config.epochs {
        let mut order: Vec<u64> = (0..rows.len() as u64).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            config.seed ^ (epoch as u64) << 32,
        ));
        for batch in order.chunks(config.batch_size) {
            let lr = learning_rate(config, step, total);
            opt.set_lr(lr);
            let t0 = Instant::now();
            let views = step_views(&fresh, &rows, batch, step as u64);
            let inputs = student_inputs(&images, &views, &config.student)?;
            let t1 = Instant::now();
            let inputs = inputs.to_device(device);
            let crops = fresh.is_some().then_some(views.as_slice());
            let record = train_step(&student, &mut opt, &tables, batch, crops, &inputs)?;
            tracing::debug!(
                step,
                rows = batch.len(),
                inputs_ms = (t1 - t0).as_millis() as u64,
                step_ms = t1.elapsed().as_millis() as u64,
                "train batch"
            );
            let entry = StepLog {
                step,
                epoch,
                lr,
                loss: record.0,
                terms: record.1,
            };
            let line = serde_json::to_string(&entry).expect("log line serialises");
            writeln!(log, "{line}").map_err(|e| Error::io(&log_path, e))?;
            tracing::debug!(step, loss = entry.loss, "train step");
            first.get_or_insert_with(|| entry.clone());
            last = Some(entry);
            step += 1;
            progress.advance(1, 0);
        }
    }
    progress.finish();
    save_checkpoint(&vs, &student, &config.output.join(CHECKPOINT_FILE))?;
    Ok(TrainReport {
        output: config.output.clone(),
        steps: step,
        epochs: config.epochs,
        rows: rows.len(),
        first: first.expect("at least one step"),
        last: last.expect("at least one step"),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Fails, before any work, when `config.output` holds an earlier run's checkpoint or log
/// and `config.overwrite` is not set.
fn refuse_earlier_run(config: &TrainConfig) -> Result<()> {
    if config.overwrite {
        return Ok(());
    }
    for file in [CHECKPOINT_FILE, LOG_FILE] {
        if config.output.join(file).exists() {
            return Err(Error::Config(format!(
                "train output {} already holds {file} from an earlier run: pass --overwrite \
                 (train.overwrite = true) to replace it, or give another --output",
                config.output.display()
            )));
        }
    }
    Ok(())
}

/// Linear warm-up to the peak rate, then cosine decay to zero at the last step.
pub fn learning_rate(config: &TrainConfig, step: usize, total: usize) -> f64 {
    let warmup = config.warmup_steps.min(total.saturating_sub(1));
    if step < warmup {
        return config.lr * (step + 1) as f64 / warmup as f64;
    }
    let span = (total - warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / span;
    config.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

fn open_teachers(
    dir: &Path,
    manifest: &Manifest,
    config: &TrainConfig,
) -> Result<Vec<TeacherTable>> {
    for name in config.loss.keys() {
        if manifest.teacher(name).is_none() {
            return Err(Error::Train(format!(
                "train.loss.{name} names a teacher the cache {} does not hold",
                dir.display()
            )));
        }
    }
    manifest
        .teachers
        .iter()
        .map(|entry| {
            let path = dir.join(&entry.table);
            let cache::TeacherTable {
                reader,
                shape,
                encodings,
            } = cache::open_teacher_table(dir, manifest, entry)?;
            if reader.num_rows() != manifest.rows {
                return Err(Error::cache(
                    &path,
                    format!(
                        "has {} rows, the manifest says {}",
                        reader.num_rows(),
                        manifest.rows
                    ),
                ));
            }
            Ok(TeacherTable {
                name: entry.name.clone(),
                shape,
                encodings,
                reader,
                weights: config.loss.get(&entry.name).copied().unwrap_or_default(),
            })
        })
        .collect()
}

pub(crate) fn read_views(reader: &TableReader) -> Result<Vec<RowView>> {
    let columns = [
        tc::IMAGE_ID,
        tc::VIEW,
        tc::CROP_X,
        tc::CROP_Y,
        tc::CROP_W,
        tc::CROP_H,
        tc::FLIP,
    ];
    let mut out = Vec::with_capacity(reader.num_rows());
    for batch in reader.scan(&columns, 8192)? {
        let batch = batch?;
        let u32s = |name: &str| batch[name].as_primitive::<UInt32Type>().clone();
        let ids = batch[tc::IMAGE_ID].as_primitive::<UInt64Type>().clone();
        let views = batch[tc::VIEW].as_primitive::<UInt16Type>().clone();
        let (x, y, w, h) = (
            u32s(tc::CROP_X),
            u32s(tc::CROP_Y),
            u32s(tc::CROP_W),
            u32s(tc::CROP_H),
        );
        let flips: &BooleanArray = batch[tc::FLIP].as_boolean();
        for i in 0..batch.num_rows() {
            out.push(RowView {
                image_id: ids.value(i),
                view: View {
                    index: views.value(i),
                    crop: CropBox {
                        x: x.value(i),
                        y: y.value(i),
                        width: w.value(i),
                        height: h.value(i),
                    },
                    flip: flips.value(i),
                },
                full: None,
            });
        }
    }
    Ok(out)
}

/// Checks that every teacher table lists the same (image, view) in the same order.
fn check_alignment(tables: &[TeacherTable], rows: &[RowView]) -> Result<()> {
    for table in &tables[1..] {
        let other = read_views(&table.reader)?;
        let mismatch = rows
            .iter()
            .zip(&other)
            .position(|(a, b)| a.image_id != b.image_id || a.view != b.view);
        if let Some(row) = mismatch {
            return Err(Error::Train(format!(
                "teacher {} differs from teacher {} at row {row}: the tables are not aligned",
                table.name, tables[0].name
            )));
        }
    }
    Ok(())
}

/// The view each row of `batch` is trained on: the stored one, or, for a full-image
/// cache, a fresh one drawn for this step (the stored crop is then the whole image).
fn step_views(
    fresh: &Option<ViewSampler>,
    rows: &[RowView],
    batch: &[u64],
    step: u64,
) -> Vec<RowView> {
    batch
        .iter()
        .map(|&row| {
            let r = &rows[row as usize];
            let view = match fresh {
                None => r.view,
                Some(sampler) => {
                    let (w, h) = (r.view.crop.width, r.view.crop.height);
                    let key = r.image_id ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    sampler.sample(key, w, h, 1)[0]
                }
            };
            let full = fresh
                .as_ref()
                .map(|_| (r.view.crop.width, r.view.crop.height));
            RowView {
                image_id: r.image_id,
                view,
                full,
            }
        })
        .collect()
}

/// Rebuilds the student's input for the given views: normalised `[B, 3, S, S]`.
fn student_inputs(
    images: &ImageStore,
    views: &[RowView],
    student: &crate::config::StudentConfig,
) -> Result<Tensor> {
    let size = student.image_size as u32;
    let rendered: Vec<Vec<u8>> = views
        .par_iter()
        .map(|r| {
            let image = images.get(r.image_id)?;
            let filter = crate::views::filter_for("bicubic");
            Ok(render(&image, &r.view, size, size, filter).into_raw())
        })
        .collect::<Result<_>>()?;
    let bytes: Vec<u8> = rendered.concat();
    let s = size as i64;
    // [B, S, S, 3] uint8 -> [B, 3, S, S] normalised float
    let x = Tensor::from_slice(&bytes)
        .view([views.len() as i64, s, s, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0;
    let mean = Tensor::from_slice(&STUDENT_MEAN).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&STUDENT_STD).view([1, 3, 1, 1]);
    Ok((x - mean) / std)
}

type StepRecord = (f64, std::collections::BTreeMap<String, f64>);

fn train_step(
    student: &Student,
    opt: &mut nn::Optimizer,
    tables: &[TeacherTable],
    batch: &[u64],
    crops: Option<&[RowView]>,
    inputs: &Tensor,
) -> Result<StepRecord> {
    let device = inputs.device();
    let predictions = student.forward(inputs);
    let mut total = Tensor::zeros([], (Kind::Float, device));
    let mut terms = std::collections::BTreeMap::new();
    for (table, prediction) in tables.iter().zip(&predictions) {
        let t0 = Instant::now();
        let (summary, patches) = targets(table, batch, device)?;
        let patches = match crops {
            Some(views) => crop_maps(&patches, table.shape, views),
            None => patches,
        };
        tracing::trace!(
            teacher = table.name,
            ms = t0.elapsed().as_millis() as u64,
            "take"
        );
        let loss = teacher_loss(prediction, summary.as_ref(), &patches);
        if let Some(s) = &loss.summary {
            terms.insert(format!("{}/summary", table.name), s.double_value(&[]));
            total = total + s * table.weights.summary;
        }
        terms.insert(
            format!("{}/patch", table.name),
            loss.patch.double_value(&[]),
        );
        total = total + &loss.patch * table.weights.patch;
    }
    opt.backward_step(&total);
    Ok((total.double_value(&[]), terms))
}

fn targets(
    table: &TeacherTable,
    batch: &[u64],
    device: Device,
) -> Result<(Option<Tensor>, Tensor)> {
    let s = table.shape;
    let features = cache::feature_columns(s, table.encodings);
    let columns: Vec<String> = features
        .iter()
        .flat_map(|f| codec::columns(f.column, f.encoding))
        .collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rows = table.reader.take(batch, &names)?;
    let b = batch.len() as i64;
    let (mut summary, mut patches) = (None, None);
    for f in &features {
        let data =
            codec::decode(&rows, f.column, f.encoding, f.values, f.tokens).map_err(|message| {
                Error::Feature {
                    teacher: table.name.clone(),
                    message,
                }
            })?;
        let values = Tensor::from_slice(&data).to_device(device);
        if f.column == tc::SUMMARY {
            summary = Some(values.view([b, s.summary_dim as i64]));
        } else {
            patches = Some(values.view([b, s.num_tokens() as i64, s.patch_dim as i64]));
        }
    }
    let patches = patches.expect("every teacher table has patch tokens");
    Ok((summary, patches))
}

/// Crops whole-image patch-token maps `[B, T, D]` to each row's view, bilinearly, back
/// onto the teacher's grid. Token (i, j) of a full-image map covers image pixels
/// `[j W / gw, (j + 1) W / gw) x [i H / gh, (i + 1) H / gh)`; each output token samples
/// the map at the centre of its cell of the view (flipped views read mirrored columns).
pub(crate) fn crop_maps(maps: &Tensor, shape: FeatureShape, views: &[RowView]) -> Tensor {
    let (gh, gw) = (shape.grid_h, shape.grid_w);
    let b = views.len() as i64;
    let d = shape.patch_dim as i64;
    let mut grid = Vec::with_capacity(views.len() * gh * gw * 2);
    for r in views {
        let c = r.view.crop;
        // The map covers the whole image; a stored view of a full-image row is that image.
        let (w, h) = r.full.unwrap_or((c.x + c.width, c.y + c.height));
        let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
        for i in 0..gh {
            for j in 0..gw {
                let col = if r.view.flip { gw - 1 - j } else { j };
                let x = f64::from(c.x) + (col as f64 + 0.5) / gw as f64 * f64::from(c.width);
                let y = f64::from(c.y) + (i as f64 + 0.5) / gh as f64 * f64::from(c.height);
                grid.push((2.0 * x / w - 1.0) as f32);
                grid.push((2.0 * y / h - 1.0) as f32);
            }
        }
    }
    let grid = Tensor::from_slice(&grid)
        .view([b, gh as i64, gw as i64, 2])
        .to_device(maps.device());
    // [B, T, D] -> [B, D, gh, gw]; bilinear, border padding, align_corners = false.
    let nchw = maps
        .view([b, gh as i64, gw as i64, d])
        .permute([0, 3, 1, 2]);
    let sampled = nchw.grid_sampler_2d(&grid, 0, 1, false);
    // [B, D, gh, gw] -> [B, T, D]
    sampled.flatten(2, 3).transpose(1, 2)
}

/// Writes the student's variables as safetensors, with its configuration and its
/// teachers' feature shapes in the header metadata.
fn save_checkpoint(vs: &nn::VarStore, student: &Student, path: &Path) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers = Vec::with_capacity(named.len());
    for (name, tensor) in &named {
        let values: Vec<f32> =
            Vec::try_from(tensor.to_device(Device::Cpu).contiguous().flatten(0, -1))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| Error::Train(format!("checkpoint tensor {name}: {e:?}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let teachers: Vec<serde_json::Value> = student
        .adaptors
        .iter()
        .map(|a| {
            serde_json::json!({
                "name": a.teacher,
                "summary_dim": a.shape.summary_dim,
                "grid": [a.shape.grid_h, a.shape.grid_w],
                "patch_dim": a.shape.patch_dim,
            })
        })
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), "distillery-student/1".to_string()),
        (
            "config".to_string(),
            serde_json::to_string(&student.config).expect("config"),
        ),
        (
            "teachers".to_string(),
            serde_json::Value::from(teachers).to_string(),
        ),
    ]);
    safetensors::tensor::serialize_to_file(views, &Some(metadata), path)
        .map_err(|e| Error::Train(format!("cannot write {}: {e:?}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(crop: CropBox, flip: bool, full: (u32, u32)) -> RowView {
        RowView {
            image_id: 0,
            view: View {
                index: 0,
                crop,
                flip,
            },
            full: Some(full),
        }
    }

    #[test]
    fn cropping_a_map_to_the_whole_image_returns_it_and_flips_mirror_it() {
        let shape = FeatureShape {
            summary_dim: 0,
            grid_h: 3,
            grid_w: 4,
            patch_dim: 2,
        };
        let maps = Tensor::randn([1, 12, 2], (Kind::Float, Device::Cpu));
        let whole = CropBox {
            x: 0,
            y: 0,
            width: 40,
            height: 30,
        };
        let same = crop_maps(&maps, shape, &[row(whole, false, (40, 30))]);
        assert!(same.allclose(&maps, 1e-5, 1e-6, false));
        let mirrored = crop_maps(&maps, shape, &[row(whole, true, (40, 30))]);
        let expected = maps.view([1, 3, 4, 2]).flip([2]).view([1, 12, 2]);
        assert!(mirrored.allclose(&expected, 1e-5, 1e-6, false));
    }

    #[test]
    fn cropping_a_map_to_one_cell_repeats_that_cell() {
        let shape = FeatureShape {
            summary_dim: 0,
            grid_h: 2,
            grid_w: 2,
            patch_dim: 1,
        };
        let maps = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0]).view([1, 4, 1]);
        // The top-right cell of a 20x20 image, seen through a 2x2 grid: every sample
        // point lies within a quarter cell of its centre, interpolating towards neighbours.
        let cell = CropBox {
            x: 10,
            y: 0,
            width: 10,
            height: 10,
        };
        let out = crop_maps(&maps, shape, &[row(cell, false, (20, 20))]);
        let v: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
        // Sample points at x = 12.5, 17.5 and y = 2.5, 7.5 in pixels, i.e. token coords
        // 0.75..1.25 around the centre (1.0, 0.0) of the value 2.
        let expected = [1.75f32, 2.0, 2.25, 2.5];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let config = TrainConfig {
            lr: 1.0,
            warmup_steps: 4,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..20).map(|s| learning_rate(&config, s, 20)).collect();
        assert!((lrs[0] - 0.25).abs() < 1e-12);
        assert!((lrs[3] - 1.0).abs() < 1e-12);
        assert!((lrs[4] - 1.0).abs() < 1e-12);
        assert!(lrs[4..].windows(2).all(|w| w[1] <= w[0]));
        assert!(lrs[19] < 0.01);
    }
}
