//! Revocation checks against a real certificate authority run with the openssl CLI: CRLs served
//! over loopback HTTP or read from files, and OCSP answered by OpenSSL's responder.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design, helpers included

mod http;
mod pki;

use std::sync::Arc;

use bleedwatch_revocation::{
    build_request, certificates_from_pem_or_der, check_certificate, check_crl, check_response, fetch_ca_issuers, now_unix,
    resolve_issuer, verify_issuer, CertificateRef, CheckOptions, CheckOutcome, CrlSource, HttpOptions, Method,
    RevocationError, Status, TrustAnchors, TrustedIssuer, UnknownReason,
};
use http::{Route, Server};
use pki::{require_openssl, Ca, OcspResponder};

const CA_NAME: &str = "bleedwatch test CA";

struct Fixture {
    server: Server,
    ca: Arc<Ca>,
    revoked: CertificateRef,
    good: CertificateRef,
    revoked_der: Vec<u8>,
    good_der: Vec<u8>,
}

impl Fixture {
    /// The issuer of `der`, verified with the CA as the only anchor (as with `--ca-file`).
    fn issuer_of(&self, der: &[u8]) -> Result<TrustedIssuer, RevocationError> {
        verify_issuer(der, &[], &self.ca.anchors(), now_unix())
    }
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
    Fixture { server, ca, revoked: cert_ref(&revoked_der), good: cert_ref(&good_der), revoked_der, good_der }
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

fn crl_file(path: std::path::PathBuf) -> CheckOptions {
    CheckOptions { crl_sources: Some(vec![CrlSource::File(path)]), ..only(Method::Crl) }
}

fn single(outcomes: Vec<CheckOutcome>) -> CheckOutcome {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().unwrap()
}

fn assert_unknown(outcome: &CheckOutcome, why: UnknownReason) {
    assert_eq!((outcome.status, outcome.unknown_reason), (Status::Unknown, Some(why)), "{outcome:?}");
    assert!(outcome.revoked_at_unix.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn genuine_crl_over_http_says_revoked_and_good() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    assert_eq!(f.revoked.crl_urls, [format!("{}/ca.crl", f.server.base_url)]);
    let issuer = f.issuer_of(&f.revoked_der);
    assert_eq!(issuer.as_ref().unwrap().der(), f.ca.der().as_slice(), "the anchor issued the leaf");

    let revoked = single(check_certificate(&f.revoked, &issuer, &only(Method::Crl)).await);
    assert_eq!(revoked.status, Status::Revoked, "{revoked:?}");
    assert_eq!(revoked.unknown_reason, None);
    assert_eq!(revoked.source, f.revoked.crl_urls[0]);
    assert_eq!(revoked.reason.as_deref(), Some("keyCompromise"));
    let now = now_unix();
    let revoked_at = revoked.revoked_at_unix.unwrap();
    assert!((now - 300..=now + 5).contains(&revoked_at), "{revoked_at} vs {now}");
    assert!(revoked.detail.contains(&format!("signed by \"CN={CA_NAME}")), "{}", revoked.detail);

    let good = single(check_certificate(&f.good, &f.issuer_of(&f.good_der), &only(Method::Crl)).await);
    assert_eq!(good.status, Status::Good, "{good:?}");
    // PEM or DER files read the same.
    for file in ["ca.crl", "ca.crl.pem"] {
        let outcome = single(check_certificate(&f.revoked, &issuer, &crl_file(f.ca.file(file))).await);
        assert_eq!(outcome.status, Status::Revoked, "{file}: {outcome:?}");
    }
    assert_eq!(f.server.hits().iter().filter(|h| *h == "GET /ca.crl").count(), 2);
}

/// The issue's reproduction: a CRL made by another key under the same CA name lists the exposed
/// (not revoked) certificate. Before, without `--issuer` it said `revoked`.
#[tokio::test(flavor = "multi_thread")]
async fn forged_crl_is_unknown_for_its_signature() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let forger = Ca::new(CA_NAME, &f.server.base_url);
    forger.issue("first", "leaf");
    forger.issue("second", "leaf"); // the same serial as f.good
    forger.revoke("second", "keyCompromise");
    let (_, forged) = forger.crl();
    let issuer = f.issuer_of(&f.good_der).unwrap();
    let error = check_crl(&forged, &f.good.serial, &issuer, now_unix()).unwrap_err();
    assert!(matches!(error, RevocationError::CrlSignature(_)), "{error}");
    std::fs::write(f.ca.file("forged.crl"), &forged).unwrap();
    let outcome = single(check_certificate(&f.good, &Ok(issuer.clone()), &crl_file(f.ca.file("forged.crl"))).await);
    assert_unknown(&outcome, UnknownReason::Signature);
    // Served from the distribution point, the same.
    f.server.route("/ca.crl", Route::File(forged));
    assert_unknown(&single(check_certificate(&f.good, &Ok(issuer.clone()), &only(Method::Crl)).await), UnknownReason::Signature);
    // Another CA's genuine CRL cannot speak for our certificates.
    let other = Ca::new("some other CA", &f.server.base_url);
    let error = check_crl(&other.crl().1, &f.good.serial, &issuer, now_unix()).unwrap_err();
    assert!(matches!(error, RevocationError::CrlIssuer(ref name) if name.contains("some other CA")), "{error}");
}

/// A genuine CRL whose nextUpdate passed in 2020 lists the revoked certificate: not believed.
#[tokio::test(flavor = "multi_thread")]
async fn stale_crl_is_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let stale = f.ca.crl_dated("20200101000000Z", "20200108000000Z");
    let issuer = f.issuer_of(&f.revoked_der);
    std::fs::write(f.ca.file("stale.crl"), &stale).unwrap();
    let outcome = single(check_certificate(&f.revoked, &issuer, &crl_file(f.ca.file("stale.crl"))).await);
    assert_unknown(&outcome, UnknownReason::Stale);
    assert!(outcome.detail.contains("nextUpdate") && outcome.detail.contains("2020"), "{}", outcome.detail);
    // Within the clock-skew allowance it still counts; one allowance later it does not.
    let next_update = 1_578_441_600; // 2020-01-08T00:00:00Z
    let issuer = issuer.unwrap();
    assert_eq!(check_crl(&stale, &f.revoked.serial, &issuer, next_update + 300).unwrap().status, Status::Revoked);
    assert!(matches!(check_crl(&stale, &f.revoked.serial, &issuer, next_update + 301), Err(RevocationError::CrlStale(_))));
    // A CRL dated in the future is not current either.
    let future = f.ca.crl_dated("20991231000000Z", "21000107000000Z");
    assert!(matches!(check_crl(&future, &f.revoked.serial, &issuer, now_unix()), Err(RevocationError::CrlStale(_))));
}

