//! Target and exclusion lists: command-line words, `-iL FILE`, `--exclude-file FILE`.
//!
//! A list has one or more specs per line, separated by whitespace or commas (see
//! [`crate::split_specs`]). `#` starts a comment that runs to the end of the line; blank lines
//! are ignored. Errors name the origin (the file path) and the 1-based line number.

use std::path::Path;

use crate::error::TargetError;
use crate::exclude::{parse_exclusion_spec, ExclusionSet};
use crate::ports::Transport;
use crate::spec::{split_specs, TargetSpec};

/// Outcome of parsing a whole list while collecting every error instead of stopping at the
/// first.
#[derive(Debug, Default)]
pub struct ParsedList {
    /// Every spec that parsed, in order (including good specs from lines that also had a bad
    /// one).
    pub specs: Vec<TargetSpec>,
    /// One [`TargetError::AtLine`] per bad spec, in order.
    pub errors: Vec<TargetError>,
}

impl ParsedList {
    /// The specs if there was no error, else the first error.
    pub fn into_result(self) -> Result<Vec<TargetSpec>, TargetError> {
        match self.errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(self.specs),
        }
    }
}

/// Parses targets given as command-line words; each word may hold several specs separated by
/// commas. Stops at the first bad spec.
pub fn parse_targets<I, S>(words: I) -> Result<Vec<TargetSpec>, TargetError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    parse_targets_with(words, Transport::Tcp)
}

/// Like [`parse_targets`], with `default` for port suffixes that do not say their transport
/// (`scan -u`).
pub fn parse_targets_with<I, S>(
    words: I,
    default: Transport,
) -> Result<Vec<TargetSpec>, TargetError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut specs = Vec::new();
    for word in words {
        for piece in split_specs(word.as_ref()) {
            specs.push(TargetSpec::parse_with_default(piece, default)?);
        }
    }
    Ok(specs)
}

/// Parses the content of a target list strictly: the first bad spec aborts, and the error names
/// `origin` and the line (`targets.txt line 7: invalid target ...`).
pub fn parse_target_list(content: &str, origin: &str) -> Result<Vec<TargetSpec>, TargetError> {
    parse_target_list_with(content, origin, Transport::Tcp)
}

/// Like [`parse_target_list`], with `default` for port suffixes that do not say their transport.
pub fn parse_target_list_with(
    content: &str,
    origin: &str,
    default: Transport,
) -> Result<Vec<TargetSpec>, TargetError> {
    let mut specs = Vec::new();
    for (line_number, line) in list_lines(content) {
        for piece in split_specs(line) {
            specs.push(
                TargetSpec::parse_with_default(piece, default)
                    .map_err(|error| error.at_line(origin, line_number))?,
            );
        }
    }
    Ok(specs)
}

/// Parses the content of a target list, collecting every error; the caller decides whether a
/// bad line aborts the scan.
pub fn parse_target_list_all(content: &str, origin: &str) -> ParsedList {
    let mut parsed = ParsedList::default();
    for (line_number, line) in list_lines(content) {
        for piece in split_specs(line) {
            match TargetSpec::parse(piece) {
                Ok(spec) => parsed.specs.push(spec),
                Err(error) => parsed.errors.push(error.at_line(origin, line_number)),
            }
        }
    }
    parsed
}

/// Reads and strictly parses a target file (`-iL FILE`). Errors name the file as given.
pub fn read_target_file(path: impl AsRef<Path>) -> Result<Vec<TargetSpec>, TargetError> {
    read_target_file_with(path, Transport::Tcp)
}

/// Like [`read_target_file`], with `default` for port suffixes that do not say their transport
/// (`scan -u -iL FILE`).
pub fn read_target_file_with(
    path: impl AsRef<Path>,
    default: Transport,
) -> Result<Vec<TargetSpec>, TargetError> {
    let path = path.as_ref();
    parse_target_list_with(&read(path)?, &path.display().to_string(), default)
}

/// Reads a target file and parses it collecting every error; only an unreadable file is an
/// `Err`.
pub fn read_target_file_all(path: impl AsRef<Path>) -> Result<ParsedList, TargetError> {
    let path = path.as_ref();
    Ok(parse_target_list_all(
        &read(path)?,
        &path.display().to_string(),
    ))
}

/// Parses the content of an exclusion list (target syntax without ports). Strict: a bad line
/// aborts, since silently dropping an exclusion could scan a host that must not be touched.
pub fn parse_exclusion_list(content: &str, origin: &str) -> Result<ExclusionSet, TargetError> {
    let mut set = ExclusionSet::new();
    for (line_number, line) in list_lines(content) {
        for piece in split_specs(line) {
            parse_exclusion_spec(piece)
                .and_then(|spec| set.insert(&spec))
                .map_err(|error| error.at_line(origin, line_number))?;
        }
    }
    set.normalize();
    Ok(set)
}

/// Reads and parses an exclusion file (`--exclude-file FILE`).
pub fn read_exclusion_file(path: impl AsRef<Path>) -> Result<ExclusionSet, TargetError> {
    let path = path.as_ref();
    parse_exclusion_list(&read(path)?, &path.display().to_string())
}

