//! Numbers, times and names as the report writes them. A leaf: the summary, the charts and the HTML
//! page all use it.

use bleedwatch_store::views::{rfc3339_ms, rfc3339_seconds};

/// `2026-11-28 18:39 UTC` (the raw number when out of range).
pub fn display_time(ms: i64) -> String {
    let text = rfc3339_ms(ms);
    match (text.get(..10), text.get(10..11), text.get(11..16)) {
        (Some(day), Some("T"), Some(time)) => format!("{day} {time} UTC"),
        _ => text,
    }
}

/// `2027-01-01` from Unix seconds.
pub fn display_date_seconds(seconds: i64) -> String {
    let text = rfc3339_seconds(seconds);
    text.get(..10).map(str::to_owned).unwrap_or(text)
}

/// `45 min`, `7 h`, `19 days`.
pub fn display_duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} days", thousands(u64::try_from(m / (24 * 60)).unwrap_or(0))),
    }
}

/// `(no owner)` for endpoints no asset matched.
pub fn owner_name(owner: &str) -> &str {
    if owner.is_empty() {
        "(no owner)"
    } else {
        owner
    }
}

/// `1 endpoint`, `2 endpoints`, `1,234 endpoints`.
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(count))
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits: Vec<char> = value.to_string().chars().collect();
    let head = match digits.len() % 3 {
        0 => 3,
        partial => partial,
    };
    let (first, rest) = digits.split_at(head.min(digits.len()));
    let mut out: String = first.iter().collect();
    for group in rest.chunks(3) {
        out.push(',');
        out.extend(group);
    }
    out
}
