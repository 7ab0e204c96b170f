//! distillery: multi-teacher distillation from cached teacher features.
//!
//! The stages, one module each: [`sources`] lists and decodes images, [`views`] draws and
//! renders augmented views, [`teacher`] runs exported teachers, [`cache`] is the on-disk
//! format, [`extract`] writes a cache, [`train`] trains a [`student`] from it alone, and
//! [`stats`] summarises the features.

pub mod add_teacher;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod measure;
pub mod progress;
pub mod shards;
pub mod sidecar;
pub mod sources;
pub mod stats;
pub mod student;
pub mod teacher;
pub mod train;
pub mod views;

pub use error::{Error, Result};
