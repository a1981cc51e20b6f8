//! SMTP for `notify`, on lettre's connection (rustls, tokio; no OpenSSL). STARTTLS is required,
//! with the certificate verified (system roots, or `--smtp-ca`), unless the relay is a loopback
//! address. Each message is one SMTP transaction whose outcome is told apart precisely: a refusal
//! before the message was sent (nothing delivered), the relay's reply to the message (accepted or
//! refused), or a break while the message was on its way — the only *uncertain* case, as the relay
//! may have accepted it.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    /// A CA certificate (PEM) to trust for the relay, besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    /// The name we greet with (EHLO).
    pub hello: String,
    /// Require STARTTLS even on a loopback relay.
    pub require_starttls: bool,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings").field("host", &self.host).field("port", &self.port).field("auth", &self.credentials.is_some()).finish()
    }
}

impl SmtpSettings {
    /// Whether the relay is on this machine (127.0.0.0/8, ::1, `localhost`): the only case where
    /// plaintext SMTP is allowed.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// `HOST:PORT`, `[V6]:PORT`, or `HOST` (port 25).
pub fn parse_relay(text: &str) -> Result<(String, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else { bail!("--smtp {text:?}: expected HOST:PORT or [V6]:PORT") };
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().with_context(|| format!("--smtp {text:?}: bad port"))?,
            None if after.is_empty() => 25,
            None => bail!("--smtp {text:?}: expected [V6]:PORT"),
        };
        return Ok((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_owned(), port.parse().with_context(|| format!("--smtp {text:?}: bad port"))?)),
        Some(_) => bail!("--smtp {text:?}: write an IPv6 address as [V6]:PORT"),
        None if !text.is_empty() => Ok((text.to_owned(), 25)),
        None => bail!("--smtp: no relay given"),
    }
}

/// SMTP credentials: `BLEEDWATCH_SMTP_USER` and `BLEEDWATCH_SMTP_PASSWORD`, or a file whose first
/// line is the user and second the password (`--smtp-auth-file`, readable by its owner only, like
/// ssh keys and `.pgpass`); never from the command line.
pub fn credentials(auth_file: Option<&Path>) -> Result<Option<Credentials>> {
    if let Some(path) = auth_file {
        check_private(path)?;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the SMTP credentials {}", path.display()))?;
        let mut lines = text.lines();
        let (Some(user), Some(password)) = (lines.next().map(str::trim), lines.next()) else {
            bail!("{}: expected the user on the first line and the password on the second", path.display());
        };
        if user.is_empty() {
            bail!("{}, line 1: no user", path.display());
        }
        return Ok(Some(Credentials::new(user.to_owned(), password.trim_end_matches('\r').to_owned())));
    }
    match (std::env::var("BLEEDWATCH_SMTP_USER"), std::env::var("BLEEDWATCH_SMTP_PASSWORD")) {
        (Ok(user), Ok(password)) if !user.is_empty() => Ok(Some(Credentials::new(user, password))),
        (Ok(user), Err(_)) if !user.is_empty() => bail!("BLEEDWATCH_SMTP_USER is set but BLEEDWATCH_SMTP_PASSWORD is not"),
        (_, Ok(_)) => bail!("BLEEDWATCH_SMTP_PASSWORD is set but BLEEDWATCH_SMTP_USER is not"),
        _ => Ok(None),
    }
}

/// A password file others can read is no secret: refused, as ssh refuses such a key.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).with_context(|| format!("reading the SMTP credentials {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!("{}: the SMTP credentials are readable by others (mode {:o}): chmod 600 it", path.display(), mode & 0o777);
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

/// Whether an error is the relay's final word (a 5xx, e.g. 535 for a wrong password): trying again
/// cannot help, and repeating a failed login may lock the account.
pub fn is_final(error: &anyhow::Error) -> bool {
    error.downcast_ref::<lettre::transport::smtp::Error>().is_some_and(lettre::transport::smtp::Error::is_permanent)
}

/// Said once per run: a relay offering AUTH to a client without credentials will likely refuse
/// the recipients.
static NO_CREDENTIALS_HINT: std::sync::Once = std::sync::Once::new();

/// How one message's SMTP transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The relay accepted the message (its reply).
    Accepted(String),
    /// The relay refused (its code and reply), before or after the message: nothing delivered.
    Refused { code: u16, reply: String },
    /// The connection failed before the message was sent: nothing delivered, try again.
    NotSent(String),
    /// The connection broke while the message was on its way or before the relay's reply: it may
    /// have been accepted.
    Uncertain(String),
}

/// An open SMTP session (EHLO, STARTTLS, AUTH done).
pub struct Session {
    connection: AsyncSmtpConnection,
}

fn reply_text(response: &Response) -> String {
    let code = response.code();
    let lines: Vec<&str> = response.message().collect();
    format!("{code} {}", lines.join(" "))
}

fn error_reply(error: &lettre::transport::smtp::Error) -> Option<(u16, String)> {
    let code = error.status()?;
    let number: u16 = code.to_string().parse().unwrap_or(0);
    // lettre says "transient error (450): 4.2.0 …"; keep the relay's words, as the relay put them.
    let text = error.to_string();
    let words = text.split_once("): ").map_or(text.as_str(), |(_, words)| words);
    Some((number, format!("{number} {words}")))
}

