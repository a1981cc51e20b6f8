//! XMPP STARTTLS (RFC 6120 §5) for client-to-server (`jabber:client`) and server-to-server
//! (`jabber:server`) streams.
//!
//! Client (speaks first): open the stream with `to=` the server's domain, read the server's
//! stream header and `<stream:features>`, check for `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>`,
//! send `<starttls/>`, expect `<proceed/>`. XML is parsed with quick-xml (namespace-aware), one
//! top-level element at a time: consumed elements are dropped, so a peer trickling bytes costs at
//! most one element's worth of re-parsing per read.

use std::hash::{BuildHasher, Hasher};

use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::session::{printable, Session};
use crate::{ClientDialect, ClientParams, ClientProgress, CommandBudget, Protocol, ServerDialect, ServerParams, ServerProgress};

const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const NS_CLIENT: &str = "jabber:client";
const NS_SERVER: &str = "jabber:server";
/// Text kept from one element (stream error texts and the like).
const MAX_TEXT: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Client,
    Server,
}

impl Kind {
    fn namespace(self) -> &'static str {
        match self {
            Kind::Client => NS_CLIENT,
            Kind::Server => NS_SERVER,
        }
    }
}

/// The attributes of a `<stream:stream>` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Header {
    /// Default namespace (`xmlns=`).
    namespace: Option<String>,
    to: Option<String>,
    from: Option<String>,
    version: Option<String>,
}

/// A complete top-level element inside the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Element {
    namespace: String,
    name: String,
    /// Direct children: (namespace, local name).
    children: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    fn has_child(&self, namespace: &str, name: &str) -> bool {
        self.children.iter().any(|(ns, n)| ns == namespace && n == name)
    }

    /// The defined condition of a `<stream:error>`.
    fn error_condition(&self) -> String {
        self.children
            .iter()
            .find(|(ns, name)| ns == NS_STREAM_ERRORS && name != "text")
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| "undefined-condition".to_string())
    }

    fn summary(&self) -> String {
        let children: Vec<&str> = self.children.iter().map(|(_, name)| name.as_str()).collect();
        format!("<{}> [{}]", self.name, children.join(" "))
    }
}

#[derive(Debug)]
enum StreamEvent {
    Header(Header),
    Element(Element),
    Closed,
}

/// Reads an XMPP stream incrementally.
#[derive(Debug, Default)]
struct StreamReader {
    /// The raw stream header (XML declaration and `<stream:stream …>` start tag), kept to give
    /// later elements their namespace context.
    header: Option<String>,
}

fn resolved_namespace(resolve: &ResolveResult) -> String {
    match resolve {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
        _ => String::new(),
    }
}

fn local_name(start: &BytesStart) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

/// True for the errors quick-xml returns when the input simply stops inside a construct.
fn is_incomplete(err: &XmlError) -> bool {
    matches!(
        err,
        XmlError::Syntax(
            SyntaxError::UnclosedTag
                | SyntaxError::UnclosedPIOrXmlDecl
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedDoctype
                | SyntaxError::InvalidBangMarkup
        )
    )
}

fn header_attributes(start: &BytesStart, reader: &NsReader<&[u8]>) -> Result<Header, String> {
    let mut header = Header::default();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("malformed stream header attribute: {e}"))?;
        let value = attribute
            .decode_and_unescape_value(reader.decoder())
            .map_err(|e| format!("malformed stream header attribute value: {e}"))?
            .into_owned();
        let key = attribute.key.as_ref();
        match key {
            b"xmlns" => header.namespace = Some(value),
            b"to" => header.to = Some(value),
            b"from" => header.from = Some(value),
            b"version" => header.version = Some(value),
            _ => {}
        }
    }
    Ok(header)
}

