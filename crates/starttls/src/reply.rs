//! Line-protocol readers shared by several dialects: three-digit replies (SMTP, LMTP, FTP, NNTP)
//! with `ddd-` continuation lines, and dot-terminated blocks (POP3 CAPA, NNTP CAPABILITIES).

use crate::session::{printable, LimitError, Session};

/// A complete numeric reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NumericReply {
    pub code: u16,
    /// The text of each line after `ddd-` / `ddd `; FTP's free-text continuation lines whole.
    pub lines: Vec<String>,
}

impl NumericReply {
    /// The reply as one printable line, for reasons.
    pub fn summary(&self) -> String {
        let first = self.lines.first().map(String::as_str).unwrap_or_default();
        let text = format!("{} {}", self.code, first);
        printable(text.trim_end())
    }
}

/// Splits `ddd`, `ddd text` or `ddd-text`; returns the code, whether the line continues, and the
/// text. `None` when the line does not start with a reply code (first digit 1–5).
pub(crate) fn split_code(line: &str) -> Option<(u16, bool, &str)> {
    let bytes = line.as_bytes();
    let digits = bytes.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(digits.first()?) {
        return None;
    }
    let code = digits.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match bytes.get(3) {
        None => Some((code, false, "")),
        Some(b' ') => Some((code, false, line.get(4..).unwrap_or_default())),
        Some(b'-') => Some((code, true, line.get(4..).unwrap_or_default())),
        Some(_) => None,
    }
}

/// Reads one (possibly multi-line) numeric reply at a time.
#[derive(Debug, Default)]
pub(crate) struct NumericReader {
    code: Option<u16>,
    lines: Vec<String>,
    size: usize,
}

impl NumericReader {
    /// The next complete reply; `Ok(None)` when it has not ended yet.
    pub fn poll(&mut self, session: &mut Session) -> Result<Option<NumericReply>, LimitError> {
        while let Some(line) = session.next_line()? {
            session.note_in(&line);
            self.size += line.len() + 2;
            if self.size > session.limits.max_reply {
                return Err(format!("reply longer than {} bytes", session.limits.max_reply));
            }
            match self.code {
                None => {
                    let Some((code, more, text)) = split_code(&line) else {
                        return Err(format!("malformed reply {:?} (no reply code)", printable(&line)));
                    };
                    if more {
                        self.code = Some(code);
                        self.lines.push(text.to_string());
                    } else {
                        self.size = 0;
                        return Ok(Some(NumericReply { code, lines: vec![text.to_string()] }));
                    }
                }
                Some(code) => match split_code(&line) {
                    Some((c, false, text)) if c == code => {
                        self.lines.push(text.to_string());
                        self.code = None;
                        self.size = 0;
                        return Ok(Some(NumericReply { code, lines: std::mem::take(&mut self.lines) }));
                    }
                    Some((c, true, text)) if c == code => self.lines.push(text.to_string()),
                    // RFC 959 lets FTP continuation lines be free text.
                    _ => self.lines.push(line),
                },
            }
        }
        Ok(None)
    }
}

/// Reads the lines of a dot-terminated block (after its status line), undoing dot-stuffing.
#[derive(Debug, Default)]
pub(crate) struct DotBlockReader {
    lines: Vec<String>,
    size: usize,
}

impl DotBlockReader {
    /// All lines once the terminating `.` arrived.
    pub fn poll(&mut self, session: &mut Session) -> Result<Option<Vec<String>>, LimitError> {
        while let Some(line) = session.next_line()? {
            session.note_in(&line);
            self.size += line.len() + 2;
            if self.size > session.limits.max_reply {
                return Err(format!("multi-line reply longer than {} bytes", session.limits.max_reply));
            }
            if line == "." {
                self.size = 0;
                return Ok(Some(std::mem::take(&mut self.lines)));
            }
            let unstuffed = line.strip_prefix('.').filter(|rest| rest.starts_with('.')).unwrap_or(&line);
            self.lines.push(unstuffed.to_string());
        }
        Ok(None)
    }
}

/// The first word of `line`, upper-cased (commands and capability names are case-insensitive).
pub(crate) fn first_word_upper(line: &str) -> String {
    line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}

/// The rest of `line` after its first word, trimmed.
pub(crate) fn after_first_word(line: &str) -> &str {
    let trimmed = line.trim_start();
    match trimmed.find(char::is_whitespace) {
        Some(at) => trimmed.get(at..).unwrap_or_default().trim(),
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Role;
    use crate::Limits;

    #[test]
    fn split_code_accepts_the_three_forms() {
        assert_eq!(split_code("250"), Some((250, false, "")));
        assert_eq!(split_code("250 ok"), Some((250, false, "ok")));
        assert_eq!(split_code("250-PIPELINING"), Some((250, true, "PIPELINING")));
        assert_eq!(split_code("25"), None);
        assert_eq!(split_code("2500"), None);
        assert_eq!(split_code("650 x"), None);
        assert_eq!(split_code("abc def"), None);
    }

    #[test]
    fn multi_line_replies_with_free_text_continuations() {
        let mut s = Session::new(Limits::default(), Role::Client);
        s.push(b"220-Welcome\r\n to the\r\n220-more\r\n220 end\r\n250 next\r\n").unwrap();
        let mut r = NumericReader::default();
        let reply = r.poll(&mut s).unwrap().unwrap();
        assert_eq!(reply.code, 220);
        assert_eq!(reply.lines, vec!["Welcome", " to the", "more", "end"]);
        assert_eq!(r.poll(&mut s).unwrap().unwrap().code, 250);
        assert_eq!(r.poll(&mut s).unwrap(), None);
    }

    #[test]
    fn endless_multi_line_reply_is_capped() {
        let mut s = Session::new(Limits { max_reply: 100, ..Limits::default() }, Role::Client);
        let mut r = NumericReader::default();
        let mut result = Ok(None);
        for _ in 0..20 {
            s.push(b"250-xxxxxxxxxx\r\n").unwrap();
            result = r.poll(&mut s);
            if result.is_err() {
                break;
            }
        }
        assert!(result.unwrap_err().contains("longer than 100"));
    }

    #[test]
    fn dot_blocks_unstuff() {
        let mut s = Session::new(Limits::default(), Role::Client);
        s.push(b"STLS\r\n..dot\r\n.\r\n").unwrap();
        let mut r = DotBlockReader::default();
        assert_eq!(r.poll(&mut s).unwrap().unwrap(), vec!["STLS", ".dot"]);
    }

    #[test]
    fn words() {
        assert_eq!(first_word_upper("  ehlo  foo bar"), "EHLO");
        assert_eq!(after_first_word("  ehlo  foo bar "), "foo bar");
        assert_eq!(after_first_word("QUIT"), "");
    }
}
