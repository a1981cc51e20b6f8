//! The two databases every store test runs on: SQLite in a temporary directory, and a real
//! PostgreSQL cluster started on a loopback port for this test process (`bleedwatch_testkit::postgres`:
//! created once, each test gets its own database, stopped and deleted when the process ends).
//! BLEEDWATCH_SKIP_REAL_SERVERS=1 skips the PostgreSQL half on a machine without it.

use bleedwatch_store::Store;
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
            let cluster = bleedwatch_testkit::postgres::shared_cluster()?;
            // psql is a blocking child process; keep it off the runtime's worker.
            let database = tokio::task::block_in_place(|| cluster.create_database("bleedwatch_test"));
            cluster.url(&database)
        }
    };
    let store = Store::open(&url).await.unwrap();
    Some(TestStore { store, _dir: dir, url })
}
