//! Certificate summaries with a small process-wide cache: a scan sees the same certificate on many
//! endpoints (one wildcard certificate behind a thousand addresses), and summarising it includes a
//! signature check that is the scanner's largest CPU cost per endpoint after the kernel's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bleedwatch_x509::CertSummary;
use sha2::{Digest, Sha256};

/// Entries kept; the cache is emptied when full (cheap, and a scan's hot certificates come back).
const CAPACITY: usize = 4096;

fn cache() -> &'static Mutex<HashMap<[u8; 32], CertSummary>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], CertSummary>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Summaries of a chain (leaf first); certificates that cannot be parsed are left out.
pub fn summarize_chain(chain: &[Vec<u8>]) -> Vec<CertSummary> {
    chain.iter().filter_map(|der| summarize(der)).collect()
}

fn summarize(der: &[u8]) -> Option<CertSummary> {
    let key: [u8; 32] = Sha256::digest(der).into();
    if let Some(hit) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Some(hit);
    }
    let summary = bleedwatch_x509::summarize(der).ok()?;
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CAPACITY {
            c.clear();
        }
        c.insert(key, summary.clone());
    }
    Some(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_left_out_and_repeats_are_identical() {
        assert!(summarize_chain(&[vec![0x30, 0x03, 1, 2, 3]]).is_empty());
    }
}
