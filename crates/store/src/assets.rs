//! Assets and imported targets: the owner's asset list (CSV), and targets from nmap XML and
//! masscan JSON. Endpoints link to the most specific asset that matches them.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::net::IpAddr;
use std::sync::Arc;

use bleedwatch_targets::{Hosts, TargetSpec};
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

use crate::query::{asset_from_row, AssetRow};
use crate::row::get;
use crate::{now_ms, Result, Store, StoreError};

/// One row of the asset list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetInput {
    /// A host name, `*.domain`, an address, a CIDR block or a range (the scan target syntax, no port).
    pub host: String,
    pub owner: String,
    pub criticality: String,
    pub internet_facing: bool,
    pub notes: String,
}

/// A target found by another scanner (nmap, masscan), to be tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownTarget {
    pub address: String,
    pub port: u16,
    pub transport: String,
    pub hostname: Option<String>,
    pub service: Option<String>,
}

impl KnownTarget {
    /// `address:port` (`[v6]:port`) for `bleedwatch scan`.
    pub fn scan_target(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Assets added or updated.
    pub assets: u64,
    /// Targets not known before.
    pub new_targets: u64,
    /// Endpoints linked to an asset after the import.
    pub linked_endpoints: u64,
}

const ASSET_COLUMNS: &str = "host, owner, criticality, internet-facing, notes";

/// Reads an asset list: CSV with a header row naming the columns (any order, case-insensitive;
/// `host` is required; `internet-facing` may be spelled `internet_facing`). A cell that a
/// spreadsheet export protected with a leading `'` (before `= + - @`) is read without it.
pub fn parse_asset_csv<R: Read>(reader: R, origin: &str) -> Result<Vec<AssetInput>> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(reader);
    let error = |line: u64, message: String| StoreError::Import { origin: origin.to_owned(), line, message };
    let headers = csv.headers().map_err(|e| error(1, e.to_string()))?.clone();
    let mut positions: HashMap<&'static str, usize> = HashMap::new();
    for (index, name) in headers.iter().enumerate() {
        let normalized = name.trim_start_matches('\u{feff}').trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let column = match normalized.as_str() {
            "host" => "host",
            "owner" => "owner",
            "criticality" => "criticality",
            "internet_facing" => "internet_facing",
            "notes" => "notes",
            other => return Err(error(1, format!("unknown column {other:?} (expected {ASSET_COLUMNS})"))),
        };
        if positions.insert(column, index).is_some() {
            return Err(error(1, format!("column {column:?} appears twice")));
        }
    }
    let Some(&host_column) = positions.get("host") else {
        return Err(error(1, format!("no \"host\" column (expected {ASSET_COLUMNS})")));
    };
    let mut assets = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| error(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |column: &str| positions.get(column).and_then(|&i| record.get(i)).map(unprotect).unwrap_or_default();
        if record.iter().all(str::is_empty) {
            continue;
        }
        let host_text = record.get(host_column).map(unprotect).unwrap_or_default();
        let host = normalize_asset_host(&host_text).map_err(|message| error(line, message))?;
        let internet_facing = parse_yes_no(&cell("internet_facing")).map_err(|message| error(line, message))?;
        assets.push(AssetInput {
            host,
            owner: cell("owner"),
            criticality: cell("criticality"),
            internet_facing,
            notes: cell("notes"),
        });
    }
    Ok(assets)
}

/// Undoes the `'` prefix CSV exports add to formula-looking cells.
fn unprotect(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_owned(),
        _ => cell.to_owned(),
    }
}

fn parse_yes_no(text: &str) -> std::result::Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "no" | "n" | "false" | "0" | "internal" => Ok(false),
        "yes" | "y" | "true" | "1" | "internet" | "external" => Ok(true),
        other => Err(format!("internet-facing must be yes or no, not {other:?}")),
    }
}

