//! The library's error type. Messages are lowercase and name the teacher, file, row or
//! shape concerned; the binary prints the whole chain once.

use std::path::PathBuf;

/// Everything that can go wrong in distillery's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline file that is missing, unreadable or malformed.
    #[error("pipeline {path}: {message}")]
    Pipeline { path: PathBuf, message: String },

    /// A configuration value that is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A teacher whose module or sidecar cannot be used.
    #[error("teacher {teacher} ({path}): {message}")]
    Teacher {
        teacher: String,
        path: PathBuf,
        message: String,
    },

    /// A teacher output whose shape differs from its sidecar.
    #[error("teacher {teacher}: {what} has shape {actual:?}, the sidecar says {expected:?}")]
    TeacherShape {
        teacher: String,
        what: &'static str,
        expected: Vec<i64>,
        actual: Vec<i64>,
    },

    /// A cache directory that is missing, already present, or not in the expected format.
    #[error("cache {path}: {message}")]
    Cache { path: PathBuf, message: String },

    /// An image source that cannot be listed.
    #[error("source {path}: {message}")]
    Source { path: PathBuf, message: String },

    /// A file system error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An error from libtorch.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    /// An error from the Lance format library.
    #[error("lance: {}", lance_message(.0))]
    Lance(#[from] lance::Error),

    /// An error from arrow.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// An error from the parquet library.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// An error from polars.
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),

    /// A JSON document that does not parse.
    #[error("{path}: invalid json: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A feature column that cannot be decoded as its schema says.
    #[error("teacher {teacher}: {message}")]
    Feature { teacher: String, message: String },

    /// A training run that cannot proceed.
    #[error("train: {0}")]
    Train(String),
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A cache error on `path`.
    pub fn cache(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Cache {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A Lance error's message without its wrapping: `LanceError(Kind): message, location`
/// becomes `message` (the source file and line of Lance's code say nothing to a user).
pub fn lance_message(e: &lance::Error) -> String {
    if let lance::Error::IO { source, .. } = e {
        return source.to_string();
    }
    let text = e.to_string();
    let text = text
        .strip_prefix("LanceError(")
        .and_then(|t| t.split_once("): "))
        .map_or(text.as_str(), |(_, message)| message);
    match text.rsplit_once(", ") {
        Some((message, location)) if location.contains(".rs:") => message.to_string(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lance_errors_lose_their_wrapping_and_code_location() {
        let io = lance::Error::io("HEAD http://host/bucket/x failed after 3 retries");
        assert!(io.to_string().contains(".rs:"), "{io}");
        assert_eq!(
            lance_message(&io),
            "HEAD http://host/bucket/x failed after 3 retries"
        );
        let input = lance::Error::invalid_input("column x, y is missing");
        assert_eq!(
            lance_message(&input),
            "Invalid user input: column x, y is missing"
        );
        assert_eq!(
            Error::from(input).to_string(),
            "lance: Invalid user input: column x, y is missing"
        );
    }
}
