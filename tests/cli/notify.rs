//! Issue 10: `bleedwatch notify` through a real Postfix on a loopback port that delivers into a
//! local mailbox the tests read; a run killed with SIGKILL mid-batch and started again; the dry
//! run's reasons; bad recipients rows.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{bleedwatch, free_port, mta_run, require, start_postfix_master, stop_postfix_master, temp_path, Running};

/// What Postfix logs (a WARN action) when it starts holding its reply to the end of DATA.
const HOLDING_REPLY: &str = "holding the reply to the end of DATA";

/// A Postfix that accepts mail for example.org on 127.0.0.1:PORT (smtpd; STARTTLS offered when
/// given a certificate) and delivers every message into one mbox file (`virtual`, static map).
/// `later@example.org` is refused for now (450) and `gone@example.org` for good (550).
struct Mailhost {
    master: Option<std::process::Child>,
    root: PathBuf,
    port: u16,
}

impl Mailhost {
    fn start(name: &str) -> Mailhost {
        Mailhost::start_with(name, None, None, None)
    }

    /// With STARTTLS: the certificate and key (PEM files). With `sasl_socket` (a Dovecot auth
    /// socket) SMTP AUTH is offered after STARTTLS only, and only authenticated clients may send:
    /// no `permit_mynetworks`, and no 450/550 test addresses. With `hold_reply_secs`, smtpd logs
    /// [`HOLDING_REPLY`] once it has the whole message (the end of DATA) and then sleeps that long
    /// before it commits the message and answers (`smtpd_end_of_data_restrictions`).
    fn start_with(name: &str, tls: Option<(&Path, &Path)>, sasl_socket: Option<&Path>, hold_reply_secs: Option<u32>) -> Mailhost {
        let root = temp_path(name);
        let _ = std::fs::remove_dir_all(&root);
        let (conf, queue, data, mail) = (root.join("conf"), root.join("queue"), root.join("data"), root.join("mail"));
        for dir in [&conf, &queue, &data, &mail] {
            std::fs::create_dir_all(dir).unwrap();
        }
        mta_run(Command::new("chmod").arg("755").arg(&root));
        mta_run(Command::new("chown").arg("postfix").arg(&data));
        mta_run(Command::new("chown").arg("postfix:postfix").arg(&mail));
        let uid = mta_run(Command::new("id").args(["-u", "postfix"])).trim().to_owned();
        let gid = mta_run(Command::new("id").args(["-g", "postfix"])).trim().to_owned();
        let port = free_port();
        let recipient_restrictions = match sasl_socket {
            Some(_) => "permit_sasl_authenticated, reject",
            None => "check_recipient_access inline:{ { later@example.org = 450 4.2.0 try again later }, { gone@example.org = 550 5.1.1 no such user } }, permit_mynetworks, reject",
        };
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = mail.bleedwatch.test\n\
             mydestination =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_banner = $myhostname ESMTP\n\
             virtual_mailbox_domains = example.org\n\
             virtual_mailbox_base = {mail}\n\
             virtual_mailbox_maps = static:mailbox\n\
             virtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\n\
             smtpd_recipient_restrictions = {recipient_restrictions}\n\
             maillog_file_prefixes = {root}\n\
             maillog_file = {root}/maillog\n",
            queue = queue.display(),
            data = data.display(),
            mail = mail.display(),
            root = root.display(),
        );
        let main_cf = match tls {
            Some((cert, key)) => format!(
                "{main_cf}smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\n",
                cert.display(),
                key.display()
            ),
            None => main_cf,
        };
        let main_cf = match sasl_socket {
            Some(socket) => format!(
                "{main_cf}smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\nsmtpd_tls_auth_only = yes\n",
                socket.display()
            ),
            None => main_cf,
        };
        let main_cf = match hold_reply_secs {
            // `sleep` is one of the generic restrictions, valid in every SMTP stage (postconf(5)).
            Some(secs) => format!(
                "{main_cf}smtpd_end_of_data_restrictions = check_client_access inline:{{ {{ 127.0.0.1 = WARN {HOLDING_REPLY} }} }}, sleep {secs}, permit\n"
            ),
            None => main_cf,
        };
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        // Mail comes in on the loopback port and is delivered by `virtual` into the mailbox files.
        let master = start_postfix_master(&conf, &format!("127.0.0.1:{port} inet n - n - - smtpd\nvirtual unix - n n - - virtual\n"));
        let host = Mailhost { master: Some(master), root, port };
        super::wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
        host
    }

    fn mailbox(&self) -> String {
        std::fs::read_to_string(self.root.join("mail").join("mailbox")).unwrap_or_default()
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// The log once it holds `needle` `count` times (bounded: Postfix's log daemon may lag a moment).
    fn log_with(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.maillog().matches(needle).count() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.maillog()
    }

    /// The delivered messages (mbox: each starts with a `From ` line).
    fn messages(&self) -> Vec<String> {
        let mbox = self.mailbox();
        let mut messages: Vec<String> = Vec::new();
        for line in mbox.lines() {
            if line.starts_with("From ") {
                messages.push(String::new());
            }
            if let Some(current) = messages.last_mut() {
                current.push_str(line);
                current.push('\n');
            }
        }
        messages
    }

    /// Waits (bounded) until `count` messages are in the mailbox, then a moment more for strays.
    fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.messages().len() < count {
            assert!(Instant::now() < deadline, "{} of {count} messages delivered; Postfix's log:\n{}", self.messages().len(), self.maillog());
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        self.messages()
    }
}

