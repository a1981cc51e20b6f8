//! Revocation checks against a real certificate authority run with the openssl CLI: CRLs served
//! over loopback HTTP or read from files, and OCSP answered by OpenSSL's responder.
#![allow(clippy::unwrap_used)]

mod http;
mod pki;

use std::sync::Arc;

use bleedwatch_revocation::{
    build_request, certificates_from_pem_or_der, check_certificate, check_crl, check_response, fetch_issuer,
    select_issuer, CertificateRef, CheckOptions, CheckOutcome, CrlSource, HttpOptions, Method, RevocationError, Status,
};
use http::{Route, Server};
use pki::{require_openssl, Ca};

const CA_NAME: &str = "bleedwatch test CA";

struct Fixture {
    server: Server,
    ca: Arc<Ca>,
    revoked: CertificateRef,
    good: CertificateRef,
}

/// A CA with two leaves (one revoked for key compromise) and a delegated OCSP responder, its
/// CRL and certificate published on a loopback server, and OpenSSL answering OCSP there.
async fn fixture() -> Fixture {
    let server = Server::start().await;
    let ca = Arc::new(Ca::new(CA_NAME, &server.base_url));
    let (revoked_der, _) = ca.issue("revoked", "leaf");
    let (good_der, _) = ca.issue("good", "leaf");
    ca.issue("responder", "ocsp_signer");
    ca.revoke("revoked", "keyCompromise");
    let (_, crl_der) = ca.crl();
    server.route("/ca.crl", Route::File(crl_der));
    server.route("/ca.der", Route::File(ca.der()));
    answer_ocsp_with(&server, &ca, "ca");
    Fixture { server, ca, revoked: cert_ref(&revoked_der), good: cert_ref(&good_der) }
}

fn answer_ocsp_with(server: &Server, ca: &Arc<Ca>, signer: &'static str) {
    let ca = ca.clone();
    server.route("/ocsp", Route::Post(Arc::new(move |request| ca.ocsp_answer(request, signer))));
}

/// What the inventory knows about a certificate: bleedwatch's own summary of it.
fn cert_ref(der: &[u8]) -> CertificateRef {
    let summary = bleedwatch_x509::summarize(der).unwrap();
    CertificateRef {
        cert_sha256: summary.cert_sha256,
        serial: summary.serial,
        issuer: summary.issuer,
        crl_urls: summary.crl_urls,
        ocsp_urls: summary.ocsp_urls,
        ca_issuer_urls: summary.ca_issuer_urls,
    }
}

fn only(method: Method) -> CheckOptions {
    CheckOptions { use_crl: method == Method::Crl, use_ocsp: method == Method::Ocsp, ..CheckOptions::default() }
}

