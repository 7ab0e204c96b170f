//! Pipeline files: the TOML that drives `extract`, `train` and `stats`.
//!
//! A pipeline file gives the defaults; command-line flags override single values; the
//! resolved pipeline is validated once here and written into the cache manifest. Relative
//! paths are taken relative to the working directory of the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::codec::{Codec, Compression, Encoding};
use crate::error::{Error, Result};

/// A whole pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Where the images come from.
    pub source: SourceConfig,
    /// How views are drawn and where the cache goes.
    pub extract: ExtractConfig,
    /// The teachers, in the order their tables are written.
    #[serde(rename = "teacher")]
    pub teachers: Vec<TeacherConfig>,
    /// How the student is trained from the cache.
    #[serde(default)]
    pub train: TrainConfig,
}

/// The image source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Layout of the source (see [`crate::sources`]); `folder` by default.
    #[serde(default)]
    pub kind: SourceKind,
    /// The folder, file list, tar shard (or folder of shards), or image table.
    pub path: PathBuf,
    /// `table`: the image column (binary, or a struct with `bytes`); default `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `table`: the label column; default `label` when the table has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// `table`: an integer column to use as image id instead of a hash of the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
}

/// Layouts of image sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A folder of image files; subfolders are labels.
    #[default]
    Folder,
    /// A CSV or Parquet file list (`path`, optional `label`, `id`).
    List,
    /// WebDataset tar shards.
    Webdataset,
    /// A Parquet file or Lance dataset with an image-bytes column.
    Table,
}

impl SourceKind {
    /// The name used in pipeline files and in stable ids.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Folder => "folder",
            SourceKind::List => "list",
            SourceKind::Webdataset => "webdataset",
            SourceKind::Table => "table",
        }
    }
}

impl std::str::FromStr for SourceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [
            SourceKind::Folder,
            SourceKind::List,
            SourceKind::Webdataset,
            SourceKind::Table,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown source kind {s:?}; expected folder, list, webdataset or table"
            ))
        })
    }
}

/// On-disk format of the cache tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheFormat {
    /// Lance datasets (`*.lance` directories), the default.
    #[default]
    Lance,
    /// Directories of Parquet parts (`*.parquet/part-NNNNN.parquet`).
    Parquet,
}

impl CacheFormat {
    /// File extension of tables in this format.
    pub fn extension(self) -> &'static str {
        match self {
            CacheFormat::Lance => "lance",
            CacheFormat::Parquet => "parquet",
        }
    }
}

impl std::str::FromStr for CacheFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lance" => Ok(CacheFormat::Lance),
            "parquet" => Ok(CacheFormat::Parquet),
            other => Err(Error::Config(format!(
                "unknown cache format {other:?}; expected \"lance\" or \"parquet\""
            ))),
        }
    }
}

/// Settings of `extract`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Cache directory to create.
    pub output: PathBuf,
    /// Table format.
    #[serde(default)]
    pub format: CacheFormat,
    /// Augmented views drawn per image.
    #[serde(default = "default_views")]
    pub views_per_image: usize,
    /// Seed of the view generator.
    #[serde(default)]
    pub seed: u64,
    /// Views per teacher forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Torch device: `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Random resized crop: range of the crop's area as a fraction of the image.
    #[serde(default = "default_crop_scale")]
    pub crop_scale: [f64; 2],
    /// Random resized crop: range of the crop's aspect ratio (width / height).
    #[serde(default = "default_crop_ratio")]
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip per view.
    #[serde(default = "default_flip")]
    pub flip_probability: f64,
    /// Replace an existing cache at `output`.
    #[serde(default)]
    pub overwrite: bool,
    /// Source records between checkpoints: a killed run resumes from the last one. A
    /// checkpoint is taken at the first chunk boundary (batch_size / views_per_image
    /// images) after each checkpoint_every records.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// `views` (default): K augmented views per image. `full-image`: each teacher runs once
    /// on the whole image (one row per image, needs views_per_image = 1), and `train`
    /// crops its patch-token map to every fresh view it draws (ReLabel-style).
    #[serde(default)]
    pub patch_mode: PatchMode,
    /// `k/N`: process only the k-th of N deterministic slices of the source, into
    /// `<output>.shards/k-of-N`; `distillery commit` joins the finished shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// What the cached rows are: augmented views, or whole images whose maps train crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PatchMode {
    #[default]
    Views,
    FullImage,
}

