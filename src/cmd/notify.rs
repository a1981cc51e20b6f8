//! `bleedwatch notify`: tells users to change their passwords, once an endpoint is notify-ready
//! (patched, re-keyed, the exposed certificates revoked), and only then. Recipients come from a
//! CSV mapped to endpoints through the inventory's assets; the message from a template (built-in
//! by default). Every notice is recorded before its SMTP transaction (`sending`, its Message-ID
//! fixed) and after it (`sent`, `pending`, `failed`, with the relay's reply), so a run killed at
//! any moment and started again sends the rest and nobody twice; a notice a killed run left in
//! `sending` is `uncertain` and sent again only with `--resend-uncertain`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_store::assess::State;
use bleedwatch_store::notices::{
    held_back_reasons, parse_recipients_csv, Claim, ClaimPolicy, NoticeInput, NoticeRow, NoticeState, Recipient,
};
use bleedwatch_store::views::rfc3339_ms;
use bleedwatch_store::{EndpointAssessment, Store};
use clap::Args;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;

use crate::args::{parse_duration, DbArgs};
use crate::clock::now_ms;
use crate::mail::{credentials, is_final, parse_relay, Delivery, Session, SmtpSettings};
use crate::notice::Templates;
use crate::output::write_table;

#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Who gets a notice: CSV with columns service, endpoint, owner (one per row), address, name, locale.
    #[arg(long, value_name = "FILE")]
    pub recipients: PathBuf,
    /// The message: `Subject: …`, a blank line, the body, with {{placeholders}}; `notice.de.txt`
    /// beside it is used for locale `de` [default: the built-in English notice].
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// An HTML alternative body (same placeholders, values escaped).
    #[arg(long, value_name = "FILE", requires = "template")]
    pub html_template: Option<PathBuf>,
    /// What the notices are about; a recipient gets one notice per incident and endpoint.
    #[arg(long, default_value = "CVE-2014-0160")]
    pub incident: String,
    /// Show who would get what, and why the others are held back; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The SMTP relay, HOST:PORT. STARTTLS is required unless it is a loopback address.
    /// Credentials: BLEEDWATCH_SMTP_USER and BLEEDWATCH_SMTP_PASSWORD, or --smtp-auth-file.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "dry_run")]
    pub smtp: Option<String>,
    /// The sender, `security@example.org` or `"Security team <security@example.org>"`.
    #[arg(long, value_name = "MAILBOX", required_unless_present = "dry_run")]
    pub from: Option<String>,
    /// A file with the SMTP user on its first line and the password on its second (mode 0600; it
    /// wins over BLEEDWATCH_SMTP_USER and BLEEDWATCH_SMTP_PASSWORD). Used for AUTH PLAIN or LOGIN,
    /// only over STARTTLS (or to a loopback relay).
    #[arg(long, value_name = "FILE")]
    pub smtp_auth_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the relay's STARTTLS, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub smtp_ca: Option<PathBuf>,
    /// Require STARTTLS even when the relay is a loopback address.
    #[arg(long)]
    pub smtp_starttls: bool,
    /// At most this many messages: `N/s`, `N/m` or `N/h`.
    #[arg(long, value_name = "RATE", default_value = "1/s", value_parser = parse_rate)]
    pub rate: Duration,
    /// Attempts per recipient when the relay says "try later" (4xx) or cannot be reached, with
    /// doubling waits; a 5xx is final.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub attempts: u32,
    /// Limit for each SMTP step.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub smtp_timeout: Duration,
    /// Send again the notices a killed run left uncertain (the relay may have accepted them: some
    /// users may get two).
    #[arg(long)]
    pub resend_uncertain: bool,
    /// Send again the notices the relay refused for good (after fixing the address).
    #[arg(long)]
    pub retry_failed: bool,
}

