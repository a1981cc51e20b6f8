//! Issue 10, part 4: the team's PostgreSQL over TLS (rustls), with the password from PGPASSWORD or
//! `~/.pgpass` and the URL from BLEEDWATCH_DB, so no password is ever typed on a command line. The
//! server (a real PostgreSQL on loopback) accepts only `hostssl` with a SCRAM password; its
//! certificate comes from a CA made here with the openssl CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bleedwatch_testkit::postgres::{PgCluster, PgSettings};

use super::{bleedwatch, mta_run, require, temp_path};

const PASSWORD: &str = "bw-test-s3cret";

/// A CA and a server certificate for 127.0.0.1, written into `dir`: (ca.crt, server.crt, server.key).
pub(super) fn pki(dir: &Path, ca_name: &str) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let openssl = |args: &[&str]| mta_run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", &format!("/CN={ca_name}")]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName = IP:127.0.0.1, DNS:localhost\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf"]);
    (dir.join("ca.crt"), std::fs::read(dir.join("server.crt")).unwrap(), std::fs::read(dir.join("server.key")).unwrap())
}

/// bleedwatch with no PG variables of the machine, HOME in `home`.
fn bw(home: &Path) -> Command {
    let mut cmd = bleedwatch();
    for name in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT", "PGPASSFILE", "BLEEDWATCH_DB"] {
        cmd.env_remove(name);
    }
    cmd.env("HOME", home);
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn postgres_over_tls_with_the_password_from_the_environment_or_pgpass() {
    if !require("openssl") || std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        return;
    }
    let dir = temp_path("pg-tls");
    let _ = std::fs::remove_dir_all(&dir);
    let (ca_dir, other_dir, home) = (dir.join("ca"), dir.join("other"), dir.join("home"));
    for d in [&ca_dir, &other_dir, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (ca, cert, key) = pki(&ca_dir, "bleedwatch test CA");
    let (wrong_ca, _, _) = pki(&other_dir, "some other CA");
    let cluster = PgCluster::start(&PgSettings {
        server_settings: vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), "server.crt".into()),
            ("ssl_key_file".into(), "server.key".into()),
            ("password_encryption".into(), "scram-sha-256".into()),
        ],
        hba_conf: Some("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n".into()),
        files: vec![("server.crt".into(), cert), ("server.key".into(), key)],
        superuser_password: Some(PASSWORD.into()),
    });
    let database = cluster.create_database("bw_tls");
    let port = cluster.port();
    let assets = dir.join("assets.csv");
    std::fs::write(&assets, "host,owner\n192.0.2.0/24,web team\n").unwrap();
    let verified = format!("postgres://postgres@127.0.0.1:{port}/{database}?sslmode=verify-full&sslrootcert={}", ca.display());

    // BLEEDWATCH_DB and PGPASSWORD: a command records with neither the URL nor a password on its line.
    let out = bw(&home).env("BLEEDWATCH_DB", &verified).env("PGPASSWORD", PASSWORD).args(["assets", "import"]).arg(&assets).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = bw(&home).env("BLEEDWATCH_DB", &verified).env("PGPASSWORD", PASSWORD).arg("status").output().unwrap();
    assert!(out.status.success() && text(&out).contains("notices: 0 sent"), "{}", text(&out));
    assert_eq!(cluster.psql(&database, "SELECT owner FROM assets").trim(), "web team", "recorded in PostgreSQL, not a default SQLite file");

    // ~/.pgpass, and PGSSLMODE/PGSSLROOTCERT instead of URL parameters.
    let pgpass = home.join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:*:postgres:{PASSWORD}\n")).unwrap();
    mta_run(Command::new("chmod").arg("600").arg(&pgpass));
    let plain_url = format!("postgres://postgres@127.0.0.1:{port}/{database}");
    let out = bw(&home).env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", &ca).args(["status", "--db", &plain_url]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The wrong CA: a clear TLS error, exit 2, no password anywhere in it.
    let wrong = format!("postgres://postgres@127.0.0.1:{port}/{database}?sslmode=verify-full&sslrootcert={}", wrong_ca.display());
    let out = bw(&home).env("PGPASSWORD", PASSWORD).args(["status", "--db", &wrong]).output().unwrap();
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("opening the inventory postgres://postgres@127.0.0.1"), "{message}");
    assert!(message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");

    // Without TLS the server refuses (hostssl only): TLS is what made the connections above work.
    let out = bw(&home).args(["status", "--db", &format!("{plain_url}?sslmode=disable")]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no encryption") || text(&out).contains("pg_hba.conf"), "{}", text(&out));

    // A password typed into the URL anyway is never printed back.
    let typed = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/{database}?sslmode=verify-full&sslrootcert={}", wrong_ca.display());
    let out = bw(&home).args(["status", "--db", &typed]).output().unwrap();
    assert!(!text(&out).contains(PASSWORD) && text(&out).contains("postgres:***@"), "{}", text(&out));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
