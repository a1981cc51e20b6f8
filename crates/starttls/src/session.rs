//! What every dialect shares: the bounded input buffer, line splitting, and the printable
//! transcript. Both roles use it; a dialect only decides what the bytes mean.

use crate::Limits;

/// The input side of one dialogue plus its transcript.
#[derive(Debug)]
pub(crate) struct Session {
    input: Vec<u8>,
    /// Bytes of `input` already consumed by the dialect.
    consumed: usize,
    /// Bytes received over the whole dialogue (for the dialogue cap).
    received: usize,
    pub(crate) limits: Limits,
    transcript: Transcript,
    /// Transcript prefixes for what comes in and what goes out ("S: " / "C: " by role).
    in_prefix: &'static str,
    out_prefix: &'static str,
}

/// Which side of the dialogue a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// Why a bounded read gave up.
pub(crate) type LimitError = String;

impl Session {
    pub(crate) fn new(limits: Limits, role: Role) -> Self {
        let (in_prefix, out_prefix) = match role {
            Role::Client => ("S: ", "C: "),
            Role::Server => ("C: ", "S: "),
        };
        Session {
            input: Vec::new(),
            consumed: 0,
            received: 0,
            transcript: Transcript::new(limits.max_transcript),
            limits,
            in_prefix,
            out_prefix,
        }
    }

    /// Appends peer bytes; fails once the dialogue has received more than its cap.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), LimitError> {
        if self.consumed > 0 {
            self.input.drain(..self.consumed);
            self.consumed = 0;
        }
        self.received = self.received.saturating_add(data.len());
        if self.received > self.limits.max_dialogue {
            return Err(format!(
                "peer sent more than {} bytes before the TLS upgrade",
                self.limits.max_dialogue
            ));
        }
        self.input.extend_from_slice(data);
        Ok(())
    }

    /// Unconsumed input.
    pub(crate) fn pending(&self) -> &[u8] {
        self.input.get(self.consumed..).unwrap_or_default()
    }

    /// Marks `n` pending bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.consumed = self.consumed.saturating_add(n).min(self.input.len());
    }

    /// Takes every unconsumed byte (what follows the upgrade belongs to the TLS layer).
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.pending().to_vec();
        self.consumed = self.input.len();
        rest
    }

    /// The next complete line without its line ending (LF or CRLF), decoded lossily.
    /// `Ok(None)`: the line has not ended yet. A line longer than the reply cap fails, so a peer
    /// that never sends a newline cannot make us buffer forever.
    pub(crate) fn next_line(&mut self) -> Result<Option<String>, LimitError> {
        let pending = self.pending();
        match pending.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if end > self.limits.max_reply {
                    return Err(format!("line longer than {} bytes", self.limits.max_reply));
                }
                let raw = pending.get(..end).unwrap_or_default();
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                self.consume(end + 1);
                Ok(Some(line))
            }
            None if pending.len() > self.limits.max_reply => {
                Err(format!("no line end within {} bytes", self.limits.max_reply))
            }
            None => Ok(None),
        }
    }

    /// Records a line the peer sent.
    pub(crate) fn note_in(&mut self, line: &str) {
        self.transcript.add(self.in_prefix, line);
    }

    /// Records a line we sent (without its line ending).
    pub(crate) fn note_out(&mut self, line: &str) {
        self.transcript.add(self.out_prefix, line);
    }

    /// One line to send: recorded, CRLF appended.
    pub(crate) fn line_out(&mut self, line: &str) -> Vec<u8> {
        self.note_out(line);
        let mut out = Vec::with_capacity(line.len() + 2);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Several lines to send at once (a multi-line reply).
    pub(crate) fn lines_out<S: AsRef<str>>(&mut self, lines: &[S]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            out.extend(self.line_out(line.as_ref()));
        }
        out
    }

    /// Records a decoded description of a binary message.
    pub(crate) fn note(&mut self, text: &str) {
        self.transcript.add("", text);
    }

    pub(crate) fn transcript(&self) -> String {
        self.transcript.text.clone()
    }
}

/// Printable, size-capped record of the dialogue.
#[derive(Debug)]
struct Transcript {
    text: String,
    cap: usize,
    full: bool,
}

impl Transcript {
    fn new(cap: usize) -> Self {
        Transcript { text: String::new(), cap, full: false }
    }

    fn add(&mut self, prefix: &str, line: &str) {
        if self.full {
            return;
        }
        let mut entry = String::with_capacity(prefix.len() + line.len() + 1);
        entry.push_str(prefix);
        entry.push_str(&printable(line));
        entry.push('\n');
        if self.text.len() + entry.len() > self.cap {
            let room = self.cap.saturating_sub(self.text.len());
            let cut = floor_char_boundary(&entry, room);
            self.text.push_str(entry.get(..cut).unwrap_or_default());
            self.text.push_str("[transcript truncated]\n");
            self.full = true;
        } else {
            self.text.push_str(&entry);
        }
    }
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    while index > 0 && !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Control characters (peer-controlled text may end up on a terminal) become `\xNN` / `\u{..}`.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let code = c as u32;
            if code < 0x100 {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes as printable text, for binary protocols' transcripts.
pub(crate) fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(Limits { max_reply: 16, max_dialogue: 64, max_transcript: 40, max_commands: 4 }, Role::Client)
    }

    #[test]
    fn lines_split_on_lf_and_crlf_across_pushes() {
        let mut s = session();
        s.push(b"ab").unwrap();
        assert_eq!(s.next_line().unwrap(), None);
        s.push(b"c\r\nde\nf").unwrap();
        assert_eq!(s.next_line().unwrap().as_deref(), Some("abc"));
        assert_eq!(s.next_line().unwrap().as_deref(), Some("de"));
        assert_eq!(s.next_line().unwrap(), None);
        assert_eq!(s.pending(), b"f");
    }

    #[test]
    fn endless_line_and_dialogue_are_capped() {
        let mut s = session();
        s.push(&[b'x'; 17]).unwrap();
        assert!(s.next_line().is_err());
        let mut s = session();
        s.push(&[b'x'; 60]).unwrap();
        assert!(s.push(&[b'x'; 5]).is_err());
    }

    #[test]
    fn transcript_is_printable_and_capped() {
        let mut s = session();
        s.note_in("a\x1b[31mb\u{85}");
        assert_eq!(s.transcript(), "S: a\\x1b[31mb\\x85\n");
        s.note_out("0123456789012345678901234567890123456789");
        assert!(s.transcript().ends_with("[transcript truncated]\n"));
        let before = s.transcript();
        s.note("more");
        assert_eq!(s.transcript(), before);
    }
}