/// `N/s`, `N/m`, `N/min` or `N/h` → the interval between messages.
fn parse_rate(text: &str) -> std::result::Result<Duration, String> {
    let (count, unit) = text.split_once('/').ok_or_else(|| format!("{text:?}: expected N/s, N/m or N/h"))?;
    let count: f64 = count.trim().parse().map_err(|_| format!("{text:?}: {count:?} is not a number"))?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (s, m or h)")),
    };
    if !(count > 0.0 && count.is_finite()) {
        return Err(format!("{text:?}: the count must be above 0"));
    }
    Ok(Duration::from_secs_f64(period / count))
}

/// What the run does with one (endpoint, recipient).
#[derive(Debug)]
enum Action {
    Send,
    HeldBack(Vec<&'static str>),
    Recorded(NoticeRow),
}

struct Planned<'a> {
    item: &'a EndpointAssessment,
    recipient: &'a Recipient,
    action: Action,
}

/// The run's plan, endpoint by endpoint (inventory order), one entry per address.
fn plan<'a>(
    assessed: &'a [EndpointAssessment],
    recipients: &'a [Recipient],
    recorded: &HashMap<(i64, String), NoticeRow>,
    policy: ClaimPolicy,
) -> (Vec<Planned<'a>>, Vec<&'a EndpointAssessment>) {
    let mut planned = Vec::new();
    let mut unaddressed = Vec::new();
    for item in assessed {
        let mut seen = BTreeSet::new();
        let matching: Vec<&Recipient> = recipients.iter().filter(|r| r.matches(item) && seen.insert(r.address.clone())).collect();
        if matching.is_empty() {
            if item.assessment.state == State::NotifyReady {
                unaddressed.push(item);
            }
            continue;
        }
        let reasons = held_back_reasons(&item.assessment);
        for recipient in matching {
            let action = match recorded.get(&(item.endpoint.id, recipient.address.clone())) {
                Some(row) => match row.state {
                    NoticeState::Pending => Action::Send,
                    NoticeState::Sending if policy.resend_uncertain => Action::Send,
                    NoticeState::Failed if policy.retry_failed => Action::Send,
                    _ => Action::Recorded(row.clone()),
                },
                None if reasons.is_empty() => Action::Send,
                None => Action::HeldBack(reasons.clone()),
            };
            // A recorded notice is never held back again, but a new one waits for the funnel.
            let action = match action {
                Action::Send if !reasons.is_empty() => Action::HeldBack(reasons.clone()),
                other => other,
            };
            planned.push(Planned { item, recipient, action });
        }
    }
    (planned, unaddressed)
}

/// `2026-12-07T01:05:38.123Z` → `2026-12-07 01:05 UTC`.
fn human_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "an unknown date".to_owned() };
    let text = rfc3339_ms(ms);
    match (text.get(..10), text.get(11..16)) {
        (Some(date), Some(time)) if text.len() > 16 => format!("{date} {time} UTC"),
        _ => text,
    }
}

/// The service a user knows: the name the endpoint is reached by, else its asset, else its address.
fn service_name(item: &EndpointAssessment) -> String {
    let endpoint = &item.endpoint;
    endpoint
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| Some(endpoint.sni.clone()).filter(|s| !s.is_empty()))
        .or_else(|| endpoint.asset.as_ref().map(|a| a.host.clone()))
        .unwrap_or_else(|| endpoint.address.clone())
}

fn values(item: &EndpointAssessment, recipient: &Recipient, incident: &str, sender: &str) -> BTreeMap<&'static str, String> {
    let exposure = item.assessment.exposure;
    let name = if recipient.name.is_empty() { recipient.address.clone() } else { recipient.name.clone() };
    BTreeMap::from([
        ("name", name),
        ("address", recipient.address.clone()),
        ("service", service_name(item)),
        ("endpoint", item.endpoint.label()),
        ("owner", item.endpoint.owner().to_owned()),
        ("incident", incident.to_owned()),
        ("exposed_from", human_time(exposure.first_vulnerable_ms)),
        ("exposed_until", human_time(exposure.first_fixed_ms)),
        ("fixed_at", human_time(exposure.first_fixed_ms)),
        ("sender", sender.to_owned()),
    ])
}

