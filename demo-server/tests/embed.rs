//! The library's vectors: sanity (paraphrases are close) and agreement with sentence-transformers.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{cosine, model_dir};
use demo_server::Embedder;

fn embedder() -> Embedder {
    Embedder::load(model_dir()).unwrap()
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let e = embedder();
    let out = e
        .embed(&[
            "A man is playing a guitar.",
            "Someone plays the guitar.",
            "The quarterly tax report is due on Friday.",
        ])
        .unwrap();
    let v = &out.vectors;
    assert_eq!(v.len(), 3);
    for x in v {
        assert_eq!(x.len(), 384);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    let para = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(para > 0.7, "paraphrase cosine {para}");
    assert!(unrelated < 0.2, "unrelated cosine {unrelated}");
    assert!(para > unrelated + 0.5, "{para} vs {unrelated}");
}

#[test]
fn batching_and_padding_do_not_change_a_vector() {
    let e = embedder();
    let alone = e.embed(&["short"]).unwrap().vectors.remove(0);
    let long = "a much longer sentence that forces the short one to be padded by many tokens";
    let mut texts = vec![long; 20];
    texts[17] = "short"; // lands in the second batch, next to longer inputs
    let batched = e.embed(&texts).unwrap();
    assert_eq!(batched.vectors.len(), 20);
    let max_diff = alone
        .iter()
        .zip(&batched.vectors[17])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "max abs diff {max_diff}");
}

#[test]
fn token_counts_include_cls_and_sep() {
    let e = embedder();
    // "hello world" is two word pieces in the uncased BERT vocabulary; "" is none.
    assert_eq!(e.embed(&["hello world"]).unwrap().prompt_tokens, 4);
    assert_eq!(e.embed(&[""]).unwrap().prompt_tokens, 2);
    assert_eq!(e.embed(&["hello world", ""]).unwrap().prompt_tokens, 6);
}

/// Inputs for the reference comparison: short and long (past the 256-token cut), accents,
/// CJK, emoji, odd whitespace and punctuation, and a batch whose lengths differ.
fn reference_inputs() -> Vec<String> {
    let mut v: Vec<String> = [
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "The quarterly tax report is due on Friday.",
        "Crème brûlée, naïve café — déjà vu!",
        "東京は日本の首都です。",
        "emoji 🎸 and tabs\tand\nnewlines   spaced",
        "",
        "x",
        "Confidential VMs measure their launch state; dm-verity protects the root filesystem.",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("the enclave boots and measures its image ".repeat(60));
    v
}

#[test]
fn vectors_match_sentence_transformers() {
    let inputs = reference_inputs();
    let python = std::env::var("DEMO_SERVER_REFERENCE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference_st.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(model_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&inputs).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{python} {script} failed (is sentence-transformers installed? see demo-server/README.md)"
    );
    let reference: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reference["max_seq_length"], 256);
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["vectors"].clone()).unwrap();

    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let got = embedder().embed(&refs).unwrap().vectors;
    assert_eq!(got.len(), expected.len());
    for (i, (g, x)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g.len(), x.len(), "input {i}");
        let max_diff = g
            .iter()
            .zip(x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let cos = cosine(g, x);
        assert!(
            max_diff < 1e-5 && cos > 0.99999,
            "input {i} {:?}: max abs diff {max_diff}, cosine {cos}",
            &inputs[i]
        );
    }
}
