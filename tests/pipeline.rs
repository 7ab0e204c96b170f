//! End-to-end tests of extract, train and stats on real photographs with real teacher
//! architectures (random weights), through the built binary.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use common::*;
use distillery::cache::{teacher_columns as tc, Manifest, TableReader};
use distillery::config::CacheFormat;
use distillery::sources::decode_rgb;
use distillery::views::{filter_for, render, CropBox, View};
use tch::{CModule, IValue, Tensor};

fn read_all(cache: &Path, table: &str, format: CacheFormat) -> RecordBatch {
    let reader = TableReader::open(&cache.join(table), format).unwrap();
    let rows: Vec<u64> = (0..reader.num_rows() as u64).collect();
    reader.take(&rows, &reader.column_names()).unwrap()
}

fn f16_rows(batch: &RecordBatch, column: &str) -> Vec<Vec<f32>> {
    let list = batch[column].as_fixed_size_list();
    (0..list.len())
        .map(|i| {
            let v = list.value(i);
            v.as_primitive::<Float16Type>()
                .values()
                .iter()
                .map(|x| x.to_f32())
                .collect()
        })
        .collect()
}

fn view_of(batch: &RecordBatch, row: usize) -> View {
    let u32s = |c: &str| batch[c].as_primitive::<UInt32Type>().value(row);
    View {
        index: batch[tc::VIEW].as_primitive::<UInt16Type>().value(row),
        crop: CropBox {
            x: u32s(tc::CROP_X),
            y: u32s(tc::CROP_Y),
            width: u32s(tc::CROP_W),
            height: u32s(tc::CROP_H),
        },
        flip: batch[tc::FLIP].as_boolean().value(row),
    }
}

/// The teacher run by hand: our own normalisation loop, TorchScript called directly.
fn direct_run(
    module: &CModule,
    pixels: &image::RgbImage,
    mean: [f64; 3],
    std: [f64; 3],
) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = pixels.dimensions();
    let mut chw = vec![0f32; (3 * w * h) as usize];
    for (x, y, p) in pixels.enumerate_pixels() {
        for c in 0..3 {
            let v = (f64::from(p.0[c]) / 255.0 - mean[c]) / std[c];
            chw[(c as u32 * w * h + y * w + x) as usize] = v as f32;
        }
    }
    let input = Tensor::from_slice(&chw).view([1, 3, h as i64, w as i64]);
    let _guard = tch::no_grad_guard();
    let IValue::Tuple(out) = module.forward_is(&[IValue::Tensor(input)]).unwrap() else {
        panic!("teacher output is not a tuple");
    };
    let flat = |v: &IValue| match v {
        IValue::Tensor(t) => Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(),
        _ => panic!("not a tensor"),
    };
    (flat(&out[0]), flat(&out[1]))
}

/// Largest |cached - direct| / (|direct| + 1e-2) over all values.
fn worst_relative_error(cached: &[f32], direct: &[f32]) -> f32 {
    assert_eq!(cached.len(), direct.len());
    cached
        .iter()
        .zip(direct)
        .map(|(c, d)| (c - d).abs() / (d.abs() + 1e-2))
        .fold(0.0, f32::max)
}

#[test]
fn cached_features_match_a_direct_teacher_run() {
    let cache = shared_cache();
    let manifest = Manifest::load(cache).unwrap();
    let images = read_all(cache, &manifest.images_table, manifest.table_format);
    let ids = images["id"].as_primitive::<UInt64Type>();
    let paths = images["path"].as_string::<i32>();
    let path_of: HashMap<u64, String> = (0..images.num_rows())
        .map(|i| (ids.value(i), paths.value(i).to_string()))
        .collect();

    for entry in &manifest.teachers {
        let table = read_all(cache, &entry.table, manifest.table_format);
        let module = CModule::load(&entry.module_path).unwrap();
        let patches = f16_rows(&table, tc::PATCH_TOKENS);
        let summaries = (entry.sidecar.summary_dim > 0).then(|| f16_rows(&table, tc::SUMMARY));
        let s = &entry.sidecar;
        for row in [0, 3, table.num_rows() - 1] {
            let id = table[tc::IMAGE_ID].as_primitive::<UInt64Type>().value(row);
            let image = decode_rgb(&fixture().photos.join(&path_of[&id])).unwrap();
            let view = view_of(&table, row);
            let (h, w) = (s.input_size[1] as u32, s.input_size[2] as u32);
            let pixels = render(&image, &view, w, h, filter_for(&s.interpolation));
            let (summary, tokens) = direct_run(&module, &pixels, s.mean, s.std);
            // float16 keeps 11 significant bits: 2^-11 relative, plus batching noise.
            let err = worst_relative_error(&patches[row], &tokens);
            assert!(
                err < 2e-3,
                "{} row {row}: patch tokens off by {err}",
                entry.name
            );
            match &summaries {
                Some(cached) => {
                    let err = worst_relative_error(&cached[row], &summary);
                    assert!(err < 2e-3, "{} row {row}: summary off by {err}", entry.name);
                }
                None => assert!(summary.is_empty(), "{} has a summary", entry.name),
            }
        }
    }
}

#[test]
fn same_seed_gives_the_same_cache_and_another_seed_other_views() {
    let dir = scratch("seeds");
    let same = write_pipeline(&dir, 2, 0, "");
    extract(&dir, &same, &["--output", "again"]);
    extract(&dir, &same, &["--output", "other", "--seed", "1"]);
    let manifest = Manifest::load(shared_cache()).unwrap();
    for entry in &manifest.teachers {
        let a = read_all(shared_cache(), &entry.table, CacheFormat::Lance);
        let b = read_all(&dir.join("again"), &entry.table, CacheFormat::Lance);
        let c = read_all(&dir.join("other"), &entry.table, CacheFormat::Lance);
        assert_eq!(a, b, "{}: same seed gave another table", entry.name);
        let crops = |t: &RecordBatch| t[tc::CROP_X].as_primitive::<UInt32Type>().values().to_vec();
        assert_ne!(
            crops(&a),
            crops(&c),
            "{}: seed 1 gave the same crops",
            entry.name
        );
        assert_eq!(
            &a[tc::IMAGE_ID],
            &c[tc::IMAGE_ID],
            "row order depends on the seed"
        );
        assert_ne!(&a[tc::PATCH_TOKENS], &c[tc::PATCH_TOKENS]);
    }
}

