//! The `distillery` command line: parses flags, runs a stage, prints what it did.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use distillery::config::{CacheFormat, Pipeline, TrainConfig};
use distillery::progress::Progress;
use distillery::{cache, extract, stats, train};

#[derive(Parser)]
#[command(
    name = "distillery",
    version,
    about = "Multi-teacher distillation from cached teacher features"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the teachers once over a source and write a feature cache.
    Extract(ExtractArgs),
    /// Train a student from a cache alone (no teacher is run).
    Train(TrainArgs),
    /// Print and write per-teacher feature statistics of a cache.
    Stats(StatsArgs),
    /// Print what a cache holds: manifest, teachers, rows, bytes per teacher and column.
    Inspect(InspectArgs),
    /// Time the teachers alone on pre-made views (the bound on extract); prints JSON.
    BenchTeachers(BenchArgs),
    /// Measure every storage codec on a cache's features: bytes, error, decode speed.
    Codecs(CodecsArgs),
    /// Add a teacher to an existing cache, run on the views already stored.
    AddTeacher(AddTeacherArgs),
    /// Join the finished shards of `extract --shard k/N` into one cache, atomically.
    Commit(CommitArgs),
}

#[derive(Args)]
struct CommitArgs {
    /// The cache to create; its shards are in <output>.shards/k-of-N.
    #[arg(long)]
    output: PathBuf,
    /// Delete the shard directories once the cache is committed.
    #[arg(long)]
    remove_shards: bool,
}

