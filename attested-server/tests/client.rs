use std::sync::Arc;

use attested_server::client::{self, ClientError, Expectation};
use attested_server::Limits;
use measurements::record::{PlatformMeasurement, Record};

use crate::util::{client_rt, demo_record, start, test_anchors, TestServer, TestSnp};

/// The record's first SEV-SNP profile and launch digest.
fn snp_profile(record: &Record) -> (String, [u8; 48]) {
    record
        .measurements
        .iter()
        .find_map(|m| match &m.platform {
            PlatformMeasurement::Snp { launch_digest, .. } => {
                Some((m.profile.clone(), launch_digest.0))
            }
            _ => None,
        })
        .expect("the demo record has an SEV-SNP profile")
}

fn expectation(record: Record) -> Expectation {
    let (profile, _) = snp_profile(&record);
    Expectation {
        record,
        profile: Some(profile),
        anchors: test_anchors(),
        policy: verifier::snp::SnpPolicy::default(),
        vcek: None,
        tpm_ak: None,
    }
}

fn snp_server(measurement: [u8; 48], report_data: Option<[u8; 64]>) -> TestServer {
    start(
        Arc::new(TestSnp {
            measurement,
            report_data,
        }),
        Limits::default(),
    )
}

const NONCE: [u8; 32] = [0x5a; 32];

fn words_request() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    client::post_json("/v1/words", br#"{"input": "one two three"}"#.to_vec())
}

/// Runs the attested request; on refusal, the names of the failed checks.
fn attested(server: &TestServer, expect: &Expectation) -> Result<client::Reply, ClientError> {
    client_rt()
        .block_on(client::attested_request(
            &server.addr,
            expect,
            &NONCE,
            words_request(),
        ))
        .map(|(attested, reply)| {
            assert!(attested.verdict.passed());
            assert_eq!(attested.spki_der, server.spki);
            reply
        })
}

fn refused_checks(result: Result<client::Reply, ClientError>) -> Vec<String> {
    match result {
        Err(ClientError::Refused(verdict)) => verdict.failures().map(|c| c.name.clone()).collect(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn evidence_matching_the_release_and_bound_to_the_tls_key_is_accepted() {
    let record = demo_record();
    let (_, digest) = snp_profile(&record);
    let server = snp_server(digest, None);
    let reply = attested(&server, &expectation(record)).unwrap();
    assert_eq!(reply.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["words"], 3);
}

#[test]
fn evidence_bound_to_another_nonce_is_refused() {
    let record = demo_record();
    let (_, digest) = snp_profile(&record);
    // A replay: a report the server made for someone else's nonce.
    let probe = snp_server(digest, None);
    let replayed = verifier::binding::report_data(&probe.spki, &[0x77; 32]);
    let server = snp_server(digest, Some(replayed));
    // The report is otherwise genuine: only the binding fails.
    let checks = refused_checks(attested(&server, &expectation(record)));
    assert_eq!(checks, ["snp.report_data"]);
}

#[test]
fn evidence_bound_to_another_key_is_refused() {
    let record = demo_record();
    let (_, digest) = snp_profile(&record);
    // A relay: the evidence binds the client's nonce, but another server's key (the one the
    // genuine guest holds), while this connection's key is the relay's.
    let genuine = snp_server(digest, None);
    let relay = snp_server(
        digest,
        Some(verifier::binding::report_data(&genuine.spki, &NONCE)),
    );
    assert_ne!(genuine.spki, relay.spki);
    let checks = refused_checks(attested(&relay, &expectation(record.clone())));
    assert_eq!(checks, ["snp.report_data"]);

    // And the same document checked against the key the client saw is refused the same way,
    // while against the genuine key it would pass: the check is on the key, nothing else.
    let expect = expectation(record);
    let path = format!("/v1/attestation?nonce={}", hex::encode(NONCE));
    let (seen, reply) = client_rt()
        .block_on(client::request(&relay.addr, None, client::get(&path)))
        .unwrap();
    assert_eq!(seen, relay.spki);
    let doc = serde_json::from_slice(&reply.body).unwrap();
    let v = client::check_document(&doc, &seen, &NONCE, &expect).unwrap();
    assert!(!v.passed());
    let v = client::check_document(&doc, &genuine.spki, &NONCE, &expect).unwrap();
    assert!(v.passed(), "{v}");
}

#[test]
fn evidence_with_another_measurement_is_refused() {
    let record = demo_record();
    let server = snp_server([0x42; 48], None);
    let checks = refused_checks(attested(&server, &expectation(record)));
    assert_eq!(checks, ["snp.measurement"]);
}

#[test]
fn a_different_release_is_refused() {
    let record = demo_record();
    let (profile, digest) = snp_profile(&record);
    let server = snp_server(digest, None);
    // The same record with another launch digest for the profile (another release).
    let mut other = record;
    for m in &mut other.measurements {
        if let PlatformMeasurement::Snp { launch_digest, .. } = &mut m.platform {
            if m.profile == profile {
                launch_digest.0[0] ^= 1;
            }
        }
    }
    let checks = refused_checks(attested(&server, &expectation(other)));
    assert_eq!(checks, ["snp.measurement"]);
}

#[test]
fn the_request_goes_only_to_the_attested_key() {
    let record = demo_record();
    let (_, digest) = snp_profile(&record);
    let attested_server = snp_server(digest, None);
    let other = snp_server(digest, None);
    let rt = client_rt();
    let a = rt
        .block_on(client::attest(
            &attested_server.addr,
            &expectation(record),
            &NONCE,
        ))
        .unwrap();
    // A connection to a server with another key, pinned to the attested one, is refused
    // during the handshake, before the request is sent.
    let err = rt
        .block_on(client::request(
            &other.addr,
            Some(&a.spki_der),
            words_request(),
        ))
        .unwrap_err();
    assert!(matches!(err, ClientError::KeyChanged), "{err}");
    assert!(err.to_string().contains("tls.server_key"), "{err}");
    let (_, reply) = rt
        .block_on(client::request(
            &attested_server.addr,
            Some(&a.spki_der),
            words_request(),
        ))
        .unwrap();
    assert_eq!(reply.status, 200);
}