/// Cosine similarity of two vectors, in float64.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn teachers_in_fp16_and_bf16_give_the_fp32_features_to_rounding() {
    // The half precisions are for GPUs, but libtorch runs them on the CPU too: the cast
    // module, the cast input and the outputs widened back are checked here on every
    // teacher architecture, against the float32 run of the same views.
    let fp32 = shared_cache();
    for (precision, worst_cosine) in [("fp16", 0.99999), ("bf16", 0.9995)] {
        let dir = scratch(&format!("precision-{precision}"));
        let pipeline = write_pipeline(&dir, 2, 0, "");
        let text = std::fs::read_to_string(&pipeline).unwrap();
        let text = text.replace(".pt\"\n", &format!(".pt\"\nprecision = \"{precision}\"\n"));
        assert_eq!(text.matches("precision =").count(), TEACHERS.len());
        std::fs::write(&pipeline, text).unwrap();
        extract(&dir, &pipeline, &[]);
        let manifest = Manifest::load(&dir.join("cache")).unwrap();
        for entry in &manifest.teachers {
            assert_eq!(entry.precision, precision);
            let half = read_all(&dir.join("cache"), &entry.table, CacheFormat::Lance);
            let full = read_all(fp32, &entry.table, CacheFormat::Lance);
            assert_eq!(half.columns()[..7], full.columns()[..7], "{}", entry.name);
            let mut columns = vec![tc::PATCH_TOKENS];
            if entry.sidecar.summary_dim > 0 {
                columns.push(tc::SUMMARY);
            }
            for column in columns {
                let (a, b) = (f16_rows(&half, column), f16_rows(&full, column));
                assert_eq!(a.len(), manifest.rows);
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| cosine(x, y))
                    .fold(1.0, f64::min);
                assert!(
                    worst >= worst_cosine,
                    "{} {column} in {precision}: worst cosine {worst} to float32",
                    entry.name
                );
                assert_ne!(a, b, "{} {column}: {precision} changed nothing", entry.name);
            }
        }
    }
}

#[test]
fn corrupt_and_empty_files_are_reported_and_every_good_image_is_cached() {
    let cache = shared_cache();
    let manifest = Manifest::load(cache).unwrap();
    let mut rejected: Vec<(String, String)> = manifest
        .rejected
        .iter()
        .map(|r| (r.key.clone(), r.error.clone()))
        .collect();
    rejected.sort();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0].0, "broken.jpg");
    assert!(rejected[0].1.starts_with("cannot decode"), "{rejected:?}");
    // Half a JPEG decodes without an error in the image crate (gray blocks): caught here.
    assert_eq!(rejected[1].0, "cut.jpg");
    assert!(
        rejected[1].1.starts_with("cannot decode: truncated JPEG"),
        "{rejected:?}"
    );
    assert_eq!(
        rejected[2],
        ("empty.png".into(), "empty file (0 bytes)".into())
    );

    let images = read_all(cache, &manifest.images_table, manifest.table_format);
    let mut cached: Vec<String> = images["path"]
        .as_string::<i32>()
        .iter()
        .map(|p| p.unwrap().to_string())
        .collect();
    cached.sort();
    assert_eq!(cached, fixture().good_images);
    assert_eq!(manifest.rows, fixture().good_images.len() * 2);
    for entry in &manifest.teachers {
        assert_eq!(entry.rows, manifest.rows, "{}", entry.name);
    }
    // `inspect` names every rejected sample with its reason.
    let out = run_ok(
        distillery(&scratch("inspect"))
            .args(["inspect", "--cache"])
            .arg(cache),
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains("    rejected empty.png: empty file (0 bytes)\n"),
        "{printed}"
    );
    assert!(
        printed.contains("    rejected broken.jpg: cannot decode"),
        "{printed}"
    );
    let rows = format!(
        "{} cached, 3 rejected; 2 views each; {} rows per teacher",
        fixture().good_images.len(),
        manifest.rows
    );
    assert!(printed.contains(&rows), "{printed}");
}

#[test]
fn stats_match_numpy_on_the_cache_read_by_pylance() {
    let cache = shared_cache();
    let stats_dir = scratch("stats");
    let out = run_ok(
        distillery(&stats_dir)
            .args(["stats", "--cache"])
            .arg(cache)
            .arg("--output")
            .arg(&stats_dir),
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains("patch_tokens") && printed.contains("dinov2"),
        "{printed}"
    );
    let out = run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/check_cache.py"))
            .arg(cache)
            .arg(&stats_dir),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // clip and dinov2 have both kinds, sam has patch tokens only.
    assert_eq!(report["checked"].as_array().unwrap().len(), 5, "{report}");
    check_notebook(cache, &stats_dir);
}

