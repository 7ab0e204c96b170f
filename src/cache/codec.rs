//! Storage codecs of feature columns: value type and compression, chosen per teacher and
//! per feature kind, each readable from Python with a few lines (see `schemas/`).
//!
//! Value types: `float32`, `float16` (default), `bfloat16` (stored as its uint16 bit
//! pattern), and `int8` with one float32 scale per token (`<column>_scale`, the token's
//! largest magnitude over 127). Compression: `native` leaves the fixed-size list to the
//! table format (Parquet compresses it with zstd; Lance 14 stores such lists without
//! general compression), `bss-zstd` stores each row as one binary value: the values'
//! bytes split into byte planes (byte-stream split), then zstd.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Int8Type, UInt16Type};
use arrow_array::{Array, ArrayRef, BinaryArray, FixedSizeListArray, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType, Field};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

/// zstd level of `bss-zstd`.
pub const ZSTD_LEVEL: i32 = 3;

/// Value type of a stored feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Float32,
    #[default]
    Float16,
    Bfloat16,
    Int8,
}

/// Compression of a stored feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    #[default]
    Native,
    BssZstd,
}

/// How one feature column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Encoding {
    pub codec: Codec,
    pub compression: Compression,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::Float32, Codec::Float16, Codec::Bfloat16, Codec::Int8];

    pub fn name(self) -> &'static str {
        match self {
            Codec::Float32 => "float32",
            Codec::Float16 => "float16",
            Codec::Bfloat16 => "bfloat16",
            Codec::Int8 => "int8",
        }
    }

    /// Bytes per stored value.
    pub fn width(self) -> usize {
        match self {
            Codec::Float32 => 4,
            Codec::Float16 | Codec::Bfloat16 => 2,
            Codec::Int8 => 1,
        }
    }

    fn value_type(self) -> DataType {
        match self {
            Codec::Float32 => DataType::Float32,
            Codec::Float16 => DataType::Float16,
            Codec::Bfloat16 => DataType::UInt16,
            Codec::Int8 => DataType::Int8,
        }
    }
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Native => "native",
            Compression::BssZstd => "bss-zstd",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Compression::Native, Compression::BssZstd]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("compression {s:?} is not native or bss-zstd"))
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("codec {s:?} is not float32, float16, bfloat16 or int8"))
    }
}

/// Name of the per-token scale column of an int8 feature column.
pub fn scale_column(column: &str) -> String {
    format!("{column}_scale")
}

/// The columns that hold feature `column` stored as `encoding`.
pub fn columns(column: &str, encoding: Encoding) -> Vec<String> {
    let mut out = vec![column.to_string()];
    if encoding.codec == Codec::Int8 {
        out.push(scale_column(column));
    }
    out
}

/// The Arrow fields of feature `column` with `values` values per row in `tokens` tokens.
pub fn fields(column: &str, encoding: Encoding, values: usize, tokens: usize) -> Vec<Field> {
    let item = Arc::new(Field::new("item", encoding.codec.value_type(), true));
    let data_type = match encoding.compression {
        Compression::Native => DataType::FixedSizeList(item, values as i32),
        Compression::BssZstd => DataType::Binary,
    };
    let mut main = Field::new(column, data_type, false);
    if encoding.compression == Compression::Native {
        // Honoured by Lance where its encoder supports it for this layout.
        main = main.with_metadata(
            [
                ("lance-encoding:compression".to_string(), "zstd".to_string()),
                (
                    "lance-encoding:compression-level".to_string(),
                    ZSTD_LEVEL.to_string(),
                ),
            ]
            .into(),
        );
    }
    let mut out = vec![main];
    if encoding.codec == Codec::Int8 {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        out.push(Field::new(
            scale_column(column),
            DataType::FixedSizeList(item, tokens as i32),
            false,
        ));
    }
    out
}

/// Encodes `rows` rows of `values` float32 values each (laid end to end), `tokens` tokens
/// per row, into the arrays of [`fields`], in order.
pub fn encode(data: &[f32], encoding: Encoding, values: usize, tokens: usize) -> Vec<ArrayRef> {
    assert_eq!(data.len() % values.max(1), 0, "data is not whole rows");
    let dim = values / tokens.max(1);
    let (bytes, scales) = quantise(data, encoding.codec, dim);
    let width = encoding.codec.width();
    let main: ArrayRef = match encoding.compression {
        Compression::Native => Arc::new(fixed_list(&bytes, encoding.codec, values)),
        Compression::BssZstd => {
            let row_bytes = values * width;
            let blobs: Vec<Vec<u8>> = bytes
                .chunks(row_bytes.max(1))
                .map(|row| {
                    let split = byte_stream_split(row, width);
                    zstd::bulk::compress(&split, ZSTD_LEVEL).expect("zstd compresses in memory")
                })
                .collect();
            Arc::new(BinaryArray::from_iter_values(blobs.iter()))
        }
    };
    let mut out = vec![main];
    if let Some(scales) = scales {
        let values = Arc::new(PrimitiveArray::<Float32Type>::from(scales));
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        out.push(Arc::new(
            FixedSizeListArray::try_new(item, tokens as i32, values, None).expect("scale list"),
        ));
    }
    out
}

