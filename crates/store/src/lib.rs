#![forbid(unsafe_code)]
//! bleedwatch's inventory: every scan run, endpoint, observation, certificate, asset, revocation
//! check and watch alert, in SQLite by default or PostgreSQL for teams sharing one inventory.
//!
//! # Backends and migrations
//!
//! One schema, reached through sqlx's `Any` driver with runtime queries (no compile-time macros, no
//! TLS: nothing links OpenSSL). Migrations live in `migrations/sqlite/` and `migrations/postgres/`
//! with the same versions and the same tables and columns (a unit test compares them); only identity
//! columns and the binary type are spelled per backend. SQL is written in the common subset
//! (`$1` parameters, `ON CONFLICT`, `RETURNING`), flags are 0/1 integers and times are Unix
//! milliseconds, so every query runs unchanged on both.
//!
//! # History and crash safety
//!
//! Rows are added, never overwritten: an endpoint (address, port, transport, server name) gets one
//! observation per scan run, with the result's JSON line kept whole. Each result is recorded in its
//! own transaction, so a scan killed at any moment loses at most the endpoint it was testing; the
//! observation's `UNIQUE (scan_run_id, endpoint_id)` makes recording idempotent, so a resumed run
//! ([`Store::pending_targets`]) never writes a duplicate.
//!
//! # Assessment
//!
//! [`Store::assess_all`] feeds every endpoint's history, the revocation checks and the key pins to
//! `bleedwatch-assess` and records the watch alerts it finds. Capture findings of attacks are
//! matched to the endpoints they hit ([`AttackEvidence`]): an endpoint attacked while it was
//! vulnerable is the most urgent.
//!
//! # Clients and attackers
//!
//! `client-test` verdicts ([`Store::record_client_test`]) and Heartbleed attempts from the honeypot
//! and packet captures ([`Store::record_attack`], [`Store::attackers`]) are kept next to the
//! endpoints; re-importing a capture adds nothing ([`CaptureImport`]).
//!
//! # Notices
//!
//! The notices `notify` sends users ([`notices`]): each is recorded before its SMTP transaction and
//! after it, so a killed run sends nobody the same notice twice.

mod assets;
mod attacks;
mod clients;
mod disk;
mod input;
mod label;
pub mod notices;
mod query;
mod record;
mod row;
mod run_id;
mod sweeps;
mod time;
pub mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};
use tokio::sync::RwLock;

pub use attacks::{
    sha256_hex, AttackEvidence, AttackFilter, AttackInput, AttackOutcome, AttackRow, AttackerRow, CaptureImport, CaptureRef,
    Sha256Reader, ORIGIN_HONEYPOT, ORIGIN_PCAP, SEVERITIES,
};
pub use disk::{DiskAuditInput, DiskFinding, PackageRecord, ProductEndpoint, ProductRow, DISK_KINDS, DISK_VERDICTS, HEARTBEAT_BUILDS};
pub use clients::{ClientTestFilter, ClientTestInput, ClientTestRow, CLIENT_VERDICTS};
pub use assets::{
    fuzz_asset_csv, fuzz_masscan_json, fuzz_nmap_xml, parse_asset_csv, parse_masscan_json, parse_nmap_xml, AssetInput, ImportSummary, KnownTarget,
};
pub use bleedwatch_assess as assess;
pub use bleedwatch_verdict::EndpointResult;
pub use input::CertificateRecord;
pub use query::{
    AlertFilter, AlertRow, AssetRow, CertificateRow, EndpointAssessment, EndpointRow, ObservationRow,
    RevocationInput, RevocationRow, RunRow,
};
pub use label::endpoint_label;
pub use notices::fuzz_recipients_csv;
pub use record::RecordOutcome;
pub use run_id::RunId;
pub use sweeps::{ShardRow, SweepJoin, SweepRow, SweepSpec};

