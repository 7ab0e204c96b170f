//! The student: a ViT defined in tch, with one adaptor per teacher.
//!
//! The trunk takes normalised images `[B, 3, H, W]` and returns one summary token per
//! teacher that has a summary, plus the patch tokens of its grid. Each teacher's adaptor
//! maps the student's tokens into that teacher's feature space: an MLP on its summary
//! token, and an MLP on the patch tokens, resized bilinearly to the teacher's patch grid.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::cache::FeatureShape;
use crate::config::StudentConfig;

/// Mean used to normalise student inputs (ImageNet).
pub const STUDENT_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Standard deviation used to normalise student inputs (ImageNet).
pub const STUDENT_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A two-layer MLP with a GELU between.
#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Mlp {
    fn new(p: nn::Path, input: usize, hidden: usize, output: usize) -> Mlp {
        Mlp {
            fc1: nn::linear(&p / "fc1", input as i64, hidden as i64, Default::default()),
            fc2: nn::linear(&p / "fc2", hidden as i64, output as i64, Default::default()),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(x).gelu("none"))
    }
}

/// A pre-norm transformer block.
#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    heads: i64,
}

impl Block {
    fn new(p: nn::Path, width: usize, heads: usize, mlp_ratio: f64) -> Block {
        let w = width as i64;
        let ln = || nn::LayerNormConfig::default();
        Block {
            norm1: nn::layer_norm(&p / "norm1", vec![w], ln()),
            qkv: nn::linear(&p / "attn" / "qkv", w, 3 * w, Default::default()),
            proj: nn::linear(&p / "attn" / "proj", w, w, Default::default()),
            norm2: nn::layer_norm(&p / "norm2", vec![w], ln()),
            mlp: Mlp::new(
                &p / "mlp",
                width,
                (width as f64 * mlp_ratio) as usize,
                width,
            ),
            heads: heads as i64,
        }
    }

    fn attention(&self, x: &Tensor) -> Tensor {
        let (b, n, c) = x.size3().expect("tokens are [B, N, C]");
        let hd = c / self.heads;
        // [B, N, 3C] -> [3, B, heads, N, hd]
        let qkv = self
            .qkv
            .forward(x)
            .view([b, n, 3, self.heads, hd])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let attn = (q.matmul(&k.transpose(-2, -1)) / (hd as f64).sqrt()).softmax(-1, Kind::Float);
        // [B, heads, N, hd] -> [B, N, C]
        let out = attn.matmul(&v).transpose(1, 2).reshape([b, n, c]);
        self.proj.forward(&out)
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + self.attention(&self.norm1.forward(x));
        &x + self.mlp.forward(&self.norm2.forward(&x))
    }
}

/// One teacher's adaptor heads.
#[derive(Debug)]
pub struct Adaptor {
    pub teacher: String,
    pub shape: FeatureShape,
    summary: Option<(usize, Mlp)>,
    patch: Mlp,
}

/// What the student predicts for one teacher.
#[derive(Debug)]
pub struct Prediction {
    /// `[B, D_s]`, absent for teachers without a summary.
    pub summary: Option<Tensor>,
    /// `[B, T, D]` on the teacher's grid.
    pub patch_tokens: Tensor,
}

/// The student ViT and its adaptors.
#[derive(Debug)]
pub struct Student {
    pub config: StudentConfig,
    patch_embed: nn::Conv2D,
    summary_tokens: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    pub adaptors: Vec<Adaptor>,
}

impl Student {
    /// Builds a student under `p` for the given teachers (name and feature shape).
    pub fn new(p: &nn::Path, config: &StudentConfig, teachers: &[(String, FeatureShape)]) -> Self {
        let w = config.width as i64;
        let ps = config.patch_size as i64;
        let tokens = (config.grid() * config.grid()) as i64;
        let n_summary = teachers
            .iter()
            .filter(|(_, s)| s.summary_dim > 0)
            .count()
            .max(1);
        let conv = nn::ConvConfig {
            stride: ps,
            ..Default::default()
        };
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let blocks = (0..config.depth)
            .map(|i| {
                Block::new(
                    p / "blocks" / i,
                    config.width,
                    config.heads,
                    config.mlp_ratio,
                )
            })
            .collect();
        let mut next_summary = 0;
        let adaptors = teachers
            .iter()
            .map(|(name, shape)| {
                let ap = p / "adaptors" / name.as_str();
                let summary = (shape.summary_dim > 0).then(|| {
                    next_summary += 1;
                    let mlp = Mlp::new(
                        &ap / "summary",
                        config.width,
                        config.adaptor_hidden,
                        shape.summary_dim,
                    );
                    (next_summary - 1, mlp)
                });
                let patch = Mlp::new(
                    &ap / "patch",
                    config.width,
                    config.adaptor_hidden,
                    shape.patch_dim,
                );
                Adaptor {
                    teacher: name.clone(),
                    shape: *shape,
                    summary,
                    patch,
                }
            })
            .collect();
        Student {
            config: config.clone(),
            patch_embed: nn::conv2d(p / "patch_embed", 3, w, ps, conv),
            summary_tokens: p.var("summary_tokens", &[1, n_summary as i64, w], init),
            pos_embed: p.var("pos_embed", &[1, n_summary as i64 + tokens, w], init),
            blocks,
            norm: nn::layer_norm(p / "norm", vec![w], Default::default()),
            adaptors,
        }
    }