/// Without an issuer chained to an anchor, nothing is fetched and every check is unknown.
#[tokio::test(flavor = "multi_thread")]
async fn no_issuer_or_no_anchor_is_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    // The system roots do not know the test CA; the CA certificate as a mere candidate (as
    // fetched over HTTP from the AIA URL) does not make it one.
    let untrusted = verify_issuer(&f.revoked_der, &[f.ca.der()], &TrustAnchors::system(), now_unix());
    assert!(matches!(untrusted, Err(RevocationError::Untrusted(_))), "{untrusted:?}");
    let untrusted = resolve_issuer(&f.revoked, &f.revoked_der, &[], &TrustAnchors::system(), &HttpOptions::default()).await;
    assert!(matches!(untrusted, Err(RevocationError::Untrusted(_))), "{untrusted:?}");
    assert!(f.server.hits().contains(&"GET /ca.der".to_owned()), "the AIA candidate was fetched: {:?}", f.server.hits());
    // A look-alike anchor (same name, other key) does not either.
    let forger = Ca::new(CA_NAME, &f.server.base_url);
    let forged_anchor = verify_issuer(&f.revoked_der, &[], &forger.anchors(), now_unix());
    assert!(matches!(forged_anchor, Err(RevocationError::Untrusted(_))), "{forged_anchor:?}");
    assert!(matches!(
        verify_issuer(&f.revoked_der, &[], &TrustAnchors::default(), now_unix()),
        Err(RevocationError::Untrusted(ref why)) if why.contains("no trust anchors")
    ));
    let hits_before = f.server.hits().len();
    for options in [only(Method::Crl), only(Method::Ocsp), crl_file(f.ca.file("ca.crl"))] {
        let outcome = single(check_certificate(&f.revoked, &untrusted, &options).await);
        assert_unknown(&outcome, UnknownReason::NoIssuer);
        assert!(outcome.detail.contains("issuer not verified"), "{}", outcome.detail);
    }
    assert_eq!(f.server.hits().len(), hits_before, "nothing fetched without an issuer");
    // An issuer verified for one certificate does not vouch for another's answers.
    let outcome = single(check_certificate(&f.good, &f.issuer_of(&f.revoked_der), &only(Method::Crl)).await);
    assert_unknown(&outcome, UnknownReason::NoIssuer);
}

