//! The notice `notify` sends: a message template (plain text with a `Subject:` first line, and an
//! optional HTML alternative) with `{{placeholder}}`s, checked when it is loaded (an unknown or
//! unclosed placeholder is an error naming the file and line), then filled per recipient. The
//! built-in default is `templates/notify/notice.{txt,html}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] =
    &["name", "address", "service", "endpoint", "owner", "incident", "exposed_from", "exposed_until", "fixed_at", "sender"];

const DEFAULT_TEXT: &str = include_str!("../templates/notify/notice.txt");
const DEFAULT_HTML: &str = include_str!("../templates/notify/notice.html");

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(&'static str),
}

/// A checked template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Where it came from (a path, or "built-in").
    pub origin: String,
    subject: Vec<Piece>,
    text: Vec<Piece>,
    html: Option<Vec<Piece>>,
}

/// A filled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

fn parse_pieces(source: &str, origin: &str, first_line: usize) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = source;
    let line_of = |rest: &str| first_line + source[..source.len() - rest.len()].matches('\n').count();
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { bail!("{origin}, line {}: `{{{{` without `}}}}`", line_of(&rest[start..])) };
        let name = after[..end].trim();
        let Some(known) = PLACEHOLDERS.iter().find(|p| **p == name) else {
            bail!("{origin}, line {}: unknown placeholder {{{{{name}}}}} (known: {})", line_of(&rest[start..]), PLACEHOLDERS.join(", "));
        };
        pieces.push(Piece::Field(known));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        bail!("{origin}, line {}: `}}}}` without `{{{{`", line_of(&rest[rest.find("}}").unwrap_or(0)..]));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

impl Template {
    /// Parses a text template (`Subject: …`, a blank line, the body) and an optional HTML body.
    pub fn parse(text: &str, html: Option<&str>, origin: &str) -> Result<Template> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n");
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let Some(subject) = first.strip_prefix("Subject:") else {
            bail!("{origin}, line 1: the first line must be `Subject: …` (then a blank line and the body)");
        };
        let body = body.strip_prefix('\n').unwrap_or(body);
        let subject = parse_pieces(subject.trim(), origin, 1)?;
        let text_pieces = parse_pieces(body, origin, 3)?;
        let html_origin = format!("{origin} (HTML)");
        let html = html.map(|h| parse_pieces(h, &html_origin, 1)).transpose()?;
        Ok(Template { origin: origin.to_owned(), subject, text: text_pieces, html })
    }

    /// The built-in English notice.
    pub fn builtin() -> Result<Template> {
        Template::parse(DEFAULT_TEXT, Some(DEFAULT_HTML), "built-in template")
    }

    /// Loads `path` (and `html`, when given).
    pub fn load(path: &Path, html: Option<&Path>) -> Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the template {}", path.display()))?;
        let html = html.map(|p| std::fs::read_to_string(p).with_context(|| format!("reading the HTML template {}", p.display()))).transpose()?;
        Template::parse(&text, html.as_deref(), &path.display().to_string())
    }

    /// Fills the template. Values go into the HTML part escaped; line breaks in values are never
    /// allowed into the subject.
    pub fn render(&self, values: &BTreeMap<&'static str, String>) -> Rendered {
        let fill = |pieces: &[Piece], escape: bool| {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Field(name) => {
                        let value = values.get(name).map(String::as_str).unwrap_or("");
                        if escape {
                            out.push_str(&escape_html(value));
                        } else {
                            out.push_str(value);
                        }
                    }
                }
            }
            out
        };
        let subject: String = fill(&self.subject, false).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        Rendered { subject, text: fill(&self.text, false), html: self.html.as_ref().map(|h| fill(h, true)) }
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The templates per locale: `notice.txt` given, a recipient with locale `de` gets `notice.de.txt`
/// (and `notice.de.html`) when it exists beside it, else the given one.
#[derive(Debug)]
pub struct Templates {
    default: Template,
    by_locale: BTreeMap<String, Template>,
}

