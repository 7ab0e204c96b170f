//! `distillery add-teacher`: adds a teacher to an existing cache.
//!
//! The new teacher runs on the views already stored (the crop boxes and flips of the
//! cache's rows, rebuilt from the source images), so its table is aligned row by row with
//! the other teachers', which are neither read nor recomputed beyond their view columns.
//! The table is written under a temporary name and renamed into place; the manifest is
//! then replaced atomically, so a failed run leaves the cache as it was. On an object
//! store the table is written in place, and is part of the cache only once the manifest
//! (written last, in one put) names it. In a Parquet cache the new table is cut into parts
//! of the same rows as the other tables' parts.

use std::path::Path;

use rayon::prelude::*;

use crate::cache::{self, store, Manifest, TableSink, TeacherEntry};
use crate::config::{CacheFormat, TeacherConfig};
use crate::error::{Error, Result};
use crate::extract::{absolute, encodings_of, shape_of, teacher_batch};
use crate::progress::Progress;
use crate::sources::{decode_rgb_bytes, Source};
use crate::teacher::{parse_device, parse_precision, stack_views, Teacher};
use crate::train::{read_views, RowView};
use crate::views::{filter_for, render};

/// Images decoded per batch of work.
const IMAGES_PER_CHUNK: usize = 8;

/// Runs `teacher` over the stored views of the cache at `dir` and adds its table.
///
/// # Errors
///
/// A teacher that is already in the cache, does not load or breaks its sidecar; a cache
/// whose source images are gone; write errors.
pub fn run(
    dir: &Path,
    teacher: &TeacherConfig,
    device: &str,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<TeacherEntry> {
    if batch_size == 0 {
        return Err(Error::Config(
            "add-teacher --batch-size must be positive".into(),
        ));
    }
    let mut manifest = Manifest::load(dir)?;
    if manifest.teacher(&teacher.name).is_some() {
        return Err(Error::cache(
            dir,
            format!("already holds teacher {}", teacher.name),
        ));
    }
    let mut config = teacher.clone();
    config.path = absolute(&config.path);
    let model = Teacher::load(
        &config.name,
        &config.path,
        parse_device(device)?,
        parse_precision(&config.precision)?,
    )?;
    model.check_contract()?;

    let first = dir.join(&manifest.teachers[0].table);
    let first_reader = cache::TableReader::open(&first, manifest.table_format)?;
    let rows = read_views(&first_reader)?;
    let parts = first_reader.part_rows();
    let source = Source::open(&manifest.pipeline.source)?;
    let records: std::collections::HashMap<u64, &crate::sources::ImageRecord> =
        source.records().iter().map(|r| (r.id, r)).collect();

    let table = cache::teacher_table_path(&config.name, manifest.table_format);
    let final_path = dir.join(&table);
    // An object store has no rename: there the table is written at its final path, which
    // is no part of the cache until the manifest names it.
    let on_store = store::is_uri(dir);
    let partial = if on_store {
        final_path.clone()
    } else {
        dir.join(format!(
            "teachers/.{}.partial.{}",
            config.name,
            manifest.table_format.extension()
        ))
    };
    for stale in [&partial, &final_path] {
        // Left by a run that failed before its manifest update: not part of the cache.
        if store::exists(stale)? {
            store::remove_dir_all(stale)?;
        }
    }
    if parts.iter().sum::<usize>() != rows.len() {
        return Err(Error::cache(
            &first,
            format!(
                "its parts hold {} rows, its views {}",
                parts.iter().sum::<usize>(),
                rows.len()
            ),
        ));
    }
    let schema = cache::teacher_schema(&config.name, shape_of(&model), encodings_of(&config));
    let mut sink = TableSink::create(&partial, manifest.table_format, schema)?;
    let images = Images {
        source: &source,
        records: &records,
        cache: dir,
    };

    progress.begin("add-teacher", rows.len() as u64);
    let per_chunk = IMAGES_PER_CHUNK * manifest.views_per_image.max(1);
    let mut start = 0;
    for part_rows in parts {
        let part = &rows[start..start + part_rows];
        start += part_rows;
        for chunk in part.chunks(per_chunk) {
            let pixels = images.render(chunk, &model)?;
            let views: Vec<(u64, crate::views::View)> =
                chunk.iter().map(|r| (r.image_id, r.view)).collect();
            for (v, p) in views.chunks(batch_size).zip(pixels.chunks(batch_size)) {
                let out = model.forward(&stack_views(p))?;
                let batch = teacher_batch(&model, &config, v, &out.summary, &out.patch_tokens)?;
                sink.send(batch)?;
            }
            progress.advance(chunk.len() as u64, 0);
        }
        if manifest.table_format == CacheFormat::Parquet {
            // Part i of every table covers the same rows (schemas/cache-v2.md).
            sink.commit()?;
        }
    }
    progress.finish();
    let summary = sink.finish()?;
    if !on_store {
        std::fs::rename(&partial, &final_path).map_err(|e| Error::io(&final_path, e))?;
    }

    let entry = TeacherEntry {
        name: config.name.clone(),
        table,
        module_path: config.path.clone(),
        precision: config.precision.clone(),
        summary_encoding: config.summary_encoding(),
        patch_encoding: config.patch_encoding(),
        rows: summary.rows,
        bytes: summary.bytes,
        sidecar: model.sidecar().clone(),
    };
    manifest.teachers.push(entry.clone());
    manifest.pipeline.teachers.push(config);
    manifest.save(dir)?;
    Ok(entry)
}

/// The source images of a cache, for rebuilding its stored views.
struct Images<'a> {
    source: &'a Source,
    records: &'a std::collections::HashMap<u64, &'a crate::sources::ImageRecord>,
    cache: &'a Path,
}

impl Images<'_> {
    /// The views of `rows` as `teacher` sees them: each row's image decoded (once per
    /// image), cropped, resized and flipped as stored.
    fn render(&self, rows: &[RowView], teacher: &Teacher) -> Result<Vec<image::RgbImage>> {
        let mut ids: Vec<u64> = rows.iter().map(|r| r.image_id).collect();
        ids.dedup();
        let wanted: Vec<crate::sources::ImageRecord> = ids
            .iter()
            .map(|id| {
                self.records.get(id).map(|r| (*r).clone()).ok_or_else(|| {
                    Error::cache(
                        self.cache,
                        format!(
                            "image {id} is no longer in the source {}",
                            self.source.root().display()
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let decoded: Vec<image::RgbImage> = self
            .source
            .read(&wanted)
            .into_par_iter()
            .zip(wanted.par_iter())
            .map(|(bytes, record)| {
                bytes
                    .and_then(|b| decode_rgb_bytes(&b))
                    .map_err(|m| Error::cache(self.cache, format!("image {}: {m}", record.key)))
            })
            .collect::<Result<_>>()?;
        let by_id: std::collections::HashMap<u64, &image::RgbImage> =
            ids.iter().copied().zip(decoded.iter()).collect();
        let (h, w) = teacher.sidecar().input_hw();
        let filter = filter_for(&teacher.sidecar().interpolation);
        Ok(rows
            .par_iter()
            .map(|r| render(by_id[&r.image_id], &r.view, w, h, filter))
            .collect())
    }
}