/// One of `count` contiguous slices of a source, written `"k/N"` (in pipeline files and
/// manifests; manifests of format 1 and 2 may hold `{index, count}`, also read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}", self.index, self.count))
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Fields { index: usize, count: usize },
        }
        match Written::deserialize(d)? {
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Written::Fields { index, count } => format!("{index}/{count}")
                .parse()
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Shard {
    /// The records of this shard among `total`, as a range: contiguous, in source order.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        (self.index * total / self.count)..((self.index + 1) * total / self.count)
    }

    /// Directory name of the shard under `<output>.shards`.
    pub fn dir_name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("shard {s:?} is not k/N with 0 <= k < N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// One teacher: a TorchScript file exported by `pipelines/export_teacher.py`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// Name of the teacher in the cache (its table is `teachers/<name>.<format>`).
    pub name: String,
    /// The TorchScript file; its sidecar is `<path>.json`.
    pub path: PathBuf,
    /// Inference precision: `fp32`, `fp16` or `bf16` (the half precisions are meant for a
    /// GPU; they also run, slowly, on the CPU).
    #[serde(default = "default_precision")]
    pub precision: String,
    /// Stored value type of the summary: float32, float16 (default), bfloat16, int8.
    #[serde(default)]
    pub summary_codec: Codec,
    /// Stored value type of the patch tokens: float32, float16 (default), bfloat16, int8
    /// (with a float32 scale per token).
    #[serde(default)]
    pub patch_codec: Codec,
    /// Compression of both feature columns: `native` (default) or `bss-zstd`.
    #[serde(default)]
    pub compression: Compression,
}

impl TeacherConfig {
    /// How the summary column is stored.
    pub fn summary_encoding(&self) -> Encoding {
        Encoding {
            codec: self.summary_codec,
            compression: self.compression,
        }
    }

    /// How the patch-token column is stored.
    pub fn patch_encoding(&self) -> Encoding {
        Encoding {
            codec: self.patch_codec,
            compression: self.compression,
        }
    }
}

/// Settings of `train`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Cache to train from; defaults to `extract.output`.
    pub cache: Option<PathBuf>,
    /// Directory for the checkpoint and the loss log.
    pub output: PathBuf,
    /// Student architecture.
    pub student: StudentConfig,
    /// Passes over the cache.
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    /// Decoupled weight decay of AdamW.
    pub weight_decay: f64,
    /// Steps of linear warm-up before the cosine decay.
    pub warmup_steps: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Torch device.
    pub device: String,
    /// Loss weights per teacher name; teachers not listed get weight 1 for both terms.
    pub loss: BTreeMap<String, LossWeights>,
    /// Replace the checkpoint and loss log of an earlier run in `output`.
    pub overwrite: bool,
}

/// The student ViT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudentConfig {
    /// Input resolution (square), in pixels.
    pub image_size: usize,
    /// Patch size, in pixels.
    pub patch_size: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Embedding width.
    pub width: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLP in each block, as a multiple of `width`.
    pub mlp_ratio: f64,
    /// Hidden width of each adaptor MLP.
    pub adaptor_hidden: usize,
}

/// Per-teacher loss weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossWeights {
    /// Weight of the summary term (cosine distance).
    pub summary: f64,
    /// Weight of the patch-token term (0.9 cosine + 0.1 smooth-L1).
    pub patch: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            summary: 1.0,
            patch: 1.0,
        }
    }
}

impl StudentConfig {
    /// The tiny preset: a ViT small enough to train on a CPU in seconds.
    pub fn tiny() -> Self {
        StudentConfig {
            image_size: 64,
            patch_size: 8,
            depth: 4,
            width: 96,
            heads: 3,
            mlp_ratio: 4.0,
            adaptor_hidden: 256,
        }
    }

