//! Integration tests for bleedwatch-x509: real fixtures (see tests/data/README.md)
//! and certificates generated with rcgen.
#![allow(clippy::unwrap_used)]

use bleedwatch_x509::{summarize, summarize_chain, CertSummary, X509Error};
use proptest::prelude::*;
use rcgen::{
    date_time_ymd, CertificateParams, CrlDistributionPoint, DnType, DnValue, IsCa, KeyPair,
    SanType, SerialNumber, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use sha2::{Digest, Sha256};

/// Server certificate of the OpenSSL 1.0.1f lab, taken from the shared capture.
const LAB_CERT: &[u8] = include_bytes!("data/heartbleed-lab-rsa-localhost.der");
/// RSA-2048 self-signed test certificate with SANs, CRL DP and AIA, made with the openssl CLI.
const RSA_AIA_CERT: &[u8] = include_bytes!("data/rsa2048-aia.der");

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn lab_summary() -> CertSummary {
    summarize(LAB_CERT).unwrap()
}

#[test]
fn lab_certificate_from_capture() {
    let summary = lab_summary();
    assert_eq!(summary.subject, "CN=localhost, O=Heartbleed Lab RSA");
    assert_eq!(summary.issuer, "CN=localhost, O=Heartbleed Lab RSA");
    assert_eq!(summary.serial, "09050b957b5e0b68d28ade5db6d7b27539f11aa0");
    assert_eq!(
        summary.sans,
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    );
    assert_eq!(summary.not_before, "2026-11-28T18:39:14Z");
    assert_eq!(summary.not_after, "2036-11-25T18:39:14Z");
    assert_eq!(summary.not_before_unix, 1_795_891_154);
    assert_eq!(summary.not_after_unix, 2_111_251_154);
    assert_eq!(summary.key_type, "rsa");
    assert_eq!(summary.key_bits, Some(2048));
    assert_eq!(summary.signature_algorithm, "sha256WithRSAEncryption");
    assert!(summary.self_signed);
    assert!(summary.crl_urls.is_empty());
    assert!(summary.ocsp_urls.is_empty());
    assert!(summary.ca_issuer_urls.is_empty());
}

#[test]
fn lab_certificate_hashes_match_openssl_cli() {
    let summary = lab_summary();
    // openssl x509 -inform DER -in heartbleed-lab-rsa-localhost.der -pubkey -noout \
    //   | openssl pkey -pubin -outform DER | sha256sum
    assert_eq!(
        summary.spki_sha256,
        "8c8cc767b2fc41eceb56272cb2a4c77e078b4cc006bec2f08d857baeba0632b4"
    );
    // sha256sum heartbleed-lab-rsa-localhost.der
    assert_eq!(
        summary.cert_sha256,
        "925fed545c323e6ab758286bdefb9b580db0484633163d1be7eec599f053956f"
    );
}

#[test]
fn rsa_fixture_with_revocation_urls() {
    let summary = summarize(RSA_AIA_CERT).unwrap();
    assert_eq!(
        summary.subject,
        "CN=rsa-aia.test.invalid, O=bleedwatch test fixture"
    );
    assert_eq!(summary.issuer, summary.subject);
    // DER stores 00 c0 ff ee 12 34; the sign byte is not part of the number.
    assert_eq!(summary.serial, "c0ffee1234");
    assert_eq!(
        summary.sans,
        vec![
            "rsa-aia.test.invalid".to_owned(),
            "www.rsa-aia.test.invalid".to_owned(),
            "192.0.2.7".to_owned(),
            "2001:db8::7".to_owned(),
            "email:ops@rsa-aia.test.invalid".to_owned(),
        ]
    );
    assert_eq!(summary.key_type, "rsa");
    assert_eq!(summary.key_bits, Some(2048));
    assert_eq!(summary.signature_algorithm, "sha256WithRSAEncryption");
    assert!(summary.self_signed);
    assert_eq!(
        summary.crl_urls,
        vec!["http://crl.test.invalid/ca.crl".to_owned()]
    );
    assert_eq!(
        summary.ocsp_urls,
        vec!["http://ocsp.test.invalid/".to_owned()]
    );
    assert_eq!(
        summary.ca_issuer_urls,
        vec!["http://ca.test.invalid/ca.der".to_owned()]
    );
    assert_eq!(summary.not_before, "2026-11-28T20:29:02Z");
    assert_eq!(summary.not_after, "2036-11-25T20:29:02Z");
    // openssl x509 -inform DER -in rsa2048-aia.der -pubkey -noout \
    //   | openssl pkey -pubin -outform DER | sha256sum
    assert_eq!(
        summary.spki_sha256,
        "2768b14f7403217a9b0ec839a5bddf739d257c81e64cfb1c529f4719b6b807c2"
    );
    assert_eq!(summary.cert_sha256, sha256_hex(RSA_AIA_CERT));
}

#[test]
fn same_key_same_spki_hash_different_cert_hash() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let first = CertificateParams::new(vec!["one.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let second = CertificateParams::new(vec!["two.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let first = summarize(first.der()).unwrap();
    let second = summarize(second.der()).unwrap();

    assert_eq!(first.spki_sha256, second.spki_sha256);
    assert_ne!(first.cert_sha256, second.cert_sha256);
    // The SPKI hash is the hash of the key's own SubjectPublicKeyInfo encoding.
    assert_eq!(first.spki_sha256, sha256_hex(&key.public_key_der()));

    let other_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let third = CertificateParams::new(vec!["one.example".to_owned()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    assert_ne!(
        summarize(third.der()).unwrap().spki_sha256,
        first.spki_sha256
    );
}

#[test]
fn ec_and_ed25519_keys_are_described() {
    let cases = [
        (&PKCS_ECDSA_P256_SHA256, "ec", 256, "ecdsa-with-SHA256"),
        (&PKCS_ECDSA_P384_SHA384, "ec", 384, "ecdsa-with-SHA384"),
        (&PKCS_ED25519, "ed25519", 256, "ed25519"),
    ];
    for (algorithm, key_type, bits, signature) in cases {
        let key = KeyPair::generate_for(algorithm).unwrap();
        let cert = CertificateParams::new(vec!["key.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let summary = summarize(cert.der()).unwrap();
        assert_eq!(summary.key_type, key_type, "{signature}");
        assert_eq!(summary.key_bits, Some(bits), "{signature}");
        assert_eq!(summary.signature_algorithm, signature);
        assert!(summary.self_signed, "{signature}");
    }
}

#[test]
fn generated_fields_round_trip() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().unwrap()));
    params
        .subject_alt_names
        .push(SanType::URI("https://a.example/".try_into().unwrap()));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "a.example");
    params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x00, 0x12, 0xab]));
    params.not_before = date_time_ymd(2014, 4, 7);
    params.not_after = date_time_ymd(2050, 1, 1);
    params.crl_distribution_points = vec![
        CrlDistributionPoint {
            uris: vec!["http://crl.example/a.crl".to_owned()],
        },
        CrlDistributionPoint {
            uris: vec![
                "http://crl2.example/b.crl".to_owned(),
                "ldap://crl.example/c".to_owned(),
            ],
        },
    ];
    let cert = params.self_signed(&key).unwrap();
    let summary = summarize(cert.der()).unwrap();

    assert_eq!(summary.subject, "CN=a.example");
    assert_eq!(summary.serial, "12ab");
    assert_eq!(
        summary.sans,
        vec![
            "a.example".to_owned(),
            "::1".to_owned(),
            "uri:https://a.example/".to_owned()
        ]
    );
    assert_eq!(summary.not_before, "2014-04-07T00:00:00Z");
    assert_eq!(summary.not_before_unix, 1_396_828_800);
    // 2050 is past UTCTime's range, so this exercises GeneralizedTime.
    assert_eq!(summary.not_after, "2050-01-01T00:00:00Z");
    assert_eq!(summary.not_after_unix, 2_524_608_000);
    assert_eq!(
        summary.crl_urls,
        vec![
            "http://crl.example/a.crl".to_owned(),
            "http://crl2.example/b.crl".to_owned(),
            "ldap://crl.example/c".to_owned(),
        ]
    );
    assert!(summary.ocsp_urls.is_empty());

    let json = serde_json::to_string(&summary).unwrap();
    let back: CertSummary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, summary);
}