impl Session {
    /// Connects, says EHLO, starts TLS (required unless the relay is loopback) and logs in.
    pub async fn open(settings: &SmtpSettings) -> Result<Session> {
        let hello = ClientId::Domain(settings.hello.clone());
        let relay = format!("{}:{}", settings.host, settings.port);
        let host = settings.host.trim_matches(['[', ']']).to_owned();
        let mut connection = AsyncSmtpConnection::connect_tokio1((host.as_str(), settings.port), Some(settings.timeout), &hello, None, None)
            .await
            .with_context(|| format!("connecting to the SMTP relay {relay}"))?;
        if settings.require_starttls || !settings.is_loopback() {
            if !connection.can_starttls() {
                connection.abort().await;
                bail!("the SMTP relay {relay} does not offer STARTTLS: refusing to send in plaintext (only to a loopback relay, without --smtp-starttls)");
            }
            let mut tls = TlsParameters::builder(host.clone());
            if let Some(pem) = &settings.ca_pem {
                tls = tls.add_root_certificate(Certificate::from_pem(pem).context("reading --smtp-ca")?);
            }
            let tls = tls.build_rustls().context("TLS settings for the SMTP relay")?;
            connection.starttls(tls, &hello).await.with_context(|| format!("STARTTLS with the SMTP relay {relay}"))?;
        }
        let offers_auth = [Mechanism::Plain, Mechanism::Login].into_iter().any(|m| connection.server_info().supports_auth_mechanism(m));
        if settings.credentials.is_none() && offers_auth {
            NO_CREDENTIALS_HINT.call_once(|| {
                eprintln!("bleedwatch: warning: the SMTP relay {relay} offers AUTH but no credentials were given (BLEEDWATCH_SMTP_USER and BLEEDWATCH_SMTP_PASSWORD, or --smtp-auth-file)");
            });
        }
        if let Some(credentials) = &settings.credentials {
            if !connection.is_encrypted() && !settings.is_loopback() {
                bail!("not sending SMTP credentials in plaintext to {relay}");
            }
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .with_context(|| format!("logging in to the SMTP relay {relay}"))?;
        }
        Ok(Session { connection })
    }

    /// One SMTP transaction. After anything but `Accepted` the session is closed (its state is
    /// unknown); open a new one.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Delivery {
        let before = |error: lettre::transport::smtp::Error| match error_reply(&error) {
            Some((code, reply)) => Delivery::Refused { code, reply },
            None => Delivery::NotSent(error.to_string()),
        };
        if let Err(error) = self.connection.command(Mail::new(envelope.from().cloned(), vec![])).await {
            return before(error);
        }
        for to in envelope.to() {
            if let Err(error) = self.connection.command(Rcpt::new(to.clone(), vec![])).await {
                return before(error);
            }
        }
        if let Err(error) = self.connection.command(Data).await {
            return before(error);
        }
        // From here the relay may have the whole message: only its reply says what it did.
        match self.connection.message(message).await {
            Ok(response) => Delivery::Accepted(reply_text(&response)),
            Err(error) => match error_reply(&error) {
                Some((code, reply)) => Delivery::Refused { code, reply },
                None => Delivery::Uncertain(error.to_string()),
            },
        }
    }

    /// Says QUIT (best effort).
    pub async fn close(mut self) {
        if self.connection.quit().await.is_err() {
            self.connection.abort().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn relays_parse_and_only_loopback_may_be_plaintext() {
        assert_eq!(parse_relay("127.0.0.1:2525").unwrap(), ("127.0.0.1".into(), 2525));
        assert_eq!(parse_relay("[::1]:25").unwrap(), ("::1".into(), 25));
        assert_eq!(parse_relay("mail.example.org").unwrap(), ("mail.example.org".into(), 25));
        assert!(parse_relay("::1:25").is_err() && parse_relay("").is_err() && parse_relay("h:x").is_err());
        let settings = |host: &str| SmtpSettings {
            host: host.into(),
            port: 25,
            credentials: None,
            ca_pem: None,
            timeout: Duration::from_secs(1),
            hello: "h".into(),
            require_starttls: false,
        };
        assert!(settings("127.0.0.2").is_loopback() && settings("::1").is_loopback() && settings("localhost").is_loopback());
        assert!(!settings("192.0.2.1").is_loopback() && !settings("mail.example.org").is_loopback());
    }

    #[cfg(unix)]
    #[test]
    fn auth_files_are_read_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("bleedwatch-mail-auth-{}", std::process::id()));
        std::fs::write(&path, "alice\r\nsecret\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let credentials = credentials(Some(&path)).unwrap().unwrap();
        assert_eq!(credentials, Credentials::new("alice".into(), "secret".into()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = format!("{:#}", super::credentials(Some(&path)).unwrap_err());
        assert!(error.contains("readable by others (mode 640): chmod 600 it") && !error.contains("secret"), "{error}");
        let _ = std::fs::remove_file(&path);
    }
}
