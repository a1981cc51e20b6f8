//! Plain-HTTP fetching for CRLs, OCSP and CA certificates. CRL distribution points, OCSP
//! responders and CA-issuer URLs are HTTP by design (their content is signed), so there is no TLS
//! stack here. Every request has a time limit and every body a size limit.

use std::io::Read;
use std::time::Duration;

use crate::RevocationError;

/// Limits for one HTTP exchange.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Whole-request limit (connect, send, receive).
    pub timeout: Duration,
    /// Largest body accepted for a CRL (big CAs publish CRLs of tens of megabytes).
    pub max_crl_bytes: u64,
    /// Largest body accepted for an OCSP response or a certificate.
    pub max_small_bytes: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { timeout: Duration::from_secs(30), max_crl_bytes: 128 << 20, max_small_bytes: 1 << 20 }
    }
}

fn agent(options: &HttpOptions) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(options.timeout)
        .redirects(3)
        .user_agent(concat!("bleedwatch/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn require_http(url: &str) -> Result<(), RevocationError> {
    let is_http = url.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    if is_http {
        Ok(())
    } else {
        Err(RevocationError::UnsupportedUrl(url.to_owned()))
    }
}

fn read_limited(response: ureq::Response, limit: u64) -> Result<Vec<u8>, RevocationError> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| RevocationError::Http(format!("reading the response: {e}")))?;
    if body.len() as u64 > limit {
        return Err(RevocationError::TooLarge(limit));
    }
    Ok(body)
}

fn map_error(url: &str, error: ureq::Error) -> RevocationError {
    match error {
        ureq::Error::Status(code, response) => {
            RevocationError::Http(format!("{url}: HTTP {code} {}", response.status_text()))
        }
        ureq::Error::Transport(transport) => RevocationError::Http(format!("{url}: {transport}")),
    }
}

/// GET `url` (blocking).
pub fn get_blocking(url: &str, limit: u64, options: &HttpOptions) -> Result<Vec<u8>, RevocationError> {
    require_http(url)?;
    let response = agent(options).get(url).call().map_err(|e| map_error(url, e))?;
    read_limited(response, limit)
}

/// POST `body` to `url` with `content_type` (blocking).
pub fn post_blocking(
    url: &str,
    content_type: &str,
    body: &[u8],
    limit: u64,
    options: &HttpOptions,
) -> Result<Vec<u8>, RevocationError> {
    require_http(url)?;
    let response = agent(options)
        .post(url)
        .set("Content-Type", content_type)
        .send_bytes(body)
        .map_err(|e| map_error(url, e))?;
    read_limited(response, limit)
}

/// GET `url` without blocking the async runtime.
pub async fn get(url: &str, limit: u64, options: &HttpOptions) -> Result<Vec<u8>, RevocationError> {
    let (url, options) = (url.to_owned(), options.clone());
    tokio::task::spawn_blocking(move || get_blocking(&url, limit, &options))
        .await
        .map_err(|e| RevocationError::Http(format!("HTTP task failed: {e}")))?
}

/// POST without blocking the async runtime.
pub async fn post(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    limit: u64,
    options: &HttpOptions,
) -> Result<Vec<u8>, RevocationError> {
    let (url, content_type, options) = (url.to_owned(), content_type.to_owned(), options.clone());
    tokio::task::spawn_blocking(move || post_blocking(&url, &content_type, &body, limit, &options))
        .await
        .map_err(|e| RevocationError::Http(format!("HTTP task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_is_fetched() {
        assert!(require_http("http://crl.example/ca.crl").is_ok());
        assert!(require_http("HTTP://crl.example/ca.crl").is_ok());
        for url in ["https://crl.example/ca.crl", "ldap://x/cn=ca", "file:///etc/passwd", "", "http:/"] {
            assert!(matches!(require_http(url), Err(RevocationError::UnsupportedUrl(_))), "{url}");
        }
    }
}