    /// Tokens along one side of the student's patch grid.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    fn validate(&self) -> Result<()> {
        let nonzero = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("depth", self.depth),
            ("width", self.width),
            ("heads", self.heads),
            ("adaptor_hidden", self.adaptor_hidden),
        ];
        for (name, value) in nonzero {
            if value == 0 {
                return Err(Error::Config(format!(
                    "train.student.{name} must be positive"
                )));
            }
        }
        if self.image_size % self.patch_size != 0 {
            return Err(Error::Config(format!(
                "train.student.image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        if self.width % self.heads != 0 {
            return Err(Error::Config(format!(
                "train.student.width {} is not divisible by heads {}",
                self.width, self.heads
            )));
        }
        Ok(())
    }
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig::tiny()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            cache: None,
            output: PathBuf::from("student"),
            student: StudentConfig::default(),
            epochs: 2,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 0.05,
            warmup_steps: 5,
            seed: 0,
            device: default_device(),
            loss: BTreeMap::new(),
            overwrite: false,
        }
    }
}

impl TrainConfig {
    /// Checks ranges once, before any work.
    ///
    /// # Errors
    ///
    /// Names the first value that is out of range.
    pub fn validate(&self) -> Result<()> {
        self.student.validate()?;
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::Config(
                "train.epochs and train.batch_size must be positive".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::Config(format!(
                "train.lr {} must be positive",
                self.lr
            )));
        }
        Ok(())
    }
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    ///
    /// # Errors
    ///
    /// [`Error::Pipeline`] naming the file when it is missing, is not valid TOML, has an
    /// unknown key or fails validation.
    pub fn load(path: &Path) -> Result<Pipeline> {
        Self::load_with(path, |_| {})
    }

    /// Reads a pipeline file, applies `overrides` (the command line's flags), and
    /// validates the result once: a flag can correct the file's value.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::load`].
    pub fn load_with(path: &Path, overrides: impl FnOnce(&mut Pipeline)) -> Result<Pipeline> {
        let fail = |message: String| Error::Pipeline {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut pipeline: Pipeline = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        overrides(&mut pipeline);
        pipeline.validate().map_err(|e| fail(e.to_string()))?;
        Ok(pipeline)
    }

    /// Checks the values that serde cannot.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let e = &self.extract;
        if e.views_per_image == 0 || e.views_per_image > u16::MAX as usize {
            return Err(Error::Config(format!(
                "extract.views_per_image {} must be between 1 and 65535",
                e.views_per_image
            )));
        }
        if e.batch_size == 0 {
            return Err(Error::Config("extract.batch_size must be positive".into()));
        }
        if e.checkpoint_every == 0 {
            return Err(Error::Config(
                "extract.checkpoint_every must be positive (source records between checkpoints)"
                    .into(),
            ));
        }
        if e.patch_mode == PatchMode::FullImage && e.views_per_image != 1 {
            return Err(Error::Config(format!(
                "extract.patch_mode = \"full-image\" stores one row per image; \
                 views_per_image is {}, set it to 1",
                e.views_per_image
            )));
        }
        check_range("extract.crop_scale", e.crop_scale, 0.0, 1.0)?;
        check_range("extract.crop_ratio", e.crop_ratio, 0.0, f64::INFINITY)?;
        if !(0.0..=1.0).contains(&e.flip_probability) {
            return Err(Error::Config(format!(
                "extract.flip_probability {} is not in [0, 1]",
                e.flip_probability
            )));
        }
        self.validate_teachers()?;
        self.train.validate()
    }

    /// Checks one teacher entry's name and precision.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the teacher.
    pub fn check_teacher(t: &TeacherConfig) -> Result<()> {
        let valid = !t.name.is_empty()
            && t.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(Error::Config(format!(
                "teacher name {:?} must be non-empty ASCII letters, digits, '_' or '-'",
                t.name
            )));
        }
        if !["fp32", "fp16", "bf16"].contains(&t.precision.as_str()) {
            return Err(Error::Config(format!(
                "teacher {}: precision {:?} is not fp32, fp16 or bf16",
                t.name, t.precision
            )));
        }
        Ok(())
    }

    fn validate_teachers(&self) -> Result<()> {
        if self.teachers.is_empty() {
            return Err(Error::Config("no [[teacher]] is given".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.teachers {
            Self::check_teacher(t)?;
            if !seen.insert(t.name.as_str()) {
                return Err(Error::Config(format!("teacher {} is given twice", t.name)));
            }
        }
        for name in self.train.loss.keys() {
            if !seen.contains(name.as_str()) {
                return Err(Error::Config(format!(
                    "train.loss.{name} names no teacher of this pipeline"
                )));
            }
        }
        Ok(())
    }

    /// The cache that `train` and `stats` read by default.
    pub fn cache_dir(&self) -> PathBuf {
        self.train
            .cache
            .clone()
            .unwrap_or_else(|| self.extract.output.clone())
    }
}

fn check_range(name: &str, range: [f64; 2], lo: f64, hi: f64) -> Result<()> {
    let ok = range[0] > lo && range[0] <= range[1] && range[1] <= hi && range[1].is_finite();
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} {range:?} must be an increasing pair in ({lo}, {hi}]"
        )))
    }
}