impl Drop for Mailhost {
    fn drop(&mut self) {
        stop_postfix_master(self.master.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A Dovecot that only authenticates (no protocols): Postfix's SASL back end. One user with a
/// known password in a passwd-file; the socket for Postfix's smtpd (owned by postfix). Stopped on
/// drop.
struct SaslAuth {
    master: Option<std::process::Child>,
    root: PathBuf,
}

impl SaslAuth {
    fn start(name: &str, user: &str, password: &str) -> SaslAuth {
        let root = temp_path(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        mta_run(Command::new("chmod").arg("755").arg(&root));
        let passwd = root.join("passwd");
        std::fs::write(&passwd, format!("{user}:{{PLAIN}}{password}\n")).unwrap();
        // Read by the auth process, which runs as the dovecot user.
        mta_run(Command::new("chown").arg("root:dovecot").arg(&passwd));
        mta_run(Command::new("chmod").arg("640").arg(&passwd));
        let conf = format!(
            "base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = {root}/dovecot.log\nprotocols =\nssl = no\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\nauth_mechanisms = plain login\n\
             passdb {{\n driver = passwd-file\n args = scheme=PLAIN {passwd}\n}}\n\
             userdb {{\n driver = static\n args = uid=dovecot gid=dovecot home={root}/home/%u\n}}\n\
             service auth {{\n unix_listener auth-postfix {{\n mode = 0660\n user = postfix\n group = postfix\n }}\n}}\n",
            root = root.display(),
            passwd = passwd.display(),
        );
        let conf_path = root.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let master = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let auth = SaslAuth { master: Some(master), root };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !auth.socket().exists() {
            assert!(Instant::now() < deadline, "no Dovecot auth socket: {}", auth.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        auth
    }

    fn socket(&self) -> PathBuf {
        self.root.join("run").join("auth-postfix")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for SaslAuth {
    fn drop(&mut self) {
        // SIGTERM, bounded, then SIGKILL: as for Postfix's master, it stops its own children.
        stop_postfix_master(self.master.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A header's value in a delivered message.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    message.lines().find_map(|l| l.strip_prefix(&prefix))
}

fn scan_line(address: &str, host: &str, verdict: &str, key: &str, at: &str) -> bleedwatch_store::EndpointResult {
    let line = serde_json::json!({
        "address": address, "port": 443, "transport": "tcp", "host": host, "service": "tls", "sni": host,
        "status": "success", "heartbleed": verdict, "reason": null, "versions": {"tls1.2": verdict},
        "certificate": {"subject": format!("CN={host}"), "issuer": "CN=ca", "serial": "01", "sans": [host],
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2099-01-01T00:00:00Z", "not_before_unix": 1_767_225_600_i64,
            "not_after_unix": 4_070_908_800_i64, "spki_sha256": format!("key-{key}"), "cert_sha256": format!("cert-{key}"),
            "key_type": "rsa", "key_bits": 2048, "signature_algorithm": "sha256WithRSAEncryption", "self_signed": false,
            "crl_urls": [], "ocsp_urls": [], "ca_issuer_urls": []},
        "chain": [], "details": [], "started_at": at, "duration_ms": 3
    });
    serde_json::from_value(line).unwrap()
}

/// An inventory where `ready` endpoints (www1… .example.org) went vulnerable → patched → re-keyed →
/// revoked (notify-ready), and one more (held.example.org) is patched and re-keyed but not revoked.
/// The history is recorded through the store: the certificates of a public CA cannot be revoked
/// from a test.
fn inventory(name: &str, ready: usize) -> PathBuf {
    let db = temp_path(&format!("{name}.db"));
    let _ = std::fs::remove_file(&db);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = bleedwatch_store::Store::open(db.to_str().unwrap()).await.unwrap();
        let mut hosts: Vec<String> = (1..=ready).map(|i| format!("www{i}.example.org")).collect();
        hosts.push("held.example.org".into());
        for (i, host) in hosts.iter().enumerate() {
            let address = format!("192.0.2.{}", i + 1);
            for (verdict, key, at) in [("vulnerable", format!("old{i}"), "2026-04-07T10:00:00Z"), ("not-vulnerable", format!("new{i}"), "2026-04-09T12:30:00Z")] {
                let run = store.start_run("scan", &[]).await.unwrap();
                store.record(run, &scan_line(&address, host, verdict, &key, at), None).await.unwrap();
                store.finish_run(run, "finished").await.unwrap();
            }
            if host.starts_with("www") {
                store
                    .record_revocation(&bleedwatch_store::RevocationInput {
                        cert_sha256: format!("cert-old{i}"),
                        method: "crl".into(),
                        source: "test.crl".into(),
                        result: "revoked".into(),
                        revoked_at_unix: Some(1_775_800_000),
                        reason: Some("keyCompromise".into()),
                        detail: "revoked".into(),
                        unknown_reason: None,
                        checked_at_ms: 1_775_800_000_000,
                    })
                    .await
                    .unwrap();
            }
        }
        store.close().await;
    });
    db
}

/// One recipient per endpoint (by service name), plus one by owner-less endpoint selector.
fn recipients_file(name: &str, ready: usize) -> PathBuf {
    let path = temp_path(&format!("{name}.csv"));
    let mut csv = String::from("service,endpoint,address,name,locale\n");
    for i in 1..=ready {
        csv.push_str(&format!("www{i}.example.org,,user{i}@example.org,User {i},en\n"));
    }
    csv.push_str(",192.0.2.1:443,ops@example.org,\"Ops, team\",\n");
    csv.push_str(&format!(",192.0.2.{}:443,held@example.org,Held,\n", ready + 1));
    std::fs::write(&path, csv).unwrap();
    path
}

fn notify_cmd(db: &Path, recipients: &Path, port: u16) -> Command {
    let mut cmd = bleedwatch();
    cmd.args(["notify", "--db"]).arg(db).arg("--recipients").arg(recipients);
    cmd.args(["--smtp", &format!("127.0.0.1:{port}"), "--from", "Security Team <security@example.com>", "--rate", "4/s"]);
    cmd
}

/// The whole batch, killed with SIGKILL after the third notice, then run again: every recipient
/// gets their notice exactly once — except at most the one in flight at the kill, which the
/// inventory must then show as `uncertain` and which was delivered at most once (a rate of 4/s
/// puts the kill between sends nearly always, so exactly-once is what this normally checks).
#[test]
fn notify_sends_through_postfix_once_even_when_killed() {
    if !require("postfix") {
        return;
    }
    let ready = 8;
    let db = inventory("notify-kill", ready);
    let recipients = recipients_file("notify-kill", ready);
    let mailhost = Mailhost::start("notify-mailhost");

    let mut child = Running(notify_cmd(&db, &recipients, mailhost.port).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let mut sent_before_kill = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("sent") {
            sent_before_kill.push(line);
        }
        if sent_before_kill.len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert_eq!(sent_before_kill.len(), 3, "the first run sent: {sent_before_kill:?}");
    mta_run(Command::new("kill").arg("-9").arg(child.0.id().to_string()));
    let _ = child.0.wait();

    let again = notify_cmd(&db, &recipients, mailhost.port).output().unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    let stderr = String::from_utf8_lossy(&again.stderr);
    let addressed = ready + 1; // www1…N, and ops@ (held@ waits for revocation)
    let status = bleedwatch().args(["status", "--db"]).arg(&db).output().unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    // The inventory's word on the notice in flight at the kill, if there was one.
    let counts = status_text.lines().find_map(|l| l.strip_prefix("notices: ")).unwrap_or_else(|| panic!("{status_text}"));
    let uncertain: usize = counts.split(", ").find_map(|c| c.strip_suffix(" uncertain")).unwrap().parse().unwrap();
    assert!(uncertain <= 1, "only the notice in flight can be uncertain: {stdout}\n{status_text}");
    let messages = mailhost.wait_for(addressed - uncertain);
    let mut per_recipient: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in &messages {
        let to = header(message, "Delivered-To").unwrap_or("?").to_owned();
        per_recipient.entry(to).or_default().push(header(message, "Message-ID").unwrap_or("?").to_owned());
    }
    // Nobody twice; nobody missed but the one the inventory calls uncertain (if any).
    let got = |who: &str| per_recipient.get(who).map_or(0, Vec::len);
    let everyone: Vec<String> = (1..=ready).map(|i| format!("user{i}@example.org")).chain(["ops@example.org".to_owned()]).collect();
    for who in &everyone {
        assert!(got(who) <= 1, "{who} got {} notices\n{stdout}\n{stderr}\n{per_recipient:?}", got(who));
    }
    let missed = everyone.iter().filter(|who| got(who) == 0).count();
    assert!(missed <= uncertain, "{missed} recipients got nothing, {uncertain} uncertain\n{stdout}\n{stderr}\n{per_recipient:?}");
    assert!(!per_recipient.contains_key("held@example.org"), "held back until revoked: {per_recipient:?}");
    if uncertain == 0 {
        assert_eq!(messages.len(), addressed, "{per_recipient:?}");
        assert!(again.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("recorded: {addressed} sent, 0 pending, 0 uncertain, 0 failed; 1 held back")), "{stdout}");
        assert!(status_text.contains(&format!("notices: {addressed} sent, 0 pending, 0 uncertain, 0 failed")), "{status_text}");
    }
    // Content and headers of one notice, as the mailbox holds it.
    let first = messages.iter().find(|m| header(m, "Delivered-To") == Some("user2@example.org")).unwrap();
    assert_eq!(header(first, "Subject"), Some("Please change your password for www2.example.org"), "{first}");
    assert_eq!(header(first, "From"), Some("\"Security Team\" <security@example.com>"), "{first}");
    assert_eq!(header(first, "To"), Some("\"User 2\" <user2@example.org>"), "{first}");
    assert!(header(first, "Message-ID").is_some_and(|id| id.starts_with("<bleedwatch.") && id.ends_with("@example.com>")), "{first}");
    assert!(first.contains("multipart/alternative") && first.contains("text/plain") && first.contains("text/html"), "{first}");
    let body = first.replace("=\n", ""); // quoted-printable soft line breaks
    assert!(body.contains("2026-04-07 10:00 UTC") && body.contains("2026-04-09 12:30 UTC") && body.contains("CVE-2014-0160"), "{first}");
    assert!(body.contains("Dear User 2,") && body.contains("Change your password for www2.example.org now."), "{first}");
    assert!(body.contains("write to\nSecurity Team <security@example.com>"), "{first}");
    assert!(body.contains("<p>Dear User 2,</p>"), "the HTML alternative: {first}");
    // A third run sends nothing.
    let third = notify_cmd(&db, &recipients, mailhost.port).output().unwrap();
    assert!(String::from_utf8_lossy(&third.stdout).contains("this run sent 0"), "{}", String::from_utf8_lossy(&third.stdout));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mailhost.messages().len(), messages.len());
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(&recipients);
}

/// A 4xx is retried and left pending for the next run, a 5xx is final with its reply; STARTTLS
/// (rustls, the relay's certificate checked against `--smtp-ca`) is used and required when asked,
/// and a relay that does not offer it is refused.
#[test]
fn notify_retries_4xx_records_5xx_and_requires_starttls() {
    if !require("postfix") || !require("openssl") {
        return;
    }
    let db = inventory("notify-tls", 1);
    let recipients = temp_path("notify-tls.csv");
    std::fs::write(
        &recipients,
        "service,address,name\nwww1.example.org,user1@example.org,User 1\nwww1.example.org,later@example.org,Later\nwww1.example.org,gone@example.org,Gone\n",
    )
    .unwrap();
    let pki_dir = temp_path("notify-tls-pki");
    let other_dir = temp_path("notify-tls-other");
    for d in [&pki_dir, &other_dir] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    let (ca, _, _) = super::pg_tls::pki(&pki_dir, "bleedwatch mail test CA");
    let (wrong_ca, _, _) = super::pg_tls::pki(&other_dir, "another CA");
    mta_run(Command::new("chmod").arg("-R").arg("a+rX").arg(&pki_dir));
    let mailhost = Mailhost::start_with("notify-tls-mailhost", Some((&pki_dir.join("server.crt"), &pki_dir.join("server.key"))), None, None);
    let plain = Mailhost::start("notify-plain-mailhost");
    let run = |port: u16, ca: &Path| {
        let mut cmd = notify_cmd(&db, &recipients, port);
        cmd.args(["--smtp-starttls", "--attempts", "2", "--smtp-ca"]).arg(ca);
        cmd.output().unwrap()
    };

    // The relay without STARTTLS, when it is required: refused before anything is recorded.
    let out = run(plain.port, &ca);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not offer STARTTLS"), "{stderr}");
    // A certificate from another CA: the TLS handshake fails, nothing is sent.
    let out = run(mailhost.port, &wrong_ca);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STARTTLS with the SMTP relay"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = run(mailhost.port, &ca);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "pending and failed notices: exit 1\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |who: &str| stdout.lines().find(|l| l.contains(who)).unwrap_or_else(|| panic!("{who}: {stdout}")).to_owned();
    assert!(line("user1@").starts_with("sent") && line("user1@").contains("250 "), "{stdout}");
    assert!(line("later@").starts_with("pending") && line("later@").contains("450 4.2.0"), "{stdout}");
    assert!(line("gone@").starts_with("failed") && line("gone@").contains("550 5.1.1"), "{stdout}");
    let messages = mailhost.wait_for(1);
    assert_eq!(messages.len(), 1);
    assert!(mailhost.maillog().contains("TLS connection established from localhost[127.0.0.1]"), "{}", mailhost.maillog());
    // 450 tried twice in this run (doubling waits), 550 once.
    assert_eq!(mailhost.maillog().matches("450 4.2.0").count(), 2, "{}", mailhost.maillog());
    assert_eq!(mailhost.maillog().matches("550 5.1.1").count(), 1, "{}", mailhost.maillog());

    // The next run tries the pending one again, not the failed one.
    let out = run(mailhost.port, &ca);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("pending") && l.contains("later@")), "{stdout}");
    assert!(!stdout.contains("gone@") && stdout.contains("this run sent 0; recorded: 1 sent, 1 pending, 0 uncertain, 1 failed"), "{stdout}");
    assert_eq!(mailhost.maillog().matches("550 5.1.1").count(), 1, "{}", mailhost.maillog());
    for path in [&db, &recipients] {
        let _ = std::fs::remove_file(path);
    }
    for dir in [pki_dir, other_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `--dry-run` says who would get what, names the missing step of the others, sends nothing and
/// needs no relay; a recipients file with a bad row is an error naming the file and line.
#[test]
fn notify_dry_run_explains_and_bad_rows_are_named() {
    let db = inventory("notify-dry", 2);
    let recipients = recipients_file("notify-dry", 2);
    let out = bleedwatch().args(["notify", "--dry-run", "--db"]).arg(&db).arg("--recipients").arg(&recipients).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |who: &str| stdout.lines().find(|l| l.contains(who)).unwrap_or_else(|| panic!("{who}: {stdout}")).to_owned();
    assert!(line("user1@example.org").starts_with("send") && line("user1@example.org").contains("Please change your password"), "{stdout}");
    assert!(line("held@example.org").starts_with("held back") && line("held@example.org").contains("not revoked (verified) nor expired"), "{stdout}");
    assert!(stdout.contains("3 notices would be sent, 1 held back") && stdout.contains("nothing sent"), "{stdout}");
    assert!(stdout.contains("Subject: Please change your password for www1.example.org") && stdout.contains("Dear User 1"), "{stdout}");

    let bad = temp_path("notify-bad.csv");
    std::fs::write(&bad, "owner,address,name\nweb,good@example.org,Good\nweb,\"evil@example.org\r\nBcc: x@example.org\",Eve\n").unwrap();
    let out = bleedwatch().args(["notify", "--dry-run", "--db"]).arg(&db).arg("--recipients").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}, line 3: address", bad.display())), "{stderr}");
    // Sending needs a relay and a sender; the password never goes on the command line.
    let out = bleedwatch().args(["notify", "--db"]).arg(&db).arg("--recipients").arg(&recipients).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--smtp"), "{}", String::from_utf8_lossy(&out.stderr));
    for path in [db, recipients, bad] {
        let _ = std::fs::remove_file(path);
    }
}

/// SMTP AUTH against a real server: Postfix asks Dovecot (SASL) whether the login is good, offers
/// AUTH only after STARTTLS and relays only for authenticated clients. Good credentials from the
/// auth file or the environment deliver (Postfix logs the SASL login); a wrong password is one
/// refused login (a 5xx is not retried), an error before anything is recorded; without credentials
/// the relay refuses the recipient (recorded as failed, with a hint on stderr); an auth file others
/// can read is refused. The password appears nowhere in bleedwatch's output or inventory.
#[test]
fn notify_authenticates_over_starttls_with_sasl() {
    if !require("postfix") || !require("openssl") || !require("dovecot") {
        return;
    }
    const USER: &str = "alice@example.com";
    const PASSWORD: &str = "Hb-pw-7f3c9e1d-never-shown";
    let db = inventory("notify-sasl", 1);
    let [first, second] = ["user1", "user2"].map(|who| {
        let path = temp_path(&format!("notify-sasl-{who}.csv"));
        std::fs::write(&path, format!("service,address,name\nwww1.example.org,{who}@example.org,{who}\n")).unwrap();
        path
    });
    let pki_dir = temp_path("notify-sasl-pki");
    let _ = std::fs::remove_dir_all(&pki_dir);
    std::fs::create_dir_all(&pki_dir).unwrap();
    let (ca, _, _) = super::pg_tls::pki(&pki_dir, "bleedwatch SASL test CA");
    mta_run(Command::new("chmod").arg("-R").arg("a+rX").arg(&pki_dir));
    let auth = SaslAuth::start("notify-sasl-dovecot", USER, PASSWORD);
    let mailhost = Mailhost::start_with(
        "notify-sasl-mailhost",
        Some((&pki_dir.join("server.crt"), &pki_dir.join("server.key"))),
        Some(&auth.socket()),
        None,
    );
    let auth_file = |name: &str, password: &str, mode: &str| {
        let path = temp_path(name);
        std::fs::write(&path, format!("{USER}\n{password}\n")).unwrap();
        mta_run(Command::new("chmod").arg(mode).arg(&path));
        path
    };
    let good_file = auth_file("notify-sasl-good", PASSWORD, "600");
    let wrong_file = auth_file("notify-sasl-wrong", "not-the-password", "600");
    let open_file = auth_file("notify-sasl-open", PASSWORD, "644");
    let mut outputs = String::new();
    let mut run = |recipients: &Path, configure: &dyn Fn(&mut Command)| {
        let mut cmd = notify_cmd(&db, recipients, mailhost.port);
        cmd.args(["--smtp-starttls", "--attempts", "2", "--smtp-ca"]).arg(&ca);
        cmd.env_remove("BLEEDWATCH_SMTP_USER").env_remove("BLEEDWATCH_SMTP_PASSWORD");
        configure(&mut cmd);
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        outputs.push_str(&format!("{stdout}\n{stderr}\n"));
        (out.status.code(), stdout, stderr)
    };
    let status = || {
        let out = bleedwatch().args(["status", "--db"]).arg(&db).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.strip_prefix("notices: ")).map(str::to_owned).unwrap_or_else(|| "none".to_owned())
    };
    let login = format!("sasl_method=PLAIN, sasl_username={USER}");

    // AUTH is not offered before STARTTLS (smtpd_tls_auth_only), so a password never goes in plaintext.
    let mut smtp = std::net::TcpStream::connect(("127.0.0.1", mailhost.port)).unwrap();
    smtp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(smtp.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    std::io::Write::write_all(&mut smtp, b"EHLO test.example\r\n").unwrap();
    let mut ehlo = String::new();
    while !ehlo.lines().last().is_some_and(|l| l.starts_with("250 ")) {
        assert!(reader.read_line(&mut ehlo).unwrap() > 0, "{ehlo}");
    }
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
    std::io::Write::write_all(&mut smtp, b"QUIT\r\n").unwrap();
    drop((reader, smtp));

    // A wrong password: one refused login (535, not retried), exit 2, nothing recorded or delivered.
    let (code, _, stderr) = run(&first, &|cmd| {
        cmd.arg("--smtp-auth-file").arg(&wrong_file);
    });
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("logging in to the SMTP relay") && stderr.contains("535"), "{stderr}");
    assert_eq!(status(), "0 sent, 0 pending, 0 uncertain, 0 failed", "nothing recorded after a refused login");
    let log = mailhost.log_with("authentication failed", 1);
    assert_eq!(log.matches("SASL PLAIN authentication failed").count(), 1, "{log}");

    // An auth file others can read: refused before connecting.
    let (code, _, stderr) = run(&first, &|cmd| {
        cmd.arg("--smtp-auth-file").arg(&open_file);
    });
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("readable by others (mode 644): chmod 600 it"), "{stderr}");

    // No credentials: the relay refuses the recipient for good (554 5.7.1), recorded as failed.
    let (code, stdout, stderr) = run(&first, &|_| {});
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("failed") && l.contains("user1@") && l.contains("554 5.7.1")), "{stdout}");
    assert!(stdout.contains("Recipient address rejected: Access denied"), "{stdout}");
    assert!(stderr.contains("offers AUTH but no credentials were given"), "{stderr}");
    assert!(status().starts_with("0 sent, 0 pending, 0 uncertain, 1 failed"), "{}", status());
    let log = mailhost.log_with("Recipient address rejected", 1);
    assert!(log.contains("Recipient address rejected: Access denied") && !log.contains(&login), "{log}");

    // The good password from the file (the failed notice sent again): delivered after a SASL login.
    let (code, stdout, stderr) = run(&first, &|cmd| {
        cmd.arg("--retry-failed").arg("--smtp-auth-file").arg(&good_file);
    });
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\n{}", auth.log());
    assert!(stdout.lines().any(|l| l.starts_with("sent") && l.contains("user1@") && l.contains("250 ")), "{stdout}");
    let messages = mailhost.wait_for(1);
    assert_eq!(messages.len(), 1);
    assert_eq!(header(&messages[0], "Delivered-To"), Some("user1@example.org"), "{}", messages[0]);
    let log = mailhost.log_with(&login, 1);
    assert_eq!(log.matches(&login).count(), 1, "{log}");
    assert!(log.contains("TLS connection established from localhost[127.0.0.1]"), "{log}");

    // The same from the environment.
    let (code, stdout, stderr) = run(&second, &|cmd| {
        cmd.env("BLEEDWATCH_SMTP_USER", USER).env("BLEEDWATCH_SMTP_PASSWORD", PASSWORD);
    });
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("sent") && l.contains("user2@")), "{stdout}");
    let messages = mailhost.wait_for(2);
    assert_eq!(messages.len(), 2);
    let log = mailhost.log_with(&login, 2);
    assert_eq!(log.matches(&login).count(), 2, "{log}");
    assert!(status().starts_with("2 sent, 0 pending, 0 uncertain, 0 failed"), "{}", status());