/// `Security Team <security@example.org>`, or the bare address.
fn sender_text(from: &Mailbox) -> String {
    match from.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} <{}>", from.email),
        None => from.email.to_string(),
    }
}

fn message_id(incident: &str, endpoint_id: i64, recipient: &str, domain: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed = format!("{incident}\n{endpoint_id}\n{recipient}\n{nanos}\n{}", std::process::id());
    // Hashing bytes in memory cannot fail; the seed itself is the fallback.
    let hash = bleedwatch_store::sha256_hex(seed.as_bytes()).unwrap_or_else(|_| format!("{nanos:x}{endpoint_id:x}"));
    format!("<bleedwatch.{}@{domain}>", hash.get(..32).unwrap_or(&hash))
}

/// The message for one notice, and its envelope.
fn build_message(
    templates: &Templates,
    from: &Mailbox,
    planned: &Planned<'_>,
    incident: &str,
    message_id: &str,
) -> Result<Message> {
    let sender = sender_text(from);
    let rendered = templates.for_locale(&planned.recipient.locale).render(&values(planned.item, planned.recipient, incident, &sender));
    let to_name = Some(planned.recipient.name.clone()).filter(|n| !n.is_empty());
    let to = Mailbox::new(to_name, planned.recipient.address.parse().with_context(|| format!("address {}", planned.recipient.address))?);
    let builder = Message::builder().from(from.clone()).to(to).subject(rendered.subject).message_id(Some(message_id.to_owned())).date_now();
    let message = match rendered.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.text, html))?,
        None => builder.header(ContentType::TEXT_PLAIN).body(rendered.text)?,
    };
    Ok(message)
}

pub async fn run(args: NotifyArgs) -> Result<u8> {
    let text = std::fs::read(&args.recipients).with_context(|| format!("reading {}", args.recipients.display()))?;
    let recipients = parse_recipients_csv(&text[..], &args.recipients.display().to_string())?;
    let templates = Templates::load(args.template.as_deref(), args.html_template.as_deref(), recipients.iter().map(|r| r.locale.as_str()))?;
    let from: Mailbox = match &args.from {
        Some(from) => from.parse().with_context(|| format!("--from {from:?} is not a mailbox"))?,
        None => "security@localhost".parse().context("default sender")?,
    };
    let store = args.db.open_existing().await?;
    let result = notify(&args, &store, &recipients, &templates, &from).await;
    store.close().await;
    result
}

