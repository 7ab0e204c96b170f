//! Cache format version 1: table names, column names and Arrow schemas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::cache::codec::{self, Codec, Compression, Encoding};
use crate::config::CacheFormat;

/// Version of the cache format written by this code.
pub const FORMAT_VERSION: u32 = 2;

/// Versions this code reads: 1 differs from 2 only in Parquet tables, each a single file
/// where version 2 has a directory of parts.
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];

/// File name of the manifest inside a cache directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// File recording the last checkpoint of an extract run, in the directory it builds.
pub const JOURNAL_FILE: &str = "journal.json";

/// Where a cache is built before it is one (by `extract`, by `commit`): `<output>.partial`,
/// renamed into place when complete; on an object store, which has no rename, `<output>`
/// itself, made a cache by its manifest, written last.
pub fn partial_dir(output: &Path) -> PathBuf {
    if crate::cache::store::is_uri(output) {
        return output.to_path_buf();
    }
    let mut name = output.as_os_str().to_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

/// Column names of the images table.
pub mod images_columns {
    pub const ID: &str = "id";
    /// Path relative to a folder source, or the sample key of other sources.
    pub const PATH: &str = "path";
    pub const WIDTH: &str = "width";
    pub const HEIGHT: &str = "height";
    pub const LABEL: &str = "label";
}

/// Column names of a teacher table.
pub mod teacher_columns {
    pub const IMAGE_ID: &str = "image_id";
    pub const VIEW: &str = "view";
    pub const CROP_X: &str = "crop_x";
    pub const CROP_Y: &str = "crop_y";
    pub const CROP_W: &str = "crop_w";
    pub const CROP_H: &str = "crop_h";
    pub const FLIP: &str = "flip";
    pub const SUMMARY: &str = "summary";
    pub const PATCH_TOKENS: &str = "patch_tokens";
}

/// Schema metadata keys of a teacher table.
pub mod teacher_metadata {
    pub const FORMAT_VERSION: &str = "distillery:format_version";
    pub const TEACHER: &str = "distillery:teacher";
    pub const GRID_H: &str = "distillery:grid_h";
    pub const GRID_W: &str = "distillery:grid_w";
    pub const NUM_TOKENS: &str = "distillery:num_tokens";
    pub const PATCH_DIM: &str = "distillery:patch_dim";
    pub const SUMMARY_DIM: &str = "distillery:summary_dim";
    pub const SUMMARY_CODEC: &str = "distillery:summary_codec";
    pub const PATCH_CODEC: &str = "distillery:patch_tokens_codec";
    pub const COMPRESSION: &str = "distillery:compression";
}

/// Relative path of the images table.
pub fn images_table_path(format: CacheFormat) -> String {
    format!("images.{}", format.extension())
}

/// Relative path of a teacher's table.
pub fn teacher_table_path(teacher: &str, format: CacheFormat) -> String {
    format!("teachers/{teacher}.{}", format.extension())
}

/// Schema of the images table.
pub fn images_schema() -> SchemaRef {
    use images_columns::*;
    Arc::new(Schema::new(vec![
        Field::new(ID, DataType::UInt64, false),
        Field::new(PATH, DataType::Utf8, false),
        Field::new(WIDTH, DataType::UInt32, false),
        Field::new(HEIGHT, DataType::UInt32, false),
        Field::new(LABEL, DataType::Utf8, true),
    ]))
}

/// Shape of one teacher's features, as recorded in its table's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureShape {
    pub summary_dim: usize,
    pub grid_h: usize,
    pub grid_w: usize,
    pub patch_dim: usize,
}

impl FeatureShape {
    /// Patch tokens per view.
    pub fn num_tokens(&self) -> usize {
        self.grid_h * self.grid_w
    }

    /// Values in one row's `patch_tokens`.
    pub fn patch_values(&self) -> usize {
        self.num_tokens() * self.patch_dim
    }
}

/// The item field of the float16 fixed-size lists.
pub fn f16_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float16, true))
}

/// How a teacher table stores its two feature columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeatureEncodings {
    pub summary: Encoding,
    pub patch_tokens: Encoding,
}

