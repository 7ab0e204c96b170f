//! Stage 3, `stats`: feature statistics per teacher and feature kind.
//!
//! The teacher tables are streamed batch by batch and every value is accumulated in
//! float64 with Welford's update, so memory does not grow with the cache. Per dimension
//! we keep the count, mean and (population) standard deviation, and per vector (a summary
//! or one patch token) its L2 norm. polars then derives the overall figures from the
//! per-dimension table and joins the norm figures in.

use std::path::Path;

use polars::prelude::*;

use crate::cache::{self, codec, FeatureColumn, Manifest};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Rows read per batch while streaming.
const SCAN_BATCH: usize = 256;

/// Streaming mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    m2: f64,
}

impl Moments {
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Population standard deviation (ddof = 0); 0 for fewer than two values.
    pub fn std(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }
}

/// Accumulated statistics of one feature kind of one teacher.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub teacher: String,
    /// `summary` or `patch_tokens`.
    pub kind: &'static str,
    pub per_dim: Vec<Moments>,
    pub norm: Moments,
    pub norm_min: f64,
    pub norm_max: f64,
}

impl FeatureStats {
    fn new(teacher: &str, kind: &'static str, dims: usize) -> Self {
        FeatureStats {
            teacher: teacher.to_string(),
            kind,
            per_dim: vec![Moments::default(); dims],
            norm: Moments::default(),
            norm_min: f64::INFINITY,
            norm_max: f64::NEG_INFINITY,
        }
    }

    /// Adds vectors of `per_dim.len()` values each, laid end to end.
    pub fn push_vectors(&mut self, values: &[f32]) {
        let dims = self.per_dim.len();
        for vector in values.chunks_exact(dims) {
            let mut sq = 0.0;
            for (m, v) in self.per_dim.iter_mut().zip(vector) {
                let x = f64::from(*v);
                m.push(x);
                sq += x * x;
            }
            let norm = sq.sqrt();
            self.norm.push(norm);
            self.norm_min = self.norm_min.min(norm);
            self.norm_max = self.norm_max.max(norm);
        }
    }
}

/// The two tables `stats` produces.
#[derive(Debug, Clone)]
pub struct StatsTables {
    /// teacher, kind, dim, count, mean, std.
    pub per_dim: DataFrame,
    /// teacher, kind, vectors, dims, count, mean, std, norm_mean, norm_std, norm_min,
    /// norm_max.
    pub overall: DataFrame,
}

/// File names of the Parquet outputs.
pub const PER_DIM_FILE: &str = "stats_per_dim.parquet";
pub const OVERALL_FILE: &str = "stats.parquet";

/// Computes the statistics of every teacher of the cache at `dir`.
///
/// # Errors
///
/// A cache that cannot be read.
pub fn compute(dir: &Path, progress: &dyn Progress) -> Result<StatsTables> {
    let manifest = Manifest::load(dir)?;
    let mut all = Vec::new();
    progress.begin("stats", (manifest.rows * manifest.teachers.len()) as u64);
    for entry in &manifest.teachers {
        let table = cache::open_teacher_table(dir, &manifest, entry)?;
        all.extend(teacher_stats(&entry.name, &table, progress)?);
    }
    progress.finish();
    tables(&all)
}

fn teacher_stats(
    name: &str,
    table: &cache::TeacherTable,
    progress: &dyn Progress,
) -> Result<Vec<FeatureStats>> {
    let mut kinds: Vec<(FeatureColumn, FeatureStats)> =
        cache::feature_columns(table.shape, table.encodings)
            .into_iter()
            .map(|f| (f, FeatureStats::new(name, f.column, f.dim())))
            .collect();
    let columns: Vec<String> = kinds
        .iter()
        .flat_map(|(f, _)| codec::columns(f.column, f.encoding))
        .collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    for batch in table.reader.scan(&names, SCAN_BATCH)? {
        let batch = batch?;
        for (f, stats) in kinds.iter_mut() {
            let data = codec::decode(&batch, f.column, f.encoding, f.values, f.tokens).map_err(
                |message| Error::Feature {
                    teacher: name.to_string(),
                    message,
                },
            )?;
            stats.push_vectors(&data);
        }
        progress.advance(batch.num_rows() as u64, 0);
    }
    Ok(kinds.into_iter().map(|(_, s)| s).collect())
}

