//! `bleedwatch expect ENDPOINT SPKI`: pin the key an endpoint must present.

use anyhow::{bail, Context, Result};
use bleedwatch_store::Store;
use clap::Args;

use crate::args::DbArgs;
use crate::output::short_hash;

#[derive(Args, Debug, Clone)]
pub struct ExpectArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The endpoint: ADDRESS:PORT ([v6]:PORT), or its id.
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: String,
    /// The key it must present (SPKI SHA-256, as in `endpoints`); any other raises an alert.
    #[arg(value_name = "SPKI_SHA256")]
    pub spki_sha256: String,
    /// Why (kept with the pin).
    #[arg(long, default_value = "")]
    pub note: String,
    /// Remove the pin instead.
    #[arg(long)]
    pub remove: bool,
}

/// `bleedwatch expect ENDPOINT SPKI`: pin the key an endpoint must present (watch alerts on any other).
pub async fn run(args: ExpectArgs) -> Result<u8> {
    let spki = args.spki_sha256.trim().to_ascii_lowercase();
    if spki.len() != 64 || !spki.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{:?} is not a SHA-256 in hex (64 digits)", args.spki_sha256);
    }
    let store = args.db.open_existing().await?;
    let endpoints = resolve_endpoints(&store, &args.endpoint).await?;
    for endpoint in &endpoints {
        if args.remove {
            store.unpin_key(endpoint.id, &spki).await?;
            println!("{}: no longer pinned to {}", endpoint.label(), short_hash(&spki));
        } else {
            store.pin_key(endpoint.id, &spki, &args.note).await?;
            println!("{}: expects key {}", endpoint.label(), short_hash(&spki));
        }
    }
    Ok(0)
}

/// `42`, `192.0.2.1:443` or `[2001:db8::1]:443` → the matching endpoints (every server name).
async fn resolve_endpoints(store: &Store, text: &str) -> Result<Vec<bleedwatch_store::EndpointRow>> {
    if let Ok(id) = text.parse::<i64>() {
        return Ok(vec![store.endpoint(id).await?]);
    }
    let address: std::net::SocketAddr =
        text.parse().with_context(|| format!("{text:?}: give ADDRESS:PORT ([v6]:PORT) or an endpoint id"))?;
    let found = store.find_endpoints(&address.ip().to_string(), Some(address.port())).await?;
    if found.is_empty() {
        bail!("no endpoint {text} in the inventory");
    }
    Ok(found)
}
