#![allow(clippy::unwrap_used, clippy::panic)]
//! The bleedwatch binary end to end: the demo, `scan` on the lab and on bad input, `client-test` with
//! real clients from Debian, and the honeypot under attack by real scanners. Everything runs on
//! loopback; every process a test starts is stopped by it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "cli/notify.rs"]
mod notify;
#[path = "cli/pg_tls.rs"]
mod pg_tls;

/// The binary, with its default inventory in a temporary folder so tests never touch the user's.
fn bleedwatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bleedwatch"));
    cmd.env("XDG_DATA_HOME", std::env::temp_dir().join(format!("bleedwatch-cli-data-{}", std::process::id())));
    // An inventory named by the caller's environment is not the test's.
    cmd.env_remove("BLEEDWATCH_DB");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) for a child to exit and returns its output.
fn finish(child: Child, limit: Duration) -> Output {
    let id = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
    });
    let out = child.wait_with_output().unwrap();
    drop(killer);
    out
}

/// Whether a real client/tool is installed; panics with instructions when missing.
fn require(binary: &str) -> bool {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        return false;
    }
    let found = Command::new("sh").arg("-c").arg(format!("command -v {binary}")).stdout(Stdio::null()).status().unwrap().success();
    assert!(found, "{binary} is not installed: run the README's test command (bash scripts/test.sh)");
    true
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bleedwatch-cli-{}-{name}", std::process::id()))
}

#[test]
fn demo_scans_the_lab_and_every_verdict_matches() {
    let json = temp_path("demo.jsonl");
    let db = temp_path("demo.db");
    let out = bleedwatch().args(["demo", "--port", &free_port().to_string(), "--json"]).arg(&json).arg("--db").arg(&db).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("lab check: all 8 verdicts and every response state as expected"), "{stdout}");
    // The response was tracked: fixed with the same key reissued, then re-keyed.
    assert!(stdout.contains("state fixed, flags") && stdout.contains("reissued-same-key"), "{stdout}");
    assert!(stdout.contains("state re-keyed"), "{stdout}");
    // Issue 10: and the end of the funnel, with the revocation verified against the demo CA.
    assert!(stdout.contains("revoked (CRL verified against the demo CA): state notify-ready"), "{stdout}");
    // The funnel's last step: users told (here the dry run, or why they are still held back).
    assert!(stdout.contains("Users notified") && stdout.contains("root@localhost"), "{stdout}");
    // The HTML report of it all, beside the JSON lines, and where it is said.
    let report = json.with_extension("html");
    assert!(stdout.contains(&format!("the response report: {}", report.display())), "{stdout}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("re-keyed"), "{html}");
    let _ = std::fs::remove_file(report);
    let _ = std::fs::remove_file(db);
    let lines = json_lines(&std::fs::read_to_string(&json).unwrap());
    assert_eq!(lines.len(), 8);
    for line in &lines {
        for key in ["address", "port", "transport", "service", "sni", "status", "heartbleed", "versions", "certificate"] {
            assert!(line.get(key).is_some(), "missing {key}: {line}");
        }
    }
    let _ = std::fs::remove_file(json);
}