/// OpenSSL's own responder (`openssl ocsp -index -port`) on loopback.
#[tokio::test(flavor = "multi_thread")]
async fn ocsp_from_openssls_responder() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let Some(responder) = OcspResponder::start(&f.ca, "ca") else { return };
    let options = CheckOptions { ocsp_urls: Some(vec![responder.url.clone()]), ..only(Method::Ocsp) };
    let revoked = single(check_certificate(&f.revoked, &f.issuer_of(&f.revoked_der), &options).await);
    assert_eq!(revoked.status, Status::Revoked, "{revoked:?}");
    assert_eq!(revoked.reason.as_deref(), Some("keyCompromise"));
    assert!(revoked.detail.contains("signed by the issuer"), "{}", revoked.detail);
    assert!(!revoked.detail.contains("nonce"), "the nonce was echoed: {}", revoked.detail);
    let good = single(check_certificate(&f.good, &f.issuer_of(&f.good_der), &options).await);
    assert_eq!(good.status, Status::Good, "{good:?}");
    // A serial this CA never issued.
    let stranger = CertificateRef { serial: "0badc0de".into(), ..f.good.clone() };
    let unknown = single(check_certificate(&stranger, &f.issuer_of(&f.good_der), &options).await);
    assert_unknown(&unknown, UnknownReason::ResponderUnknown);
    drop(responder);

    // A responder certificate the CA delegated to (id-kp-OCSPSigning).
    let Some(delegated) = OcspResponder::start(&f.ca, "responder") else { return };
    let options = CheckOptions { ocsp_urls: Some(vec![delegated.url.clone()]), ..only(Method::Ocsp) };
    let outcome = single(check_certificate(&f.revoked, &f.issuer_of(&f.revoked_der), &options).await);
    assert_eq!(outcome.status, Status::Revoked, "{outcome:?}");
    assert!(outcome.detail.contains("delegated responder"), "{}", outcome.detail);
}

/// A responder with our CA's name but another key, run by OpenSSL, says our good certificate is
/// revoked; a leaf of the CA that is not an OCSP signer signs answers: both unknown (signature).
#[tokio::test(flavor = "multi_thread")]
async fn ocsp_signed_by_the_wrong_key_is_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let forger = Ca::new(CA_NAME, &f.server.base_url);
    forger.issue("first", "leaf");
    forger.issue("second", "leaf"); // the same serial as f.good
    forger.revoke("second", "keyCompromise");
    let Some(responder) = OcspResponder::start(&forger, "ca") else { return };
    let options = CheckOptions { ocsp_urls: Some(vec![responder.url.clone()]), ..only(Method::Ocsp) };
    let outcome = single(check_certificate(&f.good, &f.issuer_of(&f.good_der), &options).await);
    assert_unknown(&outcome, UnknownReason::Signature);
    // A certificate the CA issued, but not for OCSP signing (the "good" leaf signs).
    answer_ocsp_with(&f.server, &f.ca, "good");
    let outcome = single(check_certificate(&f.revoked, &f.issuer_of(&f.revoked_der), &only(Method::Ocsp)).await);
    assert_unknown(&outcome, UnknownReason::Signature);
}