async fn notify(args: &NotifyArgs, store: &Store, recipients: &[Recipient], templates: &Templates, from: &Mailbox) -> Result<u8> {
    let assessed = store.assess_all(now_ms()).await?;
    let recorded: HashMap<(i64, String), NoticeRow> =
        store.notices(Some(&args.incident)).await?.into_iter().map(|row| ((row.endpoint_id, row.recipient.clone()), row)).collect();
    let policy = ClaimPolicy { resend_uncertain: args.resend_uncertain, retry_failed: args.retry_failed };
    for recipient in recipients {
        if !assessed.iter().any(|item| recipient.matches(item)) {
            eprintln!("bleedwatch: {}, line {}: matches no endpoint of the inventory", args.recipients.display(), recipient.line);
        }
    }
    let (planned, unaddressed) = plan(&assessed, recipients, &recorded, policy);
    let mut out = io::stdout().lock();
    if args.dry_run {
        print_plan(&mut out, &planned, &unaddressed, templates, from, &args.incident)?;
        return Ok(0);
    }
    drop(out);
    let (host, port) = parse_relay(args.smtp.as_deref().unwrap_or_default())?;
    let ca_pem = args.smtp_ca.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()?;
    let settings = SmtpSettings {
        host,
        port,
        credentials: credentials(args.smtp_auth_file.as_deref())?,
        ca_pem,
        timeout: args.smtp_timeout,
        hello: from.email.domain().to_owned(),
        require_starttls: args.smtp_starttls,
    };
    let to_send: Vec<&Planned<'_>> = planned.iter().filter(|p| matches!(p.action, Action::Send)).collect();
    let held_back = planned.iter().filter(|p| matches!(p.action, Action::HeldBack(_))).count();
    let mut session: Option<Session> = None;
    let mut next_slot = tokio::time::Instant::now();
    let mut this_run = BTreeMap::<&'static str, u64>::new();
    for planned in to_send {
        tokio::time::sleep_until(next_slot).await;
        next_slot = tokio::time::Instant::now() + args.rate;
        let outcome = send_one(args, store, templates, from, &settings, &mut session, planned, policy).await?;
        *this_run.entry(outcome).or_default() += 1;
    }
    if let Some(session) = session {
        session.close().await;
    }
    // Left as a killed run left them (the relay may have them): named, and the run is unfinished.
    let mut left_uncertain = 0;
    for planned in &planned {
        if let Action::Recorded(row) = &planned.action {
            if row.state == NoticeState::Sending {
                let (address, label) = (&planned.recipient.address, planned.item.endpoint.label());
                println!("{:<10} {address}  {label}  {}  a killed run may have sent it (--resend-uncertain)", "uncertain", row.message_id);
                left_uncertain += 1;
            }
        }
    }
    let all = store.notices(Some(&args.incident)).await?;
    let count = |state: NoticeState| all.iter().filter(|r| r.state == state).count();
    println!(
        "\n{}: this run sent {}; recorded: {} sent, {} pending, {} uncertain, {} failed; {held_back} held back, {} notify-ready endpoints without a recipient",
        args.incident,
        this_run.get("sent").copied().unwrap_or(0),
        count(NoticeState::Sent),
        count(NoticeState::Pending),
        count(NoticeState::Sending),
        count(NoticeState::Failed),
        unaddressed.len()
    );
    let unfinished = left_uncertain > 0 || ["pending", "uncertain", "failed"].iter().any(|s| this_run.contains_key(s));
    Ok(u8::from(unfinished))
}

/// Sends one notice: claims it (recorded `sending`), runs the SMTP transaction, records the end.
/// Returns the outcome's word. A relay that cannot be reached at all is an error (nothing claimed).
#[allow(clippy::too_many_arguments)]
async fn send_one(
    args: &NotifyArgs,
    store: &Store,
    templates: &Templates,
    from: &Mailbox,
    settings: &SmtpSettings,
    session: &mut Option<Session>,
    planned: &Planned<'_>,
    policy: ClaimPolicy,
) -> Result<&'static str> {
    let label = planned.item.endpoint.label();
    let address = &planned.recipient.address;
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=args.attempts.max(1) {
        if session.is_none() {
            *session = Some(connect(settings, args.attempts).await?);
        }
        let input = NoticeInput {
            incident: args.incident.clone(),
            endpoint_id: planned.item.endpoint.id,
            recipient: address.clone(),
            recipient_name: planned.recipient.name.clone(),
            locale: planned.recipient.locale.clone(),
            message_id: message_id(&args.incident, planned.item.endpoint.id, address, from.email.domain()),
        };
        let row = match store.claim_notice(&input, policy, now_ms()).await? {
            Claim::Send(row) => row,
            Claim::Skip(row) => {
                println!("{:<10} {address}  {label}  recorded meanwhile as {}", "skipped", row.state.reported());
                return Ok("skipped");
            }
        };
        let message = build_message(templates, from, planned, &args.incident, &row.message_id)?;
        let Some(open) = session.as_mut() else { bail!("no SMTP session") };
        let delivery = open.send(message.envelope(), &message.formatted()).await;
        let last = attempt == args.attempts.max(1);
        let (state, word, reply) = match &delivery {
            Delivery::Accepted(reply) => (NoticeState::Sent, "sent", reply.clone()),
            Delivery::Refused { code, reply } if *code >= 500 => (NoticeState::Failed, "failed", reply.clone()),
            Delivery::Refused { reply, .. } => (NoticeState::Pending, "pending", reply.clone()),
            Delivery::NotSent(error) => (NoticeState::Pending, "pending", format!("not sent: {error}")),
            Delivery::Uncertain(error) => (NoticeState::Sending, "uncertain", format!("uncertain: {error}")),
        };
        store.finish_notice(row.id, state, &reply, now_ms()).await?;
        if !matches!(delivery, Delivery::Accepted(_)) {
            if let Some(broken) = session.take() {
                broken.close().await;
            }
        }
        if state == NoticeState::Pending && !last {
            tracing::info!(recipient = %address, endpoint = %label, %reply, "the relay said try later; trying again in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
            continue;
        }
        println!("{word:<10} {address}  {label}  {}  {reply}", row.message_id);
        return Ok(word);
    }
    Ok("pending")
}

