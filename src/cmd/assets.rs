//! `bleedwatch assets import`: owners and criticality (CSV), targets (nmap XML, masscan JSON).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bleedwatch_store::{parse_asset_csv, parse_masscan_json, parse_nmap_xml};
use clap::{Args, Subcommand, ValueEnum};

use crate::args::DbArgs;

#[derive(Subcommand, Debug, Clone)]
pub enum AssetsCommand {
    /// Import an asset list (CSV: host, owner, criticality, internet-facing, notes) or targets
    /// (nmap -oX, masscan -oJ/-oD).
    Import(AssetsImportArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Csv,
    Nmap,
    Masscan,
}

#[derive(Args, Debug, Clone)]
pub struct AssetsImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// File format [default: from the extension: .csv, .xml (nmap), .json (masscan)].
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// The file to import (`-` for standard input, with --format).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

fn import_format(args: &AssetsImportArgs) -> Result<ImportFormat> {
    if let Some(format) = args.format {
        return Ok(format);
    }
    let extension = args.file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(ImportFormat::Csv),
        Some("xml") => Ok(ImportFormat::Nmap),
        Some("json" | "jsonl" | "ndjson") => Ok(ImportFormat::Masscan),
        _ => bail!("{}: cannot tell the format from the name; give --format csv|nmap|masscan", args.file.display()),
    }
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(BufReader::new(io::stdin())))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(BufReader::new(file)))
    }
}

/// `bleedwatch assets import FILE`.
pub async fn run(command: AssetsCommand) -> Result<u8> {
    match command {
        AssetsCommand::Import(args) => run_import(args).await,
    }
}

pub async fn run_import(args: AssetsImportArgs) -> Result<u8> {
    let format = import_format(&args)?;
    let origin = args.file.display().to_string();
    let mut input = open_input(&args.file)?;
    let store = args.db.open().await?;
    let summary = match format {
        ImportFormat::Csv => store.import_assets(&parse_asset_csv(input, &origin)?, "csv").await?,
        ImportFormat::Nmap => store.import_targets(&parse_nmap_xml(input, &origin)?, "nmap").await?,
        ImportFormat::Masscan => {
            let mut text = String::new();
            input.read_to_string(&mut text).with_context(|| format!("reading {origin}"))?;
            store.import_targets(&parse_masscan_json(&text, &origin)?, "masscan").await?
        }
    };
    match format {
        ImportFormat::Csv => {
            println!("{} assets imported; {} endpoints linked to an asset", summary.assets, summary.linked_endpoints)
        }
        ImportFormat::Nmap | ImportFormat::Masscan => {
            println!("{} new targets (bleedwatch rescan tests them)", summary.new_targets)
        }
    }
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn import_format_from_extension() {
        let args = |file: &str, format| AssetsImportArgs { db: DbArgs::default(), format, file: file.into() };
        assert_eq!(import_format(&args("a.CSV", None)).unwrap(), ImportFormat::Csv);
        assert_eq!(import_format(&args("scan.xml", None)).unwrap(), ImportFormat::Nmap);
        assert_eq!(import_format(&args("m.json", None)).unwrap(), ImportFormat::Masscan);
        assert_eq!(import_format(&args("-", Some(ImportFormat::Csv))).unwrap(), ImportFormat::Csv);
        assert!(import_format(&args("list.txt", None)).is_err());
    }
}
