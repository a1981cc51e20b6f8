//! How the listening commands (`client-test`, `honeypot`) record what they see in the inventory,
//! and the command line a run keeps.

use anyhow::{bail, Result};
use bleedwatch_store::{AttackInput, ClientTestInput, RunId, Store};

use crate::args::DbArgs;

/// Where a command records: the inventory and its run of this command.
pub struct ListenerRecording {
    store: Store,
    run: RunId,
    /// Events not recorded. A listener that runs for weeks keeps running (and writing JSON lines)
    /// through a database outage, warning for each loss, and fails at the end.
    failures: usize,
}

impl ListenerRecording {
    /// Opens the inventory (unless `--no-db`) and starts a run of `command` with the command line
    /// after it, `--db` left out (it may hold a password).
    pub async fn start(db: &DbArgs, no_db: bool, command: &str) -> Result<Option<ListenerRecording>> {
        if no_db {
            return Ok(None);
        }
        let store = db.open().await?;
        let run = store.start_run(command, &arguments_without_db(std::env::args().skip(2))).await?;
        Ok(Some(ListenerRecording { store, run, failures: 0 }))
    }

    pub async fn record_client(&self, line: &serde_json::Value, listener: &str) -> Result<()> {
        self.store.record_client_test(&ClientTestInput::from_json(line, listener, Some(self.run))?).await?;
        Ok(())
    }

    pub async fn record_attempt(&self, line: &serde_json::Value) -> Result<()> {
        self.store.record_attack(&AttackInput::from_honeypot_attempt(line, Some(self.run))?).await?;
        Ok(())
    }

    pub fn note(&mut self, recorded: Result<()>, what: &str) {
        if let Err(error) = recorded {
            self.failures += 1;
            eprintln!("bleedwatch: warning: {what} not recorded in the inventory: {}", crate::errors::message(&error));
        }
    }

    pub async fn finish(&self, ok: bool) {
        let status = if ok && self.failures == 0 { "finished" } else { "failed" };
        // The run's own bookkeeping may fail for the same reason as the events: say so, do not
        // hide the outcome behind it.
        if let Err(error) = self.store.finish_run(self.run, status).await {
            eprintln!("bleedwatch: warning: the run could not be marked {status} in the inventory: {}", crate::errors::message(&error.into()));
        }
    }

    /// An error when events were lost.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.failures > 0 {
            bail!("{} {what} were not recorded in the inventory (see the warnings above)", self.failures);
        }
        Ok(())
    }
}

/// The command-line words without `--db URL` / `--db=URL`.
pub fn arguments_without_db(words: impl Iterator<Item = String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
        } else if word == "--db" {
            skip_next = true;
        } else if !word.starts_with("--db=") {
            kept.push(word);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_arguments_leave_out_the_database() {
        let words = ["--listen", "127.0.0.1:1", "--db", "postgres://u:secret@h/db", "--db=x.db", "--once"].map(String::from);
        assert_eq!(arguments_without_db(words.into_iter()), ["--listen", "127.0.0.1:1", "--once"]);
    }
}
