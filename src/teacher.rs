//! The one teacher abstraction: a TorchScript module exported by
//! `pipelines/export_teacher.py` plus its JSON sidecar.
//!
//! Every family (CLIP, DINOv2, SAM, ...) goes through the same code: uint8 views go to the
//! device, are normalised there with the sidecar's mean and std, run in eval mode without
//! gradients, and come back as (summary, patch tokens) whose shapes are checked against
//! the sidecar. Real checkpoints and the random-init test teachers load the same way.

use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::error::{Error, Result};
pub use crate::sidecar::{sidecar_path, Sidecar, SIDECAR_FORMAT};

/// Parses a device string: `cpu`, `cuda`, `cuda:N`.
///
/// # Errors
///
/// [`Error::Config`] for anything else, or CUDA asked for where libtorch has none.
pub fn parse_device(name: &str) -> Result<Device> {
    let device = match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => {
                return Err(Error::Config(format!(
                    "device {other:?} is not cpu, cuda or cuda:N"
                )))
            }
        },
    };
    if let Device::Cuda(n) = device {
        let available = tch::Cuda::device_count();
        if (n as i64) >= available {
            let why = if tch::utils::has_cudart() {
                "its CUDA backend is loaded, so no GPU or no NVIDIA driver is visible"
            } else {
                "it has no CUDA backend (a CPU-only libtorch, or libtorch_cuda.so not linked)"
            };
            return Err(Error::Config(format!(
                "device {name} asked for, but libtorch sees {available} CUDA device(s): {why}"
            )));
        }
    }
    Ok(device)
}

/// Parses a precision name to the kind the teacher runs in.
pub fn parse_precision(name: &str) -> Result<Kind> {
    match name {
        "fp32" => Ok(Kind::Float),
        "fp16" => Ok(Kind::Half),
        "bf16" => Ok(Kind::BFloat16),
        other => Err(Error::Config(format!(
            "precision {other:?} is not fp32, fp16 or bf16"
        ))),
    }
}

/// What one forward pass returns, on the CPU in float32.
#[derive(Debug)]
pub struct TeacherOutput {
    /// `[B, D_s]`.
    pub summary: Tensor,
    /// `[B, T, D]`, NLC.
    pub patch_tokens: Tensor,
}

/// A loaded teacher, ready to run.
#[derive(Debug)]
pub struct Teacher {
    name: String,
    path: PathBuf,
    sidecar: Sidecar,
    module: CModule,
    device: Device,
    kind: Kind,
    mean: Tensor,
    std: Tensor,
}

