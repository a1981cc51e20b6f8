//! A real PostgreSQL server on a loopback port, for tests that need one (the store's backend
//! tests, several scan workers sharing one inventory, TLS to the database).
//!
//! A cluster is made with `initdb` in a temporary directory and run by `postgres -h 127.0.0.1
//! -p PORT` (as the `postgres` user when we are root: PostgreSQL refuses to run as root). A small
//! shell watchdog holds the server: when our end of its stdin closes (the [`PgCluster`] is dropped,
//! or the test process exits, panics or is killed) it stops PostgreSQL and deletes the directory.
//! `BLEEDWATCH_SKIP_REAL_SERVERS=1` makes [`shared_cluster`] return `None` on a machine without it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How to set up a cluster beyond the defaults (trust authentication on loopback, fsync off).
#[derive(Debug, Clone, Default)]
pub struct PgSettings {
    /// `-c name=value` settings given to `postgres` (for example `ssl=on`).
    pub server_settings: Vec<(String, String)>,
    /// Replaces `pg_hba.conf` when set (for example to require `hostssl` and passwords).
    pub hba_conf: Option<String>,
    /// Files copied into the cluster directory, readable by the server only (certificates and
    /// keys named by `server_settings`, relative to the cluster directory).
    pub files: Vec<(String, Vec<u8>)>,
    /// A password for the `postgres` role, set right after the server starts.
    pub superuser_password: Option<String>,
}

/// A running PostgreSQL cluster; stopped and deleted when dropped.
pub struct PgCluster {
    port: u16,
    bin: PathBuf,
    /// The cluster's directory, which also holds its Unix socket.
    dir: PathBuf,
    /// The watchdog; its stdin is the lifeline.
    _watchdog: Child,
    next_database: AtomicUsize,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster").field("port", &self.port).finish_non_exhaustive()
    }
}

/// One cluster per test process, started on first use; `None` when real servers are skipped.
pub fn shared_cluster() -> Option<&'static PgCluster> {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        eprintln!("skipping the PostgreSQL run: BLEEDWATCH_SKIP_REAL_SERVERS is set");
        return None;
    }
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    Some(SHARED.get_or_init(|| PgCluster::start(&PgSettings::default())))
}

impl PgCluster {
    /// Makes and starts a cluster; panics (it is a test fixture) with PostgreSQL's log when it
    /// cannot.
    #[allow(clippy::panic, clippy::unwrap_used)]
    pub fn start(settings: &PgSettings) -> PgCluster {
        let bin = postgres_bin();
        let dir = tempfile_dir();
        let data = dir.join("data");
        let output = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap();
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        if let Some(hba) = &settings.hba_conf {
            write_owned(&data.join("pg_hba.conf"), hba.as_bytes());
        }
        for (name, bytes) in &settings.files {
            write_owned(&data.join(name), bytes);
        }
        let port = free_port();
        let extra: Vec<String> = settings.server_settings.iter().flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")]).collect();
        // Listen on loopback only; the socket directory is ours. The watchdog stops the server
        // and removes the directory when our end of its stdin closes.
        let script = r#"
            bin="$1"; dir="$2"; port="$3"; shift 3
            "$bin/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" -F -c fsync=off -c full_page_writes=off "$@" >"$dir/postgres.log" 2>&1 &
            pid=$!
            read _ignored
            kill -INT "$pid"
            wait "$pid"
            rm -rf "$dir"
        "#;
        let mut watchdog = as_postgres(Path::new("/bin/sh"))
            .args(["-c", script, "watchdog"])
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .args(&extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && pg_ready(&bin, port) {
                break;
            }
            if let Ok(Some(status)) = watchdog.try_wait() {
                let mut log = String::new();
                let _ = std::fs::File::open(dir.join("postgres.log")).and_then(|mut f| f.read_to_string(&mut log));
                panic!("PostgreSQL exited ({status}): {log}");
            }
            if Instant::now() >= deadline {
                panic!("PostgreSQL did not start on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let cluster = PgCluster { port, bin, dir, _watchdog: watchdog, next_database: AtomicUsize::new(0) };
        if let Some(password) = &settings.superuser_password {
            cluster.psql("postgres", &format!("ALTER ROLE postgres PASSWORD '{}'", password.replace('\'', "''")));
        }
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database named `<prefix>_<pid>_<n>`; returns its name.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}_{}", std::process::id(), self.next_database.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL statement as the superuser through the cluster's Unix socket (a `pg_hba.conf`
    /// replacement must keep `local all all trust`), and panics with psql's error if it fails.
    #[allow(clippy::panic, clippy::unwrap_used)]
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(output.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

#[allow(clippy::panic)]
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run the README's test command (scripts/test.sh), or set BLEEDWATCH_SKIP_REAL_SERVERS=1")
    })
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The command, run as `postgres` when we are root (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A fresh directory under the system temporary directory, owned by `postgres` when we are root.
#[allow(clippy::unwrap_used)]
fn tempfile_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    let dir = base.join(format!("bleedwatch-pg-{}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos()));
    std::fs::create_dir_all(&dir).unwrap();
    if running_as_root() {
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
        assert!(status.success(), "chown of the cluster directory failed");
    }
    dir
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Writes a file in the cluster's data directory, readable only by its owner (the server).
#[allow(clippy::unwrap_used)]
fn write_owned(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if running_as_root() {
        let status = Command::new("chown").arg("postgres:postgres").arg(path).status().unwrap();
        assert!(status.success(), "chown of {} failed", path.display());
    }
}

#[allow(clippy::unwrap_used)]
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn pg_ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
