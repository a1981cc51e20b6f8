//! Argument groups and value parsers that several commands share (flattened with
//! `#[command(flatten)]`), so one option is spelled, parsed and documented one way everywhere.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::heartbleed::MAX_PROVE_OVERREAD;
use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::ProbeMode;
use bleedwatch_starttls::Protocol;
use bleedwatch_store::Store;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Where the inventory lives.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct DbArgs {
    /// Inventory database: a file path, sqlite://PATH or postgres://USER@HOST/DB (TLS with
    /// ?sslmode=verify-full&sslrootcert=CA.pem or PGSSLMODE/PGSSLROOTCERT; the password from
    /// PGPASSWORD or ~/.pgpass, never needed here) [default: $BLEEDWATCH_DB, else
    /// $XDG_DATA_HOME/bleedwatch/inventory.db, else ~/.local/share/bleedwatch/inventory.db]
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

impl DbArgs {
    pub fn at(location: impl Into<String>) -> DbArgs {
        DbArgs { db: Some(location.into()) }
    }

    fn location(&self) -> Result<String> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        if let Some(db) = std::env::var("BLEEDWATCH_DB").ok().filter(|v| !v.trim().is_empty()) {
            return Ok(db);
        }
        Ok(bleedwatch_store::default_location()?.display().to_string())
    }

    /// The directory kept with the inventory (see [`bleedwatch_store::data_directory`]).
    pub fn data_directory(&self) -> Result<PathBuf> {
        Ok(bleedwatch_store::data_directory(&self.location()?)?)
    }

    /// Opens (creating and migrating if needed) the inventory: for commands that record.
    pub async fn open(&self) -> Result<Store> {
        let location = self.location()?;
        tracing::debug!(inventory = %redact_password(&location), "opening the inventory");
        Store::open(&location).await.with_context(|| format!("opening the inventory {}", redact_password(&location)))
    }

    /// Opens an inventory that exists, creating nothing: for commands that read it (and for those
    /// that only update what it holds). A SQLite file that is not there is "no inventory at …".
    pub async fn open_existing(&self) -> Result<Store> {
        let location = self.location()?;
        tracing::debug!(inventory = %redact_password(&location), "opening the existing inventory");
        match Store::open_existing(&location).await {
            Err(error @ bleedwatch_store::StoreError::NoInventory(_)) => Err(error.into()),
            other => other.with_context(|| format!("opening the inventory {}", redact_password(&location))),
        }
    }
}