/// The stored bytes (little endian) and, for int8, one scale per `dim` values.
fn quantise(data: &[f32], codec: Codec, dim: usize) -> (Vec<u8>, Option<Vec<f32>>) {
    match codec {
        Codec::Float32 => (data.iter().flat_map(|v| v.to_le_bytes()).collect(), None),
        Codec::Float16 => (
            data.iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
            None,
        ),
        Codec::Bfloat16 => (
            data.iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
            None,
        ),
        Codec::Int8 => {
            let mut bytes = Vec::with_capacity(data.len());
            let mut scales = Vec::with_capacity(data.len() / dim.max(1));
            for token in data.chunks(dim.max(1)) {
                let max = token.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                scales.push(scale);
                bytes.extend(
                    token
                        .iter()
                        .map(|v| ((v / scale).round().clamp(-127.0, 127.0) as i8) as u8),
                );
            }
            (bytes, Some(scales))
        }
    }
}

fn fixed_list(bytes: &[u8], codec: Codec, values: usize) -> FixedSizeListArray {
    let item = Arc::new(Field::new("item", codec.value_type(), true));
    let buffer = arrow_buffer::Buffer::from(bytes.to_vec());
    let n = bytes.len() / codec.width();
    let values_array: ArrayRef = match codec {
        Codec::Float32 => Arc::new(PrimitiveArray::<Float32Type>::new(
            arrow_buffer::ScalarBuffer::new(buffer, 0, n),
            None,
        )),
        Codec::Float16 => Arc::new(PrimitiveArray::<Float16Type>::new(
            arrow_buffer::ScalarBuffer::new(buffer, 0, n),
            None,
        )),
        Codec::Bfloat16 => Arc::new(PrimitiveArray::<UInt16Type>::new(
            arrow_buffer::ScalarBuffer::new(buffer, 0, n),
            None,
        )),
        Codec::Int8 => Arc::new(PrimitiveArray::<Int8Type>::new(
            arrow_buffer::ScalarBuffer::new(buffer, 0, n),
            None,
        )),
    };
    FixedSizeListArray::try_new(item, values as i32, values_array, None).expect("fixed-size list")
}

/// Splits `n` values of `width` bytes into `width` planes: all first bytes, then all
/// second bytes, and so on.
pub fn byte_stream_split(bytes: &[u8], width: usize) -> Vec<u8> {
    let n = bytes.len() / width;
    let mut out = vec![0u8; bytes.len()];
    for (i, value) in bytes.chunks_exact(width).enumerate() {
        for (b, byte) in value.iter().enumerate() {
            out[b * n + i] = *byte;
        }
    }
    out
}

/// Inverse of [`byte_stream_split`].
pub fn byte_stream_join(planes: &[u8], width: usize) -> Vec<u8> {
    let n = planes.len() / width;
    let mut out = vec![0u8; planes.len()];
    for b in 0..width {
        for i in 0..n {
            out[i * width + b] = planes[b * n + i];
        }
    }
    out
}

