//! Shared helpers: a server on 127.0.0.1 with a test application, a raw-bytes TLS client, and
//! SEV-SNP reports built at the ABI offsets and signed with the TEST VCEK key (not AMD's:
//! verifier/tests/data/snp/test-chain/make.sh), as verifier/tests/util.rs does.

use std::sync::Arc;
use std::time::Duration;

use attested_server::{App, Evidence, EvidenceError, EvidenceSource, Limits, Platform, Reply};
use http::Method;
use measurements::record::Record;
use p384::ecdsa::signature::Signer as _;
use p384::pkcs8::DecodePrivateKey as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A running server; dropping it stops its runtime and so the server.
pub(crate) struct TestServer {
    pub(crate) addr: String,
    pub(crate) spki: Vec<u8>,
    pub(crate) cert: Vec<u8>,
    _rt: tokio::runtime::Runtime,
}

/// A server with the [`Words`] application on 127.0.0.1:0, on two worker threads.
pub(crate) fn start(evidence: Arc<dyn EvidenceSource>, limits: Limits) -> TestServer {
    let id = attested_server::TlsIdentity::generate().unwrap();
    let server = attested_server::Server::new(&id, evidence, Arc::new(Words), limits).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(server.serve(listener));
    TestServer {
        addr,
        spki: id.spki_der().to_vec(),
        cert: id.certificate_der().to_vec(),
        _rt: rt,
    }
}

/// A client runtime (the server has its own).
pub(crate) fn client_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test application: `POST /v1/words` with `{"input": "text"}` answers
/// `{"words": N}`; bad JSON 400; other paths 404.
pub(crate) struct Words;

impl App for Words {
    fn handle(&self, method: &Method, path: &str, body: &[u8]) -> Reply {
        match (path, method) {
            ("/v1/words", &Method::POST) => {
                let v: serde_json::Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return Reply::error(400, &format!("invalid JSON: {e}")),
                };
                match v["input"].as_str() {
                    Some(s) => Reply::json(
                        200,
                        &serde_json::json!({ "words": s.split_whitespace().count() }),
                    ),
                    None => Reply::error(400, "`input` must be a string"),
                }
            }
            ("/v1/words", _) => Reply::error(405, "method not allowed"),
            _ => Reply::error(404, "no such route"),
        }
    }
}

/// A TLS connection that trusts exactly `cert` (the server's self-signed certificate).
pub(crate) async fn tls_connect(
    addr: &str,
    cert: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Sends raw bytes over TLS, half-closes, reads to the end: (status, body).
pub(crate) async fn raw(server: &TestServer, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = tls_connect(&server.addr, &server.cert).await;
    // The server may answer (413) before it has read everything; ignore errors while writing.
    let _ = s.write_all(request).await;
    let _ = s.flush().await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    // A server that closes without close_notify after answering is fine: the answer is whole
    // (Content-Length is checked below).
    let _ = read.expect("no answer within 30 s");
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let body = out[split..].to_vec();
    assert!(
        head.contains(&format!("content-length: {}\r\n", body.len())),
        "{head}"
    );
    (status, body)
}

/// An evidence source that must not be asked.
pub(crate) struct Unreachable;

impl EvidenceSource for Unreachable {
    fn evidence(&self, _: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        panic!("evidence requested");
    }
}

/// The TEST chain (not AMD's).
const TEST_ARK: &[u8] = include_bytes!("../../verifier/tests/data/snp/test-chain/test-ark.pem");
const TEST_ASK: &[u8] = include_bytes!("../../verifier/tests/data/snp/test-chain/test-ask.pem");
/// The test VCEK certificate (P-384, TCB 3/0/8/115, hwID 0x11 x 64).
pub(crate) const TEST_VCEK: &[u8] =
    include_bytes!("../../verifier/tests/data/snp/test-chain/test-vcek.der");
/// The private key standing in for the chip's VCEK.
const TEST_VCEK_KEY: &str =
    include_str!("../../verifier/tests/data/snp/test-chain/test-vcek-key.pem");

/// The test chain as trust anchors (Milan TCB layout).
pub(crate) fn test_anchors() -> verifier::snp::TrustAnchors {
    verifier::snp::TrustAnchors::new([verifier::snp::TrustAnchor {
        product: verifier::snp::Product::Milan,
        ark: TEST_ARK.to_vec(),
        ask: TEST_ASK.to_vec(),
    }])
    .unwrap()
}

/// An SEV-SNP "guest" for tests: reports with this measurement, signed by the test VCEK key,
/// carrying the binding the server asks for, or `report_data` when set (a replayed or
/// foreign report).
pub(crate) struct TestSnp {
    pub(crate) measurement: [u8; 48],
    pub(crate) report_data: Option<[u8; 64]>,
}

impl EvidenceSource for TestSnp {
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        let data = self.report_data.unwrap_or(*report_data);
        Ok(Evidence {
            platform: Platform::SevSnp,
            evidence: snp_report(&self.measurement, &data),
            certificates: [("vcek".to_owned(), TEST_VCEK.to_vec())].into(),
        })
    }
}

/// A version-3 report (AMD SEV-SNP ABI, Table "ATTESTATION_REPORT Structure"): QEMU's default
/// policy 0x30000, VMPL 0, TCB 3/0/8/115, chip ID 0x11 x 64, signed over bytes 0..0x2A0.
pub(crate) fn snp_report(measurement: &[u8; 48], report_data: &[u8; 64]) -> Vec<u8> {
    let tcb = [3u8, 0, 0, 0, 0, 0, 8, 115];
    let mut b = vec![0u8; 0x4A0];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0x000, &3u32.to_le_bytes()); // VERSION
    put(0x008, &0x30000u64.to_le_bytes()); // POLICY
    put(0x034, &1u32.to_le_bytes()); // SIGNATURE_ALGO: ECDSA P-384 SHA-384
    put(0x038, &tcb); // CURRENT_TCB
    put(0x050, report_data);
    put(0x090, measurement);
    put(0x180, &tcb); // REPORTED_TCB
    put(0x1A0, &[0x11; 64]); // CHIP_ID
    put(0x1E0, &tcb); // COMMITTED_TCB
    put(0x1F0, &tcb); // LAUNCH_TCB
    let key = p384::ecdsa::SigningKey::from_pkcs8_pem(TEST_VCEK_KEY).unwrap();
    let sig: p384::ecdsa::Signature = key.sign(&b[..0x2A0]);
    let (r, s) = sig.split_bytes();
    // r and s little-endian, each in a 72-byte field.
    for (off, scalar) in [(0x2A0, r), (0x2E8, s)] {
        let mut le = scalar.to_vec();
        le.reverse();
        b[off..off + 48].copy_from_slice(&le);
    }
    b
}

/// A real release record: the demo's (reviewed snapshot), read as a client reads
/// `DIR/record.json`.
pub(crate) fn demo_record() -> Record {
    let snap = include_str!(
        "../../reproducibility-tests/tests/snapshots/tests__demo_build__demo_record.snap"
    );
    // insta's header: `---`, two fields, `---`; the JSON follows.
    let json = snap.splitn(3, "---\n").nth(2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("record.json"), json).unwrap();
    serde_json::from_slice(&fs_err::read(dir.path().join("record.json")).unwrap()).unwrap()
}
