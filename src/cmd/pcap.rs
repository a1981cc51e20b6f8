//! `bleedwatch pcap FILE...`: find Heartbleed attacks in packet captures. The engine is the
//! `bleedwatch-pcap` crate; this file only chooses outputs: a human summary, JSON lines, CSV, a
//! progress bar and, with `--db`, the inventory (findings attached to the endpoints they hit).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_pcap::{analyze_reader_with_progress, Config, Finding, Joined, Summary};
use bleedwatch_store::{sha256_hex, CaptureImport, RunId, Sha256Reader, Store};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{parse_duration, DbArgs, OutputArgs};
use crate::output::{is_stdout, neutralize_csv_cell, open_output};

#[derive(Args, Debug)]
pub struct PcapArgs {
    /// Capture files (pcap or pcapng); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Every finding as a JSON line and as a CSV row (to standard output instead of the summary).
    #[command(flatten)]
    pub output: OutputArgs,
    /// No summary and no progress bar (exit code and files only).
    #[arg(long, short)]
    pub quiet: bool,
    /// Connections tracked at once; the least recently active are closed early beyond it.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub max_flows: usize,
    /// Memory for buffered stream data (out-of-order segments, scanning), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_buffer_mib: usize,
    /// Close connections idle this long, in capture time (300, 300s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// The files are consecutive pieces of one capture (rotated by `tcpdump -C` or `-G`), given in
    /// order: connections cut by a file boundary go on in the next file. Findings name the file
    /// their connection began in.
    #[arg(long)]
    pub joined: bool,
    /// Attach the findings to the inventory at URL (a file path, sqlite://PATH or
    /// postgres://USER@HOST/DB; the default inventory is $XDG_DATA_HOME/bleedwatch/inventory.db):
    /// each attempt (probe or worse) is linked to the endpoint at its victim's address and port,
    /// as evidence of attack for `endpoints` (attacked, attacked-while-vulnerable) and
    /// `attackers`. Importing the same capture again adds nothing. Without --db nothing is
    /// recorded.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

/// Findings go to the inventory in transactions of this many.
const RECORD_BATCH: usize = 1000;

/// The inventory findings are attached to (`--db`), and what was recorded.
struct InventoryRecorder {
    runtime: tokio::runtime::Handle,
    store: Store,
    run: RunId,
    recorded: u64,
    already_recorded: u64,
    linked: u64,
}

/// One capture's findings on their way to the inventory.
struct CaptureRecording {
    file: String,
    /// Known once the capture's SHA-256 is: at once for files (hashed first), at the end for
    /// standard input (hashed while read).
    import: Option<CaptureImport>,
    /// Findings (JSON lines) waiting for the hash or for a full batch.
    waiting: Vec<serde_json::Value>,
}

impl InventoryRecorder {
    /// Called from the blocking thread `pcap` runs on: the store's async calls run on the runtime.
    fn open(url: &str) -> Result<InventoryRecorder> {
        let runtime = tokio::runtime::Handle::try_current().context("the inventory needs the async runtime")?;
        let db = DbArgs::at(url);
        let store = runtime.block_on(db.open())?;
        let arguments = crate::recording::arguments_without_db(std::env::args().skip(2));
        let run = runtime.block_on(store.start_run("pcap", &arguments))?;
        Ok(InventoryRecorder { runtime, store, run, recorded: 0, already_recorded: 0, linked: 0 })
    }

    fn start_capture(&self, file: &str, sha256: Option<&str>) -> CaptureRecording {
        CaptureRecording {
            file: file.to_owned(),
            import: sha256.map(|sha| CaptureImport::new(file, sha, Some(self.run))),
            waiting: Vec::new(),
        }
    }

    fn add(&mut self, capture: &mut CaptureRecording, finding: &Finding) -> Result<()> {
        // Context (a benign heartbeat Zeek notices) is not evidence of attack.
        if !finding.severity.is_attempt() {
            return Ok(());
        }
        capture.waiting.push(serde_json::to_value(finding)?);
        if capture.import.is_some() && capture.waiting.len() >= RECORD_BATCH {
            self.flush(capture)?;
        }
        Ok(())
    }