/// Everything that can go wrong with the inventory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database {0:?}: give a file path, sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("no home directory for the default inventory (set XDG_DATA_HOME or HOME, or give --db)")]
    NoDefaultLocation,
    #[error("cannot create {path}: {error}")]
    CreateDirectory { path: String, error: String },
    #[error("scan result not recorded: {0}")]
    BadResult(String),
    #[error("{origin}, line {line}: {message}")]
    Import { origin: String, line: u64, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("no inventory at {0} (a scan, `assets import`, `pcap --db`, client-test or the honeypot creates one; give --db to use another)")]
    NoInventory(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the inventory; cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Assets compiled for matching endpoints, loaded on first use and after imports.
    asset_matcher: Arc<RwLock<Option<Arc<assets::AssetMatcher>>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "inventory", include_str!("../migrations/sqlite/0001_inventory.sql")),
    (2, "clients and attacks", include_str!("../migrations/sqlite/0002_clients_and_attacks.sql")),
    (3, "observation evidence", include_str!("../migrations/sqlite/0003_observation_evidence.sql")),
    (4, "revocation reason", include_str!("../migrations/sqlite/0004_revocation_reason.sql")),
    (5, "notices", include_str!("../migrations/sqlite/0005_notices.sql")),
    (6, "sweeps", include_str!("../migrations/sqlite/0006_sweeps.sql")),
    (7, "disk audits", include_str!("../migrations/sqlite/0007_disk_audits.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "inventory", include_str!("../migrations/postgres/0001_inventory.sql")),
    (2, "clients and attacks", include_str!("../migrations/postgres/0002_clients_and_attacks.sql")),
    (3, "observation evidence", include_str!("../migrations/postgres/0003_observation_evidence.sql")),
    (4, "revocation reason", include_str!("../migrations/postgres/0004_revocation_reason.sql")),
    (5, "notices", include_str!("../migrations/postgres/0005_notices.sql")),
    (6, "sweeps", include_str!("../migrations/postgres/0006_sweeps.sql")),
    (7, "disk audits", include_str!("../migrations/postgres/0007_disk_audits.sql")),
];

/// The schema version this build creates.
pub const SCHEMA_VERSION: i64 = 7;

/// Migrations compiled into the binary, for sqlx's migrator.
#[derive(Debug)]
struct EmbeddedMigrations(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send>,
    > {
        let migrations = self
            .0
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, (*description).into(), MigrationType::Simple, (*sql).into(), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

impl Store {
    /// Opens (creating it if needed) the inventory at `location` — a file path, a `sqlite:` URL or a
    /// `postgres://` URL — and brings its schema up to date.
    pub async fn open(location: &str) -> Result<Store> {
        let (url, backend) = database_url(location)?;
        if backend == Backend::Sqlite {
            create_parent_directory(&url)?;
        }
        Store::connect(url, backend).await
    }

    /// Opens an inventory that must exist already, for commands that only read it: a SQLite file
    /// that is not there is [`StoreError::NoInventory`], and nothing (file or directory) is created.
    /// PostgreSQL and in-memory databases open as with [`Store::open`] (the server says whether the
    /// database exists).
    pub async fn open_existing(location: &str) -> Result<Store> {
        let (url, backend) = database_url(location)?;
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_file(&url) {
                if !path.is_file() {
                    return Err(StoreError::NoInventory(path.display().to_string()));
                }
            }
            // `rw`, not `rwc`: a file removed since the check is an error, never re-created empty.
            let url = url.replacen("mode=rwc", "mode=rw", 1);
            return Store::connect(url, backend).await;
        }
        Store::connect(url, backend).await
    }

    async fn connect(url: String, backend: Backend) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database exists once per connection: keep to one.
            .max_connections(match backend {
                Backend::Sqlite if url.contains(":memory:") || url.contains("mode=memory") => 1,
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Concurrent writers (a scan and an import) wait for each other instead of failing.
                        connection.execute("PRAGMA busy_timeout = 60000").await?;
                        connection.execute("PRAGMA foreign_keys = ON").await?;
                        // With WAL, NORMAL syncs at checkpoints, not at every commit: a killed scan
                        // loses nothing it committed (only an OS crash could lose the last ones), and
                        // recording keeps up with the scanner.
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers work while a scan writes; it is a property of the file, set once.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let migrations = match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrator = Migrator::new(EmbeddedMigrations(migrations)).await?;
        migrate(&migrator, &pool, backend).await?;
        Ok(Store { pool, backend, asset_matcher: Arc::default() })
    }

    /// Opens the default inventory ([`default_location`]).
    pub async fn open_default() -> Result<Store> {
        let path = default_location()?;
        Store::open(&path.display().to_string()).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The newest schema version applied.
    pub async fn schema_version(&self) -> Result<i64> {
        let row: AnyRow = sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations").fetch_one(&self.pool).await?;
        Ok(row::get::<Option<i64>>(&row, "version")?.unwrap_or(0))
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads first and writes later can fail at once when another writer is busy.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// Brings the schema up to date. sqlx locks PostgreSQL while migrating, but not SQLite: two
/// processes opening a new inventory file at once (a scan and a honeypot) can both try to apply the
/// same migration, and the loser fails with "table already exists" after its transaction rolled
/// back. Trying again then finds the migration applied.
async fn migrate(migrator: &Migrator, pool: &AnyPool, backend: Backend) -> Result<()> {
    const ATTEMPTS: u64 = 5;
    let mut attempt = 1;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if backend == Backend::Sqlite && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// `$XDG_DATA_HOME/bleedwatch/inventory.db`, else `~/.local/share/bleedwatch/inventory.db`.
pub fn default_location() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match xdg {
        Some(base) => base,
        None => {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or(StoreError::NoDefaultLocation)?;
            PathBuf::from(home).join(".local").join("share")
        }
    };
    Ok(base.join("bleedwatch").join("inventory.db"))
}

/// The directory that goes with an inventory (where an installation keeps its own files, such as
/// its server key): the SQLite file's directory, else (PostgreSQL, in memory) the default
/// inventory's.
pub fn data_directory(location: &str) -> Result<PathBuf> {
    let (url, backend) = database_url(location)?;
    let file = if backend == Backend::Sqlite { sqlite_file(&url) } else { None };
    let file = match file {
        Some(file) => file,
        None => default_location()?,
    };
    Ok(match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_path_buf(),
        None => PathBuf::from("."),
    })
}

/// Turns what the user typed into a database URL and its backend.
fn database_url(location: &str) -> Result<(String, Backend)> {
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok((location.to_owned(), Backend::Postgres));
    }
    if let Some(rest) = lower.strip_prefix("sqlite:") {
        if rest.starts_with(":memory:") || rest.contains("mode=memory") {
            return Ok((location.to_owned(), Backend::Sqlite));
        }
        let with_mode = if location.contains('?') { location.to_owned() } else { format!("{location}?mode=rwc") };
        return Ok((with_mode, Backend::Sqlite));
    }
    if location.is_empty() || location.contains("://") {
        return Err(StoreError::UnsupportedUrl(location.to_owned()));
    }
    // A plain path: characters that mean something in a URL are percent-encoded (sqlx decodes them).
    let mut encoded = String::with_capacity(location.len());
    for c in location.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            other => encoded.push(other),
        }
    }
    Ok((format!("sqlite://{encoded}?mode=rwc"), Backend::Sqlite))
}

/// The file a SQLite URL names (None for in-memory databases).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path_part, options) = rest.split_once('?').unwrap_or((rest, ""));
    if path_part.is_empty() || path_part.starts_with(":memory:") || options.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path_part.replace("%3F", "?").replace("%23", "#").replace("%25", "%")))
}