    /// Runs the trunk: returns (summary tokens `[B, S, C]`, patch tokens `[B, T, C]`).
    pub fn trunk(&self, images: &Tensor) -> (Tensor, Tensor) {
        let b = images.size()[0];
        // [B, C, g, g] -> [B, g*g, C]
        let patches = self
            .patch_embed
            .forward(images)
            .flatten(2, 3)
            .transpose(1, 2);
        let summary = self.summary_tokens.expand([b, -1, -1], false);
        let mut x = Tensor::cat(&[summary, patches], 1) + &self.pos_embed;
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let x = self.norm.forward(&x);
        let s = self.summary_tokens.size()[1];
        (x.narrow(1, 0, s), x.narrow(1, s, x.size()[1] - s))
    }

    /// Predicts every teacher's features for a batch of normalised images.
    pub fn forward(&self, images: &Tensor) -> Vec<Prediction> {
        let (summary_tokens, patches) = self.trunk(images);
        let g = self.config.grid() as i64;
        self.adaptors
            .iter()
            .map(|a| {
                let summary = a
                    .summary
                    .as_ref()
                    .map(|(i, mlp)| mlp.forward(&summary_tokens.select(1, *i as i64)));
                let mapped = a.patch.forward(&patches); // [B, g*g, D]
                let (b, _, d) = mapped.size3().expect("[B, T, D]");
                // [B, g*g, D] -> [B, D, g, g], resize to the teacher grid, back to NLC.
                let grid = mapped.transpose(1, 2).reshape([b, d, g, g]);
                let (th, tw) = (a.shape.grid_h as i64, a.shape.grid_w as i64);
                let resized = if (th, tw) == (g, g) {
                    grid
                } else {
                    grid.upsample_bilinear2d([th, tw], false, None, None)
                };
                Prediction {
                    summary,
                    patch_tokens: resized.flatten(2, 3).transpose(1, 2),
                }
            })
            .collect()
    }
}

/// Loss terms for one teacher.
#[derive(Debug)]
pub struct TeacherLoss {
    /// Cosine distance of the summaries, if the teacher has one.
    pub summary: Option<Tensor>,
    /// 0.9 x cosine distance + 0.1 x smooth-L1 of the patch tokens.
    pub patch: Tensor,
}

/// Mean cosine distance along the last axis.
pub fn cosine_distance(prediction: &Tensor, target: &Tensor) -> Tensor {
    let last = prediction.dim() as i64 - 1;
    let cos = Tensor::cosine_similarity(prediction, target, last, 1e-8);
    cos.neg().g_add_scalar(1.0).mean(Kind::Float)
}

/// The AM-RADIO losses of one teacher.
pub fn teacher_loss(
    prediction: &Prediction,
    summary: Option<&Tensor>,
    patches: &Tensor,
) -> TeacherLoss {
    let summary = match (&prediction.summary, summary) {
        (Some(p), Some(t)) => Some(cosine_distance(p, t)),
        _ => None,
    };
    let smooth_l1 = prediction
        .patch_tokens
        .smooth_l1_loss(patches, tch::Reduction::Mean, 1.0);
    let patch = 0.9 * cosine_distance(&prediction.patch_tokens, patches) + 0.1 * smooth_l1;
    TeacherLoss { summary, patch }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(summary_dim: usize, grid: usize, patch_dim: usize) -> FeatureShape {
        FeatureShape {
            summary_dim,
            grid_h: grid,
            grid_w: grid,
            patch_dim,
        }
    }

    #[test]
    fn predictions_have_each_teachers_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = StudentConfig::tiny();
        let teachers = vec![
            ("clip".to_string(), shape(32, 4, 64)),
            ("sam".to_string(), shape(0, 5, 256)),
        ];
        let student = Student::new(&vs.root(), &config, &teachers);
        let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu));
        let out = student.forward(&x);
        assert_eq!(out[0].summary.as_ref().unwrap().size(), vec![2, 32]);
        assert_eq!(out[0].patch_tokens.size(), vec![2, 16, 64]);
        assert!(out[1].summary.is_none());
        assert_eq!(out[1].patch_tokens.size(), vec![2, 25, 256]);
    }

    #[test]
    fn identical_features_have_zero_cosine_distance() {
        let a = Tensor::randn([3, 5, 8], (Kind::Float, tch::Device::Cpu));
        let d = cosine_distance(&a, &a).double_value(&[]);
        assert!(d.abs() < 1e-6, "{d}");
        let d = cosine_distance(&a, &(-&a)).double_value(&[]);
        assert!((d - 2.0).abs() < 1e-5, "{d}");
    }
}