/// Checks an asset's host and writes it in canonical form (lower-case names, no trailing dot).
fn normalize_asset_host(text: &str) -> std::result::Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty host".to_owned());
    }
    if let Some(domain) = text.strip_prefix("*.") {
        let spec = TargetSpec::parse(domain).map_err(|e| e.to_string())?;
        return match spec.hosts() {
            Hosts::Name(name) if spec.ports().is_none() => Ok(format!("*.{}", normalize_name(name))),
            _ => Err(format!("{text:?}: a wildcard needs a domain name after \"*.\"")),
        };
    }
    let spec = TargetSpec::parse(text).map_err(|e| e.to_string())?;
    if spec.ports().is_some() {
        return Err(format!("{text:?}: asset hosts have no port"));
    }
    Ok(match spec.hosts() {
        Hosts::Name(name) => normalize_name(name),
        _ => spec.as_str().to_owned(),
    })
}

pub(crate) fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Reads nmap's XML output (`-oX`): every open TCP or UDP port of every scanned address, with
/// the host name nmap was given (else its PTR name) and the service it guessed.
pub fn parse_nmap_xml<R: BufRead>(reader: R, origin: &str) -> Result<Vec<KnownTarget>> {
    let mut xml = quick_xml::Reader::from_reader(reader);
    xml.config_mut().trim_text(true);
    let error = |position: u64, message: String| StoreError::Import {
        origin: origin.to_owned(),
        line: 0,
        message: format!("byte {position}: {message}"),
    };
    let mut state = NmapState::default();
    let mut buffer = Vec::new();
    loop {
        let event = xml.read_event_into(&mut buffer).map_err(|e| error(xml.buffer_position(), e.to_string()))?;
        let result = match event {
            Event::Eof => break,
            Event::Start(element) => state.start(&element),
            Event::Empty(element) => {
                // A self-closing element has no end event: close it at once.
                state.start(&element).map(|()| state.end(element.name().as_ref()))
            }
            Event::End(element) => {
                state.end(element.name().as_ref());
                Ok(())
            }
            _ => Ok(()),
        };
        result.map_err(|message| error(xml.buffer_position(), message))?;
        buffer.clear();
    }
    if !state.saw_nmaprun {
        return Err(error(0, "not nmap XML output (no <nmaprun> element)".to_owned()));
    }
    Ok(state.targets)
}

#[derive(Default)]
struct NmapState {
    saw_nmaprun: bool,
    host: Option<NmapHost>,
    port: Option<NmapPort>,
    targets: Vec<KnownTarget>,
}

#[derive(Default)]
struct NmapHost {
    addresses: Vec<String>,
    hostname: Option<String>,
    ports: Vec<NmapPort>,
}

struct NmapPort {
    protocol: String,
    number: u16,
    open: bool,
    service: Option<String>,
}