impl StreamReader {
    /// The next stream event; `Ok(None)` when more bytes are needed.
    fn next(&mut self, session: &mut Session) -> Result<Option<StreamEvent>, String> {
        let pending = session.pending();
        let text = match std::str::from_utf8(pending) {
            Ok(text) => text,
            // Cut inside a character: use the complete part.
            Err(e) if e.error_len().is_none() => std::str::from_utf8(pending.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default(),
            Err(_) => return Err("invalid UTF-8 in the XML stream".to_string()),
        };
        let header_len = self.header.as_ref().map_or(0, String::len);
        let doc = match &self.header {
            Some(header) => format!("{header}{text}"),
            None => text.to_string(),
        };
        let mut reader = NsReader::from_reader(doc.as_bytes());
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        let mut seen_header = false;
        let mut depth = 0usize;
        let mut element = Element::default();
        // Bytes of `text` fully processed (whitespace between elements).
        let mut done = 0usize;
        loop {
            let (namespace, event) = match reader.read_resolved_event() {
                Ok((resolve, event)) => (resolved_namespace(&resolve), event),
                Err(err) if is_incomplete(&err) => break,
                Err(err) => return Err(format!("malformed XML: {err}")),
            };
            let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            match event {
                Event::Eof => break,
                Event::Decl(_) | Event::Comment(_) => {}
                Event::PI(_) | Event::DocType(_) => return Err("XMPP forbids processing instructions and DTDs".to_string()),
                Event::Start(start) if !seen_header => {
                    let name = local_name(&start);
                    if namespace != NS_STREAMS || name != "stream" {
                        return Err(format!("expected <stream:stream>, got <{}>", printable(&name)));
                    }
                    seen_header = true;
                    if self.header.is_none() {
                        let header = header_attributes(&start, &reader)?;
                        let raw = doc.get(..position).unwrap_or_default().to_string();
                        session.consume(raw.len());
                        self.header = Some(raw);
                        return Ok(Some(StreamEvent::Header(header)));
                    }
                    done = position.saturating_sub(header_len);
                }
                Event::Empty(start) if !seen_header => {
                    return Err(format!("stream closed at once (<{}/>)", printable(&local_name(&start))));
                }
                Event::Text(t) if !seen_header || depth == 0 => {
                    let unescaped = t.unescape().map_err(|e| format!("malformed XML text: {e}"))?;
                    if !unescaped.trim().is_empty() {
                        return Err(format!("text outside any element: {:?}", printable(&unescaped)));
                    }
                    if seen_header {
                        done = position.saturating_sub(header_len);
                    }
                }
                Event::Start(start) => {
                    if depth == 0 {
                        element = Element { namespace: namespace.clone(), name: local_name(&start), ..Element::default() };
                    } else if depth == 1 {
                        element.children.push((namespace.clone(), local_name(&start)));
                    }
                    depth += 1;
                }
                Event::Empty(start) => {
                    if depth == 0 {
                        let element = Element { namespace: namespace.clone(), name: local_name(&start), ..Element::default() };
                        session.consume(position.saturating_sub(header_len));
                        return Ok(Some(StreamEvent::Element(element)));
                    }
                    if depth == 1 {
                        element.children.push((namespace.clone(), local_name(&start)));
                    }
                }
                Event::End(_) if depth == 0 => {
                    session.consume(position.saturating_sub(header_len));
                    return Ok(Some(StreamEvent::Closed));
                }
                Event::End(_) => {
                    depth -= 1;
                    if depth == 0 {
                        session.consume(position.saturating_sub(header_len));
                        return Ok(Some(StreamEvent::Element(element)));
                    }
                }
                Event::Text(t) => {
                    if element.text.len() < MAX_TEXT {
                        // Only used for reasons: a cut inside an entity is not worth failing over.
                        let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                        let unescaped = quick_xml::escape::unescape(&raw).map(|c| c.into_owned()).unwrap_or(raw);
                        let room = MAX_TEXT - element.text.len();
                        element.text.extend(unescaped.chars().take(room));
                    }
                }
                Event::CData(_) => {}
            }
        }
        // Incomplete: drop whitespace already seen, and bound the element in progress.
        session.consume(done);
        if session.pending().len() > session.limits.max_reply {
            return Err(format!("XML element longer than {} bytes", session.limits.max_reply));
        }
        Ok(None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Header,
    Features,
    Proceed,
}

#[derive(Debug)]
pub(crate) struct Client {
    kind: Kind,
    domain: Option<String>,
    own_name: String,
    state: ClientState,
    reader: StreamReader,
    server_name: Option<String>,
}

impl Client {
    pub(crate) fn new(kind: Kind, params: &ClientParams) -> Self {
        Client {
            kind,
            domain: params.domain.clone().filter(|d| !d.is_empty()),
            own_name: params.ehlo_name.clone(),
            state: ClientState::Header,
            reader: StreamReader::default(),
            server_name: None,
        }
    }

    fn stream_error(&self, element: &Element) -> ClientProgress {
        let condition = element.error_condition();
        let mut reason = format!("stream error <{}/>", printable(&condition));
        if !element.text.is_empty() {
            reason.push_str(&format!(": {}", printable(element.text.trim())));
        }
        if matches!(condition.as_str(), "host-unknown" | "improper-addressing" | "host-gone") {
            match (&self.domain, &self.server_name) {
                (None, Some(name)) => reason.push_str(&format!(
                    " (no domain was given for to=; the server calls itself {:?})",
                    printable(name)
                )),
                (None, None) => reason.push_str(" (no domain was given for to=)"),
                (Some(domain), _) => reason.push_str(&format!(" (to={:?})", printable(domain))),
            }
        }
        ClientProgress::Failed(reason)
    }
}

impl ClientDialect for Client {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        let mut header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{NS_STREAMS}'",
            self.kind.namespace()
        );
        if self.kind == Kind::Server {
            header.push_str(" xmlns:db='jabber:server:dialback'");
            header.push_str(&format!(" from='{}'", escape(self.own_name.as_str())));
        }
        if let Some(domain) = &self.domain {
            header.push_str(&format!(" to='{}'", escape(domain.as_str())));
        }
        header.push_str(" version='1.0'>");
        session.note_out(&header);
        header.into_bytes()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        loop {
            let event = match self.reader.next(session) {
                Ok(Some(event)) => event,
                Ok(None) => return ClientProgress::NeedMore,
                Err(reason) => return ClientProgress::Failed(reason),
            };
            match (self.state, event) {
                (ClientState::Header, StreamEvent::Header(header)) => {
                    session.note_in(&format!(
                        "<stream:stream xmlns='{}' from='{}' version='{}'>",
                        header.namespace.as_deref().unwrap_or(""),
                        header.from.as_deref().unwrap_or(""),
                        header.version.as_deref().unwrap_or("")
                    ));
                    self.server_name = header.from.clone();
                    let major = header.version.as_deref().and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
                    if major.unwrap_or(0) < 1 {
                        return ClientProgress::Unsupported(
                            "pre-1.0 (legacy Jabber) stream without version='1.0': no stream features, no STARTTLS".to_string(),
                        );
                    }
                    self.state = ClientState::Features;
                }
                (_, StreamEvent::Header(_)) => return ClientProgress::Failed("second stream header".to_string()),
                (_, StreamEvent::Closed) => {
                    session.note_in("</stream:stream>");
                    return ClientProgress::Failed("server closed the stream".to_string());
                }
                (state, StreamEvent::Element(element)) => {
                    session.note_in(&element.summary());
                    if element.is(NS_STREAMS, "error") {
                        return self.stream_error(&element);
                    }
                    match state {
                        ClientState::Features if element.is(NS_STREAMS, "features") => {
                            if element.has_child(NS_TLS, "starttls") {
                                self.state = ClientState::Proceed;
                                let request = format!("<starttls xmlns='{NS_TLS}'/>");
                                session.note_out(&request);
                                return ClientProgress::Send(request.into_bytes());
                            }
                            return ClientProgress::Unsupported(format!(
                                "<stream:features> has no <starttls xmlns='{NS_TLS}'/>: {}",
                                element.summary()
                            ));
                        }
                        ClientState::Proceed if element.is(NS_TLS, "proceed") => {
                            return ClientProgress::Ready { send_first: Vec::new() };
                        }
                        ClientState::Proceed if element.is(NS_TLS, "failure") => {
                            return ClientProgress::Failed("server answered <failure/> to <starttls/>".to_string());
                        }
                        // Anything else before the answer is ignored.
                        _ => {}
                    }
                }
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(match self.kind {
            Kind::Client => Protocol::XmppClient,
            Kind::Server => Protocol::XmppServer,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Header,
    StartTls,
}

#[derive(Debug)]
pub(crate) struct Server {
    kind: Kind,
    hostname: String,
    state: ServerState,
    reader: StreamReader,
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new(kind: Kind, params: &ServerParams) -> Self {
        Server { kind, hostname: params.hostname.clone(), state: ServerState::Header, reader: StreamReader::default(), budget: CommandBudget::default() }
    }

    fn stream_id() -> String {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        format!("{:016x}", hasher.finish())
    }

    fn close_with_error(&self, session: &mut Session, condition: &str, text: &str, reason: String, opened: bool) -> ServerProgress {
        let mut out = String::new();
        if !opened {
            out.push_str(&self.header(None));
        }
        out.push_str(&format!(
            "<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/><text xmlns='{NS_STREAM_ERRORS}'>{}</text></stream:error></stream:stream>",
            escape(text)
        ));
        session.note_out(&out);
        ServerProgress::Close { send_last: out.into_bytes(), reason }
    }

    fn header(&self, from: Option<&str>) -> String {
        let mut header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{NS_STREAMS}'",
            self.kind.namespace()
        );
        if self.kind == Kind::Server {
            header.push_str(" xmlns:db='jabber:server:dialback'");
        }
        header.push_str(&format!(
            " id='{}' from='{}' version='1.0' xml:lang='en'>",
            Self::stream_id(),
            escape(from.unwrap_or(&self.hostname))
        ));
        header
    }
}

impl ServerDialect for Server {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let event = match self.reader.next(session) {
            Ok(Some(event)) => event,
            Ok(None) => return ServerProgress::NeedMore,
            Err(reason) => {
                let opened = self.state != ServerState::Header;
                return self.close_with_error(session, "not-well-formed", "malformed XML", reason, opened);
            }
        };
        if !self.budget.spend(&session.limits) {
            return self.close_with_error(session, "policy-violation", "too many stanzas", "too many stanzas before STARTTLS".to_string(), true);
        }
        match (self.state, event) {
            (ServerState::Header, StreamEvent::Header(header)) => {
                session.note_in(&format!(
                    "<stream:stream xmlns='{}' to='{}' version='{}'>",
                    header.namespace.as_deref().unwrap_or(""),
                    header.to.as_deref().unwrap_or(""),
                    header.version.as_deref().unwrap_or("")
                ));
                if header.namespace.as_deref() != Some(self.kind.namespace()) {
                    let reason = format!("client opened a stream in namespace {:?}", header.namespace.unwrap_or_default());
                    return self.close_with_error(session, "invalid-namespace", "wrong stream namespace", reason, false);
                }
                self.state = ServerState::StartTls;
                let mut out = self.header(header.to.as_deref().filter(|to| !to.is_empty()));
                out.push_str(&format!("<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features>"));
                session.note_out(&out);
                ServerProgress::Send(out.into_bytes())
            }
            (_, StreamEvent::Header(_)) => {
                self.close_with_error(session, "not-well-formed", "second stream header", "second stream header".to_string(), true)
            }
            (_, StreamEvent::Closed) => {
                session.note_in("</stream:stream>");
                session.note_out("</stream:stream>");
                ServerProgress::Close { send_last: b"</stream:stream>".to_vec(), reason: "client closed the stream".to_string() }
            }
            (_, StreamEvent::Element(element)) => {
                session.note_in(&element.summary());
                if element.is(NS_TLS, "starttls") {
                    let proceed = format!("<proceed xmlns='{NS_TLS}'/>");
                    session.note_out(&proceed);
                    return ServerProgress::StartTls { send_first: proceed.into_bytes() };
                }
                let reason = format!("client sent <{}> instead of <starttls/>", printable(&element.name));
                self.close_with_error(session, "policy-violation", "STARTTLS required", reason, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, scripted, server_result};
    use crate::{ServerStep, Step};

    /// Recorded from Prosody 0.12.3: its answer to a c2s stream header, then <proceed/> (tests/data/README.md).
    const PROSODY: &[u8] = include_bytes!("../tests/data/prosody-c2s.xml");
    const PROSODY_S2S: &[u8] = include_bytes!("../tests/data/prosody-s2s.xml");

    #[test]
    fn prosody_dialogue_at_every_cut() {
        let params = ClientParams::with_domain("localhost");
        let whole = assert_all_cuts(Protocol::XmppClient, &params, PROSODY);
        assert!(matches!(whole, Step::Ready { ref leftover, .. } if leftover.is_empty()), "{whole:?}");
        let whole = assert_all_cuts(Protocol::XmppServer, &params, PROSODY_S2S);
        assert!(matches!(whole, Step::Ready { .. }), "{whole:?}");
    }

    #[test]
    fn header_carries_domain_and_namespace() {
        let mut client = crate::ClientUpgrade::new(Protocol::XmppClient, ClientParams::with_domain("ex'ample.org"));
        let header = String::from_utf8(client.start()).unwrap();
        assert!(header.contains("to='ex&apos;ample.org'"), "{header}");
        assert!(header.contains("xmlns='jabber:client'"));
        let mut client = crate::ClientUpgrade::new(Protocol::XmppServer, ClientParams::with_domain("example.org"));
        let header = String::from_utf8(client.start()).unwrap();
        assert!(header.contains("xmlns='jabber:server'") && header.contains("to='example.org'") && header.contains("from='bleedwatch.invalid'"), "{header}");
    }

    #[test]
    fn prefixes_and_whitespace_do_not_matter() {
        let (step, sent) = scripted(
            Protocol::XmppClient,
            ClientParams::with_domain("x"),
            &[
                b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' version='1.0'>\n  ",
                b"<s:features>\n<t:starttls xmlns:t='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></s:features> ",
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>",
            ],
        );
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        assert!(sent.ends_with(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    }

    #[test]
    fn not_offered_errors_and_malformed() {
        let head = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' version='1.0' from='real.example'>";
        let cases: Vec<(String, &str, &str)> = vec![
            (format!("{head}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"), "unsupported", "no <starttls"),
            // starttls in the wrong namespace does not count
            (format!("{head}<stream:features><starttls xmlns='jabber:client'/></stream:features>"), "unsupported", "no <starttls"),
            (format!("{head}<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"), "failed", "host-unknown"),
            ("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>".to_string(), "unsupported", "pre-1.0"),
            ("<html><body>".to_string(), "failed", "expected <stream:stream>"),
            (format!("{head}<stream:features></stream:feature>"), "failed", "malformed XML"),
            (format!("{head}</stream:stream>"), "failed", "closed the stream"),
            (format!("{head}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"), "failed", "<failure/>"),
            (format!("{head}junk"), "failed", "text outside"),
        ];
        for (input, want, needle) in cases {
            let step = client_result(Protocol::XmppClient, ClientParams::with_domain("x"), input.as_bytes());
            assert_eq!(kind(&step), want, "{input}: {step:?}");
            let (Step::Unsupported { reason, .. } | Step::Failed { reason, .. }) = &step else { unreachable!() };
            assert!(reason.contains(needle), "{input}: {reason}");
        }
    }

    #[test]
    fn missing_domain_hint_names_the_server() {
        let input = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' version='1.0' from='real.example'>\
            <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        let step = client_result(Protocol::XmppClient, ClientParams::default(), input.as_bytes());
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("\"real.example\"")), "{step:?}");
    }

    #[test]
    fn endless_element_and_bad_utf8_fail() {
        let mut input = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' version='1.0'><stream:features>".to_vec();
        input.extend(vec![b'x'; 20_000]);
        assert!(matches!(client_result(Protocol::XmppClient, ClientParams::default(), &input), Step::Failed { ref reason, .. } if reason.contains("longer than")));
        let mut bad = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>".to_vec();
        bad.extend_from_slice(b"\xff\xfe<a/>");
        assert_eq!(kind(&client_result(Protocol::XmppClient, ClientParams::default(), &bad)), "failed");
        // A split multi-byte character is just incomplete.
        let mut split = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><a>\xc3".to_vec();
        assert_eq!(kind(&client_result(Protocol::XmppClient, ClientParams::default(), &split)), "need-more");
        split.extend_from_slice(b"\xa9</a>");
        assert_eq!(kind(&client_result(Protocol::XmppClient, ClientParams::default(), &split)), "need-more");
    }

    #[test]
    fn server_role() {
        let mut client = crate::ClientUpgrade::new(Protocol::XmppClient, ClientParams::with_domain("chat.example"));
        let header = client.start();
        let ServerStep::Send(answer) = server_result(Protocol::XmppClient, &header) else { panic!() };
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.contains("from='chat.example'") && answer.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"), "{answer}");
        // A c2s header on an s2s server is refused.
        assert!(matches!(server_result(Protocol::XmppServer, &header), ServerStep::Close { ref reason, .. } if reason.contains("namespace")));
        let mut both = header.clone();
        both.extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert!(matches!(server_result(Protocol::XmppClient, &both), ServerStep::StartTls { ref send_first, .. } if send_first.ends_with(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")));
        let mut auth = header;
        auth.extend_from_slice(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>");
        assert!(matches!(server_result(Protocol::XmppClient, &auth), ServerStep::Close { ref send_last, .. } if String::from_utf8_lossy(send_last).contains("policy-violation")));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::XmppClient);
        no_panic_on_garbage(Protocol::XmppServer);
    }
}