/// Opens an SMTP session, trying `attempts` times with doubling waits; a 5xx (a refused login) is final.
async fn connect(settings: &SmtpSettings, attempts: u32) -> Result<Session> {
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match Session::open(settings).await {
            Ok(session) => return Ok(session),
            Err(error) if attempt < attempts.max(1) && !is_final(&error) => {
                tracing::info!("{error:#}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

fn print_plan(
    out: &mut dyn Write,
    planned: &[Planned<'_>],
    unaddressed: &[&EndpointAssessment],
    templates: &Templates,
    from: &Mailbox,
    incident: &str,
) -> Result<()> {
    let sender = sender_text(from);
    let mut rows = Vec::new();
    for p in planned {
        let (action, why) = match &p.action {
            Action::Send => {
                let template = templates.for_locale(&p.recipient.locale);
                let subject = template.render(&values(p.item, p.recipient, incident, &sender)).subject;
                ("send", format!("{subject:?} ({}{})", template.origin, Some(&p.recipient.locale).filter(|l| !l.is_empty()).map(|l| format!(", {l}")).unwrap_or_default()))
            }
            Action::HeldBack(reasons) => ("held back", format!("{}: {}", p.item.assessment.state, reasons.join(", "))),
            Action::Recorded(row) => (
                row.state.reported(),
                match row.state {
                    NoticeState::Sending => "a killed run may have sent it (--resend-uncertain)".to_owned(),
                    NoticeState::Failed => format!("{} (--retry-failed)", row.smtp_reply.clone().unwrap_or_default()),
                    _ => format!("{} {}", row.sent_at().unwrap_or_default(), row.message_id),
                },
            ),
        };
        rows.push(vec![action.to_owned(), p.recipient.address.clone(), p.item.endpoint.label(), why]);
    }
    for item in unaddressed {
        rows.push(vec!["no recipient".to_owned(), String::new(), item.endpoint.label(), "notify-ready, no row of the recipients file matches".to_owned()]);
    }
    write_table(out, &["ACTION", "RECIPIENT", "ENDPOINT", "WHY"], &rows)?;
    let sends = planned.iter().filter(|p| matches!(p.action, Action::Send)).count();
    let held = planned.iter().filter(|p| matches!(p.action, Action::HeldBack(_))).count();
    writeln!(out, "\n{incident}, dry run: {sends} notices would be sent, {held} held back until the endpoint is notify-ready; nothing sent")?;
    if let Some(first) = planned.iter().find(|p| matches!(p.action, Action::Send)) {
        let message = build_message(templates, from, first, incident, "<dry-run@bleedwatch>")?;
        let rendered = templates.for_locale(&first.recipient.locale).render(&values(first.item, first.recipient, incident, &sender));
        let to = message.headers().get_raw("To").unwrap_or_default().to_owned();
        writeln!(out, "\nThe first notice, as {to} would read it:\n\nSubject: {}\n\n{}", rendered.subject, rendered.text)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_become_intervals() {
        assert_eq!(parse_rate("2/s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_rate("30/m").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_rate("3600/h").unwrap(), Duration::from_secs(1));
        assert!(parse_rate("0/s").is_err() && parse_rate("5").is_err() && parse_rate("5/d").is_err());
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(human_time(Some(1_796_000_000_000)), "2026-11-30 00:53 UTC");
        assert_eq!(human_time(None), "an unknown date");
    }
}
