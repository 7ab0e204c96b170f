//! Shared fixtures of the end-to-end tests: scikit-image's photographs, three small
//! random-init teachers exported by our own script, and a pipeline file, made once per
//! test process in a directory that is kept for inspection.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_distillery");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> String {
    std::env::var("DISTILLERY_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a command and returns its output, panicking with both streams if it failed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail and returns its stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn distillery(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    cmd
}

/// A fresh directory under the test run's own temporary root.
pub fn scratch(name: &str) -> PathBuf {
    let dir = fixture().root.join("scratch").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Fixture {
    pub root: PathBuf,
    /// Good photographs plus two truncated JPEGs and one empty file.
    pub photos: PathBuf,
    pub teachers: PathBuf,
    pub good_images: Vec<String>,
}

pub const TEACHERS: [(&str, &[&str]); 3] = [
    (
        "clip",
        &[
            "--model",
            "vit_base_patch16_clip_224.openai",
            "--img-size",
            "64",
            "--depth",
            "2",
            "--width",
            "64",
            "--heads",
            "2",
            "--summary-dim",
            "32",
        ],
    ),
    (
        "dinov2",
        &[
            "--model",
            "vit_small_patch14_dinov2.lvd142m",
            "--img-size",
            "70",
            "--depth",
            "2",
            "--width",
            "64",
            "--heads",
            "2",
        ],
    ),
    (
        "sam",
        &[
            "--model",
            "samvit_base_patch16.sa1b",
            "--img-size",
            "64",
            "--depth",
            "2",
            "--width",
            "64",
            "--heads",
            "2",
            "--window-size",
            "2",
        ],
    ),
];

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let root = tempfile::Builder::new()
        .prefix("distillery-test-")
        .tempdir()
        .unwrap()
        .keep();
    let photos = root.join("photos");
    run_ok(
        Command::new(python())
            .arg(repo().join("pipelines/demo_images.py"))
            .arg(&photos),
    );
    let mut good_images: Vec<String> = std::fs::read_dir(&photos)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    good_images.sort();
    // Truncated JPEGs (cut in its headers, and halfway through its scan) and an empty PNG.
    let jpeg = std::fs::read(photos.join("rocket.jpg")).unwrap();
    std::fs::write(photos.join("broken.jpg"), &jpeg[..600]).unwrap();
    std::fs::write(photos.join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(photos.join("empty.png"), b"").unwrap();

    let teachers = root.join("teachers");
    for (name, args) in TEACHERS {
        run_ok(
            Command::new(python())
                .arg(repo().join("pipelines/export_teacher.py"))
                .args(["--random-init", "--name", name, "--out"])
                .arg(teachers.join(format!("{name}.pt")))
                .args(args),
        );
    }
    Fixture {
        root,
        photos,
        teachers,
        good_images,
    }
}

/// Writes a pipeline file into `dir` that reads the fixture's photos and teachers.
pub fn write_pipeline(dir: &Path, views: usize, seed: u64, extra: &str) -> PathBuf {
    let f = fixture();
    let mut text = format!(
        "[source]\npath = {:?}\n\n[extract]\noutput = \"cache\"\nviews_per_image = {views}\n\
         seed = {seed}\nbatch_size = 8\n{extra}\n",
        f.photos
    );
    for (name, _) in TEACHERS {
        text += &format!(
            "\n[[teacher]]\nname = \"{name}\"\npath = {:?}\n",
            f.teachers.join(format!("{name}.pt"))
        );
    }
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `extract` in `dir` with the given extra flags and returns its stdout.
pub fn extract(dir: &Path, pipeline: &Path, flags: &[&str]) -> String {
    let out = run_ok(
        distillery(dir)
            .arg("extract")
            .arg("--pipeline")
            .arg(pipeline)
            .args(flags),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A shared cache of the fixture (2 views per image, seed 0), made once.
pub fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = fixture().root.join("shared");
        std::fs::create_dir_all(&dir).unwrap();
        let pipeline = write_pipeline(&dir, 2, 0, "");
        extract(&dir, &pipeline, &[]);
        dir.join("cache")
    })
}