    fn flush(&mut self, capture: &mut CaptureRecording) -> Result<()> {
        let Some(import) = capture.import.as_mut() else { return Ok(()) };
        let mut attacks = Vec::with_capacity(capture.waiting.len());
        for finding in capture.waiting.drain(..) {
            attacks.extend(import.attack(&finding)?);
        }
        let outcomes = self.runtime.block_on(self.store.record_attacks(&attacks)).context("recording findings in the inventory")?;
        for outcome in outcomes {
            if outcome.inserted() {
                self.recorded += 1;
            } else {
                self.already_recorded += 1;
            }
            self.linked += u64::from(outcome.endpoint_id().is_some());
        }
        Ok(())
    }

    /// Records what is left of a capture, now that its hash is known.
    /// The capture's hash, known now that it has been read (standard input).
    fn hash_known(&self, capture: &mut CaptureRecording, sha256: &str) {
        if capture.import.is_none() {
            capture.import = Some(CaptureImport::new(&capture.file, sha256, Some(self.run)));
        }
    }

    fn finish(&self, ok: bool) -> Result<()> {
        self.runtime.block_on(self.store.finish_run(self.run, if ok { "finished" } else { "failed" }))?;
        Ok(())
    }

    fn report(&self) -> String {
        format!(
            "inventory: {} findings recorded, {} already there, {} on inventory endpoints",
            self.recorded, self.already_recorded, self.linked
        )
    }
}

/// CSV columns, in the order of [`csv_row`].
const CSV_HEADER: &[&str] = &[
    "file",
    "time",
    "connection",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "attacker",
    "victim",
    "direction",
    "kind",
    "severity",
    "notice",
    "notice_msg",
    "encrypted",
    "tls_version",
    "cipher",
    "record_length",
    "payload_length",
    "payload_present",
    "request_record_length",
    "response_records",
    "response_bytes",
    "leaked_bytes",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn csv_row(f: &Finding) -> Vec<String> {
    vec![
        f.file.to_string(),
        f.time.to_string(),
        f.connection.to_string(),
        f.transport.to_string(),
        f.src_ip.to_string(),
        f.src_port.to_string(),
        f.dst_ip.to_string(),
        f.dst_port.to_string(),
        f.attacker.to_string(),
        f.victim.to_string(),
        f.direction.to_string(),
        f.kind.to_string(),
        f.severity.as_str().to_string(),
        opt(&f.notice),
        opt(&f.notice_msg),
        f.encrypted.to_string(),
        opt(&f.tls_version),
        opt(&f.cipher),
        opt(&f.record_length),
        opt(&f.payload_length),
        opt(&f.payload_present),
        opt(&f.request_record_length),
        opt(&f.response_records),
        opt(&f.response_bytes),
        opt(&f.leaked_bytes),
    ]
    .into_iter()
    .map(|cell| neutralize_csv_cell(&cell))
    .collect()
}

fn progress_bar(total: Option<u64>, name: &str) -> ProgressBar {
    let bar = match total {
        Some(len) => {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}") {
                bar.set_style(style);
            }
            bar
        }
    };
    bar.set_message(name.to_string());
    bar
}