/// notebooks/explore_cache.py, run as a script on `cache`, agrees with `distillery stats`
/// (written to `stats_dir`), and draws one panel per teacher beside the photograph.
fn check_notebook(cache: &Path, stats_dir: &Path) {
    use polars::prelude::{ParquetReader, SerReader};
    let out_dir = scratch("explore");
    run_ok(
        Command::new(python())
            .arg(repo().join("notebooks/explore_cache.py"))
            .arg(cache)
            .arg(&out_dir),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("explore.json")).unwrap()).unwrap();
    let manifest = Manifest::load(cache).unwrap();
    assert_eq!(report["rows"], manifest.rows);
    let file = std::fs::File::open(stats_dir.join("stats.parquet")).unwrap();
    let stats = ParquetReader::new(file).finish().unwrap();
    let (teachers, kinds) = (
        stats.column("teacher").unwrap(),
        stats.column("kind").unwrap(),
    );
    let norm_means = stats.column("norm_mean").unwrap();
    let mut compared = 0;
    for i in 0..stats.height() {
        let teacher = teachers.str().unwrap().get(i).unwrap();
        let kind = match kinds.str().unwrap().get(i).unwrap() {
            "patch_tokens" => "patch",
            other => other,
        };
        let expected = norm_means.f64().unwrap().get(i).unwrap();
        let got = report["overall_norm_mean"][format!("{teacher}/{kind}")]
            .as_f64()
            .unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected.abs(),
            "{teacher}/{kind}: notebook {got}, stats {expected}"
        );
        compared += 1;
    }
    assert_eq!(compared, 5);
    // Per group: the views add up, and their weighted means give the overall mean.
    let groups = report["per_group"].as_array().unwrap();
    let views: u64 = groups.iter().map(|g| g["views"].as_u64().unwrap()).sum();
    assert_eq!(views as usize, manifest.rows);
    let weighted: f64 = groups
        .iter()
        .map(|g| g["views"].as_f64().unwrap() * g["clip/patch"].as_f64().unwrap())
        .sum::<f64>()
        / views as f64;
    let overall = report["overall_norm_mean"]["clip/patch"].as_f64().unwrap();
    assert!((weighted - overall).abs() <= 1e-9 * overall);
    // Linear CKA: 1 on the diagonal, symmetric, within [0, 1].
    let cka: Vec<Vec<f64>> = serde_json::from_value(report["cka_pooled_patch"].clone()).unwrap();
    assert_eq!(cka.len(), 3);
    for (i, row) in cka.iter().enumerate() {
        assert!((row[i] - 1.0).abs() < 1e-9, "{cka:?}");
        for (j, v) in row.iter().enumerate() {
            assert!(
                (v - cka[j][i]).abs() < 1e-9 && (0.0..=1.0 + 1e-9).contains(v),
                "{cka:?}"
            );
        }
    }
    // Shuffling one side's views breaks the match: no teacher stays aligned with itself.
    let baseline: Vec<Vec<f64>> =
        serde_json::from_value(report["cka_shuffled_baseline"].clone()).unwrap();
    for (i, row) in baseline.iter().enumerate() {
        assert!(row[i] < cka[i][i] - 1e-3, "{baseline:?}");
    }
    // The picture: the photograph's crop, then one PCA panel per teacher on its grid.
    let sheet = image::open(out_dir.join("features.png")).unwrap();
    let panel = report["picture"]["panel"].as_u64().unwrap() as u32;
    assert_eq!((sheet.width(), sheet.height()), (4 * panel, panel));
    for entry in &manifest.teachers {
        let grid = &report["pca_grids"][&entry.name];
        assert_eq!(grid[0], entry.sidecar.grid[0], "{}", entry.name);
        assert_eq!(grid[1], entry.sidecar.grid[1], "{}", entry.name);
    }
}

#[test]
fn parquet_cache_holds_the_same_rows_as_lance_and_reads_in_pyarrow() {
    let dir = scratch("parquet");
    let pipeline = write_pipeline(&dir, 2, 0, "");
    extract(&dir, &pipeline, &["--format", "parquet"]);
    let parquet = dir.join("cache");
    let manifest = Manifest::load(&parquet).unwrap();
    assert_eq!(manifest.table_format, CacheFormat::Parquet);
    for entry in &manifest.teachers {
        let lance_table = entry.table.replace(".parquet", ".lance");
        let a = read_all(shared_cache(), &lance_table, CacheFormat::Lance);
        let b = read_all(&parquet, &entry.table, CacheFormat::Parquet);
        assert_eq!(a.columns(), b.columns(), "{}", entry.name);
    }
    // Shards of a Parquet run join into the same rows, their part files linked.
    for k in 0..2 {
        let shard = format!("{k}/2");
        let flags = [
            "--format", "parquet", "--output", "sharded", "--shard", &shard,
        ];
        extract(&dir, &pipeline, &flags);
    }
    let out = run_ok(distillery(&dir).args(["commit", "--output", "sharded"]));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("hard-linked, 0 copied"), "{said}");
    let images = &manifest.images_table;
    assert_eq!(
        read_all(&parquet, images, CacheFormat::Parquet),
        read_all(&dir.join("sharded"), images, CacheFormat::Parquet)
    );
    for entry in &manifest.teachers {
        let a = read_all(&parquet, &entry.table, CacheFormat::Parquet);
        let b = read_all(&dir.join("sharded"), &entry.table, CacheFormat::Parquet);
        assert_eq!(a.columns()[..7], b.columns()[..7], "{}", entry.name);
    }
    let stats_dir = dir.join("stats");
    run_ok(distillery(&dir).args(["stats", "--cache", "cache", "--output", "stats"]));
    run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/check_cache.py"))
            .arg(&parquet)
            .arg(&stats_dir),
    );
}

#[test]
fn non_default_codecs_decode_in_python_to_the_statistics_we_compute() {
    let dir = scratch("codecs");
    let pipeline = write_pipeline(&dir, 2, 0, "");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let (clip, sam) = (
        format!("path = {:?}", fixture().teachers.join("clip.pt")),
        format!("path = {:?}", fixture().teachers.join("sam.pt")),
    );
    let text = text
        .replace(
            &clip,
            &format!(
                "{clip}\npatch_codec = \"int8\"\nsummary_codec = \"bfloat16\"\n\
                 compression = \"bss-zstd\""
            ),
        )
        .replace(&sam, &format!("{sam}\npatch_codec = \"float32\""));
    std::fs::write(&pipeline, text).unwrap();
    extract(&dir, &pipeline, &[]);
    run_ok(distillery(&dir).args(["stats", "--cache", "cache", "--output", "stats"]));
    run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/check_cache.py"))
            .arg(dir.join("cache"))
            .arg(dir.join("stats")),
    );
    // int8 with per-token scales stays close to the float16 features of the same views.
    let manifest = Manifest::load(&dir.join("cache")).unwrap();
    let clip = manifest.teacher("clip").unwrap();
    assert_eq!(
        clip.patch_encoding.codec,
        distillery::cache::codec::Codec::Int8
    );
    let reference = read_all(shared_cache(), &clip.table, CacheFormat::Lance);
    let reference = f16_rows(&reference, tc::PATCH_TOKENS);
    let reader =
        TableReader::open(&dir.join("cache").join(&clip.table), CacheFormat::Lance).unwrap();
    let rows: Vec<u64> = (0..reader.num_rows() as u64).collect();
    let batch = reader
        .take(&rows, &["patch_tokens", "patch_tokens_scale"])
        .unwrap();
    let decoded =
        distillery::cache::codec::decode(&batch, "patch_tokens", clip.patch_encoding, 16 * 64, 16)
            .unwrap();
    for (r, want) in reference.iter().enumerate() {
        let got = &decoded[r * want.len()..(r + 1) * want.len()];
        for (a, b) in want.chunks(64).zip(got.chunks(64)) {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cos = dot / (norm(a) * norm(b));
            assert!(cos > 0.999, "row {r}: int8 token cosine {cos}");
        }
    }
    // Training reads every codec.
    run_ok(distillery(&dir).args([
        "train", "--cache", "cache", "--epochs", "1", "--output", "student",
    ]));
}

