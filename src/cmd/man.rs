//! `bleedwatch man`: the man page, generated from the clap definitions: `bleedwatch.1` to
//! standard output, or with `--dir` one page per command (`bleedwatch.1`, `bleedwatch-scan.1`, …).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use clap_mangen::Man;

#[derive(Args, Debug, Clone)]
pub struct ManArgs {
    /// Write bleedwatch.1 and a page per command (bleedwatch-scan.1, …) into DIR instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A page as man pages are titled: the name in capitals.
fn page(cmd: clap::Command) -> Man {
    let mut cmd = cmd;
    cmd.build();
    let title = cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_uppercase();
    Man::new(cmd).title(title).source(concat!("bleedwatch ", env!("CARGO_PKG_VERSION"))).manual("bleedwatch manual")
}

/// The page of `cmd` and of each of its commands, into `dir`; returns the files written.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let man = page(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(())
}

pub fn run(args: ManArgs, cli: clap::Command) -> Result<u8> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let mut cli = cli.disable_help_subcommand(true);
            // Sets each command's display name (bleedwatch-scan), which names its page.
            cli.build();
            let mut written = Vec::new();
            write_pages(&cli, dir, &mut written)?;
            eprintln!("bleedwatch: {} man pages written to {}", written.len(), dir.display());
        }
        None => {
            let mut roff = Vec::new();
            page(cli).render(&mut roff)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&roff)?;
            out.flush()?;
        }
    }
    Ok(0)
}