impl Teacher {
    /// Loads a teacher file and its sidecar onto `device`, in eval mode.
    ///
    /// # Errors
    ///
    /// [`Error::Teacher`] naming the file when either does not load.
    pub fn load(name: &str, path: &Path, device: Device, kind: Kind) -> Result<Teacher> {
        if !path.is_file() {
            return Err(Error::Teacher {
                teacher: name.to_string(),
                path: path.to_path_buf(),
                message: "the TorchScript file does not exist".into(),
            });
        }
        let sidecar = Sidecar::load(name, path)?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| Error::Teacher {
            teacher: name.to_string(),
            path: path.to_path_buf(),
            message: format!(
                "cannot load the TorchScript module: {}",
                without_backtrace(&e)
            ),
        })?;
        module.set_eval();
        if kind != Kind::Float {
            module.to(device, kind, false);
        }
        let stats = |v: [f64; 3]| {
            Tensor::from_slice(&v.map(|x| x as f32))
                .view([1, 3, 1, 1])
                .to_device(device)
        };
        Ok(Teacher {
            name: name.to_string(),
            path: path.to_path_buf(),
            mean: stats(sidecar.mean),
            std: stats(sidecar.std),
            sidecar,
            module,
            device,
            kind,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a batch of two blank views and checks the outputs against the sidecar, so that
    /// a wrong file fails before any real work.
    ///
    /// # Errors
    ///
    /// [`Error::TeacherShape`] or [`Error::Teacher`] when the module breaks the contract.
    pub fn check_contract(&self) -> Result<()> {
        let (h, w) = self.sidecar.input_hw();
        let blank = Tensor::full([2, h as i64, w as i64, 3], 128, (Kind::Uint8, Device::Cpu));
        self.forward(&blank).map(|_| ()).map_err(|e| match e {
            Error::Teacher { message, .. } if message.starts_with("forward failed") => {
                self.fail(format!(
                    "does not run on its sidecar's input size {h}x{w} (is {}.json the \
                     sidecar of this module?): {message}",
                    self.path.display()
                ))
            }
            other => other,
        })
    }

    /// Runs the teacher on uint8 views `[B, H, W, 3]` (NHWC, on any device).
    ///
    /// # Errors
    ///
    /// When the input or an output shape disagrees with the sidecar, or torch fails.
    pub fn forward(&self, views: &Tensor) -> Result<TeacherOutput> {
        let (h, w) = self.sidecar.input_hw();
        let size = views.size();
        let b = size.first().copied().unwrap_or(0);
        self.check_shape("input views", &[b, h as i64, w as i64, 3], &size)?;

        let _guard = tch::no_grad_guard();
        // NHWC uint8 -> NCHW float in [0, 1], normalised on the device.
        let x = views
            .to_device(self.device)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float)
            / 255.0;
        let x = ((x - &self.mean) / &self.std).to_kind(self.kind);
        let out = self
            .module
            .forward_is(&[IValue::Tensor(x)])
            .map_err(|e| self.fail(format!("forward failed: {}", without_backtrace(&e))))?;
        let (summary, patch_tokens) = self.split_outputs(out)?;

        let s = &self.sidecar;
        self.check_shape("summary", &[b, s.summary_dim as i64], &summary.size())?;
        let expected = [b, s.num_tokens as i64, s.patch_dim as i64];
        self.check_shape("patch tokens", &expected, &patch_tokens.size())?;
        Ok(TeacherOutput {
            summary: summary.to_kind(Kind::Float).to_device(Device::Cpu),
            patch_tokens: patch_tokens.to_kind(Kind::Float).to_device(Device::Cpu),
        })
    }

    fn split_outputs(&self, out: IValue) -> Result<(Tensor, Tensor)> {
        match out {
            IValue::Tuple(mut items) if items.len() == 2 => {
                let patches = items.pop().expect("two items");
                let summary = items.pop().expect("two items");
                match (summary, patches) {
                    (IValue::Tensor(s), IValue::Tensor(p)) => Ok((s, p)),
                    _ => Err(self.fail("outputs are not two tensors".into())),
                }
            }
            other => Err(self.fail(format!(
                "module returns {}, expected a tuple (summary, patch_tokens)",
                ivalue_kind(&other)
            ))),
        }
    }

    fn check_shape(&self, what: &'static str, expected: &[i64], actual: &[i64]) -> Result<()> {
        if expected == actual {
            return Ok(());
        }
        Err(Error::TeacherShape {
            teacher: self.name.clone(),
            what,
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        })
    }

    fn fail(&self, message: String) -> Error {
        Error::Teacher {
            teacher: self.name.clone(),
            path: self.path.clone(),
            message,
        }
    }
}

/// A libtorch error without the C++ backtrace that follows its message.
/// Torch's message: the C++ backtrace dropped, and of a TorchScript traceback only the
/// error it ends with (`RuntimeError: ...`), which is what says what went wrong.
fn without_backtrace(e: &tch::TchError) -> String {
    let text = e.to_string();
    if text.contains("Traceback of TorchScript") {
        let last = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.contains("Error: ") && !l.starts_with("frame #"));
        if let Some(last) = last {
            return format!("{last} (in the TorchScript module)");
        }
    }
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Exception raised from") && !l.starts_with("frame #"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    message.join(" ")
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::Tensor(_) => "a single tensor",
        IValue::Tuple(_) => "a tuple of another length",
        IValue::GenericList(_) | IValue::TensorList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        _ => "a non-tensor value",
    }
}

/// Packs RGB images of one size into a uint8 tensor `[B, H, W, 3]`.
///
/// # Panics
///
/// When the images differ in size.
pub fn stack_views(images: &[image::RgbImage]) -> Tensor {
    let (w, h) = images
        .first()
        .map(|i| (i.width(), i.height()))
        .unwrap_or((0, 0));
    let mut bytes = Vec::with_capacity(images.len() * (w * h * 3) as usize);
    for img in images {
        assert_eq!(
            (img.width(), img.height()),
            (w, h),
            "views of one batch differ in size"
        );
        bytes.extend_from_slice(img.as_raw());
    }
    Tensor::from_slice(&bytes).view([images.len() as i64, h as i64, w as i64, 3])
}