/// `dir/notice.txt` + `de` → `dir/notice.de.txt`.
fn localized(path: &Path, locale: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{locale}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{locale}"),
    };
    path.with_file_name(name)
}

impl Templates {
    /// Loads the default template (given or built in) and, for each locale, its localized files
    /// when they exist; every one is checked now.
    pub fn load<'a>(text: Option<&Path>, html: Option<&Path>, locales: impl IntoIterator<Item = &'a str>) -> Result<Templates> {
        let Some(text) = text else {
            return Ok(Templates { default: Template::builtin()?, by_locale: BTreeMap::new() });
        };
        let default = Template::load(text, html)?;
        let mut by_locale = BTreeMap::new();
        for locale in locales {
            let path = localized(text, locale);
            if locale.is_empty() || by_locale.contains_key(locale) || !path.is_file() {
                continue;
            }
            let html_path = html.map(|h| localized(h, locale)).filter(|p| p.is_file()).or_else(|| html.map(Path::to_path_buf));
            by_locale.insert(locale.to_owned(), Template::load(&path, html_path.as_deref())?);
        }
        Ok(Templates { default, by_locale })
    }

    /// The template for a locale (the default when there is none for it).
    pub fn for_locale(&self, locale: &str) -> &Template {
        self.by_locale.get(locale).unwrap_or(&self.default)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        PLACEHOLDERS.iter().map(|p| (*p, format!("<{p}>"))).collect()
    }

    #[test]
    fn builtin_template_uses_every_fact_a_user_needs() {
        let template = Template::builtin().unwrap();
        let rendered = template.render(&values());
        assert_eq!(rendered.subject, "Please change your password for <service>");
        for needed in ["<name>", "<service>", "<exposed_from>", "<exposed_until>", "<fixed_at>", "<incident>", "<sender>"] {
            assert!(rendered.text.contains(needed), "{needed}");
        }
        assert!(rendered.text.contains("What happened") && rendered.text.contains("What you need to do"));
        let html = rendered.html.unwrap();
        assert!(html.contains("&lt;service&gt;") && !html.contains("<service>"), "values are escaped in HTML");
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_rejected_at_load() {
        let error = Template::parse("Subject: hi\n\nline\n{{ nmae }}\n", None, "t.txt").unwrap_err().to_string();
        assert!(error.starts_with("t.txt, line 4: unknown placeholder {{nmae}}"), "{error}");
        let error = Template::parse("Subject: {{service\n\nbody", None, "t.txt").unwrap_err().to_string();
        assert!(error.starts_with("t.txt, line 1:"), "{error}");
        assert!(Template::parse("Hello\n\nbody", None, "t.txt").unwrap_err().to_string().contains("Subject:"));
        let error = Template::parse("Subject: x\n\nok", Some("<p>{{oops}}</p>"), "t.txt").unwrap_err().to_string();
        assert!(error.contains("(HTML), line 1: unknown placeholder"), "{error}");
    }

    #[test]
    fn values_cannot_break_the_subject() {
        let template = Template::parse("Subject: about {{service}}\n\n{{name}}", None, "t").unwrap();
        let mut v = values();
        v.insert("service", "x\r\nBcc: eve@example.org".into());
        let rendered = template.render(&v);
        assert!(!rendered.subject.contains('\n') && !rendered.subject.contains('\r'));
    }

    #[test]
    fn locales_pick_their_file_or_fall_back() {
        let dir = crate::test_support::scratch_dir("templates");
        let base = dir.join("notice.txt");
        std::fs::write(&base, "Subject: Hello {{name}}\n\nEnglish").unwrap();
        std::fs::write(dir.join("notice.de.txt"), "Subject: Hallo {{name}}\n\nDeutsch").unwrap();
        let templates = Templates::load(Some(&base), None, ["de", "fr", ""]).unwrap();
        assert_eq!(templates.for_locale("de").render(&values()).text, "Deutsch");
        assert_eq!(templates.for_locale("fr").render(&values()).text, "English");
        assert_eq!(localized(Path::new("/t/notice.html"), "pt-BR"), PathBuf::from("/t/notice.pt-BR.html"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
