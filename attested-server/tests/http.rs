use std::sync::Arc;

use attested_server::{Limits, NoEvidence};
use serde_json::Value;

use crate::util::{client_rt, raw, start, Unreachable};

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[test]
fn bad_requests_get_4xx_and_the_server_keeps_running() {
    let server = start(Arc::new(Unreachable), Limits::default());
    let rt = client_rt();
    let max_body = Limits::default().max_body;
    let max_head = Limits::default().max_head;
    let mut huge_head = b"GET /healthz HTTP/1.1\r\nX: ".to_vec();
    huge_head.extend(vec![b'a'; max_head]);
    huge_head.extend_from_slice(b"\r\n\r\n");
    let mut big_chunked =
        b"POST /v1/words HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..=(max_body / 4096) {
        big_chunked.extend_from_slice(b"1000\r\n");
        big_chunked.extend(vec![b' '; 4096]);
        big_chunked.extend_from_slice(b"\r\n");
    }
    big_chunked.extend_from_slice(b"0\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("good", post("/v1/words", br#"{"input": "a b c"}"#), 200),
        ("invalid JSON (the app)", post("/v1/words", br#"{"input": "#), 400),
        ("body over the limit", post("/v1/words", &vec![b' '; max_body + 1]), 413),
        ("chunked body over the limit", big_chunked, 413),
        ("head over the limit", huge_head, 431),
        ("POST without a length", b"POST /v1/words HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 411),
        ("negative length", b"POST /v1/words HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(), 400),
        (
            "conflicting lengths",
            b"POST /v1/words HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
        ),
        ("garbage", b"\x00\x01\x02\r\n\r\n".to_vec(), 400),
        ("unknown route", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 404),
        ("wrong method (the app)", b"GET /v1/words HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        ("wrong method", b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        ("no nonce", b"GET /v1/attestation HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            "short nonce",
            b"GET /v1/attestation?nonce=00112233 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "nonce not hex",
            format!("GET /v1/attestation?nonce={} HTTP/1.1\r\nHost: x\r\n\r\n", "zz".repeat(32))
                .into_bytes(),
            400,
        ),
        (
            "chunked small body",
            b"POST /v1/words HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"input\": \"a b\"}\r\n0\r\n\r\n"
                .to_vec(),
            200,
        ),
    ];
    rt.block_on(async {
        for (what, request, want) in cases {
            let (status, body) = raw(&server, &request).await;
            assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&body));
            if want != 200 && !body.is_empty() {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert!(v["error"]["message"].is_string(), "{what}");
            }
        }
        // A client that hangs up mid-body harms nothing.
        {
            let mut s = crate::util::tls_connect(&server.addr, &server.cert).await;
            use tokio::io::AsyncWriteExt as _;
            s.write_all(b"POST /v1/words HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"in")
                .await
                .unwrap();
        }
        let (status, body) = raw(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
        let (status, body) = raw(&server, &post("/v1/words", br#"{"input": "still alive"}"#)).await;
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["words"], 2);
    });
}

#[test]
fn without_a_tee_the_attestation_endpoint_answers_503() {
    let server = start(Arc::new(NoEvidence), Limits::default());
    let rt = client_rt();
    let request = format!(
        "GET /v1/attestation?nonce={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "ab".repeat(32)
    );
    let (status, body) = rt.block_on(raw(&server, request.as_bytes()));
    assert_eq!(status, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("neither a TSM report provider") && message.contains("nor a TPM"),
        "{message}"
    );
}

#[test]
fn a_stalled_head_is_dropped_after_the_header_timeout() {
    let limits = Limits {
        header_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let server = start(Arc::new(Unreachable), limits);
    let rt = client_rt();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = crate::util::tls_connect(&server.addr, &server.cert).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let t = std::time::Instant::now();
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
                .await
                .expect("the server kept a stalled head open for 10 s");
        let waited = t.elapsed();
        // Closed (EOF or a reset), never answered with a 200.
        assert!(!String::from_utf8_lossy(&buf).contains(" 200 "), "{read:?}");
        assert!(
            waited >= std::time::Duration::from_millis(900),
            "closed after {waited:?}, before the timeout"
        );
    });
}
