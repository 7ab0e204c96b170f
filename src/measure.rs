//! `distillery codecs`: measures every storage codec on the features of a cache.
//!
//! For each teacher and feature kind, the stored features (best taken from a cache written
//! with `float32`) are re-encoded with every value type and compression, written as a
//! real table in each table format, and read back. Reported: bytes per image, the ratio
//! to raw float16, the mean and worst per-token cosine similarity and relative error
//! against the stored features, and decode throughput.

use std::path::Path;
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Schema;
use serde::Serialize;

use crate::cache::codec::{self, Codec, Compression, Encoding};
use crate::cache::{self, Manifest, TableReader, TableSink};
use crate::config::CacheFormat;
use crate::error::{Error, Result};

/// Rows encoded per batch.
const BATCH: usize = 256;

/// One measured (teacher, kind, table format, encoding).
#[derive(Debug, Clone, Serialize)]
pub struct CodecMeasure {
    pub teacher: String,
    pub kind: &'static str,
    pub table_format: &'static str,
    pub codec: &'static str,
    pub compression: &'static str,
    pub bytes_per_image: f64,
    /// Bytes over the bytes of the same values as raw float16.
    pub ratio_to_raw_f16: f64,
    pub cosine_mean: f64,
    pub cosine_worst: f64,
    pub rel_error_mean: f64,
    pub rel_error_worst: f64,
    /// Decoded values per second, reading the table back and decoding to float32.
    pub decode_mvalues_per_s: f64,
}

/// Measures every codec on every teacher of the cache at `dir`, using `scratch` for the
/// tables it writes.
///
/// # Errors
///
/// A cache that cannot be read, or a table that cannot be written in `scratch`.
pub fn measure(dir: &Path, scratch: &Path) -> Result<Vec<CodecMeasure>> {
    let manifest = Manifest::load(dir)?;
    let mut out = Vec::new();
    for entry in &manifest.teachers {
        let table = cache::open_teacher_table(dir, &manifest, entry)?;
        for feature in cache::feature_columns(table.shape, table.encodings) {
            let (kind, values, tokens) = (feature.column, feature.values, feature.tokens);
            let reference = read_feature(
                &entry.name,
                &table.reader,
                kind,
                feature.encoding,
                values,
                tokens,
            )?;
            for format in [CacheFormat::Lance, CacheFormat::Parquet] {
                for compression in [Compression::Native, Compression::BssZstd] {
                    for codec in Codec::ALL {
                        let encoding = Encoding { codec, compression };
                        let table = scratch.join(format!(
                            "{}-{kind}-{}-{}-{}.{}",
                            entry.name,
                            codec.name(),
                            compression.name(),
                            format.extension(),
                            format.extension()
                        ));
                        let mut m = measure_one(
                            &reference,
                            &table,
                            format,
                            encoding,
                            values,
                            tokens,
                            manifest.images,
                        )?;
                        m.teacher = entry.name.clone();
                        m.kind = kind;
                        out.push(m);
                        remove(&table);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn remove(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

fn read_feature(
    teacher: &str,
    reader: &TableReader,
    column: &str,
    encoding: Encoding,
    values: usize,
    tokens: usize,
) -> Result<Vec<f32>> {
    let columns = codec::columns(column, encoding);
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(reader.num_rows() * values);
    for batch in reader.scan(&names, BATCH)? {
        out.extend(
            codec::decode(&batch?, column, encoding, values, tokens).map_err(|message| {
                Error::Feature {
                    teacher: teacher.to_string(),
                    message,
                }
            })?,
        );
    }
    Ok(out)
}

fn measure_one(
    reference: &[f32],
    table: &Path,
    format: CacheFormat,
    encoding: Encoding,
    values: usize,
    tokens: usize,
    images: usize,
) -> Result<CodecMeasure> {
    let schema = std::sync::Arc::new(Schema::new(codec::fields("x", encoding, values, tokens)));
    let mut sink = TableSink::create(table, format, schema.clone())?;
    for rows in reference.chunks(BATCH * values) {
        let arrays: Vec<ArrayRef> = codec::encode(rows, encoding, values, tokens);
        sink.send(RecordBatch::try_new(schema.clone(), arrays)?)?;
    }
    let written = sink.finish()?;

    let started = Instant::now();
    let reader = TableReader::open(table, format)?;
    let decoded = read_feature("(measured copy)", &reader, "x", encoding, values, tokens)?;
    let seconds = started.elapsed().as_secs_f64();

    let dim = values / tokens;
    let mut cos = Vec::with_capacity(reference.len() / dim);
    let mut rel = Vec::with_capacity(reference.len() / dim);
    for (a, b) in reference.chunks(dim).zip(decoded.chunks(dim)) {
        let (mut dot, mut na, mut nb, mut diff) = (0f64, 0f64, 0f64, 0f64);
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            dot += x * y;
            na += x * x;
            nb += y * y;
            diff += (x - y) * (x - y);
        }
        cos.push(if na > 0.0 && nb > 0.0 {
            dot / (na.sqrt() * nb.sqrt())
        } else {
            1.0
        });
        rel.push(if na > 0.0 { (diff / na).sqrt() } else { 0.0 });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let raw_f16 = (reference.len() * 2) as f64;
    Ok(CodecMeasure {
        teacher: String::new(),
        kind: "",
        table_format: format.extension(),
        codec: encoding.codec.name(),
        compression: encoding.compression.name(),
        bytes_per_image: written.bytes as f64 / images.max(1) as f64,
        ratio_to_raw_f16: written.bytes as f64 / raw_f16,
        cosine_mean: mean(&cos),
        cosine_worst: cos.iter().copied().fold(1.0, f64::min),
        rel_error_mean: mean(&rel),
        rel_error_worst: rel.iter().copied().fold(0.0, f64::max),
        decode_mvalues_per_s: decoded.len() as f64 / seconds / 1e6,
    })
}