fn single(outcomes: Vec<CheckOutcome>) -> CheckOutcome {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_over_http_says_revoked_and_good() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    assert_eq!(f.revoked.crl_urls, [format!("{}/ca.crl", f.server.base_url)]);

    let revoked = single(check_certificate(&f.revoked, Some(&issuer), &only(Method::Crl)).await);
    assert_eq!(revoked.status, Status::Revoked, "{revoked:?}");
    assert_eq!(revoked.method, Method::Crl);
    assert_eq!(revoked.source, f.revoked.crl_urls[0]);
    assert_eq!(revoked.reason.as_deref(), Some("keyCompromise"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let revoked_at = revoked.revoked_at_unix.unwrap();
    assert!((now - 300..=now + 5).contains(&revoked_at), "{revoked_at} vs {now}");
    assert_eq!(revoked.cert_sha256, f.revoked.cert_sha256);

    let good = single(check_certificate(&f.good, Some(&issuer), &only(Method::Crl)).await);
    assert_eq!(good.status, Status::Good, "{good:?}");
    assert!(!good.detail.contains("not verified"), "{}", good.detail);
    assert_eq!(f.server.hits().iter().filter(|h| *h == "GET /ca.crl").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_from_files_in_pem_and_der() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    for file in ["ca.crl", "ca.crl.pem"] {
        let options = CheckOptions { crl_sources: Some(vec![CrlSource::File(f.ca.file(file))]), ..only(Method::Crl) };
        let outcome = single(check_certificate(&f.revoked, Some(&issuer), &options).await);
        assert_eq!(outcome.status, Status::Revoked, "{file}: {outcome:?}");
        assert_eq!(outcome.source, f.ca.file(file).display().to_string());
        let outcome = single(check_certificate(&f.good, Some(&issuer), &options).await);
        assert_eq!(outcome.status, Status::Good, "{file}");
    }
    // Without the issuer certificate the name still has to match, and the detail says the
    // signature went unchecked.
    let options = CheckOptions { crl_sources: Some(vec![CrlSource::File(f.ca.file("ca.crl"))]), ..only(Method::Crl) };
    let outcome = single(check_certificate(&f.revoked, None, &options).await);
    assert_eq!(outcome.status, Status::Revoked);
    assert!(outcome.detail.contains("signature not verified"), "{}", outcome.detail);
    assert!(f.server.hits().is_empty(), "files are not fetched: {:?}", f.server.hits());
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_of_another_ca_is_unknown_and_a_forged_one_is_rejected() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    // Another CA's CRL cannot speak for our certificates.
    let other = Ca::new("some other CA", &f.server.base_url);
    let (_, other_crl) = other.crl();
    let finding = check_crl(&other_crl, &f.revoked.serial, &f.revoked.issuer, Some(&issuer), 0).unwrap();
    assert_eq!(finding.status, Status::Unknown, "{finding:?}");
    assert!(finding.detail.contains("some other CA"));
    // A CRL under our CA's name but signed with another key (it would clear a revoked serial).
    let forger = Ca::new(CA_NAME, &f.server.base_url);
    let (_, forged_crl) = forger.crl();
    let error = check_crl(&forged_crl, &f.revoked.serial, &f.revoked.issuer, Some(&issuer), 0).unwrap_err();
    assert!(matches!(error, RevocationError::CrlSignature(_)), "{error}");
    // Served over HTTP it becomes an error outcome, not "good".
    f.server.route("/ca.crl", Route::File(forged_crl));
    let outcome = single(check_certificate(&f.revoked, Some(&issuer), &only(Method::Crl)).await);
    assert_eq!(outcome.status, Status::Error);
    assert!(outcome.detail.contains("signature"), "{}", outcome.detail);
    // The wrong issuer certificate is refused outright.
    let error = check_crl(&f.ca.crl().1, &f.revoked.serial, &f.revoked.issuer, Some(&other.der()), 0).unwrap_err();
    assert!(matches!(error, RevocationError::WrongIssuer(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_says_revoked_good_and_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    assert_eq!(f.revoked.ocsp_urls, [format!("{}/ocsp", f.server.base_url)]);

    let revoked = single(check_certificate(&f.revoked, Some(&issuer), &only(Method::Ocsp)).await);
    assert_eq!(revoked.status, Status::Revoked, "{revoked:?}");
    assert_eq!(revoked.method, Method::Ocsp);
    assert_eq!(revoked.reason.as_deref(), Some("keyCompromise"));
    assert!(revoked.revoked_at_unix.is_some());
    assert!(revoked.detail.contains("signed by the issuer"), "{}", revoked.detail);

    let good = single(check_certificate(&f.good, Some(&issuer), &only(Method::Ocsp)).await);
    assert_eq!(good.status, Status::Good, "{good:?}");

    // A serial this CA never issued.
    let stranger = CertificateRef { serial: "0badc0de".into(), ..f.good.clone() };
    let unknown = single(check_certificate(&stranger, Some(&issuer), &only(Method::Ocsp)).await);
    assert_eq!(unknown.status, Status::Unknown, "{unknown:?}");
    assert_eq!(f.server.hits().iter().filter(|h| *h == "POST /ocsp").count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_answer_from_a_delegated_responder() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    answer_ocsp_with(&f.server, &f.ca, "responder");
    let outcome = single(check_certificate(&f.revoked, Some(&f.ca.der()), &only(Method::Ocsp)).await);
    assert_eq!(outcome.status, Status::Revoked, "{outcome:?}");
    assert!(outcome.detail.contains("delegated responder"), "{}", outcome.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_answers_that_cannot_be_trusted_are_errors() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    // A responder with our CA's name but another key answers for our serials.
    let forger = Arc::new(Ca::new(CA_NAME, &f.server.base_url));
    let responder = f.server.base_url.clone() + "/forged";
    {
        let forger = forger.clone();
        f.server.route("/forged", Route::Post(Arc::new(move |request| forger.ocsp_answer(request, "ca"))));
    }
    let options = CheckOptions { ocsp_urls: Some(vec![responder]), ..only(Method::Ocsp) };
    let outcome = single(check_certificate(&f.good, Some(&issuer), &options).await);
    assert_eq!(outcome.status, Status::Error, "{outcome:?}");
    assert!(outcome.detail.contains("signature"), "{}", outcome.detail);

    // A genuine answer replayed for another request fails the nonce check.
    let first = build_request(&issuer, &f.revoked.serial, b"first-nonce-0001").unwrap();
    let second = build_request(&issuer, &f.revoked.serial, b"second-nonce-002").unwrap();
    let answer = f.ca.ocsp_answer(&first.request_der, "ca");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(check_response(&answer, &first, now).unwrap().status, Status::Revoked);
    assert_eq!(check_response(&answer, &second, now).unwrap_err(), RevocationError::OcspNonce);
    // An answer about another certificate does not count for this one.
    let other = build_request(&issuer, &f.good.serial, b"first-nonce-0001").unwrap();
    assert_eq!(check_response(&answer, &other, now).unwrap_err(), RevocationError::OcspNoMatch);

    // The issuer given must be the certificate's issuer.
    let other = Ca::new("some other CA", &f.server.base_url);
    let outcome = single(check_certificate(&f.good, Some(&other.der()), &only(Method::Ocsp)).await);
    assert_eq!(outcome.status, Status::Error);
    assert!(outcome.detail.contains("not the certificate's issuer"), "{}", outcome.detail);

    // OCSP needs the issuer certificate.
    let outcome = single(check_certificate(&f.good, None, &only(Method::Ocsp)).await);
    assert_eq!(outcome.status, Status::Error);
    assert!(outcome.detail.contains("issuer certificate is needed"), "{}", outcome.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_certificate_from_aia_or_a_bundle() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let fetched = fetch_issuer(&f.revoked, &HttpOptions::default()).await.unwrap();
    assert_eq!(fetched, f.ca.der());
    let pem = std::fs::read(f.ca.file("ca.pem")).unwrap();
    let mut bundle = std::fs::read(f.ca.file("responder.pem")).unwrap();
    bundle.extend_from_slice(&pem);
    let certs = certificates_from_pem_or_der(&bundle);
    assert_eq!(certs.len(), 2);
    assert_eq!(select_issuer(&f.revoked, &certs), Some(f.ca.der().as_slice()));
    assert_eq!(select_issuer(&f.revoked, &certs[..1]), None);
    assert_eq!(certificates_from_pem_or_der(&f.ca.der()), [f.ca.der()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_failures_are_recorded_as_errors() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.ca.der();
    f.server.route("/gone.crl", Route::Status(404));
    let sources = vec![
        CrlSource::Url(format!("{}/gone.crl", f.server.base_url)),
        CrlSource::Url("https://127.0.0.1:1/ca.crl".into()),
        CrlSource::File(f.ca.file("does-not-exist.crl")),
    ];
    let options = CheckOptions { crl_sources: Some(sources), ..only(Method::Crl) };
    let outcomes = check_certificate(&f.revoked, Some(&issuer), &options).await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|o| o.status == Status::Error), "{outcomes:?}");
    assert!(outcomes[0].detail.contains("404"), "{}", outcomes[0].detail);
    assert!(outcomes[1].detail.contains("only http://"), "{}", outcomes[1].detail);
    assert!(outcomes[2].detail.contains("cannot read"), "{}", outcomes[2].detail);
    // Size limits hold.
    let tiny = CheckOptions { http: HttpOptions { max_crl_bytes: 16, ..HttpOptions::default() }, ..only(Method::Crl) };
    let outcome = single(check_certificate(&f.revoked, Some(&issuer), &tiny).await);
    assert_eq!(outcome.status, Status::Error);
    assert!(outcome.detail.contains("larger than 16 bytes"), "{}", outcome.detail);
}