/// Appends to `out` the dotted names (under `prefix`) of the settings in which two
/// serialised pipelines differ.
pub fn json_differences(
    prefix: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                let null = Value::Null;
                json_differences(
                    &name,
                    x.get(key).unwrap_or(&null),
                    y.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                json_differences(&format!("{prefix}[{i}]"), x, y, out);
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

fn default_checkpoint_every() -> usize {
    1024
}
fn default_views() -> usize {
    2
}
fn default_batch() -> usize {
    32
}
fn default_device() -> String {
    "cpu".into()
}
fn default_precision() -> String {
    "fp32".into()
}
fn default_crop_scale() -> [f64; 2] {
    [0.35, 1.0]
}
fn default_crop_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}
fn default_flip() -> f64 {
    0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [source]
        path = "photos"
        [extract]
        output = "cache"
        [[teacher]]
        name = "dinov2"
        path = "dinov2.pt"
    "#;

    #[test]
    fn minimal_pipeline_gets_defaults() {
        let p: Pipeline = toml::from_str(MINIMAL).unwrap();
        p.validate().unwrap();
        assert_eq!(p.extract.views_per_image, 2);
        assert_eq!(p.extract.format, CacheFormat::Lance);
        assert_eq!(p.train.student, StudentConfig::tiny());
        assert_eq!(p.cache_dir(), PathBuf::from("cache"));
    }

    /// `pipelines/reference.toml` parses to the defaults and names every key there is,
    /// set or shown commented out.
    #[test]
    fn the_reference_pipeline_lists_every_key_at_its_default() {
        let text = include_str!("../pipelines/reference.toml");
        let reference: Pipeline = toml::from_str(text).unwrap();
        reference.validate().unwrap();
        let mut defaults: Pipeline = toml::from_str(
            r#"
            [source]
            path = "photos"
            [extract]
            output = "cache"
            [[teacher]]
            name = "clip"
            path = "teachers/clip.pt"
            "#,
        )
        .unwrap();
        defaults
            .train
            .loss
            .insert("clip".into(), LossWeights::default());
        let json = |p: &Pipeline| serde_json::to_value(p).unwrap();
        let mut differing = Vec::new();
        json_differences("", &json(&defaults), &json(&reference), &mut differing);
        assert!(differing.is_empty(), "not at the default: {differing:?}");

        // The keys shown commented out parse and validate too, once uncommented.
        let is_key = |line: &str| {
            line.split_once(" = ")
                .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        };
        let uncommented: Vec<&str> = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if is_key(rest) => rest,
                _ => line,
            })
            .collect();
        let all: Pipeline = toml::from_str(&uncommented.join("\n")).unwrap();
        all.validate().unwrap();
        assert_eq!(all.extract.shard, Some(Shard { index: 0, count: 4 }));

        // Every optional key, set so that it serialises, must appear in the file.
        defaults.source.column = Some("image".into());
        defaults.source.label_column = Some("label".into());
        defaults.source.id_column = Some("id".into());
        defaults.extract.shard = Some(Shard { index: 0, count: 4 });
        defaults.train.cache = Some("cache".into());
        let mut leaves = Vec::new();
        leaf_keys("", &json(&defaults), &mut leaves);
        // The file's keys as dotted paths, under the table header above each.
        let mut listed = std::collections::BTreeSet::new();
        let mut table = String::new();
        for line in text.lines() {
            let line = line.trim_start_matches("# ").trim();
            if let Some(header) = line.strip_prefix('[') {
                table = header.trim_matches(|c| c == '[' || c == ']').to_string();
            } else if let Some((key, _)) = line.split_once(" = ") {
                listed.insert(format!("{table}.{key}"));
            }
        }
        // A key given as one value (shard = "k/N") covers the fields it serialises to.
        let covered = |k: &String| {
            listed.contains(k) || listed.iter().any(|l| k.starts_with(&format!("{l}.")))
        };
        let missing: Vec<&String> = leaves.iter().filter(|k| !covered(k)).collect();
        assert!(
            missing.is_empty(),
            "not in pipelines/reference.toml: {missing:?}"
        );
    }

    /// The dotted paths of the leaves of a JSON value, array indices dropped.
    fn leaf_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaf_keys(&name, v, out);
                }
            }
            serde_json::Value::Array(items) if items.iter().all(|v| v.is_object()) => {
                for v in items {
                    leaf_keys(prefix, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn a_shard_is_read_as_k_of_n_text_or_as_fields() {
        let text = MINIMAL.replace("output = \"cache\"", "output = \"cache\"\nshard = \"1/4\"");
        let p: Pipeline = toml::from_str(&text).unwrap();
        assert_eq!(p.extract.shard, Some(Shard { index: 1, count: 4 }));
        let json = serde_json::to_value(&p.extract).unwrap();
        assert_eq!(json["shard"], "1/4");
        let old: Shard = serde_json::from_str(r#"{"index": 1, "count": 4}"#).unwrap();
        assert_eq!(old, Shard { index: 1, count: 4 });
        let bad = MINIMAL.replace("output = \"cache\"", "output = \"cache\"\nshard = \"4/4\"");
        let err = toml::from_str::<Pipeline>(&bad).unwrap_err().to_string();
        assert!(
            err.contains("shard \"4/4\" is not k/N with 0 <= k < N"),
            "{err}"
        );
    }

    #[test]
    fn flags_are_applied_before_the_pipeline_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let text = MINIMAL.replace(
            "output = \"cache\"",
            "output = \"cache\"\npatch_mode = \"full-image\"\nviews_per_image = 3",
        );
        std::fs::write(&path, text).unwrap();
        let err = Pipeline::load(&path).unwrap_err().to_string();
        assert!(err.contains("views_per_image is 3, set it to 1"), "{err}");
        let fixed = Pipeline::load_with(&path, |p| p.extract.views_per_image = 1).unwrap();
        assert_eq!(fixed.extract.views_per_image, 1);
        let err = Pipeline::load_with(&path, |p| p.extract.views_per_image = 4).unwrap_err();
        assert!(err.to_string().contains("views_per_image is 4"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let text = MINIMAL.replace("output = \"cache\"", "output = \"cache\"\nviews = 3");
        let err = toml::from_str::<Pipeline>(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field `views`"), "{err}");
    }

    #[test]
    fn duplicate_teacher_is_rejected() {
        let text = format!("{MINIMAL}\n[[teacher]]\nname = \"dinov2\"\npath = \"b.pt\"\n");
        let p: Pipeline = toml::from_str(&text).unwrap();
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("teacher dinov2 is given twice"), "{err}");
    }

    #[test]
    fn loss_for_unknown_teacher_is_rejected() {
        let text = format!("{MINIMAL}\n[train.loss.clip]\nsummary = 2.0\n");
        let p: Pipeline = toml::from_str(&text).unwrap();
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("train.loss.clip names no teacher"), "{err}");
    }
}