impl NmapState {
    fn start(&mut self, element: &BytesStart<'_>) -> std::result::Result<(), String> {
        let get = |name: &str| attribute(element, name);
        match element.name().as_ref() {
            b"nmaprun" => self.saw_nmaprun = true,
            b"host" => self.host = Some(NmapHost::default()),
            b"address" => {
                if let (Some(host), Some(address)) = (self.host.as_mut(), get("addr")?) {
                    if matches!(get("addrtype")?.as_deref(), Some("ipv4" | "ipv6")) {
                        host.addresses.push(address);
                    }
                }
            }
            b"hostname" => {
                if let (Some(host), Some(name)) = (self.host.as_mut(), get("name")?) {
                    // The name nmap was given beats the PTR name it looked up.
                    if get("type")?.as_deref() == Some("user") || host.hostname.is_none() {
                        host.hostname = Some(name);
                    }
                }
            }
            b"port" if self.host.is_some() => {
                let protocol = get("protocol")?.unwrap_or_default();
                let number = get("portid")?.unwrap_or_default();
                let number: u16 = number.parse().map_err(|_| format!("port {number:?} is not a port number"))?;
                self.port = Some(NmapPort { protocol, number, open: false, service: None });
            }
            b"state" => {
                if let Some(port) = self.port.as_mut() {
                    port.open = get("state")?.as_deref() == Some("open");
                }
            }
            b"service" => {
                if let Some(port) = self.port.as_mut() {
                    port.service = match (get("tunnel")?, get("name")?) {
                        (Some(tunnel), Some(name)) => Some(format!("{tunnel}/{name}")),
                        (None, name) => name,
                        (Some(tunnel), None) => Some(tunnel),
                    };
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8]) {
        match name {
            b"port" => {
                if let (Some(port), Some(host)) = (self.port.take(), self.host.as_mut()) {
                    host.ports.push(port);
                }
            }
            b"host" => {
                let Some(host) = self.host.take() else { return };
                for address in &host.addresses {
                    for port in host.ports.iter().filter(|p| p.open && matches!(p.protocol.as_str(), "tcp" | "udp")) {
                        self.targets.push(KnownTarget {
                            address: address.clone(),
                            port: port.number,
                            transport: port.protocol.clone(),
                            hostname: host.hostname.clone(),
                            service: port.service.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

fn attribute(element: &BytesStart<'_>, name: &str) -> std::result::Result<Option<String>, String> {
    match element.try_get_attribute(name) {
        Ok(Some(value)) => value.unescape_value().map(|v| Some(v.into_owned())).map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Deserialize)]
struct MasscanRecord {
    ip: String,
    #[serde(default)]
    ports: Vec<MasscanPort>,
}

#[derive(Deserialize)]
struct MasscanPort {
    port: u16,
    proto: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    service: Option<MasscanService>,
}

#[derive(Deserialize)]
struct MasscanService {
    name: String,
}

/// Reads masscan's JSON output: the valid array of masscan 1.3 (`-oJ`), the older output with a
/// trailing comma or a `{finished: 1}` line, and line-delimited JSON (`-oD`). Open ports and
/// banners become targets (banners name the service); duplicates are merged.
pub fn parse_masscan_json(text: &str, origin: &str) -> Result<Vec<KnownTarget>> {
    let error = |line: u64, message: String| StoreError::Import { origin: origin.to_owned(), line, message };
    let records: Vec<MasscanRecord> = match serde_json::from_str(text) {
        Ok(records) => records,
        Err(_) => {
            let mut records = Vec::new();
            for (index, raw) in text.lines().enumerate() {
                let line = raw.trim().trim_start_matches(',').trim_end_matches(',').trim();
                let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                if line.is_empty() || line == "[" || line == "]" || compact.starts_with("{finished:") || compact.starts_with("{\"finished\":") {
                    continue;
                }
                let record = serde_json::from_str(line).map_err(|e| error(index as u64 + 1, format!("not masscan JSON: {e}")))?;
                records.push(record);
            }
            records
        }
    };
    let mut targets: Vec<KnownTarget> = Vec::new();
    for record in records {
        let address: IpAddr = record.ip.parse().map_err(|_| error(0, format!("{:?} is not an IP address", record.ip)))?;
        for port in record.ports {
            let open = port.status.as_deref() == Some("open") || port.service.is_some();
            if !open || !matches!(port.proto.as_str(), "tcp" | "udp") {
                continue;
            }
            let service = port.service.map(|s| s.name);
            let address = address.to_string();
            match targets.iter_mut().find(|t| t.address == address && t.port == port.port && t.transport == port.proto) {
                Some(existing) => {
                    if existing.service.is_none() {
                        existing.service = service;
                    }
                }
                None => targets.push(KnownTarget { address, port: port.port, transport: port.proto, hostname: None, service }),
            }
        }
    }
    Ok(targets)
}

/// Assets compiled for matching: exact names, exact addresses, `*.domain` wildcards, and address
/// blocks (smallest first wins).
#[derive(Debug, Default)]
pub(crate) struct AssetMatcher {
    names: HashMap<String, i64>,
    wildcards: Vec<(String, i64)>,
    blocks: Vec<(Hosts, u128, i64)>,
}

impl AssetMatcher {
    fn new(assets: &[AssetRow]) -> AssetMatcher {
        let mut matcher = AssetMatcher::default();
        for asset in assets {
            if let Some(domain) = asset.host.strip_prefix("*.") {
                matcher.wildcards.push((format!(".{domain}"), asset.id));
                continue;
            }
            let Ok(spec) = TargetSpec::parse(&asset.host) else { continue };
            match spec.hosts() {
                Hosts::Name(name) => {
                    matcher.names.insert(normalize_name(name), asset.id);
                }
                hosts => matcher.blocks.push((hosts.clone(), hosts.len(), asset.id)),
            }
        }
        // Longest domains and smallest blocks first, so the first hit is the most specific.
        matcher.wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        matcher.blocks.sort_by_key(|(_, size, _)| *size);
        matcher
    }

    /// The most specific asset for an endpoint at `address` known under `names`: an exact name,
    /// then an exact address, then a wildcard domain, then the smallest address block.
    pub(crate) fn best_match(&self, address: &str, names: &[&str]) -> Option<i64> {
        let names: Vec<String> = names.iter().filter(|n| !n.is_empty()).map(|n| normalize_name(n)).collect();
        if let Some(id) = names.iter().find_map(|n| self.names.get(n)) {
            return Some(*id);
        }
        let ip: Option<IpAddr> = address.parse().ok();
        let in_block = |single: bool| {
            ip.and_then(|ip| {
                self.blocks.iter().find(|(hosts, size, _)| (*size == 1) == single && hosts.contains(ip)).map(|(_, _, id)| *id)
            })
        };
        in_block(true)
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| names.iter().any(|n| n.ends_with(suffix.as_str())))
                    .map(|(_, id)| *id)
            })
            .or_else(|| in_block(false))
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/store_asset_csv.rs`): an asset list as `assets import`
/// reads it, then endpoints matched against the assets it gave.
pub fn fuzz_asset_csv(data: &[u8]) {
    let Ok(assets) = parse_asset_csv(data, "fuzz.csv") else { return };
    let rows: Vec<AssetRow> = assets
        .into_iter()
        .zip(1..)
        .map(|(asset, id)| AssetRow {
            id,
            host: asset.host,
            owner: asset.owner,
            criticality: asset.criticality,
            internet_facing: asset.internet_facing,
            notes: asset.notes,
            source: "csv".to_owned(),
            updated_at_ms: 0,
        })
        .collect();
    let matcher = AssetMatcher::new(&rows);
    for row in rows.iter().take(64) {
        let host = row.host.trim_start_matches("*.");
        let _ = matcher.best_match(host, &[host, "www.example.org"]);
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/store_nmap_xml.rs`): nmap's XML as `assets import
/// --format nmap` reads it.
pub fn fuzz_nmap_xml(data: &[u8]) {
    if let Ok(targets) = parse_nmap_xml(data, "fuzz.xml") {
        targets.iter().for_each(|target| drop(target.scan_target()));
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/store_masscan_json.rs`): masscan's JSON as `assets
/// import --format masscan` reads it (the command reads the file as UTF-8 text).
pub fn fuzz_masscan_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(targets) = parse_masscan_json(text, "fuzz.json") {
        targets.iter().for_each(|target| drop(target.scan_target()));
    }
}

impl Store {
    /// Adds or updates assets (matched by host), then re-links every endpoint.
    pub async fn import_assets(&self, assets: &[AssetInput], source: &str) -> Result<ImportSummary> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        for asset in assets {
            sqlx::query(
                "INSERT INTO assets (host, owner, criticality, internet_facing, notes, source, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (host) DO UPDATE SET owner = excluded.owner, criticality = excluded.criticality, \
                   internet_facing = excluded.internet_facing, notes = excluded.notes, source = excluded.source, \
                   updated_at_ms = excluded.updated_at_ms",
            )
            .bind(asset.host.clone())
            .bind(asset.owner.clone())
            .bind(asset.criticality.clone())
            .bind(i64::from(asset.internet_facing))
            .bind(asset.notes.clone())
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let linked = self.relink_assets().await?;
        Ok(ImportSummary { assets: assets.len() as u64, new_targets: 0, linked_endpoints: linked })
    }

    /// Adds targets found by nmap or masscan (`source`), for `rescan` to test.
    pub async fn import_targets(&self, targets: &[KnownTarget], source: &str) -> Result<ImportSummary> {
        let now = now_ms();
        let mut new_targets = 0;
        let mut tx = self.begin().await?;
        for target in targets {
            let done = sqlx::query(
                "INSERT INTO known_targets (address, port, transport, hostname, service, source, imported_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (address, port, transport) DO NOTHING",
            )
            .bind(target.address.clone())
            .bind(i64::from(target.port))
            .bind(target.transport.clone())
            .bind(target.hostname.clone())
            .bind(target.service.clone())
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            new_targets += done.rows_affected();
        }
        tx.commit().await?;
        Ok(ImportSummary { assets: 0, new_targets, linked_endpoints: 0 })
    }

    /// Every asset, by host.
    pub async fn assets(&self) -> Result<Vec<AssetRow>> {
        let rows = sqlx::query(
            "SELECT id AS asset_id, host AS asset_host, owner AS asset_owner, criticality AS asset_criticality, \
               internet_facing AS asset_internet_facing, notes AS asset_notes, source AS asset_source, updated_at_ms AS asset_updated_at_ms \
             FROM assets ORDER BY host",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().filter_map(|row| asset_from_row(row, "asset_").transpose()).collect()
    }

    /// Imported targets, in import order.
    pub async fn known_targets(&self) -> Result<Vec<KnownTarget>> {
        let rows = sqlx::query("SELECT address, port, transport, hostname, service FROM known_targets ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let port: i64 = get(row, "port")?;
                Ok(KnownTarget {
                    address: get(row, "address")?,
                    port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?,
                    transport: get(row, "transport")?,
                    hostname: get(row, "hostname")?,
                    service: get(row, "service")?,
                })
            })
            .collect()
    }

    /// Links every endpoint to its most specific asset (after the asset list changed). Returns how
    /// many endpoints have an asset.
    pub async fn relink_assets(&self) -> Result<u64> {
        let matcher = Arc::new(AssetMatcher::new(&self.assets().await?));
        *self.asset_matcher.write().await = Some(matcher.clone());
        let endpoints = self.endpoints().await?;
        let mut linked = 0;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM endpoint_assets").execute(&mut *tx).await?;
        for endpoint in &endpoints {
            let names = [endpoint.host.as_deref().unwrap_or(""), endpoint.sni.as_str()];
            if let Some(asset_id) = matcher.best_match(&endpoint.address, &names) {
                sqlx::query("INSERT INTO endpoint_assets (endpoint_id, asset_id) VALUES ($1, $2)")
                    .bind(endpoint.id)
                    .bind(asset_id)
                    .execute(&mut *tx)
                    .await?;
                linked += 1;
            }
        }
        tx.commit().await?;
        Ok(linked)
    }

    /// The compiled asset list (loaded once per store handle, refreshed by imports).
    pub(crate) async fn asset_matcher(&self) -> Result<Arc<AssetMatcher>> {
        if let Some(matcher) = self.asset_matcher.read().await.as_ref() {
            return Ok(matcher.clone());
        }
        let matcher = Arc::new(AssetMatcher::new(&self.assets().await?));
        *self.asset_matcher.write().await = Some(matcher.clone());
        Ok(matcher)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn asset(id: i64, host: &str) -> AssetRow {
        AssetRow {
            id,
            host: host.into(),
            owner: String::new(),
            criticality: String::new(),
            internet_facing: false,
            notes: String::new(),
            source: "csv".into(),
            updated_at_ms: 0,
        }
    }

    #[test]
    fn csv_columns_in_any_order_with_protected_cells() {
        let text = "Notes,Internet-Facing,HOST,owner,criticality\n\
                    \"'=HYPERLINK(\"\"x\"\")\",yes,WWW.Example.org.,web team,high\n\
                    ,,,,\n\
                    internal only,no,10.0.0.0/24,netops,low\n";
        let assets = parse_asset_csv(text.as_bytes(), "assets.csv").unwrap();
        assert_eq!(assets.len(), 2);
        assert_eq!(assets[0].host, "www.example.org");
        assert_eq!(assets[0].notes, "=HYPERLINK(\"x\")");
        assert!(assets[0].internet_facing);
        assert_eq!(assets[1].host, "10.0.0.0/24");
        assert_eq!(assets[1].owner, "netops");
        assert!(!assets[1].internet_facing);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let bad_flag = "host,internet_facing\na.example,yes\nb.example,perhaps\n";
        let error = parse_asset_csv(bad_flag.as_bytes(), "a.csv").unwrap_err().to_string();
        assert!(error.starts_with("a.csv, line 3:"), "{error}");
        let bad_host = "host\nexample.org:443\n";
        let error = parse_asset_csv(bad_host.as_bytes(), "a.csv").unwrap_err().to_string();
        assert!(error.contains("line 2") && error.contains("no port"), "{error}");
        let no_host = "owner\nx\n";
        assert!(parse_asset_csv(no_host.as_bytes(), "a.csv").unwrap_err().to_string().contains("no \"host\" column"));
        let unknown = "host,ower\nx,y\n";
        assert!(parse_asset_csv(unknown.as_bytes(), "a.csv").unwrap_err().to_string().contains("unknown column \"ower\""));
        let wildcard = "host\n*.10.0.0.1\n";
        assert!(parse_asset_csv(wildcard.as_bytes(), "a.csv").is_err());
    }

    #[test]
    fn most_specific_asset_wins() {
        let matcher = AssetMatcher::new(&[
            asset(1, "10.0.0.0/8"),
            asset(2, "10.1.0.0/16"),
            asset(3, "10.1.2.3"),
            asset(4, "*.example.org"),
            asset(5, "*.shop.example.org"),
            asset(6, "www.shop.example.org"),
            asset(7, "2001:db8::/32"),
        ]);
        assert_eq!(matcher.best_match("10.9.9.9", &[]), Some(1));
        assert_eq!(matcher.best_match("10.1.9.9", &[]), Some(2));
        assert_eq!(matcher.best_match("10.1.2.3", &["", "mail.example.org"]), Some(3));
        assert_eq!(matcher.best_match("10.1.9.9", &["mail.example.org"]), Some(4));
        assert_eq!(matcher.best_match("192.0.2.1", &["a.shop.example.org"]), Some(5));
        assert_eq!(matcher.best_match("10.1.2.3", &["WWW.shop.example.org."]), Some(6));
        assert_eq!(matcher.best_match("2001:db8::5", &[]), Some(7));
        assert_eq!(matcher.best_match("192.0.2.1", &["example.org"]), None);
    }

    #[test]
    fn masscan_formats() {
        let current = "[\n{   \"ip\": \"192.0.2.1\",   \"timestamp\": \"1700000000\", \"ports\": [ {\"port\": 443, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n]\n";
        let targets = parse_masscan_json(current, "m.json").unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].scan_target(), "192.0.2.1:443");
        let old = "{   \"ip\": \"2001:db8::1\",   \"ports\": [ {\"port\": 8443, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] },\n{finished: 1}\n";
        let targets = parse_masscan_json(old, "m.json").unwrap();
        assert_eq!(targets[0].scan_target(), "[2001:db8::1]:8443");
        assert!(parse_masscan_json("{\"ip\": \"nope\", \"ports\": []}", "m.json").is_err());
        let error = parse_masscan_json("[\n{ not json\n]", "m.json").unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn nmap_needs_nmaprun() {
        assert!(parse_nmap_xml("<html/>".as_bytes(), "x.xml").unwrap_err().to_string().contains("not nmap XML"));
        assert!(parse_nmap_xml("<nmaprun><host><port portid=\"x\"".as_bytes(), "x.xml").is_err());
    }
}
