//! Progress reporting. Library code calls a [`Progress`]; the binary draws bars with it.

/// Receives progress of a long stage.
pub trait Progress: Sync {
    /// A stage of `total` units (images, steps, rows) begins.
    fn begin(&self, stage: &str, total: u64);
    /// `units` more are done; `bytes` more were written, where the stage writes.
    fn advance(&self, units: u64, bytes: u64);
    /// The stage is over.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _stage: &str, _total: u64) {}
    fn advance(&self, _units: u64, _bytes: u64) {}
    fn finish(&self) {}
}