fn read(path: &Path) -> Result<String, TargetError> {
    std::fs::read_to_string(path).map_err(|source| TargetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Non-blank lines with comments removed, numbered from 1. A leading byte-order mark (as some
/// Windows editors write) is dropped.
fn list_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    content
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let without_comment = line.split_once('#').map_or(line, |(before, _)| before);
            (index + 1, without_comment.trim())
        })
        .filter(|(_, line)| !line.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use super::*;

    const LIST: &str = "\
# production web tier
10.0.0.0/30, web.example.com:8443

   # indented comment
2001:db8::1 [2001:db8::2]:443   # trailing comment
10.0.0.0/33
bad host!name
10.0.1.1-3
";

    fn texts(specs: &[TargetSpec]) -> Vec<&str> {
        specs.iter().map(TargetSpec::as_str).collect()
    }

    #[test]
    fn strict_stops_at_first_bad_line() {
        let error = parse_target_list(LIST, "targets.txt").unwrap_err();
        assert_eq!(error.line(), Some(6));
        assert_eq!(
            error.to_string(),
            r#"targets.txt line 6: invalid target "10.0.0.0/33": prefix length 33 is larger than 32"#
        );
    }

    #[test]
    fn lenient_collects_every_error_and_every_good_spec() {
        let parsed = parse_target_list_all(LIST, "targets.txt");
        assert_eq!(
            texts(&parsed.specs),
            vec![
                "10.0.0.0/30",
                "web.example.com:8443",
                "2001:db8::1",
                "[2001:db8::2]:443",
                "bad",
                "10.0.1.1-3"
            ]
        );
        let messages: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                r#"targets.txt line 6: invalid target "10.0.0.0/33": prefix length 33 is larger than 32"#,
                r#"targets.txt line 7: invalid target "host!name": host names cannot contain '!' (use letters, digits, "-" and ".")"#,
            ]
        );
        assert!(parsed.into_result().is_err());
    }

    #[test]
    fn clean_list_parses() {
        let specs = parse_target_list("a.example\r\nb.example # c\r\n\r\n", "<stdin>").unwrap();
        assert_eq!(texts(&specs), vec!["a.example", "b.example"]);
        assert!(parse_target_list_all("", "x")
            .into_result()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let specs = parse_target_list("\u{feff}10.0.0.1\n", "bom.txt").unwrap();
        assert_eq!(texts(&specs), vec!["10.0.0.1"]);
    }

    #[test]
    fn command_line_words() {
        let specs = parse_targets(["10.0.0.1,10.0.0.2", "host:443,8443"]).unwrap();
        assert_eq!(texts(&specs), vec!["10.0.0.1", "10.0.0.2", "host:443,8443"]);
        assert_eq!(
            parse_targets(["ok.example", "10.0.0.0/40"])
                .unwrap_err()
                .to_string(),
            r#"invalid target "10.0.0.0/40": prefix length 40 is larger than 32"#
        );
    }

    #[test]
    fn exclusion_list_errors_name_line() {
        let content = "10.0.0.0/8\n# comment\n192.168.0.1:22\n";
        assert_eq!(
            parse_exclusion_list(content, "skip.txt")
                .unwrap_err()
                .to_string(),
            r#"skip.txt line 3: invalid exclusion "192.168.0.1:22": exclusions cannot have ports"#
        );
        let set = parse_exclusion_list("10.0.0.0/8 172.16.0.0/12\n", "skip.txt").unwrap();
        assert!(set.contains("172.20.0.1".parse().unwrap()));
    }

    /// ZMap's blocklist format (its shipped `blocklist.conf`): a CIDR or address per line, `#`
    /// comments on their own lines and after an entry, blank lines, tabs.
    #[test]
    fn zmap_blocklist_format_parses() {
        let content = "# From IANA IPv4 Special-Purpose Address Registry\n\
                       # http://www.iana.org/assignments/iana-ipv4-special-registry/\n\
                       \n\
                       0.0.0.0/8           # RFC1122: \"This host on this network\"\n\
                       10.0.0.0/8\t\t# RFC1918: Private-Use\n\
                       \n\
                       192.0.2.0/24        # RFC5737: Documentation (TEST-NET-1)\n\
                       203.0.113.7\n\
                       240.0.0.0/4         # RFC1112, Section 4: Reserved\n";
        let set = parse_exclusion_list(content, "blocklist.conf").unwrap();
        for excluded in ["0.1.2.3", "10.255.0.1", "192.0.2.200", "203.0.113.7", "255.255.255.255"] {
            assert!(set.contains(excluded.parse().unwrap()), "{excluded}");
        }
        for kept in ["11.0.0.1", "192.0.3.1", "203.0.113.8", "239.255.255.255"] {
            assert!(!set.contains(kept.parse().unwrap()), "{kept}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = read_target_file("/nonexistent/bleedwatch/targets.txt").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/bleedwatch/targets.txt: "),
            "{error}"
        );
        assert!(read_exclusion_file("/nonexistent/x").is_err());
        assert!(read_target_file_all("/nonexistent/x").is_err());
    }
}
