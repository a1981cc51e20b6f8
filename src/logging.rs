//! The debug log: `-v` (debug), `-vv` (trace) or `RUST_LOG` (which wins), on standard error so
//! that JSON on standard output stays clean. Events name endpoints, verdicts and steps; never
//! payload bytes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for `-v` counted `verbose` times: bleedwatch's own events (the binary and its
/// crates, whose targets all start with `bleedwatch`), everything else at warnings.
fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "warn,bleedwatch=debug",
        _ => "warn,bleedwatch=trace",
    }
}

pub fn init(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives).unwrap_or_else(|e| {
            eprintln!("bleedwatch: warning: RUST_LOG={directives:?} ignored: {e}");
            EnvFilter::new(default_filter(verbose))
        }),
        _ => EnvFilter::new(default_filter(verbose)),
    };
    let stderr = std::io::stderr();
    // A second subscriber (never in the binary) is not an error worth stopping for.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(stderr.is_terminal()).try_init();
}