/// The certificate and key a server we run presents (`honeypot`, `client-test --after-handshake`).
#[derive(Args, Debug, Clone, Default)]
pub struct ServerIdentityArgs {
    /// Present this certificate chain (PEM, leaf first) [default: a certificate on this
    /// installation's own key, server-key.pem beside the inventory, made on first use]
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 P-256).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl ServerIdentityArgs {
    /// The given certificate and key, else this installation's own key (kept in the inventory's
    /// directory, mode 0600; with no inventory (`None`, `--no-db`), a key of this run only,
    /// written nowhere) with a self-signed certificate for `name`. Never the committed lab key: a
    /// shared key would let anyone fingerprint the server and decrypt its RSA sessions.
    pub fn identity(&self, db: Option<&DbArgs>, name: &str) -> Result<bleedwatch_lab::LabIdentity> {
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let cert_pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let key_pem = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            return bleedwatch_lab::LabIdentity::from_pem(&cert_pem, &key_pem)
                .with_context(|| format!("{} and {}", cert.display(), key.display()));
        }
        match db {
            Some(db) => Ok(bleedwatch_lab::LabIdentity::per_installation(&db.data_directory()?, &[name])?),
            None => Ok(bleedwatch_lab::LabIdentity::generate_rsa(&[name])?),
        }
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***` for
/// messages.
fn redact_password(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else { return location.to_owned() };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let mut redacted = match authority_and_path.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{authority_and_path}"),
        },
        None => format!("{scheme}://{authority_and_path}"),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// `--json FILE` for commands whose only file output is JSON lines.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonArgs {
    /// Write one JSON object per line to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `--json FILE` and `--csv FILE`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputArgs {
    /// Write one JSON object per line to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write CSV to FILE (`-` for standard output; cells that start with = + - @ are neutralised).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// The scanner's limit per phase of a connection.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutArgs {
    /// Limit for connecting.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Limit from connect to the end of the server's hello flight.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Limit for the heartbeat answer once our heartbeats are sent.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
}

impl Default for TimeoutArgs {
    fn default() -> Self {
        TimeoutArgs { connect_timeout: Duration::from_secs(5), handshake_timeout: Duration::from_secs(10), heartbeat_timeout: Duration::from_secs(5) }
    }
}

impl TimeoutArgs {
    /// The same limit for every phase.
    pub fn all(limit: Duration) -> TimeoutArgs {
        TimeoutArgs { connect_timeout: limit, handshake_timeout: limit, heartbeat_timeout: limit }
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts { connect: self.connect_timeout, handshake: self.handshake_timeout, heartbeat: self.heartbeat_timeout }
    }
}

/// One duration syntax for every option: humantime (`500ms`, `30s`, `2m`, `7d`, `1h 30m`), or a
/// plain number of seconds (`30`, `0.5`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?}: not a duration (give 30s, 2m, 500ms or plain seconds)"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (give 30s, 2m, 500ms or plain seconds)"))
}

/// `--since`: an RFC 3339 time, or a duration before now (the same syntax as every duration);
/// Unix milliseconds.
pub fn parse_since(text: &str) -> std::result::Result<i64, String> {
    let time = match humantime::parse_rfc3339_weak(text) {
        Ok(time) => time,
        Err(_) => {
            let ago = parse_duration(text).map_err(|_| format!("{text:?}: give a time (2014-04-08T00:00:00Z) or a duration (7d)"))?;
            std::time::SystemTime::now().checked_sub(ago).ok_or_else(|| format!("{text:?} is too long ago"))?
        }
    };
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is out of range"))
}

/// `--prove N`: 1 to 64 bytes over-read.
pub fn probe_mode(prove: Option<u16>) -> Result<ProbeMode> {
    Ok(match prove {
        None => ProbeMode::Safe,
        Some(0) => bail!("--prove needs at least 1 byte"),
        Some(n) if n > MAX_PROVE_OVERREAD => bail!("--prove reads at most {MAX_PROVE_OVERREAD} bytes"),
        Some(n) => ProbeMode::Prove { overread: n },
    })
}

/// `--starttls` of `scan`: `auto`, `none` or a dialect. Checked by clap, listed in `--help` and in
/// shell completions; the dialect names and aliases are the starttls crate's.
pub fn starttls_mode_parser() -> StarttlsParser {
    StarttlsParser { modes: true }
}

/// `--starttls` of the servers (`lab`, `client-test`, `honeypot`): a dialect.
pub fn starttls_dialect_parser() -> impl TypedValueParser<Value = Protocol> {
    StarttlsParser { modes: false }.try_map(|mode| match mode {
        StarttlsMode::Force(protocol) => Ok(protocol),
        // Unreachable: without modes, only dialects parse.
        StarttlsMode::Auto | StarttlsMode::Off => Err("give a STARTTLS dialect".to_owned()),
    })
}

#[derive(Clone, Copy, Debug)]
pub struct StarttlsParser {
    /// Whether `auto` and `none` are accepted.
    modes: bool,
}

impl StarttlsParser {
    fn names(&self) -> Vec<PossibleValue> {
        let mut names = Vec::new();
        if self.modes {
            names.push(PossibleValue::new("auto").help("direct TLS or STARTTLS, found out per port"));
            names.push(PossibleValue::new("none").help("direct TLS only").alias("off").alias("tls"));
        }
        names.extend(Protocol::ALL.iter().map(|p| PossibleValue::new(p.name())));
        names
    }
}

/// `auto`, `none` (`off`, `tls`) or a dialect name or alias, any case.
pub fn parse_starttls_mode(text: &str) -> Option<StarttlsMode> {
    match text.trim().to_ascii_lowercase().as_str() {
        "auto" => Some(StarttlsMode::Auto),
        "none" | "off" | "tls" => Some(StarttlsMode::Off),
        name => name.parse::<Protocol>().ok().map(StarttlsMode::Force),
    }
}

/// The name [`parse_starttls_mode`] reads back.
pub fn starttls_mode_name(mode: StarttlsMode) -> &'static str {
    match mode {
        StarttlsMode::Auto => "auto",
        StarttlsMode::Off => "none",
        StarttlsMode::Force(protocol) => protocol.name(),
    }
}

impl TypedValueParser for StarttlsParser {
    type Value = StarttlsMode;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> std::result::Result<StarttlsMode, clap::Error> {
        let parsed = value.to_str().and_then(parse_starttls_mode).filter(|mode| self.modes || matches!(mode, StarttlsMode::Force(_)));
        match parsed {
            Some(mode) => Ok(mode),
            // clap's own message, with the list of names.
            None => PossibleValuesParser::new(self.names()).parse_ref(cmd, arg, value).and_then(|_| {
                Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("unknown STARTTLS dialect {value:?}\n")))
            }),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.names().into_iter()))
    }
}

/// Serde for a [`StarttlsMode`] as its name (the scan plan is stored with a run for `--resume`).
pub mod starttls_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(mode: &StarttlsMode, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(starttls_mode_name(*mode))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<StarttlsMode, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse_starttls_mode(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown STARTTLS mode {name:?}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Probe {
        #[arg(long, value_parser = starttls_mode_parser(), default_value = "auto")]
        starttls: StarttlsMode,
        #[arg(long, value_parser = starttls_dialect_parser())]
        dialect: Option<Protocol>,
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact_password("postgres://bw:s3cret@db.example/inv"), "postgres://bw:***@db.example/inv");
        assert_eq!(redact_password("postgres://bw@db/inv"), "postgres://bw@db/inv");
        assert_eq!(redact_password("/var/lib/inv.db"), "/var/lib/inv.db");
        assert_eq!(
            redact_password("postgres://bw@db/inv?sslmode=verify-full&password=s3cret"),
            "postgres://bw@db/inv?sslmode=verify-full&password=***"
        );
        assert_eq!(redact_password("postgres://bw:pw@db/inv?sslmode=require"), "postgres://bw:***@db/inv?sslmode=require");
    }

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("plain seconds"));
    }

    #[test]
    fn starttls_values_are_checked_and_aliases_still_parse() {
        let parse = |args: &[&str]| Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()));
        assert_eq!(parse(&[]).unwrap().starttls, StarttlsMode::Auto);
        assert_eq!(parse(&["--starttls", "none"]).unwrap().starttls, StarttlsMode::Off);
        assert_eq!(parse(&["--starttls", "OFF"]).unwrap().starttls, StarttlsMode::Off);
        assert_eq!(parse(&["--starttls", "xmpp-server"]).unwrap().starttls, StarttlsMode::Force(Protocol::XmppServer));
        assert_eq!(parse(&["--starttls", "postgresql"]).unwrap().starttls, StarttlsMode::Force(Protocol::Postgres));
        let error = parse(&["--starttls", "gopher"]).unwrap_err().to_string();
        assert!(error.contains("gopher") && error.contains("possible values") && error.contains("sieve"), "{error}");
        assert_eq!(parse(&["--dialect", "smtp"]).unwrap().dialect, Some(Protocol::Smtp));
        assert!(parse(&["--dialect", "auto"]).is_err(), "servers speak a dialect, not auto");
        for mode in [StarttlsMode::Auto, StarttlsMode::Off, StarttlsMode::Force(Protocol::Irc)] {
            assert_eq!(parse_starttls_mode(starttls_mode_name(mode)), Some(mode));
        }
    }

    #[test]
    fn help_lists_the_dialects() {
        use clap::CommandFactory;
        let help = Probe::command().render_help().to_string();
        for name in ["auto", "none", "smtp", "lmtp", "imap", "pop3", "ftp", "xmpp", "xmpp-server", "ldap", "nntp", "sieve", "postgres", "mysql", "rdp", "irc"] {
            assert!(help.contains(name), "{name}: {help}");
        }
    }

    #[test]
    fn since_takes_a_time_or_a_duration() {
        assert_eq!(parse_since("2014-04-08T16:57:00Z").unwrap(), 1_396_976_220_000);
        let day_ago = parse_since("1d").unwrap();
        assert!((crate::clock::now_ms() - 86_400_000 - day_ago).abs() < 60_000, "{day_ago}");
        assert!(parse_since("last tuesday").unwrap_err().contains("duration"));
    }

    #[test]
    fn prove_takes_one_to_64_bytes() {
        assert_eq!(probe_mode(None).unwrap(), ProbeMode::Safe);
        assert_eq!(probe_mode(Some(16)).unwrap(), ProbeMode::Prove { overread: 16 });
        assert!(probe_mode(Some(0)).is_err());
        assert!(probe_mode(Some(65)).unwrap_err().to_string().contains("at most 64"));
    }
}