/// Schema of a teacher table. A teacher without a summary (`summary_dim == 0`) has no
/// `summary` column; an int8 column is followed by its `<column>_scale`.
pub fn teacher_schema(teacher: &str, shape: FeatureShape, enc: FeatureEncodings) -> SchemaRef {
    use teacher_columns::*;
    let mut fields = vec![
        Field::new(IMAGE_ID, DataType::UInt64, false),
        Field::new(VIEW, DataType::UInt16, false),
        Field::new(CROP_X, DataType::UInt32, false),
        Field::new(CROP_Y, DataType::UInt32, false),
        Field::new(CROP_W, DataType::UInt32, false),
        Field::new(CROP_H, DataType::UInt32, false),
        Field::new(FLIP, DataType::Boolean, false),
    ];
    if shape.summary_dim > 0 {
        fields.extend(codec::fields(SUMMARY, enc.summary, shape.summary_dim, 1));
    }
    fields.extend(codec::fields(
        PATCH_TOKENS,
        enc.patch_tokens,
        shape.patch_values(),
        shape.num_tokens(),
    ));
    let m = |k: &str, v: String| (k.to_string(), v);
    let metadata = HashMap::from([
        m(teacher_metadata::FORMAT_VERSION, FORMAT_VERSION.to_string()),
        m(teacher_metadata::TEACHER, teacher.to_string()),
        m(teacher_metadata::GRID_H, shape.grid_h.to_string()),
        m(teacher_metadata::GRID_W, shape.grid_w.to_string()),
        m(teacher_metadata::NUM_TOKENS, shape.num_tokens().to_string()),
        m(teacher_metadata::PATCH_DIM, shape.patch_dim.to_string()),
        m(teacher_metadata::SUMMARY_DIM, shape.summary_dim.to_string()),
        m(
            teacher_metadata::SUMMARY_CODEC,
            enc.summary.codec.name().to_string(),
        ),
        m(
            teacher_metadata::PATCH_CODEC,
            enc.patch_tokens.codec.name().to_string(),
        ),
        m(
            teacher_metadata::COMPRESSION,
            enc.patch_tokens.compression.name().to_string(),
        ),
    ]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Reads the encodings back from a teacher table's schema metadata.
///
/// # Errors
///
/// A message naming an unknown codec or compression.
pub fn feature_encodings_of(schema: &Schema) -> Result<FeatureEncodings, String> {
    let meta = schema.metadata();
    let codec = |key: &str| -> Result<Codec, String> {
        meta.get(key)
            .map(|v| v.parse())
            .unwrap_or(Ok(Codec::Float16))
    };
    let compression = match meta.get(teacher_metadata::COMPRESSION).map(String::as_str) {
        None | Some("native") => Compression::Native,
        Some("bss-zstd") => Compression::BssZstd,
        Some(other) => return Err(format!("unknown compression {other:?}")),
    };
    Ok(FeatureEncodings {
        summary: Encoding {
            codec: codec(teacher_metadata::SUMMARY_CODEC)?,
            compression,
        },
        patch_tokens: Encoding {
            codec: codec(teacher_metadata::PATCH_CODEC)?,
            compression,
        },
    })
}

/// Reads the feature shape back from a teacher table's schema metadata.
///
/// # Errors
///
/// A message naming the missing or unparsable key.
pub fn feature_shape_of(schema: &Schema) -> Result<FeatureShape, String> {
    let get = |key: &str| -> Result<usize, String> {
        schema
            .metadata()
            .get(key)
            .ok_or_else(|| format!("schema metadata lacks {key}"))?
            .parse()
            .map_err(|e| format!("schema metadata {key}: {e}"))
    };
    let version = get(teacher_metadata::FORMAT_VERSION)?;
    if !READABLE_VERSIONS.contains(&(version as u32)) {
        return Err(format!(
            "format version {version} is not supported (this build reads {READABLE_VERSIONS:?})"
        ));
    }
    Ok(FeatureShape {
        summary_dim: get(teacher_metadata::SUMMARY_DIM)?,
        grid_h: get(teacher_metadata::GRID_H)?,
        grid_w: get(teacher_metadata::GRID_W)?,
        patch_dim: get(teacher_metadata::PATCH_DIM)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_round_trips_through_schema_metadata() {
        let shape = FeatureShape {
            summary_dim: 32,
            grid_h: 4,
            grid_w: 5,
            patch_dim: 64,
        };
        let schema = teacher_schema("clip", shape, FeatureEncodings::default());
        assert_eq!(feature_shape_of(&schema).unwrap(), shape);
        assert_eq!(
            feature_encodings_of(&schema).unwrap(),
            FeatureEncodings::default()
        );
        let field = schema.field_with_name("patch_tokens").unwrap();
        assert_eq!(
            field.data_type(),
            &DataType::FixedSizeList(f16_item_field(), 4 * 5 * 64)
        );
    }

    #[test]
    fn teacher_without_summary_has_no_summary_column() {
        let shape = FeatureShape {
            summary_dim: 0,
            grid_h: 4,
            grid_w: 4,
            patch_dim: 256,
        };
        let schema = teacher_schema("sam", shape, FeatureEncodings::default());
        assert!(schema.field_with_name("summary").is_err());
    }
}

/// One feature column of a teacher table, with what it takes to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureColumn {
    /// Column name: `summary` or `patch_tokens`, also the feature kind's name.
    pub column: &'static str,
    pub encoding: Encoding,
    /// Values per row.
    pub values: usize,
    /// Vectors (tokens) per row: 1 for the summary, T for patch tokens.
    pub tokens: usize,
}

impl FeatureColumn {
    /// Width of each vector.
    pub fn dim(&self) -> usize {
        self.values / self.tokens.max(1)
    }
}

/// The feature columns of a teacher table: the summary (when it has one), then the
/// patch tokens.
pub fn feature_columns(shape: FeatureShape, enc: FeatureEncodings) -> Vec<FeatureColumn> {
    let mut out = Vec::with_capacity(2);
    if shape.summary_dim > 0 {
        out.push(FeatureColumn {
            column: teacher_columns::SUMMARY,
            encoding: enc.summary,
            values: shape.summary_dim,
            tokens: 1,
        });
    }
    out.push(FeatureColumn {
        column: teacher_columns::PATCH_TOKENS,
        encoding: enc.patch_tokens,
        values: shape.patch_values(),
        tokens: shape.num_tokens(),
    });
    out
}
