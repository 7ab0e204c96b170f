//! The JSON sidecar that `pipelines/export_teacher.py` writes beside each teacher file:
//! what the module expects as input and what it returns. Kept apart from the torch code so
//! that the cache manifest can record it without libtorch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The JSON sidecar written beside each exported teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Contract version, `distillery-teacher/1`.
    pub format: String,
    /// Teacher name given at export.
    #[serde(default)]
    pub name: Option<String>,
    /// Family: `clip`, `dinov2` or `sam`.
    pub family: String,
    pub timm_model: String,
    pub timm_version: String,
    pub torch_version: String,
    /// Whether the weights are pretrained (false for random-init test teachers).
    pub pretrained: bool,
    /// `[3, H, W]`.
    pub input_size: [usize; 3],
    pub mean: [f64; 3],
    pub std: [f64; 3],
    /// timm interpolation name, e.g. `bicubic`.
    pub interpolation: String,
    pub patch_size: [usize; 2],
    /// Patch grid `[h, w]`; `num_tokens == h * w`.
    pub grid: [usize; 2],
    /// Width of the summary; 0 when the teacher has none (SAM).
    pub summary_dim: usize,
    /// Width of each patch token.
    pub patch_dim: usize,
    pub num_tokens: usize,
    /// Size overrides used for a random-init export.
    #[serde(default)]
    pub overrides: serde_json::Value,
    /// Seed of a random-init export (null for pretrained weights).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The sidecar contract version this code reads.
pub const SIDECAR_FORMAT: &str = "distillery-teacher/1";

impl Sidecar {
    /// Reads and checks the sidecar of the teacher file `module_path` (`<module>.json`).
    ///
    /// # Errors
    ///
    /// [`Error::Teacher`] naming the sidecar when it is missing or inconsistent.
    pub fn load(teacher: &str, module_path: &Path) -> Result<Sidecar> {
        let path = sidecar_path(module_path);
        let fail = |message: String| Error::Teacher {
            teacher: teacher.to_string(),
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("cannot read the sidecar: {e}")))?;
        let sidecar: Sidecar =
            serde_json::from_str(&text).map_err(|e| fail(format!("invalid sidecar: {e}")))?;
        sidecar.check().map_err(fail)?;
        Ok(sidecar)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.format != SIDECAR_FORMAT {
            return Err(format!(
                "sidecar format {:?} is not {SIDECAR_FORMAT:?}",
                self.format
            ));
        }
        if self.input_size[0] != 3 || self.input_size[1] == 0 || self.input_size[2] == 0 {
            return Err(format!("input_size {:?} is not [3, H, W]", self.input_size));
        }
        if self.grid[0] * self.grid[1] != self.num_tokens {
            return Err(format!(
                "grid {}x{} does not hold num_tokens {}",
                self.grid[0], self.grid[1], self.num_tokens
            ));
        }
        if self.patch_dim == 0 {
            return Err("patch_dim is 0".into());
        }
        if self.std.iter().any(|s| *s <= 0.0) {
            return Err(format!("std {:?} must be positive", self.std));
        }
        Ok(())
    }

    /// Input height and width.
    pub fn input_hw(&self) -> (u32, u32) {
        (self.input_size[1] as u32, self.input_size[2] as u32)
    }
}

/// Path of the sidecar of a teacher file.
pub fn sidecar_path(module_path: &Path) -> PathBuf {
    let mut s = module_path.as_os_str().to_os_string();
    s.push(".json");
    PathBuf::from(s)
}