#[test]
fn extract_killed_at_random_points_resumes_to_exactly_the_uninterrupted_cache() {
    killed_and_resumed(CacheFormat::Lance);
}

#[test]
fn a_killed_parquet_run_resumes_to_exactly_the_uninterrupted_cache() {
    killed_and_resumed(CacheFormat::Parquet);
}

/// Source records done at the last checkpoint of the run building `partial` (0 before
/// the first, or when there is no run).
fn checkpoint_records(partial: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(partial.join("journal.json")) else {
        return 0;
    };
    // Read while the run may be writing it: a partial read counts as no checkpoint.
    let Ok(journal) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    let checkpointed = journal["versions"]
        .as_object()
        .is_some_and(|v| !v.is_empty());
    match journal["records_done"].as_u64() {
        Some(n) if checkpointed => n as usize,
        _ => 0,
    }
}

fn killed_and_resumed(format: CacheFormat) {
    let name = format.extension();
    let dir = scratch(&format!("resume-{name}"));
    let extra = format!("checkpoint_every = 1\nformat = \"{name}\"");
    let pipeline = write_pipeline(&dir, 6, 0, &extra);
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("batch_size = 8", "batch_size = 2");
    std::fs::write(&pipeline, text).unwrap();
    let started = std::time::Instant::now();
    extract(&dir, &pipeline, &["--output", "whole"]);
    let whole_ms = started.elapsed().as_millis() as u64;

    // Kill -9 at moments spread over a run, resuming each time: at random times, and just
    // after checkpoints that the journal shows, so that resumes are tested however fast
    // or loaded the machine is.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let jitter = |i: u32| u64::from(nanos.rotate_left(7 * i) % 40);
    enum Kill {
        At(u64),
        AfterRecords(usize),
    }
    let partial = dir.join("resumed.partial");
    let plan = [
        Kill::At(whole_ms / 5),
        Kill::AfterRecords(2),
        Kill::At(whole_ms / 2),
        Kill::AfterRecords(5),
        Kill::AfterRecords(8),
    ];
    let (mut kills, mut resumable) = (0, 0);
    for (i, kill) in plan.iter().enumerate() {
        let mut child = distillery(&dir)
            .args([
                "extract",
                "--pipeline",
                "pipeline.toml",
                "--output",
                "resumed",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ms = std::time::Duration::from_millis;
        match *kill {
            Kill::At(t) => std::thread::sleep(ms(t + jitter(i as u32))),
            Kill::AfterRecords(n) => {
                let deadline = std::time::Instant::now() + ms(whole_ms * 5);
                while checkpoint_records(&partial) < n && std::time::Instant::now() < deadline {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(ms(2));
                }
                std::thread::sleep(ms(jitter(i as u32)));
            }
        }
        if child.try_wait().unwrap().is_some() {
            break; // the run ended before this kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        resumable += usize::from(checkpoint_records(&partial) > 0);
        if dir.join("resumed").exists() {
            break; // killed after its final rename: the cache is complete (checked below)
        }
    }
    if !dir.join("resumed").exists() {
        extract(&dir, &pipeline, &["--output", "resumed"]);
    }
    assert!(
        resumable >= 1,
        "{kills} kills, none after a checkpoint: no resume was tested"
    );
    assert!(!dir.join("resumed.partial").exists());

    let whole = Manifest::load(&dir.join("whole")).unwrap();
    let resumed = Manifest::load(&dir.join("resumed")).unwrap();
    assert_eq!(resumed.rows, whole.rows);
    assert_eq!(resumed.rejected, whole.rejected);
    let tables = std::iter::once(whole.images_table.clone())
        .chain(whole.teachers.iter().map(|t| t.table.clone()));
    for table in tables {
        let a = read_all(&dir.join("whole"), &table, format);
        let b = read_all(&dir.join("resumed"), &table, format);
        assert_eq!(a, b, "{table} differs after {kills} kills");
    }
}

#[test]
fn a_cache_at_an_object_store_uri_is_written_resumed_and_read_through_the_uri() {
    let dir = scratch("uri");
    let pipeline = write_pipeline(&dir, 2, 0, "checkpoint_every = 1");
    // file-object-store:// is a local directory that Lance drives as it drives S3.
    let local = dir.join("bucket/cache");
    let uri = format!("file-object-store://{}", local.display());
    let started = std::time::Instant::now();
    extract(&dir, &pipeline, &["--output", &uri]);
    let whole_ms = started.elapsed().as_millis() as u64;
    let whole = Manifest::load(shared_cache()).unwrap();
    let tables: Vec<String> = std::iter::once(whole.images_table.clone())
        .chain(whole.teachers.iter().map(|t| t.table.clone()))
        .collect();
    let check = |cache: &Path| {
        let manifest = Manifest::load(cache).unwrap();
        assert_eq!((manifest.images, manifest.rows), (whole.images, whole.rows));
        for table in &tables {
            let a = read_all(shared_cache(), table, CacheFormat::Lance);
            assert_eq!(a, read_all(cache, table, CacheFormat::Lance), "{table}");
        }
    };
    check(Path::new(&uri));
    check(&local); // the same objects, read as a plain local cache
    assert!(!local.join("journal.json").exists());
    assert!(!dir.join("bucket/cache.partial").exists());

    // No rename on an object store: a cache there is never replaced.
    let again = ["extract", "--pipeline", "pipeline.toml", "--output", &uri];
    let err = run_err(distillery(&dir).args(again));
    assert!(err.contains("exists already"), "{err}");
    let err = run_err(distillery(&dir).args(again).arg("--overwrite"));
    assert!(err.contains("does not replace on an object store"), "{err}");
    // Objects that are not ours are not written over.
    std::fs::create_dir_all(dir.join("bucket/other")).unwrap();
    std::fs::write(dir.join("bucket/other/data.bin"), b"x").unwrap();
    let other = format!("file-object-store://{}", dir.join("bucket/other").display());
    let err = run_err(
        distillery(&dir)
            .args(["extract", "--pipeline", "pipeline.toml"])
            .args(["--output", &other]),
    );
    assert!(
        err.contains("not a distillery cache nor an interrupted run"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("bucket/other/data.bin")).unwrap(),
        b"x"
    );
    let parquet = format!("file-object-store://{}", dir.join("bucket/pq").display());
    let err = run_err(
        distillery(&dir)
            .args(&again[..3])
            .args(["--output", &parquet])
            .args(["--format", "parquet"]),
    );
    assert!(err.contains("Parquet caches are local"), "{err}");

    // Killed midway and run again, the run continues in place to the same cache.
    let local = dir.join("bucket/resumed");
    let resumed = format!("file-object-store://{}", local.display());
    let args = [
        "extract",
        "--pipeline",
        "pipeline.toml",
        "--output",
        &resumed,
    ];
    let mut child = distillery(&dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed right after its first checkpoint (the journal sits in the prefix itself).
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(20 * whole_ms);
    while checkpoint_records(&local) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(
        checkpoint_records(&local) > 0,
        "no checkpoint to resume from"
    );
    assert!(
        !local.join("manifest.json").exists(),
        "the run ended before the kill"
    );
    let out = run_ok(distillery(&dir).args(args));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("resumed an interrupted run"), "{printed}");
    check(Path::new(&resumed));

    run_ok(distillery(&dir).args([
        "train", "--cache", &uri, "--epochs", "1", "--output", "student",
    ]));
    run_ok(distillery(&dir).args(["stats", "--cache", &uri, "--output", "stats"]));
    assert!(dir.join("stats/stats.parquet").is_file());
    let out = run_ok(distillery(&dir).args(["inspect", "--cache", &uri]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dinov2"));

    // A teacher added through the URI: its table is written in place, then the manifest.
    let mut add = distillery(&dir);
    add.args(["add-teacher", "--cache", &uri, "--name", "clip2", "--path"])
        .arg(fixture().teachers.join("clip.pt"));
    run_ok(&mut add);
    let manifest = Manifest::load(Path::new(&uri)).unwrap();
    assert_eq!(manifest.teacher("clip2").unwrap().rows, whole.rows);
    let table = dir.join("bucket/cache/teachers/clip2.lance");
    assert!(table.is_dir());
    assert_same_clip_rows(&read_all(
        &dir.join("bucket/cache"),
        "teachers/clip2.lance",
        CacheFormat::Lance,
    ));
}

#[test]
fn a_cache_written_to_s3_reads_back_in_pylance_equal_to_a_local_one() {
    let dir = scratch("s3");
    let pipeline = write_pipeline(&dir, 2, 0, "");
    // A local S3 server (moto) in the test's Python; the script compares table by table.
    let out = run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/s3_roundtrip.py"))
            .arg(BIN)
            .arg(&pipeline)
            .arg(shared_cache())
            .current_dir(&dir),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a JSON report");
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    // The images table and three teachers, written whole and joined from shards.
    assert_eq!(report["compared"].as_array().unwrap().len(), 8, "{report}");
}

/// A pipeline of the fixture in `dir` without the clip teacher (to be added later).
fn pipeline_without_clip(dir: &Path, extra: &str) -> PathBuf {
    let pipeline = write_pipeline(dir, 2, 0, extra);
    let clip = format!(
        "\n[[teacher]]\nname = \"clip\"\npath = {:?}\n",
        fixture().teachers.join("clip.pt")
    );
    let text = std::fs::read_to_string(&pipeline).unwrap();
    assert!(text.contains(&clip));
    std::fs::write(&pipeline, text.replace(&clip, "")).unwrap();
    pipeline
}

/// `distillery add-teacher` in `dir` on its cache, with the fixture's clip module and
/// `flags` (at least --name).
fn add_teacher(dir: &Path, flags: &[&str]) -> Command {
    let mut cmd = distillery(dir);
    cmd.args(["add-teacher", "--cache", "cache"])
        .args(flags)
        .arg("--path")
        .arg(fixture().teachers.join("clip.pt"));
    cmd
}

/// The same rows as the clip table of the shared (Lance) cache: the same views, and the
/// features to float16 rounding.
fn assert_same_clip_rows(added: &RecordBatch) {
    let together = read_all(shared_cache(), "teachers/clip.lance", CacheFormat::Lance);
    assert_eq!(added.columns()[..7], together.columns()[..7]);
    for column in [tc::SUMMARY, tc::PATCH_TOKENS] {
        let (a, b) = (f16_rows(added, column), f16_rows(&together, column));
        assert_eq!(a.len(), b.len());
        for (ra, rb) in a.iter().zip(&b) {
            assert!(worst_relative_error(ra, rb) < 2e-3, "{column} differs");
        }
    }
}

#[test]
fn a_teacher_added_to_a_parquet_cache_gets_parts_aligned_with_the_others() {
    let dir = scratch("add-teacher-parquet");
    // Checkpoints every 3 images: several parts per table.
    let pipeline = pipeline_without_clip(&dir, "format = \"parquet\"\ncheckpoint_every = 3");
    extract(&dir, &pipeline, &[]);
    run_ok(&mut add_teacher(&dir, &["--name", "clip"]));
    let cache = dir.join("cache");
    let parts = |table: &str| -> Vec<usize> {
        distillery::cache::parquet_parts(&cache.join(table))
            .unwrap()
            .iter()
            .map(|p| {
                TableReader::open(p, CacheFormat::Parquet)
                    .unwrap()
                    .num_rows()
            })
            .collect()
    };
    let dinov2 = parts("teachers/dinov2.parquet");
    assert!(dinov2.len() > 1, "{dinov2:?}");
    assert_eq!(parts("teachers/clip.parquet"), dinov2);
    assert_same_clip_rows(&read_all(
        &cache,
        "teachers/clip.parquet",
        CacheFormat::Parquet,
    ));
    run_ok(distillery(&dir).args(["stats", "--cache", "cache", "--output", "stats"]));
    run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/check_cache.py"))
            .arg(&cache)
            .arg(dir.join("stats")),
    );
}

#[test]
fn a_teacher_added_later_equals_the_same_teacher_extracted_with_the_others() {
    let dir = scratch("add-teacher");
    let pipeline = pipeline_without_clip(&dir, "");
    extract(&dir, &pipeline, &[]);
    let before = Manifest::load(&dir.join("cache")).unwrap();
    assert!(before.teacher("clip").is_none());
    let dinov2_before = read_all(
        &dir.join("cache"),
        "teachers/dinov2.lance",
        CacheFormat::Lance,
    );

    run_ok(&mut add_teacher(
        &dir,
        &["--name", "clip", "--batch-size", "5"],
    ));
    let after = Manifest::load(&dir.join("cache")).unwrap();
    assert_eq!(after.teacher("clip").unwrap().rows, before.rows);
    let added = read_all(
        &dir.join("cache"),
        "teachers/clip.lance",
        CacheFormat::Lance,
    );
    // Same views, same teacher: the same rows, with float16 rounding the only freedom.
    assert_same_clip_rows(&added);
    assert_eq!(
        read_all(
            &dir.join("cache"),
            "teachers/dinov2.lance",
            CacheFormat::Lance
        ),
        dinov2_before
    );
    // Training and stats see the added teacher.
    run_ok(distillery(&dir).args(["stats", "--cache", "cache", "--output", "stats"]));
    run_ok(
        Command::new(python())
            .arg(repo().join("tests/python/check_cache.py"))
            .arg(dir.join("cache"))
            .arg(dir.join("stats")),
    );
    let add_err = |flags: &[&str]| run_err(&mut add_teacher(&dir, flags));
    let err = add_err(&["--name", "clip"]);
    assert!(err.contains("already holds teacher clip"), "{err}");
    let err = add_err(&["--name", "clip2", "--compression", "zip"]);
    assert!(
        err.contains("compression \"zip\" is not native or bss-zstd"),
        "{err}"
    );
    assert!(Manifest::load(&dir.join("cache"))
        .unwrap()
        .teacher("clip2")
        .is_none());
}

/// The data files of every Lance table under `root`.
fn lance_data_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "lance")
                && path.parent().is_some_and(|p| p.ends_with("data"))
            {
                found.push(path);
            }
        }
    }
    found
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn shards_committed_together_equal_the_cache_of_one_run() {
    let dir = scratch("shards");
    let pipeline = write_pipeline(&dir, 2, 0, "");
    for k in [2, 0] {
        extract(&dir, &pipeline, &["--shard", &format!("{k}/3")]);
    }
    let err = run_err(distillery(&dir).args(["commit", "--output", "cache"]));
    assert!(err.contains("shard 1/3 is missing or unfinished"), "{err}");
    extract(&dir, &pipeline, &["--shard", "1/3"]);
    let out = run_ok(distillery(&dir).args(["commit", "--output", "cache"]));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("3 shards joined"), "{said}");
    // No row was rewritten: every data file of the cache is the same file as a shard's.
    let shard_files = lance_data_files(&dir.join("cache.shards"));
    let cache_files = lance_data_files(&dir.join("cache"));
    assert!(!cache_files.is_empty());
    let mut inodes: Vec<u64> = shard_files.iter().map(|f| inode(f)).collect();
    inodes.sort_unstable();
    for file in &cache_files {
        assert!(
            inodes.binary_search(&inode(file)).is_ok(),
            "{} was copied",
            file.display()
        );
    }
    assert!(
        said.contains(&format!("{} hard-linked, 0 copied", cache_files.len())),
        "{said}"
    );
    // The cache stands on its own once the shards are gone.
    std::fs::remove_dir_all(dir.join("cache.shards")).unwrap();

    let joined = Manifest::load(&dir.join("cache")).unwrap();
    let whole = Manifest::load(shared_cache()).unwrap();
    assert_eq!((joined.images, joined.rows), (whole.images, whole.rows));
    let mut rejected = joined.rejected.clone();
    rejected.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = whole.rejected.clone();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(rejected, expected);
    let tables = std::iter::once(whole.images_table.clone())
        .chain(whole.teachers.iter().map(|t| t.table.clone()));
    for table in tables {
        let a = read_all(shared_cache(), &table, CacheFormat::Lance);
        let b = read_all(&dir.join("cache"), &table, CacheFormat::Lance);
        if table == whole.images_table {
            assert_eq!(a, b, "{table}");
            continue;
        }
        // The views are identical; the features went through other batches at the shard
        // boundaries, so they agree to float16 rounding rather than bit for bit.
        assert_eq!(a.columns()[..7], b.columns()[..7], "{table}");
        for column in [tc::SUMMARY, tc::PATCH_TOKENS] {
            if a.schema().field_with_name(column).is_err() {
                continue;
            }
            for (ra, rb) in f16_rows(&a, column).iter().zip(&f16_rows(&b, column)) {
                assert!(worst_relative_error(rb, ra) < 2e-3, "{table} {column}");
            }
        }
    }
    run_ok(distillery(&dir).args([
        "train", "--cache", "cache", "--epochs", "1", "--output", "student",
    ]));

    // More shards than images: the empty shards are committed with the others.
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::copy(fixture().photos.join("rocket.jpg"), one.join("rocket.jpg")).unwrap();
    for k in 0..2 {
        let shard = format!("{k}/3");
        let source = one.to_str().unwrap();
        let flags = ["--source", source, "--output", "tiny", "--shard", &shard];
        extract(&dir, &pipeline, &flags);
    }
    let err = run_err(distillery(&dir).args(["commit", "--output", "tiny"]));
    assert!(err.contains("shard 2/3 is missing"), "{err}");
    let source = one.to_str().unwrap();
    extract(
        &dir,
        &pipeline,
        &["--source", source, "--output", "tiny", "--shard", "2/3"],
    );
    run_ok(distillery(&dir).args(["commit", "--output", "tiny"]));
    let tiny = Manifest::load(&dir.join("tiny")).unwrap();
    assert_eq!((tiny.images, tiny.rows), (1, 2));
    for entry in &tiny.teachers {
        assert_eq!(
            read_all(&dir.join("tiny"), &entry.table, CacheFormat::Lance).num_rows(),
            2
        );
    }
}