/// Runs `bleedwatch pcap`. Exit code: 0 no attack found, 1 attack found, 2 a file could not be
/// analysed (the others still are, and their findings written).
pub fn run(args: &PcapArgs) -> Result<i32> {
    let json_to_stdout = args.output.json.as_deref().is_some_and(is_stdout);
    let csv_to_stdout = args.output.csv.as_deref().is_some_and(is_stdout);
    if json_to_stdout && csv_to_stdout {
        bail!("--json - and --csv - cannot both write to standard output");
    }
    if args.files.iter().filter(|f| is_stdout(f)).count() > 1 {
        bail!("standard input (-) can be read only once");
    }
    let cfg = Config {
        max_flows: args.max_flows.max(1),
        max_buffered_bytes: args.max_buffer_mib.max(1) << 20,
        idle_timeout_secs: args.idle_timeout.as_secs().max(1),
        ..Config::default()
    };
    let mut json = args.output.json.as_deref().map(open_output).transpose()?;
    let mut csv = match args.output.csv.as_deref() {
        Some(path) => {
            let mut w = csv::Writer::from_writer(open_output(path)?);
            w.write_record(CSV_HEADER).context("cannot write CSV header")?;
            Some(w)
        }
        None => None,
    };
    let show_summary = !args.quiet && !json_to_stdout && !csv_to_stdout;

    let mut recorder = args.db.as_deref().map(InventoryRecorder::open).transpose()?;
    let outcome = analyze_files(args, &cfg, json.as_mut(), csv.as_mut(), recorder.as_mut());
    if let Some(recorder) = &recorder {
        recorder.finish(outcome.is_ok())?;
    }
    let (summary, failed) = outcome?;
    if let Some(out) = json.as_mut() {
        out.flush().context("cannot write JSON output")?;
    }
    if let Some(w) = csv.as_mut() {
        w.flush().context("cannot write CSV output")?;
    }
    if show_summary {
        let mut stdout = io::stdout().lock();
        match stdout.write_all(summary.render().as_bytes()).and_then(|()| stdout.flush()) {
            // The reader went away (`| head`): what it read is all it wanted; the exit code still counts.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other.context("cannot write the summary")?,
        }
    }
    if let Some(recorder) = recorder.as_ref().filter(|_| !args.quiet) {
        eprintln!("bleedwatch: {}", recorder.report());
    }
    Ok(if failed {
        2
    } else if summary.attack_found() {
        1
    } else {
        0
    })
}

/// A capture being read, hashed when its hash is needed and not yet known.
enum Input {
    Plain(Box<dyn io::Read>),
    Hashed(Sha256Reader<Box<dyn io::Read>>),
}

impl Input {
    fn hex_digest(&self) -> Option<String> {
        match self {
            Input::Plain(_) => None,
            Input::Hashed(reader) => Some(reader.hex_digest()),
        }
    }
}

impl io::Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(reader) => reader.read(buf),
            Input::Hashed(reader) => reader.read(buf),
        }
    }
}

/// Where findings go: the summary, JSON, CSV, and the inventory (by the capture file each names).
struct Outputs<'a> {
    summary: Summary,
    json: Option<&'a mut Box<dyn Write + Send>>,
    csv: Option<&'a mut csv::Writer<Box<dyn Write + Send>>>,
    recorder: Option<&'a mut InventoryRecorder>,
    /// Captures whose findings may still come: the one being read or, for joined files, all of them.
    recordings: Vec<CaptureRecording>,
    /// The first output error; later findings are still counted in the summary.
    error: Option<anyhow::Error>,
}

impl Outputs<'_> {
    fn take(&mut self, f: Finding) {
        self.summary.add_finding(&f);
        if self.error.is_some() {
            return;
        }
        if let Some(out) = self.json.as_mut() {
            let written = serde_json::to_writer(&mut **out, &f).map_err(anyhow::Error::from).and_then(|()| out.write_all(b"\n").map_err(anyhow::Error::from));
            if let Err(e) = written {
                self.error = Some(e.context("cannot write JSON output"));
            }
        }
        if let Some(w) = self.csv.as_mut() {
            if let Err(e) = w.write_record(csv_row(&f)) {
                self.error = Some(anyhow::Error::from(e).context("cannot write CSV output"));
            }
        }
        if let Some(recorder) = self.recorder.as_deref_mut() {
            if let Some(capture) = self.recordings.iter_mut().rev().find(|c| *f.file == *c.file) {
                if let Err(e) = recorder.add(capture, &f) {
                    self.error = Some(e);
                }
            }
        }
    }

    /// Sends the findings of `file`'s capture still waiting to the inventory, once its hash is known.
    fn finish_recording(&mut self, file: &str) -> Result<()> {
        let (Some(recorder), Some(at)) = (self.recorder.as_deref_mut(), self.recordings.iter().position(|c| c.file == file)) else { return Ok(()) };
        let mut capture = self.recordings.remove(at);
        recorder.flush(&mut capture)
    }
}