fn create_parent_directory(url: &str) -> Result<()> {
    let Some(decoded) = sqlite_file(url) else { return Ok(()) };
    if let Some(parent) = Path::new(&decoded).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::CreateDirectory { path: parent.display().to_string(), error: e.to_string() })?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn locations_become_urls() {
        assert_eq!(database_url("postgres://u@127.0.0.1:5/db").unwrap(), ("postgres://u@127.0.0.1:5/db".into(), Backend::Postgres));
        assert_eq!(database_url("postgresql://h/db").unwrap().1, Backend::Postgres);
        assert_eq!(database_url("/var/lib/bw.db").unwrap().0, "sqlite:///var/lib/bw.db?mode=rwc");
        assert_eq!(database_url("odd?name#1%.db").unwrap().0, "sqlite://odd%3Fname%231%25.db?mode=rwc");
        assert_eq!(database_url("sqlite:///x.db").unwrap().0, "sqlite:///x.db?mode=rwc");
        assert_eq!(database_url("sqlite:///x.db?mode=ro").unwrap().0, "sqlite:///x.db?mode=ro");
        assert_eq!(database_url("sqlite::memory:").unwrap().0, "sqlite::memory:");
        assert!(database_url("mysql://h/db").is_err());
        assert!(database_url("").is_err());
    }

    /// "One schema": both migration files must create the same tables with the same columns.
    #[test]
    fn both_backends_have_the_same_schema() {
        fn columns(sql: &str) -> BTreeMap<String, Vec<String>> {
            let mut tables = BTreeMap::new();
            let mut current: Option<String> = None;
            for line in sql.lines().map(|l| l.split("--").next().unwrap_or("").trim()) {
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    current = Some(rest.trim_end_matches(" (").to_owned());
                    continue;
                }
                if line.starts_with(");") {
                    current = None;
                    continue;
                }
                if let (Some(table), Some(word)) = (&current, line.split_whitespace().next()) {
                    let entry: &mut Vec<String> = tables.entry(table.clone()).or_default();
                    entry.push(word.to_owned());
                }
            }
            tables
        }
        let all = |migrations: &[(i64, &str, &str)]| migrations.iter().map(|(_, _, sql)| *sql).collect::<Vec<_>>().join("\n");
        // Version by version, and the whole schema.
        for (sqlite, postgres) in SQLITE_MIGRATIONS.iter().zip(POSTGRES_MIGRATIONS) {
            assert_eq!(columns(sqlite.2), columns(postgres.2), "migration {}", sqlite.0);
        }
        let sqlite = columns(&all(SQLITE_MIGRATIONS));
        let postgres = columns(&all(POSTGRES_MIGRATIONS));
        assert_eq!(sqlite, postgres);
        assert!(sqlite.len() >= 14, "{:?}", sqlite.keys());
        for table in ["scan_runs", "endpoints", "observations", "certificates", "observation_certs", "assets", "endpoint_assets",
            "revocation_checks", "alerts", "scan_targets", "key_pins", "known_targets", "client_tests", "attacks", "notices"]
        {
            assert!(sqlite.contains_key(table), "{table}");
        }
        let versions = |m: &[(i64, &str, &str)]| m.iter().map(|(v, d, _)| (*v, d.to_string())).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
        assert_eq!(SQLITE_MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
    }

    #[tokio::test]
    async fn in_memory_inventory_is_one_database() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        // Every query must see the same in-memory database.
        for _ in 0..3 {
            assert_eq!(store.runs().await.unwrap().len(), 1);
        }
        store.finish_run(run, "finished").await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn opening_an_existing_inventory_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no").join("such").join("x.db");
        for location in [missing.display().to_string(), format!("sqlite://{}", missing.display())] {
            let error = Store::open_existing(&location).await.unwrap_err();
            assert!(matches!(error, StoreError::NoInventory(_)), "{error}");
            assert!(error.to_string().contains("no inventory at") && error.to_string().contains("x.db"), "{error}");
        }
        assert!(!dir.path().join("no").exists(), "no directory created");
        let path = dir.path().join("inventory.db").display().to_string();
        Store::open(&path).await.unwrap().close().await;
        let store = Store::open_existing(&path).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert!(Store::open_existing("sqlite::memory:").await.is_ok());
    }

    /// Issue 10: checks recorded before answers were verified (schema 3) stop counting: the
    /// migration makes them `unknown` (`no-issuer`), so they no longer move the funnel.
    #[tokio::test]
    async fn unverified_revocations_of_schema_3_become_unknown() {
        use sqlx::Executor as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db").display().to_string();
        let (url, _) = database_url(&path).unwrap();
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let schema_3 = Migrator::new(EmbeddedMigrations(SQLITE_MIGRATIONS.get(..3).unwrap())).await.unwrap();
        schema_3.run(&pool).await.unwrap();
        pool.execute(
            "INSERT INTO certificates (cert_sha256, spki_sha256, subject, issuer, serial, sans, not_before_unix, not_after_unix, \
               key_type, signature_algorithm, self_signed, crl_urls, ocsp_urls, ca_issuer_urls, first_seen_ms) \
             VALUES ('c1', 's1', 'CN=x', 'CN=ca', '01', '[]', 0, 0, 'rsa', 'x', 0, '[]', '[]', '[]', 0); \
             INSERT INTO revocation_checks (cert_sha256, method, source, result, revoked_at_unix, reason, detail, checked_at_ms) \
             VALUES ('c1', 'crl', 'forged.crl', 'revoked', 1, 'keyCompromise', 'serial 01 listed; signature not verified', 1), \
                    ('c1', 'ocsp', 'http://x', 'error', NULL, NULL, 'HTTP 500', 2);",
        )
        .await
        .unwrap();
        pool.close().await;
        let store = Store::open(&path).await.unwrap();
        let checks = store.revocation_checks(Some("c1")).await.unwrap();
        let summary: Vec<_> = checks.iter().map(|c| (c.check.result.as_str(), c.check.unknown_reason.as_deref())).collect();
        assert_eq!(summary, [("unknown", Some("no-issuer")), ("unknown", Some("fetch-failed"))]);
        assert!(checks[0].check.detail.starts_with("recorded before answers were verified"), "{}", checks[0].check.detail);
        store.close().await;
    }

    /// Several processes (here: stores) creating the same new inventory at once all get it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_opens_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db").display().to_string();
        let opens: Vec<_> = (0..6).map(|_| tokio::spawn(Store::open_owned(path.clone()))).collect();
        for open in opens {
            let store = open.await.unwrap().unwrap();
            assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
            store.close().await;
        }
    }

    impl Store {
        async fn open_owned(location: String) -> Result<Store> {
            Store::open(&location).await
        }
    }

    #[test]
    fn default_location_follows_xdg() {
        // Read-only check of the rule on the current environment.
        let path = default_location().unwrap();
        assert!(path.ends_with("bleedwatch/inventory.db"), "{}", path.display());
    }
}