#[test]
fn full_image_mode_stores_whole_image_maps_and_trains_on_fresh_crops_of_them() {
    let dir = scratch("full-image");
    let pipeline = write_pipeline(&dir, 1, 0, "patch_mode = \"full-image\"");
    let mut text = std::fs::read_to_string(&pipeline).unwrap();
    text += "\n[train]\noutput = \"student\"\nepochs = 8\nbatch_size = 6\nwarmup_steps = 2\n";
    std::fs::write(&pipeline, text).unwrap();
    extract(&dir, &pipeline, &[]);
    let manifest = Manifest::load(&dir.join("cache")).unwrap();
    assert_eq!(manifest.rows, fixture().good_images.len());
    let images = read_all(
        &dir.join("cache"),
        &manifest.images_table,
        CacheFormat::Lance,
    );
    let entry = manifest.teacher("dinov2").unwrap();
    let table = read_all(&dir.join("cache"), &entry.table, CacheFormat::Lance);
    for row in 0..table.num_rows() {
        let view = view_of(&table, row);
        let w = images["width"].as_primitive::<UInt32Type>().value(row);
        let h = images["height"].as_primitive::<UInt32Type>().value(row);
        assert_eq!(
            (view.crop, view.flip),
            (
                CropBox {
                    x: 0,
                    y: 0,
                    width: w,
                    height: h
                },
                false
            )
        );
    }
    // The stored map is the teacher's output on the whole image.
    let module = CModule::load(&entry.module_path).unwrap();
    let key = images["path"].as_string::<i32>().value(0);
    let image = decode_rgb(&fixture().photos.join(key)).unwrap();
    let s = &entry.sidecar;
    let pixels = render(
        &image,
        &view_of(&table, 0),
        s.input_size[2] as u32,
        s.input_size[1] as u32,
        filter_for(&s.interpolation),
    );
    let (_, tokens) = direct_run(&module, &pixels, s.mean, s.std);
    assert!(worst_relative_error(&f16_rows(&table, tc::PATCH_TOKENS)[0], &tokens) < 2e-3);

    let err = run_err(distillery(&dir).args([
        "extract",
        "--pipeline",
        "pipeline.toml",
        "--views-per-image",
        "2",
        "--output",
        "x",
    ]));
    assert!(err.contains("set it to 1"), "{err}");
    run_ok(distillery(&dir).args(["train", "--pipeline", "pipeline.toml"]));
    let log = log_terms(&dir.join("student/train_log.jsonl"));
    let mean = |steps: &[HashMap<String, f64>]| {
        steps.iter().map(|s| s["total"]).sum::<f64>() / steps.len() as f64
    };
    let (first, last) = (mean(&log[..3]), mean(&log[log.len() - 3..]));
    assert!(last < first, "total loss went from {first} to {last}");
}

