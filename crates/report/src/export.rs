//! What leaves the report as text: CSV cells a spreadsheet cannot run, text from the network made
//! printable, and the endpoint CSV columns (shared with `bleedwatch endpoints --csv`). A leaf.

use bleedwatch_store::views::EndpointView;

/// Spreadsheet programs run cells that start with these; prefix them with `'` so exported data
/// stays data.
pub fn neutralize_csv_cell(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Text from the network (certificate subjects, names) must never drive a terminal.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

pub const ENDPOINT_CSV_HEADER: &[&str] = &[
    "address", "port", "transport", "sni", "host", "owner", "criticality", "internet_facing", "state", "flags",
    "first_vulnerable", "last_vulnerable", "first_fixed", "spkis_seen", "exposed_spkis", "exposed_certs", "last_observed",
    "last_verdict", "attacks", "attack_successes", "first_attack", "last_attack", "attacked_while_vulnerable",
];

/// A CSV row for an endpoint; every cell neutralised.
pub fn endpoint_csv_row(view: &EndpointView) -> Vec<String> {
    let join = |items: &[String]| items.join(" ");
    [
        view.address.clone(),
        view.port.to_string(),
        view.transport.clone(),
        view.sni.clone().unwrap_or_default(),
        view.host.clone().unwrap_or_default(),
        view.owner.clone(),
        view.criticality.clone(),
        if view.internet_facing { "yes".into() } else { "no".into() },
        view.state.as_str().to_owned(),
        join(&view.flag_words()),
        view.exposure.first_vulnerable.clone().unwrap_or_default(),
        view.exposure.last_vulnerable.clone().unwrap_or_default(),
        view.exposure.first_fixed.clone().unwrap_or_default(),
        join(&view.spkis_seen),
        join(&view.exposed_spkis),
        join(&view.exposed_certs),
        view.last_observed.clone().unwrap_or_default(),
        view.last_verdict.clone().unwrap_or_default(),
        view.attacks.to_string(),
        view.attack_successes.to_string(),
        view.first_attack.clone().unwrap_or_default(),
        view.last_attack.clone().unwrap_or_default(),
        if view.attacked_while_vulnerable { "yes".into() } else { "no".into() },
    ]
    .iter()
    .map(|cell| neutralize_csv_cell(cell))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(neutralize_csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(neutralize_csv_cell("+1"), "'+1");
        assert_eq!(neutralize_csv_cell("-1"), "'-1");
        assert_eq!(neutralize_csv_cell("@SUM(1)"), "'@SUM(1)");
        assert_eq!(neutralize_csv_cell("\tx"), "'\tx");
        assert_eq!(neutralize_csv_cell("\rx"), "'\rx");
        assert_eq!(neutralize_csv_cell("CN=ok"), "CN=ok");
        assert_eq!(neutralize_csv_cell(""), "");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("CN=\u{1b}[31mred\n"), "CN=?[31mred?");
    }
}