#[test]
fn issued_and_self_issued_certificates_are_not_self_signed() {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "leaf.example");
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    // Same name as the CA but a different key: self-issued, not self-signed.
    let impostor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut impostor_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    impostor_params.distinguished_name = rcgen::DistinguishedName::new();
    impostor_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    let impostor = impostor_params
        .signed_by(&impostor_key, &ca, &ca_key)
        .unwrap();

    let chain = [
        leaf.der().to_vec(),
        ca.der().to_vec(),
        impostor.der().to_vec(),
    ];
    let summaries: Vec<CertSummary> = summarize_chain(&chain)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(summaries[0].subject, "CN=leaf.example");
    assert_eq!(summaries[0].issuer, "CN=Test CA");
    assert!(!summaries[0].self_signed);
    assert!(summaries[1].self_signed);
    assert_eq!(summaries[2].subject, summaries[2].issuer);
    assert!(!summaries[2].self_signed);
}

#[test]
fn chain_reports_each_certificate_separately() {
    let garbage: &[u8] = b"\x30\x03\x02\x01";
    let chain: [&[u8]; 3] = [LAB_CERT, garbage, RSA_AIA_CERT];
    let results = summarize_chain(&chain);
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap().subject,
        "CN=localhost, O=Heartbleed Lab RSA"
    );
    assert!(results[1].is_err());
    assert_eq!(results[2].as_ref().unwrap().serial, "c0ffee1234");
    assert!(summarize_chain::<Vec<u8>>(&[]).is_empty());
}