#[derive(Args)]
struct AddTeacherArgs {
    /// Cache directory (Lance or Parquet), or object-store URI (s3://, gs://, az://).
    #[arg(long)]
    cache: PathBuf,
    /// Name of the new teacher (its table is teachers/<name>.lance, or .parquet).
    #[arg(long)]
    name: String,
    /// TorchScript file exported by pipelines/export_teacher.py; its sidecar is <path>.json.
    #[arg(long)]
    path: PathBuf,
    /// Inference precision: fp32, fp16 or bf16.
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Stored value type of the summary: float32, float16, bfloat16 or int8.
    #[arg(long, default_value = "float16")]
    summary_codec: String,
    /// Stored value type of the patch tokens: float32, float16, bfloat16 or int8.
    #[arg(long, default_value = "float16")]
    patch_codec: String,
    /// Compression of both feature columns: native or bss-zstd.
    #[arg(long, default_value = "native")]
    compression: String,
    /// Torch device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Views per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(Args)]
struct CodecsArgs {
    /// Cache whose features to re-encode (write it with float32 codecs for exact errors).
    #[arg(long)]
    cache: PathBuf,
    /// Also write the measurements as JSON lines to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct InspectArgs {
    /// Cache directory, or object-store URI (s3://, gs://, az://).
    #[arg(long)]
    cache: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Pipeline TOML: its source gives the number of views, its teachers and batch size
    /// are timed.
    #[arg(long)]
    pipeline: PathBuf,
    /// Torch device (overrides extract.device).
    #[arg(long)]
    device: Option<String>,
}

#[derive(Args)]
struct ExtractArgs {
    /// Pipeline TOML file; the flags below override its values.
    #[arg(long)]
    pipeline: PathBuf,
    /// Source path: image folder, file list, tar shard(s) or image table, as
    /// source.kind says (overrides source.path).
    #[arg(long)]
    source: Option<PathBuf>,
    /// Cache to create (overrides extract.output): a directory, or an object-store URI
    /// (s3://, gs://, az://; Lance only, written in place, never replaced).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Augmented views per image (overrides extract.views_per_image; default 2).
    #[arg(long)]
    views_per_image: Option<usize>,
    /// Seed of the view generator (overrides extract.seed; default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Views per teacher forward pass (overrides extract.batch_size; default 32).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Torch device: cpu, cuda or cuda:N (overrides extract.device; default cpu).
    #[arg(long)]
    device: Option<String>,
    /// Table format: lance or parquet (overrides extract.format; default lance).
    #[arg(long)]
    format: Option<CacheFormat>,
    /// Replace an existing cache at the output path, once the new one is complete.
    #[arg(long)]
    overwrite: bool,
    /// k/N: process only the k-th of N slices of the source, into <output>.shards/k-of-N
    /// (join them with `distillery commit`).
    #[arg(long)]
    shard: Option<distillery::config::Shard>,
}

#[derive(Args)]
struct TrainArgs {
    /// Cache to train from, a directory or object-store URI (default: the pipeline's
    /// extract.output).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// A whole pipeline TOML (as for extract) whose [train] section to use, and whose
    /// extract.output is the default cache (default: the [train] section recorded in the
    /// cache's manifest).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Local directory for the checkpoint and loss log (overrides train.output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Passes over the cache (overrides train.epochs; default 2).
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per step (overrides train.batch_size; default 16).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate (overrides train.lr; default 1e-3).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed of initialisation and shuffling (overrides train.seed; default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Torch device (overrides train.device; default cpu).
    #[arg(long)]
    device: Option<String>,
    /// Replace the checkpoint and loss log of an earlier run in the output directory.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct StatsArgs {
    /// Cache directory, or object-store URI (s3://, gs://, az://).
    #[arg(long)]
    cache: PathBuf,
    /// Local directory for the Parquet tables (default: <cache>/stats; required when the
    /// cache is a URI).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Draws one progress bar per stage on stderr (hidden when stderr is not a terminal).
struct Bars {
    bar: std::sync::Mutex<Option<ProgressBar>>,
    bytes: std::sync::atomic::AtomicU64,
}

impl Bars {
    fn new() -> Self {
        Bars {
            bar: std::sync::Mutex::new(None),
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, stage: &str, total: u64) {
        let bar = ProgressBar::new(total);
        let template = "{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}";
        self.bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        *self.bar.lock().expect("bar") = Some(bar);
    }

    fn advance(&self, units: u64, bytes: u64) {
        if let Some(bar) = self.bar.lock().expect("bar").as_ref() {
            bar.inc(units);
            if bytes > 0 {
                let total = bytes
                    + self
                        .bytes
                        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                bar.set_message(format!("{} written", HumanBytes(total)));
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar").take() {
            bar.finish_and_clear();
        }
    }
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DISTILLERY_LOG")
        // Lance's object-store throttle warns at every retry; the error that ends a run
        // says what failed.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,lance::object_store::throttle=error")
        });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Output piped into `head` ends quietly, as in other command-line tools, instead of
    // panicking on a closed stdout.
    // SAFETY: called once, first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, once each: library errors already quote their source.
fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Extract(args) => run_extract(args),
        Command::Train(args) => run_train(args),
        Command::Stats(args) => run_stats(args),
        Command::Inspect(args) => run_inspect(args),
        Command::BenchTeachers(args) => run_bench(args),
        Command::Codecs(args) => run_codecs(args),
        Command::AddTeacher(args) => run_add_teacher(args),
        Command::Commit(args) => run_commit(args),
    }
}

fn run_extract(args: ExtractArgs) -> Result<()> {
    let path = args.pipeline.clone();
    let pipeline = Pipeline::load_with(&path, |pipeline| override_extract(pipeline, args))?;
    let report = extract::run(&pipeline, &Bars::new())?;
    print_extract(&report);
    Ok(())
}

/// Applies extract's flags to the pipeline file's values.
fn override_extract(pipeline: &mut Pipeline, args: ExtractArgs) {
    let e = &mut pipeline.extract;
    if let Some(v) = args.source {
        pipeline.source.path = v;
    }
    if let Some(v) = args.output {
        e.output = v;
    }
    if let Some(v) = args.views_per_image {
        e.views_per_image = v;
    }
    if let Some(v) = args.seed {
        e.seed = v;
    }
    if let Some(v) = args.batch_size {
        e.batch_size = v;
    }
    if let Some(v) = args.device {
        e.device = v;
    }
    if let Some(v) = args.format {
        e.format = v;
    }
    e.overwrite |= args.overwrite;
    if args.shard.is_some() {
        e.shard = args.shard;
    }
}

fn print_extract(r: &extract::ExtractReport) {
    println!(
        "extract: {} images, {} views each, {} rows per teacher, in {:.1}s \
         (loading the teachers: {:.1}s)",
        r.images, r.views_per_image, r.rows, r.seconds, r.load_seconds
    );
    if let Some(records) = r.resumed_from {
        println!("  resumed an interrupted run from its checkpoint at source record {records}");
    }
    for rej in &r.rejected {
        println!("  skipped {}: {}", rej.key, rej.error);
    }
    println!(
        "  {:<12} {:>8} {:>14} {:>14} {:>7}",
        "teacher", "rows", "bytes", "raw f16", "ratio"
    );
    for t in &r.teachers {
        let ratio = t.bytes as f64 / t.raw_f16_bytes.max(1) as f64;
        println!(
            "  {:<12} {:>8} {:>14} {:>14} {:>7.3}",
            t.name, t.rows, t.bytes, t.raw_f16_bytes, ratio
        );
    }
    println!("  images table: {} bytes", r.images_table_bytes);
    if let Some(bytes) = r.peak_memory_bytes {
        println!("  peak memory: {} ({bytes} bytes)", HumanBytes(bytes));
    }
    println!("  cache: {}", r.output.display());
}

fn run_train(args: TrainArgs) -> Result<()> {
    let (cache, pipeline) = (args.cache.clone(), args.pipeline.clone());
    let (cache_dir, config) = train_config(cache.as_deref(), pipeline.as_deref(), |c| {
        override_train(c, args)
    })?;
    if cache::store::is_uri(&config.output) {
        anyhow::bail!(
            "train output {} is an object-store URI: the checkpoint and log go to a local \
             directory",
            config.output.display()
        );
    }
    let report = train::run(&cache_dir, &config, &Bars::new())?;
    print_train(&report);
    Ok(())
}

/// Applies train's flags to the [train] section's values.
fn override_train(config: &mut TrainConfig, args: TrainArgs) {
    if let Some(v) = args.output {
        config.output = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.lr {
        config.lr = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.device {
        config.device = v;
    }
    config.overwrite |= args.overwrite;
}

/// The cache and [train] section to use, with `overrides` applied: the pipeline file's
/// if given (validated after the overrides), else the one recorded in the cache.
fn train_config(
    cache: Option<&Path>,
    pipeline: Option<&Path>,
    overrides: impl FnOnce(&mut TrainConfig),
) -> Result<(PathBuf, TrainConfig)> {
    if let Some(path) = pipeline {
        let p = Pipeline::load_with(path, |p| overrides(&mut p.train))?;
        let dir = cache
            .map(Path::to_path_buf)
            .unwrap_or_else(|| p.cache_dir());
        return Ok((dir, p.train));
    }
    let dir = cache.context("train needs --cache or --pipeline")?;
    let manifest = cache::Manifest::load(dir)?;
    let mut config = manifest.pipeline.train;
    overrides(&mut config);
    Ok((dir.to_path_buf(), config))
}

fn print_train(r: &train::TrainReport) {
    println!(
        "train: {} steps ({} epoch{}) over {} rows in {:.1}s, no teacher run",
        r.steps,
        r.epochs,
        if r.epochs == 1 { "" } else { "s" },
        r.rows,
        r.seconds
    );
    println!("  {:<22} {:>10} {:>10}", "loss", "first", "last");
    println!(
        "  {:<22} {:>10.4} {:>10.4}",
        "total", r.first.loss, r.last.loss
    );
    for (name, first) in &r.first.terms {
        let last = r.last.terms.get(name).copied().unwrap_or(f64::NAN);
        println!("  {name:<22} {first:>10.4} {last:>10.4}");
    }
    println!(
        "  checkpoint: {}",
        r.output.join(train::CHECKPOINT_FILE).display()
    );
    println!("  loss log: {}", r.output.join(train::LOG_FILE).display());
}

fn run_stats(args: StatsArgs) -> Result<()> {
    let tables = stats::compute(&args.cache, &Bars::new())?;
    let out = match args.output {
        Some(out) => out,
        None if cache::store::is_uri(&args.cache) => anyhow::bail!(
            "{} is an object-store URI: give --output, a local directory for the statistics",
            args.cache.display()
        ),
        None => args.cache.join("stats"),
    };
    if cache::store::is_uri(&out) {
        anyhow::bail!(
            "stats output {} is an object-store URI: the tables go to a local directory",
            out.display()
        );
    }
    stats::write(&tables, &out)?;
    std::env::set_var("POLARS_FMT_MAX_COLS", "16");
    std::env::set_var("POLARS_TABLE_WIDTH", "200");
    std::env::set_var("POLARS_FMT_TABLE_HIDE_COLUMN_DATA_TYPES", "1");
    std::env::set_var("POLARS_FMT_TABLE_HIDE_DATAFRAME_SHAPE_INFORMATION", "1");
    polars_core::fmt::set_float_precision(Some(4));
    println!("stats: per teacher and feature kind (float64, population std)");
    println!("{}", tables.overall);
    println!(
        "  per-dimension table: {}",
        out.join(stats::PER_DIM_FILE).display()
    );
    println!(
        "  overall table: {}",
        out.join(stats::OVERALL_FILE).display()
    );
    Ok(())
}

fn run_inspect(args: InspectArgs) -> Result<()> {
    let dir = &args.cache;
    let m = cache::Manifest::load(dir)?;
    println!(
        "cache {} (format {} v{}, {} tables)",
        dir.display(),
        m.format,
        m.format_version,
        m.table_format.extension()
    );
    println!(
        "  written by distillery {} at {} (unix {})",
        m.distillery_version,
        utc_time(m.created_unix),
        m.created_unix
    );
    println!(
        "  source: {} {}",
        m.pipeline.source.kind.name(),
        m.source_path.display()
    );
    println!(
        "  images: {} cached, {} rejected; {} views each; {} rows per teacher",
        m.images,
        m.rejected.len(),
        m.views_per_image,
        m.rows
    );
    const SHOWN: usize = 20;
    for rej in m.rejected.iter().take(SHOWN) {
        println!("    rejected {}: {}", rej.key, rej.error);
    }
    if m.rejected.len() > SHOWN {
        println!(
            "    ... and {} more (all are listed in the manifest's \"rejected\")",
            m.rejected.len() - SHOWN
        );
    }
    for entry in &m.teachers {
        let reader = cache::TableReader::open(&dir.join(&entry.table), m.table_format)?;
        let s = &entry.sidecar;
        println!(
            concat!(
                "  teacher {}: {} ({}, {}), input {}x{}, summary {}, ",
                "patch tokens {}x{} on a {}x{} grid"
            ),
            entry.name,
            s.timm_model,
            if s.pretrained {
                "pretrained"
            } else {
                "random init"
            },
            entry.precision,
            s.input_size[1],
            s.input_size[2],
            s.summary_dim,
            s.num_tokens,
            s.patch_dim,
            s.grid[0],
            s.grid[1]
        );
        println!(
            "    rows {}, {} on disk",
            reader.num_rows(),
            HumanBytes(entry.bytes)
        );
        let columns = reader.column_bytes()?;
        let in_columns: u64 = columns.iter().map(|(_, b)| b).sum();
        for (column, bytes) in columns {
            let raw = raw_f16_bytes(&column, s, reader.num_rows());
            match raw {
                Some(raw) => {
                    let e = if column == "summary" {
                        entry.summary_encoding
                    } else {
                        entry.patch_encoding
                    };
                    println!(
                        "    {column:<18} {:>12}  {} {}, {:.3} of raw float16",
                        HumanBytes(bytes),
                        e.codec.name(),
                        e.compression.name(),
                        bytes as f64 / raw.max(1) as f64
                    )
                }
                None => println!("    {column:<18} {:>12}", HumanBytes(bytes)),
            }
        }
        let rest = entry.bytes.saturating_sub(in_columns);
        println!(
            "    {:<18} {:>12}  {}",
            "(metadata)",
            HumanBytes(rest),
            match m.table_format {
                CacheFormat::Lance => "file footers, Lance manifests",
                CacheFormat::Parquet => "Parquet footers",
            }
        );
    }
    Ok(())
}

/// A Unix time as RFC 3339 in UTC, to the second.
fn utc_time(unix: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn raw_f16_bytes(column: &str, s: &distillery::sidecar::Sidecar, rows: usize) -> Option<u64> {
    let values = match column {
        "summary" => s.summary_dim,
        "patch_tokens" => s.num_tokens * s.patch_dim,
        _ => return None,
    };
    Some((values * rows * 2) as u64)
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let pipeline = Pipeline::load_with(&args.pipeline, |p| {
        if let Some(device) = args.device {
            p.extract.device = device;
        }
    })?;
    let bench = extract::bench_teachers(&pipeline)?;
    println!("{}", serde_json::to_string(&bench)?);
    Ok(())
}

fn run_codecs(args: CodecsArgs) -> Result<()> {
    let manifest = cache::Manifest::load(&args.cache)?;
    let mut lossy = Vec::new();
    for entry in &manifest.teachers {
        let kinds = [
            (
                "summary",
                entry.summary_encoding,
                entry.sidecar.summary_dim > 0,
            ),
            ("patch tokens", entry.patch_encoding, true),
        ];
        for (kind, e, stored) in kinds {
            if stored && e.codec != distillery::cache::codec::Codec::Float32 {
                lossy.push(format!("{} {kind} ({})", entry.name, e.codec.name()));
            }
        }
    }
    if !lossy.is_empty() {
        eprintln!(
            "note: errors are measured against the stored values, not float32, for {}; \
             extract with summary_codec = patch_codec = \"float32\" to measure against the \
             teachers' own outputs",
            lossy.join(", ")
        );
    }
    let scratch = tempfile_dir(&args.cache)?;
    let result = distillery::measure::measure(&args.cache, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let rows = result?;
    println!(
        "{:<8} {:<12} {:<7} {:<8} {:<8} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "teacher",
        "kind",
        "table",
        "codec",
        "compress",
        "B/image",
        "ratio",
        "cos mean",
        "cos min",
        "rel mean",
        "rel max",
        "Mval/s"
    );
    for m in &rows {
        println!(
            concat!(
                "{:<8} {:<12} {:<7} {:<8} {:<8} {:>10.0} {:>7.3} ",
                "{:>9.6} {:>9.6} {:>9.2e} {:>9.2e} {:>8.1}"
            ),
            m.teacher,
            m.kind,
            m.table_format,
            m.codec,
            m.compression,
            m.bytes_per_image,
            m.ratio_to_raw_f16,
            m.cosine_mean,
            m.cosine_worst,
            m.rel_error_mean,
            m.rel_error_worst,
            m.decode_mvalues_per_s
        );
    }
    if let Some(path) = args.json {
        let lines: Vec<String> = rows
            .iter()
            .map(|m| serde_json::to_string(m).expect("json"))
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A fresh local scratch directory for the measurement tables (the cache may be a URI).
fn tempfile_dir(cache: &Path) -> Result<PathBuf> {
    let name = cache.file_name().map(|n| n.to_string_lossy().into_owned());
    let dir = std::env::temp_dir().join(format!(
        "distillery-codecs-{}-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn run_add_teacher(args: AddTeacherArgs) -> Result<()> {
    let codec = |flag: &str, value: &str| {
        value
            .parse()
            .map_err(|e: String| anyhow::anyhow!("invalid --{flag}: {e}"))
    };
    let teacher = distillery::config::TeacherConfig {
        name: args.name,
        path: args.path,
        precision: args.precision,
        summary_codec: codec("summary-codec", &args.summary_codec)?,
        patch_codec: codec("patch-codec", &args.patch_codec)?,
        compression: args
            .compression
            .parse()
            .map_err(|e: String| anyhow::anyhow!("invalid --compression: {e}"))?,
    };
    Pipeline::check_teacher(&teacher)?;
    let entry = distillery::add_teacher::run(
        &args.cache,
        &teacher,
        &args.device,
        args.batch_size,
        &Bars::new(),
    )?;
    println!(
        "add-teacher: {} rows of {} aligned with the cache's views, {} on disk",
        entry.rows,
        entry.name,
        HumanBytes(entry.bytes)
    );
    println!("  table: {}", args.cache.join(&entry.table).display());
    Ok(())
}

fn run_commit(args: CommitArgs) -> Result<()> {
    let report = distillery::shards::commit(&args.output, &Bars::new())?;
    println!(
        "commit: {} shards joined: {} images, {} rows per teacher",
        report.shards, report.images, report.rows
    );
    println!("  cache: {}", report.output.display());
    let files = report.files;
    if files.linked + files.copied > 0 {
        println!(
            "  data files: {} hard-linked, {} copied (from another file system, or by the \
             object store)",
            files.linked, files.copied
        );
    }
    if args.remove_shards {
        let dir = extract::shards_dir(&args.output);
        cache::store::remove_dir_all(&dir)
            .with_context(|| format!("removing {}", dir.display()))?;
        println!("  removed {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::utc_time;

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_time(1_796_309_906), "2026-12-03T14:58:26Z");
    }
}