fn log_terms(path: &Path) -> Vec<HashMap<String, f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut terms: HashMap<String, f64> = v["terms"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect();
            terms.insert("total".into(), v["loss"].as_f64().unwrap());
            terms
        })
        .collect()
}

#[test]
fn training_from_the_cache_lowers_every_loss_term_without_any_teacher() {
    let dir = scratch("train");
    let teachers = dir.join("teachers");
    std::fs::create_dir_all(&teachers).unwrap();
    let mut text = std::fs::read_to_string(write_pipeline(&dir, 2, 0, "")).unwrap();
    for (name, _) in TEACHERS {
        for ext in ["pt", "pt.json"] {
            std::fs::copy(
                fixture().teachers.join(format!("{name}.{ext}")),
                teachers.join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
        text = text.replace(
            &format!("{:?}", fixture().teachers.join(format!("{name}.pt"))),
            &format!("\"teachers/{name}.pt\""),
        );
    }
    text += "\n[train]\noutput = \"student\"\nepochs = 10\nbatch_size = 6\nwarmup_steps = 3\n";
    std::fs::write(dir.join("pipeline.toml"), text).unwrap();
    extract(&dir, &dir.join("pipeline.toml"), &[]);
    // Without the teacher files, a run that loaded or ran a teacher could not succeed.
    std::fs::remove_dir_all(&teachers).unwrap();
    let out = run_ok(distillery(&dir).args(["train", "--pipeline", "pipeline.toml"]));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("no teacher run"), "{printed}");

    let log = log_terms(&dir.join("student/train_log.jsonl"));
    assert_eq!(
        log.len(),
        10 * (fixture().good_images.len() * 2).div_ceil(6)
    );
    let mean = |steps: &[HashMap<String, f64>], k: &str| {
        steps.iter().map(|s| s[k]).sum::<f64>() / steps.len() as f64
    };
    let (head, tail) = (&log[..3], &log[log.len() - 3..]);
    let expected = [
        "total",
        "clip/summary",
        "clip/patch",
        "dinov2/summary",
        "dinov2/patch",
        "sam/patch",
    ];
    assert_eq!(log[0].len(), expected.len(), "{:?}", log[0]);
    for term in expected {
        let (first, last) = (mean(head, term), mean(tail, term));
        assert!(last < first, "{term}: loss went from {first} to {last}");
    }
    let checkpoint = std::fs::read(dir.join("student/student.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(checkpoint[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&checkpoint[8..8 + header_len]).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["width"], 96);
    assert!(
        header.get("adaptors.sam.patch.fc2.weight").is_some(),
        "{header}"
    );
    // A second run into the same output keeps the first one's files unless told otherwise.
    let log_bytes = std::fs::read(dir.join("student/train_log.jsonl")).unwrap();
    let err = run_err(distillery(&dir).args(["train", "--pipeline", "pipeline.toml"]));
    assert!(
        err.contains("already holds student.safetensors from an earlier run"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("student/student.safetensors")).unwrap(),
        checkpoint
    );
    assert_eq!(
        std::fs::read(dir.join("student/train_log.jsonl")).unwrap(),
        log_bytes
    );
}

#[test]
fn bad_inputs_fail_before_any_work_with_a_clear_error() {
    let dir = scratch("bad");
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "missing.toml"]));
    assert!(err.contains("pipeline missing.toml: cannot read"), "{err}");

    std::fs::write(dir.join("broken.toml"), "[source\npath = 1").unwrap();
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "broken.toml"]));
    assert!(
        err.contains("pipeline broken.toml: TOML parse error"),
        "{err}"
    );

    // A teacher file that is not TorchScript.
    let pipeline = write_pipeline(&dir, 2, 0, "");
    let fake = dir.join("fake.pt");
    std::fs::write(&fake, b"not a model").unwrap();
    std::fs::copy(
        fixture().teachers.join("clip.pt.json"),
        dir.join("fake.pt.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let clip = format!("{:?}", fixture().teachers.join("clip.pt"));
    std::fs::write(dir.join("fake.toml"), text.replace(&clip, "\"fake.pt\"")).unwrap();
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "fake.toml"]));
    assert!(
        err.contains("fake.pt): cannot load the TorchScript module: "),
        "{err}"
    );
    assert!(err.starts_with("error: teacher clip ("), "{err}");
    assert!(
        !err.contains("frame #"),
        "the C++ backtrace is not for users: {err}"
    );

    // A teacher path with a typo names the file, not its sidecar.
    std::fs::write(dir.join("typo.toml"), text.replace(&clip, "\"nope.pt\"")).unwrap();
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "typo.toml"]));
    assert!(
        err.contains("nope.pt): the TorchScript file does not exist"),
        "{err}"
    );

    // A sidecar that disagrees with the module's outputs.
    std::fs::copy(fixture().teachers.join("dinov2.pt"), dir.join("lying.pt")).unwrap();
    let sidecar = std::fs::read_to_string(fixture().teachers.join("dinov2.pt.json")).unwrap();
    std::fs::write(
        dir.join("lying.pt.json"),
        sidecar.replace("\"patch_dim\": 64", "\"patch_dim\": 48"),
    )
    .unwrap();
    let dinov2 = format!("{:?}", fixture().teachers.join("dinov2.pt"));
    std::fs::write(
        dir.join("lying.toml"),
        text.replace(&dinov2, "\"lying.pt\""),
    )
    .unwrap();
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "lying.toml"]));
    assert!(
        err.contains(
            "teacher dinov2: patch tokens has shape [2, 25, 64], the sidecar says [2, 25, 48]"
        ),
        "{err}"
    );
    assert!(!dir.join("cache").exists() && !dir.join("cache.partial").exists());
    // Another teacher's sidecar: the module cannot run at its input size; torch's own
    // error is quoted, without its traceback.
    std::fs::copy(
        fixture().teachers.join("clip.pt.json"),
        dir.join("lying.pt.json"),
    )
    .unwrap();
    let err = run_err(distillery(&dir).args(["extract", "--pipeline", "lying.toml"]));
    assert!(
        err.contains("does not run on its sidecar's input size 64x64 (is ")
            && err.contains("lying.pt.json the sidecar of this module?")
            && err.contains("RuntimeError: The size of tensor a")
            && !err.contains("Traceback"),
        "{err}"
    );
    assert!(!dir.join("cache").exists() && !dir.join("cache.partial").exists());

    // A device this build cannot see.
    if tch::Cuda::device_count() == 0 {
        let err = run_err(distillery(&dir).args([
            "extract",
            "--pipeline",
            "pipeline.toml",
            "--device",
            "cuda",
        ]));
        assert!(
            err.contains("device cuda asked for, but libtorch sees 0 CUDA device(s)"),
            "{err}"
        );
        // With a CUDA build of libtorch (the PyPI wheel), its CUDA backend must be linked
        // in even where no GPU is: a binary without it would see no GPU anywhere.
        let libtorch = Path::new(env!("DISTILLERY_LIBTORCH_LIB"));
        if libtorch.join("libtorch_cuda.so").exists() {
            assert!(err.contains("its CUDA backend is loaded"), "{err}");
        }
    }
    let err = run_err(distillery(&dir).args([
        "extract",
        "--pipeline",
        "pipeline.toml",
        "--device",
        "tpu",
    ]));
    assert!(
        err.contains("device \"tpu\" is not cpu, cuda or cuda:N"),
        "{err}"
    );
    assert!(!dir.join("cache").exists());

    // An existing cache is neither replaced nor touched without --overwrite.
    extract(&dir, &pipeline, &[]);
    let before = std::fs::read(dir.join("cache/manifest.json")).unwrap();
    let err =
        run_err(distillery(&dir).args(["extract", "--pipeline", "pipeline.toml", "--seed", "3"]));
    assert!(
        err.contains("cache: exists already; pass --overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("cache/manifest.json")).unwrap(),
        before
    );
    // A failing run with --overwrite leaves the old cache as it was.
    let err =
        run_err(distillery(&dir).args(["extract", "--pipeline", "lying.toml", "--overwrite"]));
    assert!(err.contains("teacher dinov2"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("cache/manifest.json")).unwrap(),
        before
    );
    extract(&dir, &pipeline, &["--overwrite", "--seed", "3"]);
    assert_ne!(
        std::fs::read(dir.join("cache/manifest.json")).unwrap(),
        before
    );
}

#[test]
fn demo_script_runs_the_whole_pipeline_on_the_bundled_photos() {
    let dir = scratch("demo");
    let out = run_ok(
        Command::new(repo().join("pipelines/demo.sh"))
            .arg(BIN)
            .arg(&dir)
            .env("DISTILLERY_PYTHON", python()),
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "extract: 9 images, 4 views each, 36 rows per teacher",
        "train:",
        "stats:",
        "checkpoint:",
        "outputs under",
    ] {
        assert!(printed.contains(needle), "missing {needle:?} in\n{printed}");
    }
    let log = log_terms(&dir.join("student/train_log.jsonl"));
    assert!(
        log.last().unwrap()["total"] < log[0]["total"],
        "demo loss did not fall"
    );
}