#[test]
fn hostile_subject_is_kept_verbatim() {
    let hostile = "<script>alert(1)</script>\u{0}\u{1b}[31m\r\nevil\u{202e}";
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["<img src=x>.example".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, DnValue::Utf8String(hostile.to_owned()));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "O=x, CN=fake");
    let cert = params.self_signed(&key).unwrap();
    let summary = summarize(cert.der()).unwrap();
    assert!(summary.subject.contains(hostile), "{:?}", summary.subject);
    assert!(summary.subject.contains("O=x, CN=fake"));
    assert_eq!(summary.sans, vec!["<img src=x>.example".to_owned()]);
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut padded = LAB_CERT.to_vec();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(summarize(&padded), Err(X509Error::TrailingData(3)));
}

#[test]
fn every_truncation_of_real_certificates_is_an_error() {
    for der in [LAB_CERT, RSA_AIA_CERT] {
        assert_eq!(summarize(&der[..0]), Err(X509Error::Empty));
        for cut in 1..der.len() {
            assert_eq!(
                summarize(&der[..cut]),
                Err(X509Error::Truncated),
                "prefix of {cut} bytes"
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = summarize(&bytes);
    }

    #[test]
    fn corrupted_certificates_never_panic(
        position in 0usize..LAB_CERT.len(),
        value in any::<u8>(),
        cut in 0usize..=LAB_CERT.len(),
    ) {
        let mut corrupted = LAB_CERT.to_vec();
        corrupted[position] = value;
        corrupted.truncate(cut);
        // A corrupted length byte can make a shorter prefix well-formed, so
        // only "no panic" holds here; clean truncations are checked exhaustively above.
        let _ = summarize(&corrupted);
    }
}

/// The `x509_summary` fuzz corpus (fuzz/README.md), replayed.
#[allow(clippy::panic)] // tests fail loudly by design
mod fuzz_corpus {
    /// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        bleedwatch_testkit::fuzz_corpus(target).unwrap()
    }

    #[test]
    fn summary_fuzz_corpus_replays_without_panic() {
        for bytes in corpus("x509_summary") {
            bleedwatch_x509::fuzz_summarize(&bytes);
            for cut in (0..bytes.len()).step_by(7) {
                bleedwatch_x509::fuzz_summarize(&bytes[..cut]);
            }
        }
    }
}