#[test]
fn scan_exit_codes_json_and_csv() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _lab = Running(bleedwatch().args(["lab", "--listen", &addr.to_string(), "--behaviour", "vulnerable"]).stderr(Stdio::null()).spawn().unwrap());
    wait_listening(addr);
    let csv = temp_path("scan.csv");
    let out = bleedwatch().args(["scan", &addr.to_string(), "--json", "-", "--csv"]).arg(&csv).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a vulnerable endpoint exits 1: {}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["heartbleed"], "vulnerable");
    assert_eq!(lines[0]["versions"]["tls1.2"], "vulnerable");
    assert_eq!(lines[0]["transport"], "tcp");
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("address,port,transport"), "{csv_text}");
    assert!(csv_text.contains(",vulnerable,"), "{csv_text}");
    let _ = std::fs::remove_file(csv);

    // Nothing vulnerable: exit 0.
    let fixed_port = free_port();
    let fixed: SocketAddr = format!("127.0.0.1:{fixed_port}").parse().unwrap();
    let _fixed = Running(bleedwatch().args(["lab", "--listen", &fixed.to_string(), "--behaviour", "fixed"]).stderr(Stdio::null()).spawn().unwrap());
    wait_listening(fixed);
    let out = bleedwatch().args(["scan", &fixed.to_string(), "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// `-u` applies to a port given on the target (nmap users type `-u 127.0.0.1:4433`), and a port that
/// says `tcp/` stays TCP.
#[test]
fn u_applies_to_ports_given_on_targets() {
    let dtls = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = dtls.local_addr().unwrap().port();
    let tcp_port = free_port(); // closed: refused at once
    let out = inv_run(bleedwatch().args(["scan", "-u", &format!("127.0.0.1:{udp_port}"), &format!("127.0.0.1:tcp/{tcp_port}")]).args([
        "--no-db", "--json", "-", "-q", "--connect-timeout", "1s", "--handshake-timeout", "1s",
    ]));
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let transport = |port: u16| lines.iter().find(|l| l["port"] == port).map(|l| l["transport"].as_str().unwrap().to_owned());
    assert_eq!(transport(udp_port).as_deref(), Some("udp"), "{lines:?}");
    assert_eq!(transport(tcp_port).as_deref(), Some("tcp"), "{lines:?}");
    dtls.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(dtls.recv_from(&mut buf).is_ok(), "no DTLS ClientHello reached the UDP port");
    assert_eq!(out.status.code(), Some(3), "nothing answered: incomplete");
}

/// A name that does not resolve is in the table, the JSON lines and the CSV (`dns-error`), and the
/// exit code says "incomplete" (3), for scan and rescan alike, never "safe" (0).
#[test]
fn untested_targets_are_reported_and_never_read_as_safe() {
    let (db, dir) = inv_db("untested");
    let csv = dir.join("out.csv");
    let no_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed once dropped
    let out = inv_run(bleedwatch().args(["scan", "nonexistent.invalid", "--dns-server", &no_dns.to_string(), "--json", "-", "--csv"]).arg(&csv).arg("--db").arg(&db));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!((line["status"].as_str(), line["heartbleed"].as_str(), line["host"].as_str()), (Some("dns-error"), Some("inconclusive"), Some("nonexistent.invalid")));
    assert!(line["address"].is_null() && line["port"] == 443 && line["transport"] == "tcp", "{line}");
    assert!(!line["reason"].as_str().unwrap_or_default().is_empty(), "the resolver's error: {line}");
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.lines().nth(1).is_some_and(|row| row.contains(",nonexistent.invalid,") && row.contains(",dns-error,inconclusive,")), "{csv_text}");
    // The table (on standard error here, as JSON took standard output) lists it and counts it.
    assert!(stderr.contains("nonexistent.invalid:443") && stderr.contains("1 endpoints: 1 inconclusive (1 name did not resolve)"), "{stderr}");

    // An endpoint that refuses the connection was not tested either: scan and rescan exit 3.
    let lab: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let running = Running(bleedwatch().args(["lab", "--listen", &lab.to_string(), "--behaviour", "vulnerable"]).stderr(Stdio::null()).spawn().unwrap());
    wait_listening(lab);
    let out = inv_run(bleedwatch().args(["scan", &lab.to_string(), "-q", "--db"]).arg(&db));
    assert_eq!(out.status.code(), Some(1));
    drop(running);
    let out = inv_run(bleedwatch().args(["scan", &lab.to_string(), "-q", "--no-db"]));
    assert_eq!(out.status.code(), Some(3), "a refused connection is not a safe endpoint");
    let out = inv_run(bleedwatch().args(["rescan", "--db"]).arg(&db));
    assert_eq!(out.status.code(), Some(3), "rescan of the vulnerable endpoint, now refusing: {}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(dir);
}

/// Commands that only read the inventory say there is none, exit 2 and create nothing; commands
/// that record create it.
#[test]
fn read_only_commands_never_create_an_inventory() {
    let (_, dir) = inv_db("read-only");
    let missing = dir.join("no").join("such").join("x.db");
    let spki = "a".repeat(64);
    let report = dir.join("report.html");
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["endpoints"],
        vec!["certs"],
        vec!["alerts"],
        vec!["attackers"],
        vec!["clients"],
        vec!["report", "--out", report.to_str().unwrap()],
        vec!["rescan"],
        vec!["rescan", "--dry-run"],
        vec!["expect", "127.0.0.1:443", &spki],
        vec!["revocation", "check"],
        vec!["scan", "--resume"],
    ];
    for args in commands {
        let out = inv_run(bleedwatch().args(&args).arg("--db").arg(&missing));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("no inventory at {}", missing.display())), "{args:?}: {stderr}");
        assert!(!dir.join("no").exists(), "{args:?} created {}", dir.join("no").display());
    }
    // The default inventory too.
    let home = dir.join("home");
    let out = inv_run(bleedwatch().arg("status").env("XDG_DATA_HOME", &home));
    assert_eq!(out.status.code(), Some(2));
    assert!(!home.exists());
    // A command that records creates it; then the readers work.
    let assets = dir.join("assets.csv");
    std::fs::write(&assets, "host,owner,criticality,internet-facing,notes\n192.0.2.1,web,high,yes,\n").unwrap();
    let out = inv_run(bleedwatch().args(["assets", "import"]).arg(&assets).arg("--db").arg(&missing));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = inv_run(bleedwatch().arg("status").arg("--db").arg(&missing));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    for (args, needle) in [
        (vec!["scan", "10.0.0.0/33"], "prefix length 33"),
        (vec!["scan", "127.0.0.1", "-p", "70000"], "70000"),
        (vec!["scan", "-iL", "/nonexistent/targets.txt"], "/nonexistent/targets.txt"),
        (vec!["scan"], "no targets"),
        (vec!["scan", "127.0.0.1", "--prove", "1000"], "at most 64"),
        (vec!["scan", "127.0.0.1", "--versions", "tls9"], "tls9"),
    ] {
        let out = bleedwatch().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Starts `client-test` for `n` clients, runs `clients`, and returns the per-client JSON lines.
fn client_test(n: usize, clients: impl FnOnce(SocketAddr)) -> Vec<serde_json::Value> {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = bleedwatch()
        .args(["client-test", "--listen", &addr.to_string(), "--max-clients", &n.to_string(), "--timeout", "10s", "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr);
    // wait_listening itself connected once without TLS: that counts as a client.
    clients(addr);
    let out = finish(child, Duration::from_secs(60));
    json_lines(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn client_test_with_real_clients() {
    if !require("curl") || !require("openssl") || !require("gnutls-cli") {
        return;
    }
    let results = client_test(4, |addr| {
        let port = addr.port().to_string();
        let _ = Command::new("curl").args(["-sk", "--max-time", "10", &format!("https://127.0.0.1:{port}/")]).output();
        let _ = Command::new("openssl").args(["s_client", "-connect", &addr.to_string()]).stdin(Stdio::null()).output();
        let _ = Command::new("gnutls-cli").args(["--insecure", "--heartbeat", "-p", &port, "127.0.0.1"]).stdin(Stdio::null()).output();
    });
    assert_eq!(results.len(), 4, "{results:#?}");
    // The connection that only checked the port is inconclusive, never a verdict.
    assert_eq!(results[0]["verdict"], "inconclusive", "{:#?}", results[0]);
    // curl and s_client (OpenSSL 3) have no heartbeat support; gnutls-cli --heartbeat offers the
    // extension but refuses heartbeats during the handshake.
    assert_eq!(results[1]["verdict"], "no-heartbeat", "curl: {:#?}", results[1]);
    assert_eq!(results[2]["verdict"], "no-heartbeat", "s_client: {:#?}", results[2]);
    assert_eq!(results[3]["verdict"], "not-vulnerable", "gnutls-cli: {:#?}", results[3]);
    assert_eq!(results[3]["client_hello"]["heartbeat_mode"], "peer_allowed_to_send");
    for r in &results {
        for key in ["client", "tls_version", "verdict"] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
    }
}

/// Starts a honeypot that exits after `attempts` heartbeats, runs `attack`, returns the attempts.
fn honeypot(attempts: usize, attack: impl FnOnce(SocketAddr)) -> Vec<serde_json::Value> {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = bleedwatch()
        .args(["honeypot", "--listen", &addr.to_string(), "--max-attempts", &attempts.to_string(), "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr);
    attack(addr);
    let out = finish(child, Duration::from_secs(60));
    json_lines(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn honeypot_logs_our_own_prove_scan() {
    let mut scan_out = None;
    let attempts = honeypot(8, |addr| {
        scan_out = Some(bleedwatch().args(["scan", &addr.to_string(), "--prove", "16", "--json", "-"]).output().unwrap());
    });
    let scan = json_lines(&String::from_utf8_lossy(&scan_out.unwrap().stdout));
    assert_eq!(scan[0]["heartbleed"], "vulnerable");
    assert_eq!(scan[0]["leak"]["leaked_bytes"], 16);
    // Four versions, each with one over-read (claim = sent + 16) and one honest heartbeat.
    assert_eq!(attempts.len(), 8, "{attempts:#?}");
    let over_reads: Vec<_> = attempts.iter().filter(|a| a["kind"] == "over-read").collect();
    assert_eq!(over_reads.len(), 4);
    assert!(over_reads.iter().all(|a| a["overread"] == 16 && a["answered"] == true));
    let versions: std::collections::BTreeSet<_> = attempts.iter().map(|a| a["tls_version"].as_str().unwrap().to_string()).collect();
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), ["ssl3", "tls1.0", "tls1.1", "tls1.2"]);
}

#[test]
fn honeypot_logs_nmap_ssl_heartbleed() {
    if !require("nmap") {
        return;
    }
    let mut nmap_out = String::new();
    let attempts = honeypot(1, |addr| {
        let out = Command::new("nmap")
            .args([
                "-Pn",
                "-n",
                "-p",
                &addr.port().to_string(),
                "--script",
                "ssl-heartbleed",
                "--script-args",
                "ssl-heartbleed.protocols=TLSv1.2",
                "--script-trace",
                "127.0.0.1",
            ])
            .output()
            .unwrap();
        nmap_out = String::from_utf8_lossy(&out.stdout).to_string();
    });
    assert!(nmap_out.contains("VULNERABLE"), "nmap sees a vulnerable server: {nmap_out}");
    // nmap's trace shows the bytes it received: after its own 19-byte payload, nothing but canary.
    let reply = nmap_out
        .lines()
        .find(|l| l.contains(" < 127.0.0.1:") && l.contains("Nmap ssl-heartbleed"))
        .unwrap_or_else(|| panic!("no heartbeat reply in nmap's trace: {nmap_out}"));
    let after = reply.split_once("Nmap ssl-heartbleed").map(|(_, rest)| rest.trim_end()).unwrap();
    let canary = "BLEEDWATCH-LAB-CANARY-NOT-MEMORY;";
    assert!(after.len() > 1000, "nmap got a long over-read: {} bytes", after.len());
    let repeated: String = canary.chars().cycle().take(after.len()).collect();
    assert_eq!(after, repeated, "everything nmap read past its payload is canary");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0]["kind"], "over-read");
    assert_eq!(attempts[0]["claimed_length"], 16384);
    assert_eq!(attempts[0]["payload_sent"], 19, "nmap sends 'Nmap ssl-heartbleed'");
    assert_eq!(attempts[0]["tls_version"], "tls1.2");
}

#[test]
fn honeypot_logs_sslyze_heartbleed() {
    if !require("sslyze") {
        return;
    }
    let mut sslyze_out = String::new();
    let attempts = honeypot(1, |addr| {
        let out = Command::new("sslyze").args(["--heartbleed", &addr.to_string()]).output().unwrap();
        sslyze_out = String::from_utf8_lossy(&out.stdout).to_string();
    });
    assert!(sslyze_out.to_uppercase().contains("VULNERABLE"), "sslyze: {sslyze_out}");
    assert!(!attempts.is_empty());
    assert_eq!(attempts[0]["kind"], "memory-safe-probe", "{attempts:#?}");
    assert_eq!(attempts[0]["overread"], 0);
}

/// Loopback listeners the test owns that accept connections, count them, and never answer (each
/// endpoint costs the scanner a handshake timeout). Stopped on drop.
struct CountingListeners {
    addrs: Vec<SocketAddr>,
    accepted: Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CountingListeners {
    fn start(n: u8) -> CountingListeners {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut addrs, mut accepted, mut threads) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=n {
            let listener = TcpListener::bind(("127.0.61.".to_string() + &i.to_string(), port)).unwrap();
            listener.set_nonblocking(true).unwrap();
            addrs.push(listener.local_addr().unwrap());
            let count = Arc::new(AtomicUsize::new(0));
            accepted.push(count.clone());
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            held.push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        CountingListeners { addrs, accepted, stop, threads }
    }

    fn counts(&self) -> Vec<usize> {
        self.accepted.iter().map(|c| c.load(std::sync::atomic::Ordering::SeqCst)).collect()
    }
}

impl Drop for CountingListeners {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Observations of the inventory's scan runs, per run: (run id, endpoint labels).
fn observations(db: &std::path::Path) -> Vec<(i64, Vec<String>)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = bleedwatch_store::Store::open_existing(db.to_str().unwrap()).await.unwrap();
        let mut out = Vec::new();
        for run in store.runs().await.unwrap() {
            let mut labels: Vec<String> = Vec::new();
            for o in store.run_observations(run.id).await.unwrap() {
                let e = store.endpoint(o.endpoint_id).await.unwrap();
                labels.push(e.label());
            }
            labels.sort();
            out.push((run.id.0, labels));
        }
        out
    })
}

/// The targets each scan run has finished (`scan --resume` skips them).
fn done_targets(db: &std::path::Path) -> std::collections::HashSet<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = bleedwatch_store::Store::open_existing(db.to_str().unwrap()).await.unwrap();
        let mut done = std::collections::HashSet::new();
        for run in store.runs().await.unwrap() {
            done.extend(store.done_targets(run.id).await.unwrap());
        }
        done
    })
}

/// A scan killed with SIGKILL part way and resumed: finished endpoints are not connected to again
/// (the listeners count connections), every endpoint has exactly one observation, the JSON and CSV
/// files keep what the killed scan wrote, and the exit code counts the vulnerable endpoint found
/// before the kill.
#[test]
fn a_killed_scan_resumes_without_losing_or_duplicating() {
    let listeners = CountingListeners::start(12);
    let lab: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _lab = Running(bleedwatch().args(["lab", "--listen", &lab.to_string(), "--behaviour", "vulnerable"]).stderr(Stdio::null()).spawn().unwrap());
    wait_listening(lab);
    let dir = std::env::temp_dir().join(format!("bleedwatch-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (db, json, csv) = (dir.join("killed.db"), dir.join("results.jsonl"), dir.join("results.csv"));
    // The vulnerable lab first, then twelve one-second endpoints, two at a time.
    let mut targets = vec![lab.to_string()];
    targets.extend(listeners.addrs.iter().map(|a| a.to_string()));
    let mut child = bleedwatch()
        .arg("scan")
        .args(&targets)
        .args(["--concurrency", "2", "--versions", "tls1.2", "--starttls", "none", "--connect-timeout", "1s", "--handshake-timeout", "1s", "-q"])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a few endpoints are written, long before the twelve seconds it needs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&json).map(|t| t.lines().count()).unwrap_or(0) < 4 {
        assert!(Instant::now() < deadline, "the scan wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let before_json = std::fs::read_to_string(&json).unwrap();
    let before_csv = std::fs::read_to_string(&csv).unwrap();
    let connections_before = listeners.counts();
    let done = done_targets(&db);
    assert!(done.contains(&lab.to_string()), "the vulnerable endpoint was finished before the kill: {done:?}");
    let finished: Vec<usize> = (0..12).filter(|i| done.contains(&listeners.addrs[*i].to_string())).collect();
    assert!(!finished.is_empty() && finished.len() < 12, "killed mid-scan: {done:?}");

    let out = inv_run(bleedwatch().args(["scan", "--resume", "--db"]).arg(&db));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming scan run"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "the vulnerable endpoint found before the kill counts: {stderr}");
    let connections_after = listeners.counts();
    for i in 0..12 {
        if finished.contains(&i) {
            assert_eq!(connections_after[i], connections_before[i], "{} was finished, and probed again", listeners.addrs[i]);
        } else {
            assert!(connections_after[i] > 0, "{} never probed", listeners.addrs[i]);
        }
    }
    let runs = observations(&db);
    assert_eq!(runs.len(), 1, "the resumed scan continues the same run");
    let labels: std::collections::HashSet<&String> = runs[0].1.iter().collect();
    assert_eq!((runs[0].1.len(), labels.len()), (13, 13), "one observation per endpoint: {:?}", runs[0].1);
    // The files were appended to, not truncated: the killed scan's lines are still first.
    let after_json = std::fs::read_to_string(&json).unwrap();
    assert!(after_json.starts_with(&before_json), "--json truncated on resume");
    let addresses: std::collections::HashSet<String> =
        json_lines(&after_json).iter().map(|l| format!("{}:{}", l["address"].as_str().unwrap(), l["port"])).collect();
    assert_eq!(addresses, targets.iter().cloned().collect(), "every endpoint in the JSON lines");
    let after_csv = std::fs::read_to_string(&csv).unwrap();
    assert!(after_csv.starts_with(&before_csv), "--csv truncated on resume");
    assert_eq!(after_csv.matches("address,port,transport").count(), 1, "one CSV header: {after_csv}");
    assert!(after_csv.lines().count() >= 14, "{after_csv}");
    // Nothing left to resume.
    let out = bleedwatch().args(["scan", "--resume", "--db"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

// --- client-test with Postfix as the SMTP client: an MTA relaying through client-test as its smarthost.

/// A private Postfix instance (own config, queue and log in a temp dir, no listener of its own) whose
/// master runs as our child. Dropping it stops the master and removes the dir, even when a test fails.
struct MtaPostfix {
    master: Option<Child>,
    root: PathBuf,
}

impl MtaPostfix {
    fn conf(&self) -> PathBuf {
        self.root.join("conf")
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }
}

impl Drop for MtaPostfix {
    fn drop(&mut self) {
        stop_postfix_master(self.master.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Stops a Postfix master (bounded): SIGTERM, not SIGKILL, so that it stops its pickup, qmgr and
/// smtp processes too.
fn stop_postfix_master(master: Option<std::process::Child>) {
    if let Some(mut master) = master {
        let _ = Command::new("kill").arg("-TERM").arg(master.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = master.kill();
        let _ = master.wait();
    }
}

fn mta_run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed: {text}");
    text
}

/// Postfix's own services without chroot (`extra` adds listeners and transports), written to
/// `conf/master.cf`; `postfix check` makes the queue directories with their owners and modes; then
/// the master daemon in the foreground, for the test to stop.
fn start_postfix_master(conf: &std::path::Path, extra: &str) -> std::process::Child {
    let master_cf = format!(
        "{extra}pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\nqmgr unix n - n 300 1 qmgr\n\
         tlsmgr unix - - n 1000? 1 tlsmgr\nrewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\nverify unix - - n - 1 verify\n\
         flush unix n - n 1000? 0 flush\nproxymap unix - - n - - proxymap\nproxywrite unix - - n - 1 proxymap\n\
         smtp unix - - n - - smtp\nrelay unix - - n - - smtp\nshowq unix n - n - - showq\n\
         error unix - - n - - error\nretry unix - - n - - error\ndiscard unix - - n - - discard\n\
         anvil unix - - n - 1 anvil\nscache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n"
    );
    std::fs::write(conf.join("master.cf"), master_cf).unwrap();
    mta_run(Command::new("postfix").arg("-c").arg(conf).arg("check"));
    let daemon_directory = mta_run(Command::new("postconf").arg("-c").arg(conf).args(["-h", "daemon_directory"]));
    Command::new(PathBuf::from(daemon_directory.trim()).join("master"))
        .arg("-c")
        .arg(conf)
        .arg("-d")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Forwards a child's output line by line to a channel, so every wait on it can be bounded.
fn mta_lines(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts Postfix relaying everything to `relay` and insisting on STARTTLS there (`encrypt`, so a
/// failed handshake defers the mail instead of sending it in plaintext).
fn mta_start_postfix(relay: SocketAddr) -> MtaPostfix {
    let root = temp_path("postfix-mta");
    let _ = std::fs::remove_dir_all(&root);
    let mut postfix = MtaPostfix { master: None, root: root.clone() };
    let (conf, queue, data) = (root.join("conf"), root.join("queue"), root.join("data"));
    for dir in [&conf, &queue, &data] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // The postfix user must reach its queue and data directories whatever our umask.
    mta_run(Command::new("chmod").arg("755").arg(&root));
    mta_run(Command::new("chown").arg("postfix").arg(&data));
    let main_cf = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {queue}\n\
         data_directory = {data}\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = client.bleedwatch.test\n\
         myorigin = $myhostname\n\
         mydestination =\n\
         alias_maps =\n\
         alias_database =\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         relayhost = [{ip}]:{port}\n\
         smtp_tls_security_level = encrypt\n\
         smtp_tls_loglevel = 1\n\
         maillog_file_prefixes = {root}\n\
         maillog_file = {root}/maillog\n",
        queue = queue.display(),
        data = data.display(),
        ip = relay.ip(),
        port = relay.port(),
        root = root.display(),
    );
    std::fs::write(conf.join("main.cf"), main_cf).unwrap();
    // No smtpd (inet) service: mail only enters through sendmail/pickup. No chroot: the queue is a temp dir.
    postfix.master = Some(start_postfix_master(&conf, ""));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Command::new("postfix").arg("-c").arg(&conf).arg("status").stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success() {
        assert!(Instant::now() < deadline, "Postfix did not start; its log:\n{}", postfix.maillog());
        std::thread::sleep(Duration::from_millis(100));
    }
    postfix
}

/// Waits (bounded) until Postfix's log mentions `needle`, and returns the log.
fn mta_wait_for_log(postfix: &MtaPostfix, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = postfix.maillog();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "Postfix never logged {needle:?}; its log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 6: Postfix (OpenSSL 3, no heartbeat extension) relaying a message to `client-test --starttls
/// smtp` goes through EHLO and STARTTLS and gets tested as a TLS client: `no-heartbeat`.
#[test]
fn client_test_with_postfix_as_smtp_client() {
    if !require("postfix") || !require("sendmail") || !require("postqueue") {
        return;
    }
    let uid = mta_run(Command::new("id").arg("-u"));
    assert_eq!(uid.trim(), "0", "Postfix's master starts as root: run the tests as root (or set BLEEDWATCH_SKIP_REAL_SERVERS=1)");

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = bleedwatch()
        .args(["client-test", "--listen", &listen.to_string(), "--starttls", "smtp", "--once", "--timeout", "10s", "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let results = mta_lines(child.stdout.take().unwrap());
    let messages = mta_lines(child.stderr.take().unwrap());
    let mut client_test = Running(child);
    // client-test announces itself after binding: waiting for that line instead of connecting keeps
    // the single --once client for Postfix.
    let banner = messages.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|e| panic!("client-test did not start: {e}"));
    assert!(banner.contains(&format!("listening on {listen}")), "{banner}");

    let postfix = mta_start_postfix(listen);
    let mut sendmail = Command::new("sendmail")
        .arg("-C")
        .arg(postfix.conf())
        .args(["-f", "sender@client.bleedwatch.test", "someone@example.test"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut sendmail.stdin.take().unwrap(), b"Subject: bleedwatch relay test\n\nRelayed to client-test on loopback.\n").unwrap();
    assert!(sendmail.wait().unwrap().success(), "sendmail failed");
    mta_run(Command::new("postqueue").arg("-c").arg(postfix.conf()).arg("-f"));

    let line = results
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("no client-test result within 60 s ({e}); Postfix's log:\n{}", postfix.maillog()));
    let result: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(result["service"], "smtp", "{result:#}");
    assert_eq!(result["verdict"], "no-heartbeat", "{result:#}");
    assert_eq!(result["tls_version"], "tls1.2", "{result:#}");
    assert_eq!(result["client_hello"]["version"], "tls1.2", "{result:#}");
    assert_eq!(result["client_hello"].get("heartbeat_mode"), Some(&serde_json::Value::Null), "{result:#}");
    assert!(result["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{result:#}");

    // Postfix's side: it relayed to client-test, its TLS handshake failed on our heartbeats, and with
    // `encrypt` the mail was deferred, never sent in plaintext.
    let log = mta_wait_for_log(&postfix, "status=deferred");
    assert!(log.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", listen.port())), "{log}");
    assert!(log.contains("Cannot start TLS: handshake failure"), "{log}");
    assert!(!log.contains("status=sent"), "{log}");

    // --once: client-test exits by itself, 0 as no client was vulnerable, after exactly one result.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = client_test.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "client-test --once did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "client-test exit status {status}");
    assert!(results.recv_timeout(Duration::from_secs(5)).is_err(), "more than one client-test result");
}

// ---- issues 5 and 6: clients, honeypot attempts and capture findings in the inventory ----

/// A fresh inventory file for one test (and the folder holding it, removed by the caller).
fn inv_db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("bleedwatch-cli-inv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create the test's inventory folder");
    (dir.join("inventory.db"), dir)
}

/// Runs bleedwatch to completion (bounded) and returns its output.
fn inv_run(cmd: &mut Command) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cannot start bleedwatch");
    finish(child, Duration::from_secs(120))
}

/// tcpdump capturing loopback traffic to the given ports, stopped (and its file complete) on drop.
struct Capture {
    child: Child,
    path: PathBuf,
    /// What tcpdump printed after it started (its packet counts, when it stops).
    report: std::sync::mpsc::Receiver<String>,
}

impl Capture {
    fn start(name: &str, ports: &[u16]) -> Capture {
        let path = temp_path(name);
        let filter = ports.iter().map(|p| format!("port {p}")).collect::<Vec<_>>().join(" or ");
        // Immediate mode: each packet reaches the file at once, none waits in the kernel's buffer when
        // the capture is stopped.
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "--immediate-mode", "-U", "-B", "65536", "-s", "0", "-Z", "root", "-w"])
            .arg(&path)
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start tcpdump");
        // tcpdump says "listening on lo" once it captures.
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) > 0 && !line.contains("listening on") {
            line.clear();
        }
        assert!(line.contains("listening on"), "tcpdump did not start (loopback capture needs root or CAP_NET_RAW): {line}");
        let (tx, report) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            let _ = tx.send(rest);
        });
        Capture { child, path, report }
    }

    /// Stops the capture (SIGINT: tcpdump writes out what it holds) and returns the file, after
    /// checking that the kernel dropped nothing.
    fn finish(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "tcpdump did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = self.report.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        assert!(report.lines().any(|l| l.trim() == "0 packets dropped by kernel"), "tcpdump lost packets: {report}");
        self.path.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 5: bleedwatch's own scans of the lab in each mode, captured by tcpdump and read back by
/// `bleedwatch pcap`. The safe probe shows as a probe (never an over-read), answered only by the
/// vulnerable servers; `--prove` shows as an over-read with exactly the bytes it asked for; after a
/// STARTTLS upgrade too.
#[test]
fn pcap_of_our_own_scans_of_the_lab() {
    if !require("tcpdump") {
        return;
    }
    let labs = [("vulnerable", None), ("fixed", None), ("no-heartbeat", None), ("vulnerable", Some("smtp"))];
    let ports: Vec<u16> = labs.iter().map(|_| free_port()).collect();
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let capture = Capture::start("own-scans.pcap", &[&ports[..], &[udp_port]].concat());
    let mut running = Vec::new();
    for ((behaviour, starttls), port) in labs.iter().zip(&ports) {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = bleedwatch();
        cmd.args(["lab", "--listen", &addr, "--behaviour", behaviour]).stderr(Stdio::null());
        if let Some(proto) = starttls {
            cmd.args(["--starttls", proto]);
        }
        running.push(Running(cmd.spawn().unwrap()));
        wait_listening(addr.parse().unwrap());
    }
    // And a vulnerable DTLS lab on UDP.
    let mut dtls_lab = bleedwatch().args(["lab", "--dtls", "--listen", &format!("127.0.0.1:{udp_port}")]).stderr(Stdio::piped()).spawn().unwrap();
    // Listening once it says so (UDP has no connection to wait for).
    let mut said = String::new();
    let mut lab_stderr = std::io::BufReader::new(dtls_lab.stderr.take().unwrap());
    std::io::BufRead::read_line(&mut lab_stderr, &mut said).unwrap();
    assert!(said.contains("DTLS server on udp"), "{said}");
    std::thread::spawn(move || std::io::copy(&mut lab_stderr, &mut std::io::sink()));
    running.push(Running(dtls_lab));
    let mut targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    targets.push(format!("127.0.0.1:udp/{udp_port}"));
    let scan = bleedwatch().args(["scan", "--json", "-"]).args(&targets).output().unwrap();
    let results = json_lines(&String::from_utf8_lossy(&scan.stdout));
    let verdict = |port: u16| results.iter().find(|r| r["port"] == port).map(|r| r["heartbleed"].as_str().unwrap().to_string());
    assert_eq!(
        [ports[0], ports[1], ports[2], ports[3], udp_port].map(verdict),
        ["vulnerable", "not-vulnerable", "no-heartbeat", "vulnerable", "vulnerable"].map(|v| Some(v.to_string())),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let dtls_versions = results.iter().find(|r| r["port"] == udp_port).unwrap()["versions"].as_object().unwrap().values().filter(|v| *v == "vulnerable").count();
    let prove = bleedwatch().args(["scan", "--prove", "16", "-q", &targets[0]]).output().unwrap();
    assert_eq!(prove.status.code(), Some(1));
    let file = capture.finish();
    drop(running);

    let out = bleedwatch().arg("pcap").arg(&file).args(["--json", "-"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "attempts were found: {stderr}");
    let findings = json_lines(&String::from_utf8_lossy(&out.stdout));
    let at = |port: u16| -> Vec<&serde_json::Value> { findings.iter().filter(|f| f["dst_port"] == port && f["severity"] != "info").collect() };
    let kinds = |port: u16| -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for f in at(port) {
            *counts.entry(f["kind"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        counts
    };
    let count = |pairs: &[(&str, usize)]| -> std::collections::BTreeMap<String, usize> { pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect() };
    // Vulnerable, four versions: the safe scan's unpadded probe answered on each, and the --prove
    // scan's over-read answered with the 16 bytes asked for beyond what was sent.
    assert_eq!(kinds(ports[0]), count(&[("heartbeat_unpadded", 4), ("heartbeat_response_to_invalid", 4), ("heartbeat_overflow", 4), ("heartbeat_response_leak", 4)]), "{findings:#?}");
    assert!(at(ports[0]).iter().filter(|f| f["kind"] == "heartbeat_response_leak").all(|f| f["leaked_bytes"] == 16 && f["severity"] == "success"));
    assert!(at(ports[0]).iter().filter(|f| f["kind"] == "heartbeat_response_to_invalid").all(|f| f["leaked_bytes"] == 0));
    // Fixed: probed, never answered. Zeek's script calls the answer to the valid heartbeat that
    // followed an "attack success"; the finding carrying that notice stays `info`.
    assert_eq!(kinds(ports[1]), count(&[("heartbeat_unpadded", 4)]), "{findings:#?}");
    let zeek_success = findings.iter().filter(|f| f["dst_port"] == ports[1] && f["notice"] == "Heartbleed::SSL_Heartbeat_Attack_Success");
    assert!(zeek_success.clone().count() == 4 && zeek_success.into_iter().all(|f| f["kind"] == "heartbeat_response" && f["severity"] == "info"), "{findings:#?}");
    // No heartbeat support: nothing answered either.
    assert!(at(ports[2]).iter().all(|f| f["severity"] != "success"), "{findings:#?}");
    // After STARTTLS, found by content.
    assert_eq!(kinds(ports[3]), count(&[("heartbeat_unpadded", 4), ("heartbeat_response_to_invalid", 4)]), "{findings:#?}");
    // DTLS: each vulnerable version's probe and its answer, over UDP.
    let dtls: Vec<&serde_json::Value> = at(udp_port);
    assert!(dtls.iter().all(|f| f["transport"] == "udp"), "{findings:#?}");
    assert_eq!(kinds(udp_port), count(&[("heartbeat_unpadded", dtls_versions), ("heartbeat_response_to_invalid", dtls_versions)]), "{findings:#?}");
    // Every attempt names our scanner as the attacker and the lab as the victim.
    assert!(findings.iter().filter(|f| f["severity"] != "info").all(|f| f["direction"] == "client-to-server" && f["victim"].as_str().unwrap().ends_with(&format!(":{}", f["dst_port"]))));
    let _ = std::fs::remove_file(file);
}

/// A little-endian pcap file cut in two after `records` packet records (each piece a whole file).
fn split_pcap(bytes: &[u8], records: usize) -> (Vec<u8>, Vec<u8>) {
    let mut at = 24;
    for _ in 0..records {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    let mut second = bytes[..24].to_vec();
    second.extend_from_slice(&bytes[at..]);
    (bytes[..at].to_vec(), second)
}

/// `--joined`: rotated pieces of a capture read as one give the whole capture's findings, named
/// after the piece each connection began in, and the inventory records them under that piece.
#[test]
fn pcap_joined_rotated_pieces() {
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pcap/openssl-1.0.1f-lab/nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap");
    let bytes = std::fs::read(&capture).unwrap();
    let whole = json_lines(&String::from_utf8_lossy(&bleedwatch().args(["pcap", "--json", "-"]).arg(&capture).output().unwrap().stdout));
    // Cut just before the first packet of the leaking answer: the request is in the first piece,
    // the answer in the second.
    let answer = whole.iter().find(|f| f["kind"] == "heartbeat_response_leak").unwrap();
    let answer_us = (answer["ts"].as_f64().unwrap() * 1e6).round() as u64;
    let records = {
        let (mut n, mut at) = (0, 24);
        let word = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()));
        while at + 16 <= bytes.len() && word(at) * 1_000_000 + word(at + 4) < answer_us {
            at += 16 + word(at + 8) as usize;
            n += 1;
        }
        n
    };
    let (first, second) = split_pcap(&bytes, records);
    let (a, b) = (temp_path("piece-a.pcap"), temp_path("piece-b.pcap"));
    std::fs::write(&a, first).unwrap();
    std::fs::write(&b, second).unwrap();
    let without_file = |lines: &[serde_json::Value]| -> Vec<String> {
        let mut v: Vec<String> = lines.iter().map(|l| { let mut l = l.clone(); l.as_object_mut().unwrap().remove("file"); l.to_string() }).collect();
        v.sort();
        v
    };
    let joined = bleedwatch().args(["pcap", "--joined", "--json", "-"]).arg(&a).arg(&b).output().unwrap();
    assert_eq!(joined.status.code(), Some(1), "{}", String::from_utf8_lossy(&joined.stderr));
    let joined = json_lines(&String::from_utf8_lossy(&joined.stdout));
    assert_eq!(without_file(&joined), without_file(&whole));
    assert!(joined.iter().all(|f| f["file"] == a.display().to_string()), "{joined:#?}");
    // Read apart, the second piece starts in the middle of the connections: fewer findings.
    let apart = json_lines(&String::from_utf8_lossy(&bleedwatch().args(["pcap", "--json", "-"]).arg(&a).arg(&b).output().unwrap().stdout));
    assert_ne!(without_file(&apart), without_file(&whole));

    let (db, dir) = inv_db("joined");
    let out = inv_run(bleedwatch().args(["pcap", "--joined"]).arg(&a).arg(&b).arg("--db").arg(&db));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let attempts = whole.iter().filter(|f| f["severity"] != "info").count();
    assert!(stderr.contains(&format!("inventory: {attempts} findings recorded, 0 already there")), "{stderr}");
    let again = inv_run(bleedwatch().args(["pcap", "--joined"]).arg(&a).arg(&b).arg("--db").arg(&db));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("inventory: 0 findings recorded, {attempts} already there")));
    for f in [a, b] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `bleedwatch pcap FILE | head`: a reader that stops early is no error; the exit code still says an
/// attack was found.
#[test]
fn pcap_summary_into_a_closed_pipe_is_quiet() {
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pcap/zeek/heartbleed-success.pcap");
    let mut child = bleedwatch().arg("pcap").arg(&capture).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Close the reading end before bleedwatch (still starting up) writes its summary.
    drop(child.stdout.take());
    let out = finish(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// Issue 5: a capture's findings are attached to the inventory endpoint they hit (recorded here
/// through the store, as the capture's victim is a public server a test cannot scan), once, however
/// often and however (file or standard input) the capture is imported.
#[test]
fn pcap_findings_are_attached_to_inventory_endpoints_once() {
    let (db, dir) = inv_db("pcap");
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pcap/zeek/heartbleed-success.pcap");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let victim = rt.block_on(async {
        let store = bleedwatch_store::Store::open(db.to_str().unwrap()).await.unwrap();
        let run = store.start_run("scan", &["107.170.241.107:443".into()]).await.unwrap();
        // What a scan that morning wrote: vulnerable (the attack at 16:57 came within the exposure).
        let scan = serde_json::json!({
            "address": "107.170.241.107", "port": 443, "transport": "tcp", "host": null, "service": "tls", "sni": null,
            "status": "success", "heartbleed": "vulnerable", "reason": null, "versions": {"tls1.2": "vulnerable"},
            "certificate": null, "chain": [], "details": [], "started_at": "2014-04-08T12:00:00.000Z", "duration_ms": 40
        });
        let endpoint = store.record(run, &serde_json::from_value(scan).unwrap(), None).await.unwrap().endpoint_id();
        store.finish_run(run, "finished").await.unwrap();
        store.close().await;
        endpoint
    });

    let out = inv_run(bleedwatch().arg("pcap").arg(&capture).arg("--db").arg(&db));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an attack was found: {stderr}");
    assert!(stderr.contains("inventory: 2 findings recorded, 0 already there, 2 on inventory endpoints"), "{stderr}");
    let again = inv_run(bleedwatch().arg("pcap").arg(&capture).arg("--db").arg(&db));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("inventory: 0 findings recorded, 2 already there"), "{stderr}");
    let piped = inv_run(bleedwatch().args(["pcap", "-", "-q", "--db"]).arg(&db).stdin(std::fs::File::open(&capture).unwrap()));
    assert_eq!(piped.status.code(), Some(1), "{}", String::from_utf8_lossy(&piped.stderr));

    let attacks = rt.block_on(async {
        let store = bleedwatch_store::Store::open(db.to_str().unwrap()).await.unwrap();
        let attacks = store.attacks(&bleedwatch_store::AttackFilter::default()).await.unwrap();
        store.close().await;
        attacks
    });
    assert_eq!(attacks.len(), 2, "no duplicates: {attacks:#?}");
    assert!(attacks.iter().all(|a| a.endpoint_id == Some(victim) && a.origin == "pcap"), "{attacks:#?}");
    assert_eq!(attacks[0].file.as_deref(), Some(capture.to_str().unwrap()), "the name of the first import");

    let out = inv_run(bleedwatch().args(["endpoints", "--flag", "attacked-while-vulnerable", "--json", "-", "--db"]).arg(&db));
    let views = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(views.len(), 1, "{views:#?}");
    assert_eq!(views[0]["address"], "107.170.241.107");
    assert_eq!(views[0]["attacked_while_vulnerable"], true);
    assert_eq!((views[0]["attacks"].as_u64(), views[0]["attack_successes"].as_u64()), (Some(2), Some(1)));
    assert_eq!(views[0]["first_attack"], "2014-04-08T16:57:00.863Z");

    let out = inv_run(bleedwatch().args(["attackers", "--json", "-", "--db"]).arg(&db));
    assert_eq!(out.status.code(), Some(1), "an attack succeeded");
    let attackers = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(attackers.len(), 1, "{attackers:#?}");
    assert_eq!(attackers[0]["source_address"], "173.203.79.216");
    assert_eq!((attackers[0]["attempts"].as_i64(), attackers[0]["successes"].as_i64()), (Some(2), Some(1)));
    assert_eq!(attackers[0]["targets"], serde_json::json!(["107.170.241.107:443/tcp"]));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 6: the honeypot records every attempt of our own `scan --prove` for `attackers`; with
/// --no-db it records nothing.
#[test]
fn honeypot_attempts_are_listed_by_attackers() {
    let (db, dir) = inv_db("honeypot");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let honeypot = bleedwatch()
        .args(["honeypot", "--listen", &addr.to_string(), "--max-attempts", "8", "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(addr);
    let scan = inv_run(bleedwatch().args(["scan", &addr.to_string(), "--prove", "16", "--no-db", "-q"]));
    assert_eq!(scan.status.code(), Some(1), "the honeypot looks vulnerable: {}", String::from_utf8_lossy(&scan.stderr));
    let out = finish(honeypot, Duration::from_secs(60));
    assert!(out.status.success(), "honeypot: {}", String::from_utf8_lossy(&out.stderr));

    let out = inv_run(bleedwatch().args(["attackers", "--json", "-", "--db"]).arg(&db));
    assert_eq!(out.status.code(), Some(0), "nothing leaks from a honeypot: {}", String::from_utf8_lossy(&out.stderr));
    let attackers = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(attackers.len(), 1, "{attackers:#?}");
    let me = &attackers[0];
    assert_eq!(me["source_address"], "127.0.0.1");
    assert_eq!(me["attempts"], 8, "four versions, an over-read and an honest heartbeat each: {me:#}");
    assert_eq!(me["over_reads"], 4, "{me:#}");
    assert_eq!(me["successes"], 0, "{me:#}");
    assert_eq!(me["origins"], serde_json::json!(["honeypot"]));
    assert_eq!(me["targets"], serde_json::json!([format!("{addr}/tcp")]));
    let out = inv_run(bleedwatch().args(["attackers", "--attempts", "--origin", "honeypot", "--json", "-", "--db"]).arg(&db));
    let attempts = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(attempts.len(), 8);
    assert!(attempts.iter().filter(|a| a["kind"] == "over-read").all(|a| a["claimed_length"].as_i64() > a["payload_length"].as_i64()));
    assert!(attempts.iter().all(|a| a["endpoint_id"].is_null()), "honeypot attempts are not endpoint evidence");

    // --no-db: the inventory is not even created.
    let data_home = dir.join("xdg");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let honeypot = bleedwatch()
        .env("XDG_DATA_HOME", &data_home)
        .args(["honeypot", "--listen", &addr.to_string(), "--max-attempts", "1", "--no-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr);
    inv_run(bleedwatch().args(["scan", &addr.to_string(), "--versions", "tls1.2", "--no-db", "-q"]));
    assert!(finish(honeypot, Duration::from_secs(60)).status.success());
    assert!(!data_home.join("bleedwatch").exists(), "--no-db wrote an inventory");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 6: `client-test` records each client — in the default inventory when no --db is given —
/// and `clients` shows them (all, or the latest per client).
#[test]
fn client_test_records_clients_for_the_clients_command() {
    if !require("openssl") {
        return;
    }
    let (_, dir) = inv_db("clients");
    let data_home = dir.join("xdg");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let client_test = bleedwatch()
        .env("XDG_DATA_HOME", &data_home)
        .args(["client-test", "--listen", &addr.to_string(), "--max-clients", "2", "--timeout", "10s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // wait_listening connects without TLS: the first client, inconclusive.
    wait_listening(addr);
    let _ = Command::new("openssl").args(["s_client", "-connect", &addr.to_string()]).stdin(Stdio::null()).output();
    let out = finish(client_test, Duration::from_secs(60));
    assert!(out.status.success(), "client-test exit status {:?}", out.status);

    let out = inv_run(bleedwatch().env("XDG_DATA_HOME", &data_home).args(["clients", "--json", "-"]));
    assert_eq!(out.status.code(), Some(0), "no vulnerable client: {}", String::from_utf8_lossy(&out.stderr));
    let tests = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(tests.len(), 2, "{tests:#?}");
    // Newest first. The port check and s_client finish moments apart and in either order (the
    // port check's close can be handled after s_client's test), so find each by what it sent.
    assert!(tests[0]["tested_at_ms"].as_i64() >= tests[1]["tested_at_ms"].as_i64(), "newest first: {tests:#?}");
    let s_client = tests.iter().find(|t| !t["offered_version"].is_null()).unwrap_or_else(|| panic!("no s_client row: {tests:#?}"));
    let port_check = tests.iter().find(|t| t["offered_version"].is_null()).unwrap_or_else(|| panic!("no port-check row: {tests:#?}"));
    assert_eq!(s_client["verdict"], "no-heartbeat", "OpenSSL 3 s_client: {s_client:#}");
    assert_eq!(s_client["client_address"], "127.0.0.1");
    assert_eq!(s_client["offered_version"], "tls1.2");
    assert!(s_client["heartbeat_mode"].is_null(), "OpenSSL 3 offers no heartbeat extension");
    assert_eq!(s_client["listener"], addr.to_string());
    assert_eq!(s_client["service"], "tls");
    assert_eq!(port_check["verdict"], "inconclusive", "the port check: {port_check:#}");
    assert_eq!(tests[0]["run"], tests[1]["run"], "one client-test run");

    let out = inv_run(bleedwatch().env("XDG_DATA_HOME", &data_home).args(["clients", "--latest", "--json", "-"]));
    let latest = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0]["id"], tests[0]["id"], "the latest test of 127.0.0.1 is the newest row");
    let out = inv_run(bleedwatch().env("XDG_DATA_HOME", &data_home).args(["clients", "--verdict", "vulnerable"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 client tests, 0 vulnerable"), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(dir);
}

// --- client-test --after-handshake with real clients from Debian.

/// Runs a TLS client with its standard input held open (so it does not end the session itself at
/// end of input) until it exits or `limit` passes (then it is killed); returns its output.
fn run_client_holding_stdin(program: &str, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client starts");
    let stdin = child.stdin.take();
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("client status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("client output");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Issue 6: clients that answer heartbeats only after a completed handshake. `client-test
/// --after-handshake` completes real handshakes with the lab certificate and sends the heartbeats
/// encrypted: gnutls-cli --heartbeat answers the honest heartbeat and drops the connection at the
/// unpadded one (GnuTLS checks the padding), OpenSSL 3 (s_client, curl) has no heartbeat code and
/// alerts, and a client that rejects the certificate gets no verdict.
#[test]
fn client_test_after_handshake_with_real_clients() {
    if !require("curl") || !require("openssl") || !require("gnutls-cli") {
        return;
    }
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = bleedwatch()
        .args(["client-test", "--after-handshake", "--listen", &addr.to_string(), "--max-clients", "5", "--timeout", "10s", "--json", "-", "--no-db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client_test = Running(child);
    wait_listening(addr); // the first client: a bare TCP connection
    let port = port.to_string();
    let limit = Duration::from_secs(30);
    let gnutls = run_client_holding_stdin("gnutls-cli", &["--insecure", "--heartbeat", "-p", &port, "127.0.0.1"], limit);
    assert!(gnutls.contains("- Handshake was completed"), "{gnutls}");
    let s_client = run_client_holding_stdin("openssl", &["s_client", "-connect", &addr.to_string()], limit);
    assert!(s_client.contains("Verify return code: 18"), "s_client completed the handshake with the self-signed lab certificate: {s_client}");
    let curl = Command::new("curl").args(["-sk", "--max-time", "10", &format!("https://127.0.0.1:{port}/")]).output().unwrap();
    assert!(!curl.status.success(), "curl got no page: the session ends at our heartbeats");
    let verifying = run_client_holding_stdin("gnutls-cli", &["--heartbeat", "-p", &port, "127.0.0.1"], limit);
    assert!(verifying.contains("certificate"), "{verifying}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = client_test.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "client-test did not exit after five clients");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "no client was vulnerable: {status:?}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut client_test.0.stdout.take().unwrap(), &mut text).unwrap();
    let results = json_lines(&text);
    assert_eq!(results.len(), 5, "{results:#?}");
    for r in &results {
        assert_eq!(r["after_handshake"], true, "{r:#}");
    }
    assert_eq!(results[0]["verdict"], "inconclusive", "the port check: {:#}", results[0]);

    let gnutls = &results[1];
    assert_eq!(gnutls["verdict"], "not-vulnerable", "gnutls-cli: {gnutls:#}");
    assert_eq!(gnutls["client_hello"]["heartbeat_mode"], "peer_allowed_to_send");
    assert_eq!(gnutls["tls_version"], "tls1.2");
    let log = gnutls["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>();
    assert!(log.iter().any(|l| l.starts_with("handshake completed (tls1.2")), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("client answered the honest heartbeat")), "decided from an answer: {log:#?}");
    assert!(gnutls["reason"].as_str().unwrap().contains("honest heartbeat answered"), "{gnutls:#}");

    for (name, r) in [("s_client", &results[2]), ("curl", &results[3])] {
        assert_eq!(r["verdict"], "no-heartbeat", "{name}: {r:#}");
        assert!(r["client_hello"]["heartbeat_mode"].is_null(), "{name}: {r:#}");
        assert!(r["reason"].as_str().unwrap().contains("unexpected_message"), "{name}: {r:#}");
        assert!(r["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("handshake completed")), "{name}: {r:#}");
    }

    let refused = &results[4];
    assert_eq!(refused["verdict"], "inconclusive", "gnutls-cli without --insecure: {refused:#}");
    assert!(refused["tls_version"].is_null());
    assert!(refused["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("accept the lab certificate")), "{refused:#}");
}

/// Issue 14: completions and the man page are generated from the clap definitions, so they know
/// every command and the checked `--starttls` values.
#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let bash = bleedwatch().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let bash = String::from_utf8_lossy(&bash.stdout);
    for word in ["scan", "rescan", "client-test", "--starttls", "xmpp-server", "--connect-timeout"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let out = bleedwatch().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("starttls") && script.contains("honeypot"), "{shell}: {script}");
    }
    assert_eq!(bleedwatch().args(["completions", "tcsh"]).output().unwrap().status.code(), Some(2));

    let man = bleedwatch().arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH BLEEDWATCH 1"), "{page}");
    assert!(page.contains("client\\-test") && page.contains("completions"), "{page}");
    let dir = temp_path("man");
    let out = bleedwatch().args(["man", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scan_page = std::fs::read_to_string(dir.join("bleedwatch-scan.1")).unwrap();
    assert!(scan_page.contains(".TH BLEEDWATCH-SCAN 1") && scan_page.contains("starttls") && scan_page.contains("xmpp\\-server"), "{scan_page}");
    assert!(dir.join("bleedwatch.1").exists() && dir.join("bleedwatch-revocation-check.1").exists());
    // man(1) reads it, when it is installed.
    if Command::new("sh").arg("-c").arg("command -v man").stdout(Stdio::null()).status().unwrap().success() {
        let shown = Command::new("man").arg("-l").arg(dir.join("bleedwatch-scan.1")).env("MANPAGER", "cat").env("MANWIDTH", "100").output().unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success() && text.contains("--starttls"), "{text}{}", String::from_utf8_lossy(&shown.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14: `-v` and `RUST_LOG` log to standard error (the plan, each endpoint with its verdict);
/// JSON on standard output stays clean; without them nothing is logged.
#[test]
fn verbose_logs_go_to_stderr_and_json_stays_clean() {
    let closed = free_port();
    let scan = |extra: &[&str], rust_log: Option<&str>| {
        let mut cmd = bleedwatch();
        cmd.args(extra).args(["scan", &format!("127.0.0.1:{closed}"), "--no-db", "--json", "-", "-q", "--connect-timeout", "1s"]);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3), "a refused connection is incomplete");
        let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(lines.len(), 1, "only the result on standard output");
        assert_eq!(lines[0]["port"], closed);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let quiet = scan(&[], None);
    assert!(!quiet.contains("DEBUG"), "{quiet}");
    let verbose = scan(&["-v"], None);
    assert!(verbose.contains("DEBUG") && verbose.contains("scan plan"), "{verbose}");
    assert!(verbose.contains("endpoint finished") && verbose.contains(&format!("127.0.0.1:{closed}")) && verbose.contains("inconclusive"), "{verbose}");
    assert!(!verbose.contains("TRACE"), "{verbose}");
    let trace = scan(&["-vv"], None);
    assert!(trace.contains("TRACE") && trace.contains("version verdict"), "{trace}");
    let from_env = scan(&[], Some("bleedwatch=debug"));
    assert!(from_env.contains("endpoint finished"), "{from_env}");
}

/// Issue 14: an error is said once ("No such file or directory" was printed twice), for every
/// command that reads a file.
#[test]
fn errors_are_said_once() {
    let (db, dir) = inv_db("errors-once");
    std::fs::write(dir.join("assets.csv"), "host,owner,criticality,internet-facing,notes\n").unwrap();
    assert!(inv_run(bleedwatch().args(["assets", "import"]).arg(dir.join("assets.csv")).arg("--db").arg(&db)).status.success());
    let missing = "/nonexistent/bleedwatch-input";
    let commands: Vec<Vec<&str>> = vec![
        vec!["scan", "-iL", missing, "--no-db"],
        vec!["scan", "127.0.0.1", "--exclude-file", missing, "--no-db"],
        vec!["assets", "import", "--format", "csv", missing],
        vec!["revocation", "check", "--issuer", missing],
    ];
    for args in commands {
        let out = inv_run(bleedwatch().args(&args).arg("--db").arg(&db));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(missing), "{args:?}: {stderr}");
        assert_eq!(stderr.matches("No such file or directory").count(), 1, "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14: `--starttls` takes a checked list of values, shown in `--help`; the dialect aliases
/// still parse; the servers take a dialect, not `auto`.
#[test]
fn starttls_values_are_checked_and_listed() {
    let help = bleedwatch().args(["scan", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in ["auto", "none", "smtp", "lmtp", "imap", "pop3", "ftp", "xmpp", "xmpp-server", "ldap", "nntp", "sieve", "postgres", "mysql", "rdp", "irc"] {
        assert!(help.contains(&format!("- {name}:")) || help.contains(&format!("- {name}\n")), "{name} not listed: {help}");
    }
    let bad = bleedwatch().args(["scan", "127.0.0.1", "--starttls", "gopher", "--no-db"]).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2));
    assert!(err.contains("gopher") && err.contains("possible values") && err.contains("xmpp-server"), "{err}");
    let server = bleedwatch().args(["honeypot", "--listen", "127.0.0.1:1", "--starttls", "auto", "--no-db"]).output().unwrap();
    assert_eq!(server.status.code(), Some(2), "{}", String::from_utf8_lossy(&server.stderr));
    // An alias, any case: accepted (the closed port answers at once).
    let alias = bleedwatch().args(["scan", &format!("127.0.0.1:{}", free_port()), "--starttls", "PostgreSQL", "--no-db", "-q"]).output().unwrap();
    assert_eq!(alias.status.code(), Some(3), "{}", String::from_utf8_lossy(&alias.stderr));
}

/// Issue 14: one duration syntax: `pcap --idle-timeout` takes `5m` as well as plain seconds, like
/// every other duration option.
#[test]
fn durations_have_one_syntax() {
    let capture = temp_path("empty.pcap");
    // A pcap header and no packets.
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend([0u8; 8]);
    header.extend(65535u32.to_le_bytes());
    header.extend(1u32.to_le_bytes());
    std::fs::write(&capture, &header).unwrap();
    for timeout in ["5m", "300", "90s"] {
        let out = bleedwatch().args(["pcap", "-q", "--idle-timeout", timeout]).arg(&capture).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{timeout}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = bleedwatch().args(["pcap", "-q", "--idle-timeout", "soon"]).arg(&capture).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Plain seconds work where units did.
    let out = bleedwatch().args(["scan", &format!("127.0.0.1:{}", free_port()), "--no-db", "-q", "--connect-timeout", "1", "--banner-wait", "0.5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(capture);
}

// ---- issue 10: revocation answers count only when verified; servers on their own keys ----

/// `openssl` run in `dir`, which must succeed.
fn openssl_in(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A honeypot (vulnerable to a scan) on `addr` presenting `cert` with `key`, listening when returned.
fn honeypot_presenting(addr: SocketAddr, cert: &std::path::Path, key: &std::path::Path) -> Running {
    let honeypot = Running(
        bleedwatch()
            .args(["honeypot", "--no-db", "--listen", &addr.to_string(), "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(addr);
    honeypot
}

/// A certificate authority run with `openssl ca` in `dir`, named `name`, whose first certificate
/// gets serial 1000 (so two CAs of the same name give the same serials).
fn openssl_ca(dir: &std::path::Path, name: &str) {
    std::fs::create_dir_all(dir.join("newcerts")).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    let config = format!(
        "[ca]\ndefault_ca = ca_default\n[ca_default]\ndir = {}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
         certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\n\
         default_md = sha256\ndefault_days = 30\ndefault_crl_days = 7\npolicy = any\nunique_subject = no\n\
         [any]\ncommonName = supplied\n[leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n",
        dir.display()
    );
    std::fs::write(dir.join("ca.cnf"), config).unwrap();
    let subject = format!("/CN={name}");
    openssl_in(dir, &["req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", &subject,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl_in(dir, &["req", "-new", "-newkey", "rsa:2048", "-noenc", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
    openssl_in(dir, &["ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf", "-in", "leaf.csr", "-out", "leaf.pem", "-notext"]);
}

/// The issue's reproduction, end to end: a honeypot presents (`--cert/--key`) a certificate a real
/// CA issued; the scan records it exposed. A CRL made by another key under the CA's name, given
/// without an issuer, said `revoked`; now it is `unknown` (no issuer without an anchor,
/// `signature` with the CA as anchor), as is the genuine CRL past its nextUpdate. Only the
/// genuine, current CRL says `revoked`.
#[test]
fn revocation_check_believes_only_verified_answers() {
    if !require("openssl") {
        return;
    }
    let (db, dir) = inv_db("revocation");
    let (ca, forger) = (dir.join("ca"), dir.join("forger"));
    openssl_ca(&ca, "bleedwatch CLI test CA");
    openssl_ca(&forger, "bleedwatch CLI test CA");
    openssl_in(&forger, &["ca", "-config", "ca.cnf", "-revoke", "leaf.pem", "-crl_reason", "keyCompromise"]);
    openssl_in(&forger, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "forged.crl"]);

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _honeypot = honeypot_presenting(addr, &ca.join("leaf.pem"), &ca.join("leaf.key"));
    let out = inv_run(bleedwatch().args(["scan", &addr.to_string(), "--json", "-", "--db"]).arg(&db));
    let scanned = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(scanned[0]["heartbleed"], "vulnerable", "{scanned:?}");
    let leaf_pem = std::fs::read_to_string(ca.join("leaf.pem")).unwrap();
    let leaf_b64: String = leaf_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(scanned[0]["certificate"]["der"], leaf_b64, "the honeypot presents the certificate given with --cert");

    let check = |extra: &[&std::ffi::OsStr]| -> serde_json::Value {
        let out = inv_run(bleedwatch().args(["revocation", "check", "--json", "-", "--db"]).arg(&db).args(extra));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].clone()
    };
    let forged = forger.join("forged.crl");
    let ca_file = ca.join("ca.pem");
    let line = check(&["--crl".as_ref(), forged.as_os_str()]);
    assert_eq!((line["result"].as_str(), line["unknown_reason"].as_str()), (Some("unknown"), Some("no-issuer")), "{line}");
    let line = check(&["--crl".as_ref(), forged.as_os_str(), "--ca-file".as_ref(), ca_file.as_os_str()]);
    assert_eq!((line["result"].as_str(), line["unknown_reason"].as_str()), (Some("unknown"), Some("signature")), "{line}");
    // The table says it too.
    let out = inv_run(bleedwatch().args(["revocation", "check", "--db"]).arg(&db).arg("--crl").arg(&forged).arg("--ca-file").arg(&ca_file));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("unknown (signature)") && table.contains("0 revocations found"), "{table}");

    openssl_in(&ca, &["ca", "-config", "ca.cnf", "-revoke", "leaf.pem", "-crl_reason", "keyCompromise"]);
    openssl_in(&ca, &["ca", "-config", "ca.cnf", "-gencrl", "-crl_lastupdate", "20200101000000Z", "-crl_nextupdate", "20200108000000Z", "-out", "stale.crl"]);
    openssl_in(&ca, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "genuine.crl"]);
    let stale = ca.join("stale.crl");
    let line = check(&["--crl".as_ref(), stale.as_os_str(), "--ca-file".as_ref(), ca_file.as_os_str()]);
    assert_eq!((line["result"].as_str(), line["unknown_reason"].as_str()), (Some("unknown"), Some("stale")), "{line}");
    let genuine = ca.join("genuine.crl");
    let line = check(&["--crl".as_ref(), genuine.as_os_str(), "--ca-file".as_ref(), ca_file.as_os_str()]);
    assert_eq!((line["result"].as_str(), line["reason"].as_str()), (Some("revoked"), Some("keyCompromise")), "{line}");
    assert!(line["unknown_reason"].is_null(), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 10: an exposed certificate that expired long ago (as every certificate of 2014 has) counts
/// as retired: `revocation check` says so without fetching anything, and the endpoint, fixed and
/// re-keyed since, is notify-ready with the `exposed-cert-expired` flag.
#[test]
fn an_expired_exposed_certificate_counts_as_retired() {
    if !require("openssl") {
        return;
    }
    let (db, dir) = inv_db("expired");
    let ca = dir.join("ca");
    openssl_ca(&ca, "bleedwatch CLI test CA");
    openssl_in(&ca, &["ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf", "-in", "leaf.csr", "-out", "expired.pem", "-notext",
        "-startdate", "20140101000000Z", "-enddate", "20150101000000Z"]);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let scan = || json_lines(&String::from_utf8_lossy(&inv_run(bleedwatch().args(["scan", &addr.to_string(), "--json", "-", "--db"]).arg(&db)).stdout));
    {
        let _honeypot = honeypot_presenting(addr, &ca.join("expired.pem"), &ca.join("leaf.key"));
        let scanned = scan();
        assert_eq!(scanned[0]["heartbleed"], "vulnerable", "{scanned:?}");
        assert_eq!(scanned[0]["certificate"]["not_after"], "2015-01-01T00:00:00Z", "{scanned:?}");
    }
    // Patched and re-keyed: a 1.0.1g-like server on another key, at the same address.
    let _fixed = Running(
        bleedwatch().args(["lab", "--behaviour", "fixed", "--listen", &addr.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    wait_listening(addr);
    assert_eq!(scan()[0]["heartbleed"], "not-vulnerable");

    let out = inv_run(bleedwatch().args(["revocation", "check", "--db"]).arg(&db));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("expired 2015-01-01T00:00:00Z: retired, not checked"), "{table}");
    assert!(table.contains("0 certificates checked (1 expired, not checked), 0 revocations found"), "{table}");
    let out = inv_run(bleedwatch().args(["endpoints", "--json", "-", "--db"]).arg(&db));
    let endpoints = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0]["state"], "notify-ready", "{endpoints:?}");
    let flags: Vec<&str> = endpoints[0]["flags"].as_array().unwrap().iter().filter_map(|f| f["flag"].as_str()).collect();
    assert_eq!(flags, ["exposed-cert-expired"], "{endpoints:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 10: the honeypot presents this installation's own key, not the committed lab key, kept
/// beside the inventory (0600) and the same on the next run; another installation has another.
#[test]
fn honeypot_uses_the_installations_own_key() {
    use std::os::unix::fs::PermissionsExt;
    let spki_of = |data: &std::path::Path| -> String {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let _honeypot = Running(
            bleedwatch()
                .args(["honeypot", "--listen", &addr.to_string(), "--db"])
                .arg(data.join("inventory.db"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(addr);
        let out = inv_run(bleedwatch().args(["scan", &addr.to_string(), "--no-db", "--json", "-"]));
        let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
        lines[0]["certificate"]["spki_sha256"].as_str().unwrap().to_owned()
    };
    let (_, one) = inv_db("key-one");
    let (_, two) = inv_db("key-two");
    let first = spki_of(&one);
    let key = one.join("server-key.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(spki_of(&one), first, "the same key on the next run");
    assert_ne!(spki_of(&two), first, "another installation, another key");
    let lab_identity = bleedwatch_lab::LabIdentity::rsa_lab(&["lab.test"]).unwrap();
    let lab = bleedwatch_x509::summarize(&lab_identity.chain[0]).unwrap().spki_sha256;
    assert_ne!(first, lab, "not the committed lab key");
    let _ = std::fs::remove_dir_all(one);
    let _ = std::fs::remove_dir_all(two);
}

#[test]
fn audit_reports_each_copy_with_exit_codes_like_scan() {
    let Some(shared) = bleedwatch_testkit::shared_openssl_dir() else { return };
    // Everything: vulnerable copies present, exit 1; JSON lines carry kind, version, verdict.
    let out = bleedwatch().arg("audit").arg(&shared).args(["--json", "-", "--no-db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |suffix: &str| lines.iter().find(|v| v["location"].as_array().unwrap().last().unwrap().as_str().unwrap().ends_with(suffix)).unwrap();
    assert_eq!(find("appliance/tlsd-static-1.0.1f")["verdict"], "vulnerable");
    assert_eq!(find("appliance/tlsd-static-1.0.1f")["kind"], "static");
    assert_eq!(find("bin/openssl-1.0.1f-nohb")["verdict"], "heartbeats-disabled");
    assert_eq!(find("lib/1.0.1g/libssl.so.1.0.0")["verdict"], "not-affected");
    assert_eq!(find("lib/1.0.1g/libssl.so.1.0.0")["kind"], "shared-libssl");

    // Only fixed copies, and a tar.gz of them: exit 0, the table names the copy inside the archive.
    let dir = std::env::temp_dir().join(format!("bleedwatch-cli-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(shared.join("bin/openssl-1.0.1g"), dir.join("openssl")).unwrap();
    let status = Command::new("tar").arg("-C").arg(&shared).arg("-czf").arg(dir.join("lib-g.tar.gz")).arg("lib/1.0.1g").status().unwrap();
    assert!(status.success());
    let db = dir.join("inventory.db").display().to_string();
    let out = bleedwatch()
        .arg("audit")
        .arg(&dir)
        .args(["--csv", &dir.join("out.csv").display().to_string(), "--db", &db, "--asset", "mail-gw.example"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.contains("lib-g.tar.gz ! lib/1.0.1g/libssl.so.1.0.0"), "{table}");
    assert!(table.contains("3 OpenSSL copies: 0 vulnerable"), "{table}");
    let csv = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    assert!(csv.starts_with("location,image,kind,version,heartbeats,"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // A truncated archive: a clear message on stderr and exit 3 (incomplete).
    let whole = std::fs::read(dir.join("lib-g.tar.gz")).unwrap();
    std::fs::write(dir.join("cut.tar.gz"), &whole[..whole.len() / 2]).unwrap();
    std::fs::remove_file(dir.join("out.csv")).unwrap();
    let out = bleedwatch().arg("audit").arg(&dir).args(["--no-db"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cut.tar.gz") && stderr.contains("truncated"), "{stderr}");

    // Recorded: the vulnerable builds under the appliance's name; `status` and the report put the
    // products carrying a vulnerable OpenSSL first, and the clean gateway's audit stays clean.
    let out = bleedwatch().arg("audit").arg(&shared).args(["-q", "--db", &db, "--asset", "vpn.example"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bleedwatch().args(["status", "--db", &db]).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a product carries a vulnerable copy: {status}");
    assert!(status.contains("2 audited on disk, 1 carry a vulnerable OpenSSL"), "{status}");
    assert!(status.contains("  vpn.example: ") && !status.contains("  mail-gw.example: "), "{status}");
    let report = dir.join("report.json");
    let out = bleedwatch().args(["report", "--db", &db, "--out", &dir.join("report.html").display().to_string(), "--json"]).arg(&report).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(data["products"][0]["asset"], "vpn.example");
    assert_eq!(data["products"][1]["asset"], "mail-gw.example");
    assert_eq!(data["products"][1]["findings"].as_array().unwrap().len(), 3);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Products that carry a vulnerable OpenSSL") && html.contains("tlsd-static-1.0.1f"));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- issue 12: sweeps, shards and many workers on one PostgreSQL inventory ----

/// The lab on many loopback addresses: in one /27 of its own, four addresses each answer like
/// OpenSSL 1.0.1f, 1.0.1g and a no-heartbeat build on two ports; the other twenty refuse.
struct Farm {
    /// `127.A.B`: the /24 the farm's /27 is in.
    prefix: String,
    ports: [u16; 2],
    _labs: Vec<Running>,
}

impl Farm {
    fn start() -> Farm {
        let pid = std::process::id();
        let prefix = format!("127.{}.{}", 30 + pid % 20, pid / 20 % 250);
        let ports = [free_port(), free_port()];
        let mut labs = Vec::new();
        let mut listening = Vec::new();
        for (i, behaviour) in ["vulnerable", "fixed", "no-heartbeat"].iter().enumerate() {
            let mut cmd = bleedwatch();
            cmd.args(["lab", "--behaviour", behaviour]);
            for host in 1 + 4 * i..5 + 4 * i {
                for port in ports {
                    let addr: SocketAddr = format!("{prefix}.{host}:{port}").parse().unwrap();
                    cmd.args(["--listen", &addr.to_string()]);
                    listening.push(addr);
                }
            }
            labs.push(Running(cmd.stderr(Stdio::null()).spawn().unwrap()));
        }
        for addr in listening {
            wait_listening(addr);
        }
        Farm { prefix, ports, _labs: labs }
    }

    /// The farm's targets and ports, and quick probe settings (one version, no STARTTLS detection).
    fn scan_args(&self) -> Vec<String> {
        let target = format!("{}.0/27", self.prefix);
        let ports = format!("{},{}", self.ports[0], self.ports[1]);
        [target.as_str(), "-p", &ports, "--versions", "tls1.2", "--starttls", "none", "--connect-timeout", "2s", "--handshake-timeout", "3s", "-q"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// Verdict per `address:port` in JSON lines.
fn verdicts(lines: &[serde_json::Value]) -> std::collections::BTreeMap<String, String> {
    lines.iter().map(|l| (format!("{}:{}", l["address"].as_str().unwrap(), l["port"]), l["heartbleed"].as_str().unwrap().to_owned())).collect()
}

/// Four workers of one sweep on a real PostgreSQL, one killed with SIGKILL mid-shard and started
/// again: the sweep is one scan run, every endpoint has exactly one observation, and the verdicts
/// are a single-process scan's.
#[test]
fn four_sweep_workers_on_postgres_survive_a_killed_worker() {
    let Some(cluster) = bleedwatch_testkit::postgres::shared_cluster() else { return };
    let url = cluster.url(&cluster.create_database("sweep"));
    let farm = Farm::start();
    let single = inv_run(bleedwatch().args(["scan", "--no-db", "--json", "-"]).args(farm.scan_args()));
    let expected = verdicts(&json_lines(&String::from_utf8_lossy(&single.stdout)));
    assert_eq!(expected.len(), 64, "{}", String::from_utf8_lossy(&single.stderr));
    assert_eq!(expected.values().filter(|v| *v == "vulnerable").count(), 8);

    let dir = std::env::temp_dir().join(format!("bleedwatch-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Sixteen endpoints a shard at four a second: about four seconds each, room for a kill.
    let worker = |shard: usize| {
        bleedwatch()
            .args(["scan", "--db", &url, "--sweep", "farm", "--shard", &format!("{shard}/4"), "--rate", "4", "--json"])
            .arg(dir.join(format!("worker{shard}.jsonl")))
            .args(farm.scan_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let workers: Vec<Child> = (0..4).map(worker).collect();
    let mut workers: Vec<Option<Child>> = workers.into_iter().map(Some).collect();
    // Kill worker 2 once its shard has recorded progress, before it is done.
    let database = url.rsplit('/').next().unwrap().to_owned();
    let progress = || cluster.psql(&database, "SELECT positions_done || '/' || positions FROM sweep_shards WHERE shard = 2");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The first worker creates the tables.
    while cluster.psql(&database, "SELECT to_regclass('public.sweep_shards') IS NOT NULL").trim() != "t" {
        assert!(Instant::now() < deadline, "no worker created the inventory");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let text = progress();
        if let Some((done, _)) = text.trim().split_once('/') {
            if done.parse::<u64>().unwrap() > 0 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "shard 2 recorded no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut killed = workers[2].take().unwrap();
    killed.kill().unwrap(); // SIGKILL
    let _ = killed.wait();
    let at_kill = progress();
    let (done, of) = at_kill.trim().split_once('/').unwrap();
    assert!(done.parse::<u64>().unwrap() < of.parse::<u64>().unwrap(), "the kill landed mid-shard: {at_kill}");
    for child in workers.iter_mut().filter_map(Option::take) {
        let out = finish(child, Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // The replacement for the dead worker: same shard, from where it stopped.
    let out = finish(worker(2), Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("shard 2/4 resumes at position {done}")), "{stderr}");
    assert!(stderr.contains("sweep \"farm\" finished"), "the last shard finishes the sweep: {stderr}");

    // One run; every endpoint observed exactly once, with the single-process verdicts.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (run_status, observed) = rt.block_on(async {
        let store = bleedwatch_store::Store::open_existing(&url).await.unwrap();
        let runs = store.runs().await.unwrap();
        assert_eq!(runs.len(), 1, "the sweep is one scan run");
        let mut observed = Vec::new();
        for o in store.run_observations(runs[0].id).await.unwrap() {
            let e = store.endpoint(o.endpoint_id).await.unwrap();
            observed.push((format!("{}:{}", e.address, e.port), o.verdict));
        }
        (runs[0].status.clone(), observed)
    });
    assert_eq!(run_status, "finished");
    assert_eq!(observed.len(), 64, "one observation per endpoint: {observed:?}");
    let observed: std::collections::BTreeMap<String, String> = observed.into_iter().collect();
    assert_eq!(observed, expected);
    // `status` sees the sweep as one inventory.
    let status = inv_run(bleedwatch().args(["status", "--db", &url]));
    assert!(String::from_utf8_lossy(&status.stdout).contains("64 endpoints, 8 vulnerable"), "{}", String::from_utf8_lossy(&status.stdout));

    // A worker with another plan or shard count is refused, and says why.
    let mut other = farm.scan_args();
    other[2] = farm.ports[0].to_string();
    let out = inv_run(bleedwatch().args(["scan", "--db", &url, "--sweep", "farm", "--shard", "0/4"]).args(&other));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another plan; every worker must scan the same (differs in: ports)"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = inv_run(bleedwatch().args(["scan", "--db", &url, "--sweep", "farm", "--shard", "0/3"]).args(farm.scan_args()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 4 shards"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// `--exclude-file` in ZMap's blocklist format, watched on the wire: tcpdump sees a SYN to every
/// target that is not excluded and to nothing else, in the seeded order too.
#[test]
fn excluded_and_untargeted_addresses_never_see_a_packet() {
    if !require("tcpdump") {
        return;
    }
    let pid = std::process::id();
    let prefix = format!("127.{}.{}", 50 + pid % 20, pid / 20 % 250);
    let port = free_port();
    let blocklist = temp_path("blocklist.conf");
    std::fs::write(
        &blocklist,
        format!("# ZMap-style blocklist\n\n{prefix}.16/28      # a whole /28\n{prefix}.40\t# one address\n{prefix}.0/31\n"),
    )
    .unwrap();
    let capture = Capture::start("exclusions.pcap", &[port]);
    let out = inv_run(
        bleedwatch()
            .args(["scan", "--no-db", "-q", &format!("{prefix}.0/26:{port}"), "--seed", "11", "--rate", "500", "--starttls", "none", "--exclude-file"])
            .arg(&blocklist),
    );
    let pcap = capture.finish();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let read = Command::new("tcpdump").args(["-n", "-r"]).arg(&pcap).arg("tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0").output().unwrap();
    let text = String::from_utf8_lossy(&read.stdout);
    let syn_to: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split(" > ").nth(1))
        .filter_map(|rest| rest.split(':').next())
        .filter_map(|dst| dst.rsplit_once('.').map(|(addr, _port)| addr.to_owned()))
        .collect();
    let expected: std::collections::BTreeSet<String> =
        (0..64).filter(|h| !(16..32).contains(h) && *h != 40 && *h > 1).map(|h| format!("{prefix}.{h}")).collect();
    assert_eq!(syn_to, expected, "SYNs seen:\n{text}");
    let _ = std::fs::remove_file(pcap);
    let _ = std::fs::remove_file(blocklist);
}

/// deploy/: the Kubernetes manifests are valid for the API (kubernetes-validate, offline, strict:
/// no unknown fields), the Job is Indexed with the completion index as the shard of as many shards
/// as completions, and workers run unprivileged. No container engine runs here, so the Dockerfile
/// is checked as text: multi-stage, the final stage runs no command (no shell needed), a non-root
/// user, an exec-form entrypoint.
#[test]
fn deploy_manifests_and_image_build_hold_their_promises() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    if !require("kubernetes-validate") {
        return;
    }
    let manifests: Vec<PathBuf> = ["secret.yaml", "blocklist.yaml", "sweep-job.yaml"].iter().map(|f| deploy.join("k8s").join(f)).collect();
    let out = Command::new("kubernetes-validate").args(["--strict", "--no-warn"]).args(&manifests).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let job = std::fs::read_to_string(deploy.join("k8s/sweep-job.yaml")).unwrap();
    let value = |key: &str| job.lines().find_map(|l| l.trim().strip_prefix(&format!("{key}: "))).map(str::to_owned);
    assert_eq!(value("completionMode").as_deref(), Some("Indexed"));
    let completions = value("completions").unwrap();
    assert_eq!(value("parallelism"), Some(completions.clone()));
    assert!(job.contains(&format!("- $(SHARD_INDEX)/{completions}\n")), "--shard INDEX/N with N = completions");
    assert!(job.contains("fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']"));
    assert!(value("backoffLimitPerIndex").is_some(), "a dead worker's shard is retried");
    assert_eq!(value("restartPolicy").as_deref(), Some("Never"));
    for setting in ["runAsNonRoot: true", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false", "- ALL", "name: BLEEDWATCH_DB", "name: bleedwatch-db"] {
        assert!(job.contains(setting), "{setting}");
    }
    let secret = std::fs::read_to_string(deploy.join("k8s/secret.yaml")).unwrap();
    assert!(secret.contains("name: bleedwatch-db") && secret.contains("  url: "), "{secret}");

    let dockerfile = std::fs::read_to_string(deploy.join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
    let stages: Vec<usize> = instructions.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ")).map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage");
    let last = &instructions[*stages.last().unwrap()..];
    assert!(!last.iter().any(|l| l.starts_with("RUN ")), "the final stage needs no shell: {last:?}");
    let user = last.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER in the final stage");
    assert!(!user.starts_with('0') && !user.starts_with("root"), "non-root: {user}");
    let entrypoint = last.iter().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("an ENTRYPOINT");
    let exec_form: Vec<String> = serde_json::from_str(entrypoint).expect("exec form (a JSON array): no shell to run it");
    assert_eq!(exec_form, ["/usr/local/bin/bleedwatch"]);
    assert!(instructions[stages[0]..stages[1]].iter().any(|l| l.contains("cargo build --release --locked")));
}