/// Analyses each file on its own, or (`--joined`) all as one capture.
enum Analysis<'s> {
    EachFile(&'s mut dyn FnMut(Finding)),
    Joined(Box<Joined<'s>>),
}

/// Analyses every file into the outputs; returns the summary and whether a file failed.
fn analyze_files(
    args: &PcapArgs,
    cfg: &Config,
    json: Option<&mut Box<dyn Write + Send>>,
    csv: Option<&mut csv::Writer<Box<dyn Write + Send>>>,
    recorder: Option<&mut InventoryRecorder>,
) -> Result<(Summary, bool)> {
    let show_progress = !args.quiet && io::stderr().is_terminal();
    let outputs = RefCell::new(Outputs { summary: Summary::new(), json, csv, recorder, recordings: Vec::new(), error: None });
    let mut sink = |f: Finding| outputs.borrow_mut().take(f);
    let mut analysis = if args.joined { Analysis::Joined(Box::new(Joined::new(cfg, &mut sink))) } else { Analysis::EachFile(&mut sink) };
    // Statistics of the files read, added to the summary when no more can change (the last joined
    // file's closing comes after it).
    let mut read: Vec<bleedwatch_pcap::FileStats> = Vec::new();
    let mut failed = false;
    for path in &args.files {
        let name = path.display().to_string();
        let input: Box<dyn io::Read> = if is_stdout(path) {
            Box::new(io::stdin().lock())
        } else {
            match File::open(path) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    eprintln!("bleedwatch: {name}: {e}");
                    failed = true;
                    continue;
                }
            }
        };
        // The inventory keys findings by the capture's SHA-256: a file is hashed first so its
        // findings can be recorded as they come; standard input is hashed as it is analysed.
        let recording = outputs.borrow().recorder.is_some();
        let known_sha256 = if recording && !is_stdout(path) { Some(File::open(path).and_then(sha256_hex).with_context(|| format!("cannot read {name}"))?) } else { None };
        {
            let mut out = outputs.borrow_mut();
            if let Some(capture) = out.recorder.as_ref().map(|r| r.start_capture(&name, known_sha256.as_deref())) {
                out.recordings.push(capture);
            }
        }
        let mut input = if recording && known_sha256.is_none() { Input::Hashed(Sha256Reader::new(input)) } else { Input::Plain(input) };
        let size = if is_stdout(path) { None } else { std::fs::metadata(path).ok().map(|m| m.len()) };
        let bar = show_progress.then(|| progress_bar(size, &name));
        let mut progress = |bytes| {
            if let Some(bar) = &bar {
                bar.set_position(bytes);
            }
        };
        tracing::debug!(file = %name, bytes = ?size, "reading capture");
        let result = match &mut analysis {
            Analysis::EachFile(sink) => analyze_reader_with_progress(&name, &mut input, cfg, &mut **sink, &mut progress),
            Analysis::Joined(joined) => joined.add_reader(&name, &mut input, &mut progress),
        };
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let mut out = outputs.borrow_mut();
        if let Some(e) = out.error.take() {
            return Err(e);
        }
        // Findings before a read error are recorded too: they were seen.
        if let Some(sha256) = input.hex_digest() {
            let Outputs { recorder, recordings, .. } = &mut *out;
            if let (Some(recorder), Some(capture)) = (recorder.as_deref(), recordings.iter_mut().rev().find(|c| c.file == name)) {
                recorder.hash_known(capture, &sha256);
            }
        }
        if !args.joined {
            out.finish_recording(&name)?;
        }
        match result {
            Ok(stats) => {
                tracing::debug!(file = %name, "capture read");
                for w in &stats.warnings {
                    eprintln!("bleedwatch: {name}: warning: {w}");
                }
                read.push(stats);
            }
            Err(e) => {
                eprintln!("bleedwatch: {e}");
                failed = true;
            }
        }
    }
    if let Analysis::Joined(joined) = analysis {
        // The connections still open at the end of the last file: their findings, counted with it.
        let closing = joined.finish();
        if let Some(last) = read.last_mut() {
            last.absorb(&closing);
        }
    }
    let mut out = outputs.into_inner();
    if let Some(e) = out.error.take() {
        return Err(e);
    }
    let pending: Vec<String> = out.recordings.iter().map(|c| c.file.clone()).collect();
    for file in pending {
        out.finish_recording(&file)?;
    }
    for stats in &read {
        out.summary.add_file(stats);
    }
    Ok((out.summary, failed))
}