/// Decodes feature `column` of every row of `batch` to float32, laid end to end.
///
/// # Errors
///
/// A message when the column is missing or not stored as `encoding` says.
pub fn decode(
    batch: &RecordBatch,
    column: &str,
    encoding: Encoding,
    values: usize,
    tokens: usize,
) -> Result<Vec<f32>, String> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| format!("no column {column}"))?;
    let width = encoding.codec.width();
    let bytes: Vec<u8> = match encoding.compression {
        Compression::Native => native_bytes(array.as_ref(), encoding.codec)?,
        Compression::BssZstd => {
            let blobs = array
                .as_binary_opt::<i32>()
                .ok_or_else(|| format!("column {column} is not binary (bss-zstd)"))?;
            let mut out = Vec::with_capacity(blobs.len() * values * width);
            for blob in blobs.iter() {
                let blob = blob.ok_or_else(|| format!("column {column} has a null row"))?;
                let planes = zstd::bulk::decompress(blob, values * width)
                    .map_err(|e| format!("column {column}: zstd: {e}"))?;
                if planes.len() != values * width {
                    return Err(format!(
                        "column {column}: a row holds {} bytes, expected {}",
                        planes.len(),
                        values * width
                    ));
                }
                out.extend(byte_stream_join(&planes, width));
            }
            out
        }
    };
    let mut decoded = widen(&bytes, encoding.codec);
    if encoding.codec == Codec::Int8 {
        let scales = scales_of(batch, column)?;
        let dim = values / tokens.max(1);
        for (token, scale) in decoded.chunks_mut(dim.max(1)).zip(scales) {
            token.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(decoded)
}

fn native_bytes(array: &dyn Array, codec: Codec) -> Result<Vec<u8>, String> {
    let list = array
        .as_fixed_size_list_opt()
        .ok_or("not a fixed-size list")?;
    let width = list.value_length() as usize * codec.width();
    let values = list.values();
    if values.data_type() != &codec.value_type() {
        return Err(format!(
            "values are {}, expected {} for {}",
            values.data_type(),
            codec.value_type(),
            codec.name()
        ));
    }
    let data = values.to_data();
    let buffer = &data.buffers()[0];
    let start = (data.offset() + list.offset() * list.value_length() as usize) * codec.width();
    Ok(buffer.as_slice()[start..start + list.len() * width].to_vec())
}

fn widen(bytes: &[u8], codec: Codec) -> Vec<f32> {
    match codec {
        Codec::Float32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Codec::Float16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Codec::Bfloat16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Codec::Int8 => bytes.iter().map(|b| f32::from(*b as i8)).collect(),
    }
}

fn scales_of(batch: &RecordBatch, column: &str) -> Result<Vec<f32>, String> {
    let name = scale_column(column);
    let list = batch
        .column_by_name(&name)
        .and_then(|c| c.as_fixed_size_list_opt().cloned())
        .ok_or_else(|| format!("int8 column {column} has no {name} column"))?;
    let values = list.values().as_primitive::<Float32Type>();
    let n = list.value_length() as usize;
    let start = list.offset() * n;
    Ok(values.values()[start..start + list.len() * n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Schema;

    fn gaussian(n: usize) -> Vec<f32> {
        // A fixed pseudo-random sequence, roughly normal (sum of uniforms).
        let mut state = 12345u64;
        (0..n)
            .map(|_| {
                let mut s = 0.0;
                for _ in 0..4 {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    s += (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                }
                s
            })
            .collect()
    }

    fn round_trip(encoding: Encoding, data: &[f32], values: usize, tokens: usize) -> Vec<f32> {
        let arrays = encode(data, encoding, values, tokens);
        let fields = fields("x", encoding, values, tokens);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        decode(&batch, "x", encoding, values, tokens).unwrap()
    }

    #[test]
    fn every_codec_round_trips_within_its_precision() {
        let (tokens, dim, rows) = (4, 16, 3);
        let data = gaussian(rows * tokens * dim);
        for compression in [Compression::Native, Compression::BssZstd] {
            for (codec, tol) in [
                (Codec::Float32, 0.0),
                (Codec::Float16, 1e-3),
                (Codec::Bfloat16, 8e-3),
                (Codec::Int8, 0.0),
            ] {
                let e = Encoding { codec, compression };
                let back = round_trip(e, &data, tokens * dim, tokens);
                assert_eq!(back.len(), data.len());
                if codec == Codec::Int8 {
                    // Error at most half a step of the token's scale.
                    for (t, (a, b)) in data.chunks(dim).zip(back.chunks(dim)).enumerate() {
                        let step = a.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                        for (x, y) in a.iter().zip(b) {
                            assert!((x - y).abs() <= step * 0.5 + 1e-6, "token {t}: {x} vs {y}");
                        }
                    }
                } else {
                    for (x, y) in data.iter().zip(&back) {
                        assert!(
                            (x - y).abs() <= tol * x.abs().max(1e-3),
                            "{codec:?}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bss_zstd_holds_exactly_the_native_values() {
        let data = gaussian(2 * 64);
        for codec in Codec::ALL {
            let native = round_trip(
                Encoding {
                    codec,
                    compression: Compression::Native,
                },
                &data,
                64,
                4,
            );
            let packed = round_trip(
                Encoding {
                    codec,
                    compression: Compression::BssZstd,
                },
                &data,
                64,
                4,
            );
            assert_eq!(native, packed, "{codec:?}");
        }
    }

    #[test]
    fn byte_stream_split_is_inverted_by_join() {
        let bytes: Vec<u8> = (0..24).collect();
        let split = byte_stream_split(&bytes, 4);
        assert_eq!(&split[..6], &[0, 4, 8, 12, 16, 20]);
        assert_eq!(byte_stream_join(&split, 4), bytes);
    }
}