/// An answer recorded earlier and served again: with another request's nonce it is refused at
/// once; an answer without a nonce only within the clock-skew allowance of its thisUpdate.
#[tokio::test(flavor = "multi_thread")]
async fn replayed_ocsp_answers_are_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.issuer_of(&f.revoked_der);
    let issuer_der = issuer.as_ref().unwrap().der().to_vec();
    // Recorded from OpenSSL's responder for an earlier request.
    let earlier = build_request(&issuer_der, &f.revoked.serial, b"earlier-nonce-01").unwrap();
    let recorded = f.ca.ocsp_answer(&earlier.request_der, "ca");
    assert_eq!(check_response(&recorded, &earlier, now_unix()).unwrap().status, Status::Revoked);
    // Served again by a loopback server, to a new request with its own nonce.
    let replay = recorded.clone();
    f.server.route("/replay", Route::Post(Arc::new(move |_| replay.clone())));
    let options = CheckOptions { ocsp_urls: Some(vec![format!("{}/replay", f.server.base_url)]), ..only(Method::Ocsp) };
    let outcome = single(check_certificate(&f.revoked, &issuer, &options).await);
    assert_unknown(&outcome, UnknownReason::NonceMismatch);

    // A responder that ignores nonces (a request without one gets an answer without one).
    let no_nonce_request = f.ca.file("no-nonce.req");
    pki::run(
        f.ca.path(),
        &["ocsp", "-issuer", "ca.pem", "-cert", "revoked.pem", "-no_nonce", "-reqout", no_nonce_request.to_str().unwrap()],
    );
    let without_nonce = f.ca.ocsp_answer(&std::fs::read(&no_nonce_request).unwrap(), "ca");
    let now = now_unix();
    let fresh = check_response(&without_nonce, &earlier, now).unwrap();
    assert_eq!(fresh.status, Status::Revoked, "fresh within the allowance: {fresh:?}");
    assert!(fresh.detail.contains("nonce-missing"), "reported: {}", fresh.detail);
    let replayed = check_response(&without_nonce, &earlier, now + 301).unwrap_err();
    assert!(matches!(replayed, RevocationError::OcspNonceMissing(_)), "{replayed}");
    assert_eq!(replayed.unknown_reason(), UnknownReason::NonceMissing);
    // An answer about another certificate does not count for this one.
    let other = build_request(&issuer_der, &f.good.serial, b"earlier-nonce-01").unwrap();
    assert_eq!(check_response(&recorded, &other, now).unwrap_err(), RevocationError::OcspNoMatch);
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_issuers_are_only_candidates() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    assert_eq!(fetch_ca_issuers(&f.revoked, &HttpOptions::default()).await.unwrap(), [f.ca.der()]);
    let pem = std::fs::read(f.ca.file("ca.pem")).unwrap();
    let mut bundle = std::fs::read(f.ca.file("responder.pem")).unwrap();
    bundle.extend_from_slice(&pem);
    assert_eq!(certificates_from_pem_or_der(&bundle).len(), 2);
    assert_eq!(certificates_from_pem_or_der(&f.ca.der()), [f.ca.der()]);
    // Fetched over HTTP and chained to the anchor: usable.
    let issuer = resolve_issuer(&f.revoked, &f.revoked_der, &[], &f.ca.anchors(), &HttpOptions::default()).await.unwrap();
    assert_eq!(issuer.der(), f.ca.der().as_slice());
    assert!(issuer.path().contains("anchor"), "{}", issuer.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_failures_are_unknown() {
    if !require_openssl() {
        return;
    }
    let f = fixture().await;
    let issuer = f.issuer_of(&f.revoked_der);
    f.server.route("/gone.crl", Route::Status(404));
    let sources = vec![
        CrlSource::Url(format!("{}/gone.crl", f.server.base_url)),
        CrlSource::Url("https://127.0.0.1:1/ca.crl".into()),
        CrlSource::File(f.ca.file("does-not-exist.crl")),
    ];
    let options = CheckOptions { crl_sources: Some(sources), ..only(Method::Crl) };
    let outcomes = check_certificate(&f.revoked, &issuer, &options).await;
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
        assert_unknown(outcome, UnknownReason::FetchFailed);
    }
    assert!(outcomes[0].detail.contains("404"), "{}", outcomes[0].detail);
    assert!(outcomes[1].detail.contains("only http://"), "{}", outcomes[1].detail);
    assert!(outcomes[2].detail.contains("cannot read"), "{}", outcomes[2].detail);
    // Size limits hold.
    let tiny = CheckOptions { http: HttpOptions { max_crl_bytes: 16, ..HttpOptions::default() }, ..only(Method::Crl) };
    let outcome = single(check_certificate(&f.revoked, &issuer, &tiny).await);
    assert_unknown(&outcome, UnknownReason::FetchFailed);
    assert!(outcome.detail.contains("larger than 16 bytes"), "{}", outcome.detail);
}
