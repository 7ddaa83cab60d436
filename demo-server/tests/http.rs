//! The real binary over real sockets (HTTPS): the ready line, the response shape, the same
//! vectors as the library, and 4xx answers to bad requests without the server going down.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::model_dir;
use demo_server::Embedder;
use serde_json::Value;

/// The server process, killed when the test ends however it ends.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .arg("--model-dir")
        .arg(model_dir())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("demo-server: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

/// One request over HTTPS (the server's key is taken as presented: these tests are about
/// the API; attested-server's tests check the binding), returns (status, body).
fn request(addr: &str, req: http::Request<http_body_util::Full<bytes::Bytes>>) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, reply) = rt
        .block_on(attested_server::client::request(addr, None, req))
        .unwrap();
    (reply.status, reply.body)
}

fn post(addr: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    request(
        addr,
        attested_server::client::post_json(path, body.to_vec()),
    )
}

fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    request(addr, attested_server::client::get(path))
}

fn healthy(addr: &str) -> bool {
    get(addr, "/healthz").0 == 200
}

#[test]
fn embeddings_round_trip_matches_the_library() {
    let server = start();
    assert!(healthy(&server.addr));
    let texts = ["A man is playing a guitar.", "Someone plays the guitar."];
    let body = serde_json::json!({ "input": texts, "model": "whatever" }).to_string();
    let (status, body) = post(&server.addr, "/v1/embeddings", body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "all-MiniLM-L6-v2");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);

    let library = Embedder::load(model_dir()).unwrap().embed(&texts).unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], library.prompt_tokens);
    assert_eq!(v["usage"]["total_tokens"], library.prompt_tokens);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let got: Vec<f32> = serde_json::from_value(item["embedding"].clone()).unwrap();
        // serde_json prints f32 exactly (shortest round trip), so the bits must agree.
        assert_eq!(got, library.vectors[i], "input {i}");
    }

    // A single string is accepted too.
    let (status, body) = post(
        &server.addr,
        "/v1/embeddings",
        br#"{"input":"Someone plays the guitar."}"#,
    );
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let got: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(got, library.vectors[1]);
}

#[test]
fn bad_requests_get_4xx_and_the_server_keeps_running() {
    let server = start();
    let a = server.addr.as_str();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("invalid JSON", br#"{"input": "#.to_vec(), 400),
        ("not JSON at all", b"\xff\xfe garbage".to_vec(), 400),
        ("input is a number", br#"{"input": 5}"#.to_vec(), 400),
        (
            "input has a non-string",
            br#"{"input": ["a", 1]}"#.to_vec(),
            400,
        ),
        ("input missing", br#"{"model": "m"}"#.to_vec(), 400),
        ("input empty", br#"{"input": []}"#.to_vec(), 400),
        ("token ids", br#"{"input": [[1, 2, 3]]}"#.to_vec(), 400),
        (
            "base64 format",
            br#"{"input": "a", "encoding_format": "base64"}"#.to_vec(),
            400,
        ),
        ("top level array", br#"["a"]"#.to_vec(), 400),
    ];
    for (what, body, want) in cases {
        let (status, reply) = post(a, "/v1/embeddings", &body);
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&reply));
        let v: Value = serde_json::from_slice(&reply).unwrap();
        assert!(v["error"]["message"].is_string(), "{what}");
    }
    let too_many = serde_json::json!({ "input": vec!["a"; demo_server::MAX_INPUTS + 1] });
    assert_eq!(
        post(a, "/v1/embeddings", too_many.to_string().as_bytes()).0,
        400
    );

    // Oversized body: refused from its Content-Length (attested-server's tests cover the
    // transport-level answers: 431 for an oversized head, 411, malformed heads, chunked).
    let big = vec![b' '; demo_server::MAX_BODY + 1];
    assert_eq!(post(a, "/v1/embeddings", &big).0, 413);
    assert_eq!(get(a, "/nope").0, 404);
    assert_eq!(get(a, "/v1/embeddings").0, 405);
    // No TEE on the host: the attestation endpoint says so.
    let (status, body) = get(a, &format!("/v1/attestation?nonce={}", "ab".repeat(32)));
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));

    assert!(healthy(a));
    let (status, _) = post(a, "/v1/embeddings", br#"{"input": "still alive"}"#);
    assert_eq!(status, 200);
}