    // The password is nowhere in what bleedwatch said or recorded (the database and its journals).
    assert!(!outputs.contains(PASSWORD), "{outputs}");
    let db_name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut checked = 0;
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap().map(Result::unwrap) {
        if entry.file_name().to_string_lossy().starts_with(&db_name) {
            let bytes = std::fs::read(entry.path()).unwrap();
            // The inventory itself holds the recorded notices: these are the bytes that matter.
            assert!(entry.path() != db || bytes.windows(17).any(|w| w == b"user2@example.org"), "{}", db.display());
            assert!(!bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "{} holds the password", entry.path().display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "no inventory file beside {}", db.display());
    drop(mailhost);
    drop(auth);
    for path in [&db, &first, &second, &good_file, &wrong_file, &open_file] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir_all(pki_dir);
}

/// The notices recorded in the inventory (read through the store, as `notify` writes them).
fn recorded_notices(db: &Path) -> Vec<bleedwatch_store::notices::NoticeRow> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = bleedwatch_store::Store::open(db.to_str().unwrap()).await.unwrap();
        let rows = store.notices(None).await.unwrap();
        store.close().await;
        rows
    })
}

/// `notify` killed with SIGKILL while a real Postfix holds its reply to the end of DATA (it has
/// the whole message; `sleep` before its 250): the notice stays `sending`. Postfix does not
/// notice the client is gone: after the sleep it commits the message and delivers it. The next
/// run reports it `uncertain`, sends nothing (no connection to the relay) and exits 1; `status`
/// counts it. `--resend-uncertain` sends it once more, with the Message-ID recorded first, so the
/// recipient's mail program can tell the two copies are one notice.
#[test]
fn notify_killed_mid_message_is_uncertain_not_resent() {
    if !require("postfix") {
        return;
    }
    const HOLD_SECS: u32 = 8;
    let db = inventory("notify-uncertain", 1);
    let recipients = temp_path("notify-uncertain.csv");
    std::fs::write(&recipients, "service,address,name\nwww1.example.org,user1@example.org,User 1\n").unwrap();
    let holding = Mailhost::start_with("notify-uncertain-holding", None, None, Some(HOLD_SECS));
    let status = || {
        let out = bleedwatch().args(["status", "--db"]).arg(&db).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.strip_prefix("notices: ")).map(str::to_owned).unwrap_or_else(|| text.clone())
    };

    // Kill the run once Postfix has the whole message and sleeps before answering.
    let mut child = Running(notify_cmd(&db, &recipients, holding.port).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let holding_since = Instant::now();
    let deadline = holding_since + Duration::from_secs(u64::from(HOLD_SECS) / 2);
    while !holding.maillog().contains(HOLDING_REPLY) {
        assert!(Instant::now() < deadline, "Postfix never held its reply; its log:\n{}", holding.maillog());
        assert!(matches!(child.0.try_wait(), Ok(None)), "notify ended before the end of DATA; Postfix's log:\n{}", holding.maillog());
        std::thread::sleep(Duration::from_millis(20));
    }
    let recorded = recorded_notices(&db);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let first = recorded[0].clone();
    assert_eq!(first.state, bleedwatch_store::notices::NoticeState::Sending, "recorded before the relay's reply: {first:?}");
    assert!(matches!(child.0.try_wait(), Ok(None)), "notify must still wait for the reply");
    mta_run(Command::new("kill").arg("-9").arg(child.0.id().to_string()));
    let _ = child.0.wait();
    let log = holding.maillog();
    assert!(holding_since.elapsed() < Duration::from_secs(u64::from(HOLD_SECS)), "killed too late");
    // smtpd had the whole message (END-OF-MESSAGE) but had not handed it to the queue manager.
    let queue_id = log.lines().find(|l| l.contains(HOLDING_REPLY)).and_then(|l| l.split(": ").nth(1)).unwrap_or_default().to_owned();
    assert!(!queue_id.is_empty() && !log.contains(&format!("{queue_id}: from=<")), "{log}");

    // What the real Postfix does with it: after the sleep it commits and delivers, client gone or not.
    let delivered = holding.wait_for(1);
    assert_eq!(delivered.len(), 1);
    assert_eq!(header(&delivered[0], "Message-ID"), Some(first.message_id.as_str()), "{}", delivered[0]);
    let log = holding.maillog();
    assert!(log.contains(&format!("{queue_id}: message-id={}", first.message_id)), "{log}");
    assert_eq!(recorded_notices(&db), vec![first.clone()], "the killed run recorded nothing more");
    assert_eq!(status(), "0 sent, 0 pending, 1 uncertain, 0 failed");

    // Without --resend-uncertain: reported, not sent, exit 1; Postfix sees no connection.
    let connections = holding.maillog().matches("connect from localhost").count();
    let out = notify_cmd(&db, &recipients, holding.port).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "an uncertain notice left: exit 1\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.lines().any(|l| l.starts_with("uncertain") && l.contains("user1@example.org") && l.contains(&first.message_id) && l.contains("--resend-uncertain")),
        "{stdout}"
    );
    assert!(stdout.contains("this run sent 0; recorded: 0 sent, 0 pending, 1 uncertain, 0 failed"), "{stdout}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(holding.maillog().matches("connect from localhost").count(), connections, "{}", holding.maillog());
    assert_eq!(holding.messages().len(), 1);
    assert_eq!(status(), "0 sent, 0 pending, 1 uncertain, 0 failed");
    assert_eq!(recorded_notices(&db), vec![first.clone()]);

    // With it, to a relay that answers at once: sent once more, under the Message-ID recorded first.
    let prompt = Mailhost::start("notify-uncertain-prompt");
    let resend = |port: u16| notify_cmd(&db, &recipients, port).arg("--resend-uncertain").output().unwrap();
    let out = resend(prompt.port);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("sent") && l.contains("user1@example.org") && l.contains("250 ")), "{stdout}");
    let resent = prompt.wait_for(1);
    assert_eq!(resent.len(), 1);
    assert_eq!(header(&resent[0], "Message-ID"), Some(first.message_id.as_str()), "{}", resent[0]);
    assert_eq!(header(&resent[0], "Delivered-To"), Some("user1@example.org"));
    assert_eq!(status(), "1 sent, 0 pending, 0 uncertain, 0 failed");
    let now = recorded_notices(&db);
    assert!(now.len() == 1 && now[0].message_id == first.message_id && now[0].attempts == 2, "{now:?}");
    // Sent is final, --resend-uncertain or not.
    let out = resend(prompt.port);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("this run sent 0"), "{}", String::from_utf8_lossy(&out.stdout));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(prompt.messages().len(), 1);
    assert_eq!(holding.messages().len(), 1);
    drop((holding, prompt));
    for path in [&db, &recipients] {
        let _ = std::fs::remove_file(path);
    }
}
