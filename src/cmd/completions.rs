//! `bleedwatch completions bash|zsh|fish`: a shell completion script, generated from the clap
//! definitions (so every command, option and checked value list, like `--starttls`, is in it).

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script for `cli` (the whole command tree) to standard output.
pub fn run(args: CompletionsArgs, mut cli: clap::Command) -> Result<u8> {
    let name = cli.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cli, name, &mut out);
    Ok(0)
}