/// Builds the per-dimension table, then lets polars derive the overall one.
fn tables(all: &[FeatureStats]) -> Result<StatsTables> {
    let mut teacher = Vec::new();
    let mut kind = Vec::new();
    let (mut dim, mut count, mut mean, mut std) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in all {
        for (d, m) in s.per_dim.iter().enumerate() {
            teacher.push(s.teacher.as_str());
            kind.push(s.kind);
            dim.push(d as u32);
            count.push(m.count);
            mean.push(m.mean);
            std.push(m.std());
        }
    }
    let per_dim = df!(
        "teacher" => teacher, "kind" => kind, "dim" => dim,
        "count" => count, "mean" => mean, "std" => std,
    )?;
    let norms = df!(
        "teacher" => all.iter().map(|s| s.teacher.as_str()).collect::<Vec<_>>(),
        "kind" => all.iter().map(|s| s.kind).collect::<Vec<_>>(),
        "vectors" => all.iter().map(|s| s.norm.count).collect::<Vec<_>>(),
        "norm_mean" => all.iter().map(|s| s.norm.mean).collect::<Vec<_>>(),
        "norm_std" => all.iter().map(|s| s.norm.std()).collect::<Vec<_>>(),
        "norm_min" => all.iter().map(|s| s.norm_min).collect::<Vec<_>>(),
        "norm_max" => all.iter().map(|s| s.norm_max).collect::<Vec<_>>(),
    )?;
    let overall = overall_table(&per_dim, norms)?;
    Ok(StatsTables { per_dim, overall })
}

/// Pools the per-dimension moments: mean = sum(n_d m_d) / N,
/// var = sum(n_d (s_d^2 + m_d^2)) / N - mean^2.
fn overall_table(per_dim: &DataFrame, norms: DataFrame) -> Result<DataFrame> {
    let n = col("count").cast(DataType::Float64);
    let total = n.clone().sum();
    let pooled_mean = (n.clone() * col("mean")).sum() / total.clone();
    let second = (n * (col("std").pow(2) + col("mean").pow(2))).sum() / total;
    let keys = [col("teacher"), col("kind")];
    let overall = per_dim.clone().lazy().group_by_stable(keys.clone()).agg([
        len().cast(DataType::UInt32).alias("dims"),
        col("count").sum().alias("count"),
        pooled_mean.clone().alias("mean"),
        (second - pooled_mean.pow(2)).sqrt().alias("std"),
    ]);
    let joined = norms
        .lazy()
        .join(overall, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .select([
            col("teacher"),
            col("kind"),
            col("vectors"),
            col("dims"),
            col("count"),
            col("mean"),
            col("std"),
            col("norm_mean"),
            col("norm_std"),
            col("norm_min"),
            col("norm_max"),
        ]);
    Ok(joined.collect()?)
}

/// Writes both tables as Parquet into `dir`.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Polars`] when a file cannot be written.
pub fn write(tables: &StatsTables, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, df) in [
        (PER_DIM_FILE, &tables.per_dim),
        (OVERALL_FILE, &tables.overall),
    ] {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        ParquetWriter::new(file).finish(&mut df.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_two_pass() {
        let xs = [1.5, -2.0, 3.25, 0.0, 10.0];
        let mut m = Moments::default();
        xs.iter().for_each(|x| m.push(*x));
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((m.mean - mean).abs() < 1e-12);
        assert!((m.std() - var.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn pooled_overall_equals_direct_computation() {
        let values: Vec<f32> = vec![1.0, 2.0, 3.0, 5.0, -1.0, 0.5];
        let mut s = FeatureStats::new("t", "summary", 2);
        s.push_vectors(&values);
        let t = tables(&[s]).unwrap();
        let all: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
        let mean = all.iter().sum::<f64>() / 6.0;
        let std = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
        let row = |name: &str| {
            t.overall
                .column(name)
                .unwrap()
                .f64()
                .unwrap()
                .get(0)
                .unwrap()
        };
        assert!((row("mean") - mean).abs() < 1e-12);
        assert!((row("std") - std).abs() < 1e-12);
        let norm0 = (1.0f64 + 4.0).sqrt();
        assert!((row("norm_min") - (1.0f64 + 0.25).sqrt()).abs() < 1e-12);
        assert!(row("norm_max") >= norm0);
    }
}
