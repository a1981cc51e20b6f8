//! The two databases every store test runs on: SQLite in a temporary directory, and a real
//! PostgreSQL cluster started on a loopback port for this test process.
//!
//! The cluster is created once (`initdb` in a temporary directory, `postgres -h 127.0.0.1 -p PORT`,
//! as the `postgres` user when running as root) and each test gets its own database. A small shell
//! watchdog holds the server: when the test process exits — normally, by panic, or killed — its
//! stdin closes, and the watchdog stops PostgreSQL and deletes the directory.
//! BLEEDWATCH_SKIP_REAL_SERVERS=1 skips the PostgreSQL half on a machine without it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bleedwatch_store::Store;
use sqlx::Connection;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store for one test, and what keeps its database alive.
pub struct TestStore {
    pub store: Store,
    /// Where the SQLite file lives; removed with the test store.
    pub _dir: TempDir,
    pub url: String,
}

/// Opens an empty store on `backend`; `None` when PostgreSQL tests are skipped.
pub async fn open(backend: Backend) -> Option<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => dir.path().join("nested").join("inventory.db").display().to_string(),
        Backend::Postgres => {
            if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
                eprintln!("skipping the PostgreSQL run: BLEEDWATCH_SKIP_REAL_SERVERS is set");
                return None;
            }
            let port = cluster_port();
            let database = format!("bleedwatch_test_{}_{}", std::process::id(), NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
            let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
            let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {database}")).execute(&mut connection).await.unwrap();
            connection.close().await.unwrap();
            format!("postgres://postgres@127.0.0.1:{port}/{database}")
        }
    };
    let store = Store::open(&url).await.unwrap();
    Some(TestStore { store, _dir: dir, url })
}

static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);
static CLUSTER: OnceLock<Mutex<Cluster>> = OnceLock::new();

struct Cluster {
    port: u16,
    /// The watchdog; its stdin is the lifeline.
    _watchdog: Child,
}

fn cluster_port() -> u16 {
    CLUSTER.get_or_init(|| Mutex::new(start_cluster())).lock().unwrap().port
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_cluster() -> Cluster {
    let bin = postgres_bin();
    let dir = tempfile::Builder::new().prefix("bleedwatch-pg-").tempdir().unwrap().keep();
    let data = dir.join("data");
    if running_as_root() {
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
        assert!(status.success(), "chown of the cluster directory failed");
    }
    let output = as_postgres(&bin.join("initdb"))
        .args(["-D"])
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        .output()
        .unwrap();
    assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
    let port = free_port();
    // Listen on loopback only; the socket directory is ours. The watchdog stops the server and
    // removes the directory when our end of its stdin closes.
    let script = r#"
        "$1/postgres" -D "$2/data" -k "$2" -h 127.0.0.1 -p "$3" -F -c fsync=off -c full_page_writes=off >"$2/postgres.log" 2>&1 &
        pid=$!
        read _ignored
        kill -INT "$pid"
        wait "$pid"
        rm -rf "$2"
    "#;
    let mut watchdog = as_postgres(Path::new("/bin/sh"))
        .args(["-c", script, "watchdog"])
        .arg(&bin)
        .arg(&dir)
        .arg(port.to_string())
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
        assert!(Instant::now() < deadline, "PostgreSQL did not start on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Cluster { port, _watchdog: watchdog }
}

fn pg_ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
