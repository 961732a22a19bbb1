//! A small TwiML reader: the verbs a voice webhook answers with, as the simulated caller
//! needs them.
//!
//! No XML crate is available, so this is a tiny XML parser for the shapes TwiML uses:
//! elements, attributes in either quote style and any order, text, comments, CDATA, the XML
//! declaration and the five predefined entities plus numeric character references. It is
//! strict where a real XML parser would be (mismatched or unclosed tags, duplicate
//! attributes, unknown entities, a bare `&` or `<` in text, a DOCTYPE, content after the
//! root), because Twilio rejects such documents (error 12100). It is lenient about TwiML
//! semantics: unknown verbs are kept as [`Verb::Other`], unknown attributes are ignored.

use serde::Serialize;

/// Deepest element nesting accepted (TwiML needs 4: Response/Connect/Stream/Parameter).
const MAX_DEPTH: usize = 32;

/// Why a TwiML document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// Not well-formed XML.
    #[error("XML error at byte {at}: {what}")]
    Syntax {
        /// Byte offset in the document.
        at: usize,
        /// What is wrong.
        what: String,
    },
    /// The root element is not `<Response>`.
    #[error("root element is <{0}>, expected <Response>")]
    NotResponse(String),
    /// A verb or noun lacks an attribute it needs.
    #[error("<{element}> lacks the required attribute `{attribute}`")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// Something TwiML does not allow where it appears.
    #[error("invalid TwiML: {0}")]
    Invalid(String),
}

/// A parsed `<Response>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Twiml {
    /// The verbs, in document order.
    pub verbs: Vec<Verb>,
}

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verb")]
pub enum Verb {
    /// `<Say>`: text to speak.
    Say {
        /// The text, entities decoded, surrounding whitespace trimmed.
        text: String,
        /// `voice`, if given.
        voice: Option<String>,
        /// `language`, if given.
        language: Option<String>,
    },
    /// `<Play>`: an audio URL.
    Play {
        /// The URL.
        url: String,
    },
    /// `<Pause length="N">`.
    Pause {
        /// `length` in seconds (Twilio's default is 1).
        length: u32,
    },
    /// `<Connect>`: bidirectional `<Stream>` (or another noun).
    Connect {
        /// `action`, fetched by Twilio when the connection ends.
        action: Option<String>,
        /// The `<Stream>` nouns inside.
        streams: Vec<StreamSpec>,
        /// Names of other nouns inside (`Conversation`, `VirtualAgent`, …).
        other_nouns: Vec<String>,
    },
    /// `<Start>`: a unidirectional fork (`<Stream>` inside).
    Start {
        /// The `<Stream>` nouns inside.
        streams: Vec<StreamSpec>,
    },
    /// `<Stop>`.
    Stop,
    /// `<Dial>`: transfer.
    Dial {
        /// `callerId`, if given.
        caller_id: Option<String>,
        /// `timeout` in seconds, if given.
        timeout: Option<u32>,
        /// `action`, if given.
        action: Option<String>,
        /// `<Number>` nouns, plus a bare number given as the element's text.
        numbers: Vec<String>,
        /// `<Sip>` nouns.
        sips: Vec<String>,
        /// `<Client>` nouns.
        clients: Vec<String>,
    },
    /// `<Hangup/>`.
    Hangup,
    /// `<Reject/>`.
    Reject {
        /// `reason` (`rejected` or `busy`), if given.
        reason: Option<String>,
    },
    /// `<Redirect>`: fetch more TwiML.
    Redirect {
        /// The URL.
        url: String,
        /// `method`, if given.
        method: Option<String>,
    },
    /// Any other verb (`Gather`, `Record`, `Enqueue`, …), kept by name.
    Other {
        /// The element name.
        name: String,
    },
}

impl Verb {
    /// The verb's element name (`Say`, `Connect`, …).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Verb::Say { .. } => "Say",
            Verb::Play { .. } => "Play",
            Verb::Pause { .. } => "Pause",
            Verb::Connect { .. } => "Connect",
            Verb::Start { .. } => "Start",
            Verb::Stop => "Stop",
            Verb::Dial { .. } => "Dial",
            Verb::Hangup => "Hangup",
            Verb::Reject { .. } => "Reject",
            Verb::Redirect { .. } => "Redirect",
            Verb::Other { name } => name,
        }
    }
}

/// A `<Stream>` noun.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamSpec {
    /// `url`: the WebSocket to open.
    pub url: String,
    /// `name`, if given.
    pub name: Option<String>,
    /// `track`, if given (unidirectional streams only).
    pub track: Option<String>,
    /// `statusCallback`, if given.
    pub status_callback: Option<String>,
    /// `<Parameter name value/>` pairs, in order: they arrive in `start.customParameters`.
    pub parameters: Vec<(String, String)>,
}

impl Twiml {
    /// The verb names, in order.
    #[must_use]
    pub fn verb_names(&self) -> Vec<String> {
        self.verbs.iter().map(|v| v.name().to_owned()).collect()
    }

    /// The first bidirectional stream: `<Connect><Stream>`.
    #[must_use]
    pub fn connect_stream(&self) -> Option<&StreamSpec> {
        self.verbs.iter().find_map(|verb| match verb {
            Verb::Connect { streams, .. } => streams.first(),
            _ => None,
        })
    }

    /// `true` if any verb is named `name`.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.verbs.iter().any(|v| v.name() == name)
    }
}

/// Parses a TwiML document.
///
/// # Errors
/// [`TwimlError::Syntax`] for XML that is not well-formed, [`TwimlError::NotResponse`] if the
/// root is not `<Response>`, [`TwimlError::MissingAttribute`] / [`TwimlError::Invalid`] for
/// a `<Stream>` without `url`, a `<Parameter>` without `name`, text directly inside
/// `<Response>` and similar.
pub fn parse_twiml(text: &str) -> Result<Twiml, TwimlError> {
    let root = parse_xml(text)?;
    if root.name != "Response" {
        return Err(TwimlError::NotResponse(root.name));
    }
    let mut verbs = Vec::new();
    for node in &root.children {
        match node {
            Node::Element(element) => verbs.push(verb(element)?),
            Node::Text(text) if !text.trim().is_empty() => {
                return Err(TwimlError::Invalid(
                    "text directly inside <Response>".to_owned(),
                ));
            }
            Node::Text(_) => {}
        }
    }
    Ok(Twiml { verbs })
}

fn verb(element: &Element) -> Result<Verb, TwimlError> {
    let attr = |name: &str| element.attr(name).map(str::to_owned);
    Ok(match element.name.as_str() {
        "Say" => Verb::Say {
            text: element.text(),
            voice: attr("voice"),
            language: attr("language"),
        },
        "Play" => Verb::Play {
            url: element.text(),
        },
        "Pause" => Verb::Pause {
            length: match element.attr("length") {
                None => 1,
                Some(length) => length.trim().parse().map_err(|_| {
                    TwimlError::Invalid(format!("<Pause length=\"{length}\"> is not a number"))
                })?,
            },
        },
        "Connect" => {
            let mut streams = Vec::new();
            let mut other_nouns = Vec::new();
            for child in element.elements() {
                if child.name == "Stream" {
                    streams.push(stream(child)?);
                } else {
                    other_nouns.push(child.name.clone());
                }
            }
            Verb::Connect {
                action: attr("action"),
                streams,
                other_nouns,
            }
        }
        "Start" => Verb::Start {
            streams: element
                .elements()
                .filter(|child| child.name == "Stream")
                .map(stream)
                .collect::<Result<_, _>>()?,
        },
        "Stop" => Verb::Stop,
        "Dial" => {
            let mut numbers = Vec::new();
            let mut sips = Vec::new();
            let mut clients = Vec::new();
            for child in element.elements() {
                match child.name.as_str() {
                    "Number" => numbers.push(child.text()),
                    "Sip" => sips.push(child.text()),
                    "Client" => clients.push(child.text()),
                    _ => {}
                }
            }
            let bare = element.own_text();
            if !bare.is_empty() {
                numbers.push(bare);
            }
            Verb::Dial {
                caller_id: attr("callerId"),
                timeout: match element.attr("timeout") {
                    None => None,
                    Some(t) => Some(t.trim().parse().map_err(|_| {
                        TwimlError::Invalid(format!("<Dial timeout=\"{t}\"> is not a number"))
                    })?),
                },
                action: attr("action"),
                numbers,
                sips,
                clients,
            }
        }
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject {
            reason: attr("reason"),
        },
        "Redirect" => Verb::Redirect {
            url: element.text(),
            method: attr("method"),
        },
        other => Verb::Other {
            name: other.to_owned(),
        },
    })
}

fn stream(element: &Element) -> Result<StreamSpec, TwimlError> {
    let url = element
        .attr("url")
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .ok_or(TwimlError::MissingAttribute {
            element: "Stream".to_owned(),
            attribute: "url",
        })?;
    let mut parameters = Vec::new();
    for child in element.elements() {
        if child.name != "Parameter" {
            return Err(TwimlError::Invalid(format!(
                "<{}> is not allowed inside <Stream>",
                child.name
            )));
        }
        let name = child.attr("name").ok_or(TwimlError::MissingAttribute {
            element: "Parameter".to_owned(),
            attribute: "name",
        })?;
        parameters.push((
            name.to_owned(),
            child.attr("value").unwrap_or_default().to_owned(),
        ));
    }
    Ok(StreamSpec {
        url: url.to_owned(),
        name: element.attr("name").map(str::to_owned),
        track: element.attr("track").map(str::to_owned),
        status_callback: element.attr("statusCallback").map(str::to_owned),
        parameters,
    })
}

// ---------------------------------------------------------------------------------------
// The XML subset
// ---------------------------------------------------------------------------------------

/// An XML element.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// All text inside, nested elements included, trimmed.
    fn text(&self) -> String {
        fn collect(element: &Element, out: &mut String) {
            for node in &element.children {
                match node {
                    Node::Text(text) => out.push_str(text),
                    Node::Element(child) => collect(child, out),
                }
            }
        }
        let mut out = String::new();
        collect(self, &mut out);
        out.trim().to_owned()
    }

    /// Only the element's own text nodes, trimmed.
    fn own_text(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            if let Node::Text(text) = node {
                out.push_str(text);
            }
        }
        out.trim().to_owned()
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn parse_xml(text: &str) -> Result<Element, TwimlError> {
    let mut parser = Parser {
        text: text.strip_prefix('\u{feff}').unwrap_or(text),
        pos: 0,
    };
    parser.skip_misc()?;
    if !parser.rest().starts_with('<') {
        return Err(parser.error("expected the root element"));
    }
    let root = parser.element(0)?;
    parser.skip_misc()?;
    if !parser.rest().is_empty() {
        return Err(parser.error("content after the root element"));
    }
    Ok(root)
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn error(&self, what: &str) -> TwimlError {
        TwimlError::Syntax {
            at: self.pos,
            what: what.to_owned(),
        }
    }

    fn skip_whitespace(&mut self) -> usize {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        let skipped = rest.len() - trimmed.len();
        self.pos += skipped;
        skipped
    }

    fn expect(&mut self, token: &str, what: &str) -> Result<(), TwimlError> {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// Skips `text` up to and including `end`.
    fn skip_past(&mut self, end: &str, what: &str) -> Result<&'a str, TwimlError> {
        let rest = self.rest();
        match rest.find(end) {
            Some(at) => {
                self.pos += at + end.len();
                Ok(rest.get(..at).unwrap_or_default())
            }
            None => Err(self.error(what)),
        }
    }

    /// Whitespace, comments and processing instructions (the XML declaration) between
    /// elements at the top level.
    fn skip_misc(&mut self) -> Result<(), TwimlError> {
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if rest.starts_with("<!--") {
                self.skip_comment()?;
            } else if rest.starts_with("<!") {
                return Err(self.error("DOCTYPE and other declarations are not allowed"));
            } else {
                return Ok(());
            }
        }
    }

    fn skip_comment(&mut self) -> Result<(), TwimlError> {
        self.pos += "<!--".len();
        let body = self.skip_past("-->", "unterminated comment")?;
        if body.contains("--") {
            return Err(self.error("`--` inside a comment"));
        }
        Ok(())
    }

    fn name(&mut self) -> Result<String, TwimlError> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if is_name_start(c) => {}
            _ => return Err(self.error("expected a name")),
        }
        let end = chars
            .find(|&(_, c)| !is_name_char(c))
            .map_or(rest.len(), |(i, _)| i);
        self.pos += end;
        Ok(rest.get(..end).unwrap_or_default().to_owned())
    }

    fn element(&mut self, depth: usize) -> Result<Element, TwimlError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("elements nested too deeply"));
        }
        self.expect("<", "expected `<`")?;
        let name = self.name()?;
        let mut attributes: Vec<(String, String)> = Vec::new();
        loop {
            let spaced = self.skip_whitespace() > 0;
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok(Element {
                    name,
                    attributes,
                    children: Vec::new(),
                });
            }
            if rest.starts_with('>') {
                self.pos += 1;
                break;
            }
            if !spaced {
                return Err(self.error("expected whitespace, `>` or `/>`"));
            }
            let key = self.name()?;
            self.skip_whitespace();
            self.expect("=", "expected `=` after an attribute name")?;
            self.skip_whitespace();
            let quote = match self.rest().chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => return Err(self.error("attribute values must be quoted")),
            };
            self.pos += 1;
            let start = self.pos;
            let raw = self.skip_past(&quote.to_string(), "unterminated attribute value")?;
            if raw.contains('<') {
                return Err(TwimlError::Syntax {
                    at: start,
                    what: "`<` inside an attribute value".to_owned(),
                });
            }
            let value = decode_entities(raw, start)?;
            if attributes.iter().any(|(k, _)| *k == key) {
                return Err(self.error("duplicate attribute"));
            }
            attributes.push((key, value));
        }
        let mut children = Vec::new();
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(self.error("unclosed element"));
            }
            if rest.starts_with("</") {
                self.pos += 2;
                let closing = self.name()?;
                self.skip_whitespace();
                self.expect(">", "expected `>` in a closing tag")?;
                if closing != name {
                    return Err(
                        self.error(&format!("closing tag </{closing}> does not match <{name}>"))
                    );
                }
                return Ok(Element {
                    name,
                    attributes,
                    children,
                });
            }
            if rest.starts_with("<!--") {
                self.skip_comment()?;
            } else if rest.starts_with("<![CDATA[") {
                self.pos += "<![CDATA[".len();
                let data = self.skip_past("]]>", "unterminated CDATA section")?;
                push_text(&mut children, data);
            } else if rest.starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if rest.starts_with("<!") {
                return Err(self.error("declarations are not allowed inside elements"));
            } else if rest.starts_with('<') {
                children.push(Node::Element(self.element(depth + 1)?));
            } else {
                let start = self.pos;
                let end = rest.find('<').unwrap_or(rest.len());
                self.pos += end;
                let raw = rest.get(..end).unwrap_or_default();
                if raw.contains("]]>") {
                    return Err(TwimlError::Syntax {
                        at: start,
                        what: "`]]>` in text".to_owned(),
                    });
                }
                push_text(&mut children, &decode_entities(raw, start)?);
            }
        }
    }
}

/// Appends text, merging with a preceding text node.
fn push_text(children: &mut Vec<Node>, text: &str) {
    if let Some(Node::Text(previous)) = children.last_mut() {
        previous.push_str(text);
    } else {
        children.push(Node::Text(text.to_owned()));
    }
}

/// Decodes `&lt; &gt; &amp; &quot; &apos; &#NN; &#xHH;`; anything else after `&` is an error.
fn decode_entities(raw: &str, offset: usize) -> Result<String, TwimlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let at = offset + (raw.len() - rest.len()) + amp;
        let bad = |what: &str| TwimlError::Syntax {
            at,
            what: what.to_owned(),
        };
        let semi = after
            .find(';')
            .filter(|&i| i <= 10)
            .ok_or_else(|| bad("`&` that does not start an entity"))?;
        let entity = after.get(..semi).unwrap_or_default();
        let decoded = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    return Err(bad(&format!("unknown entity &{entity};")));
                };
                code.and_then(char::from_u32)
                    .filter(|&c| c != '\0')
                    .ok_or_else(|| bad(&format!("invalid character reference &{entity};")))?
            }
        };
        out.push(decoded);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLVISOR_STYLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- answer -->
<Response>
  <Say voice="Google.en-US-Chirp3-HD-Aoede">Connecting you now.</Say>
  <Connect action='https://engine.example.com/after?x=1&amp;y=2'>
    <Stream url="wss://engine.example.com/twilio/media" statusCallback="https://engine.example.com/stream-status">
      <Parameter name="tenant_id" value="t_123"/>
      <Parameter value='v1.1700000000.abc-_' name = 'token' />
    </Stream>
  </Connect>
</Response>
"#;

    #[test]
    fn reads_a_connect_stream_answer() {
        let twiml = parse_twiml(CALLVISOR_STYLE).unwrap();
        assert_eq!(twiml.verb_names(), ["Say", "Connect"]);
        let stream = twiml.connect_stream().unwrap();
        assert_eq!(stream.url, "wss://engine.example.com/twilio/media");
        assert_eq!(
            stream.status_callback.as_deref(),
            Some("https://engine.example.com/stream-status")
        );
        assert_eq!(
            stream.parameters,
            [
                ("tenant_id".to_owned(), "t_123".to_owned()),
                ("token".to_owned(), "v1.1700000000.abc-_".to_owned())
            ]
        );
        let Verb::Connect { action, .. } = &twiml.verbs[1] else {
            panic!("expected Connect");
        };
        assert_eq!(
            action.as_deref(),
            Some("https://engine.example.com/after?x=1&y=2")
        );
        let Verb::Say { text, voice, .. } = &twiml.verbs[0] else {
            panic!("expected Say");
        };
        assert_eq!(text, "Connecting you now.");
        assert_eq!(voice.as_deref(), Some("Google.en-US-Chirp3-HD-Aoede"));
    }

    #[test]
    fn reads_hangup_reject_and_dial() {
        let hangup =
            parse_twiml("<Response><Say>Bye &amp; thanks</Say><Hangup/></Response>").unwrap();
        assert_eq!(hangup.verb_names(), ["Say", "Hangup"]);
        assert!(hangup.has("Hangup"));
        assert_eq!(
            hangup.verbs[0],
            Verb::Say {
                text: "Bye & thanks".to_owned(),
                voice: None,
                language: None
            }
        );
        let reject = parse_twiml("<Response><Reject reason=\"busy\" /></Response>").unwrap();
        assert_eq!(
            reject.verbs,
            [Verb::Reject {
                reason: Some("busy".to_owned())
            }]
        );
        let dial = parse_twiml(
            "<Response>\n\t<Dial callerId=\"+15550001111\" timeout=\"20\"><Number>+15552223333</Number><Sip>sip:agent@pbx</Sip></Dial></Response>",
        )
        .unwrap();
        assert_eq!(
            dial.verbs,
            [Verb::Dial {
                caller_id: Some("+15550001111".to_owned()),
                timeout: Some(20),
                action: None,
                numbers: vec!["+15552223333".to_owned()],
                sips: vec!["sip:agent@pbx".to_owned()],
                clients: vec![],
            }]
        );
        let bare = parse_twiml("<Response><Dial>+15554445555</Dial></Response>").unwrap();
        assert!(
            matches!(&bare.verbs[0], Verb::Dial { numbers, .. } if numbers == &["+15554445555"])
        );
        assert!(bare.connect_stream().is_none());
    }

    #[test]
    fn decodes_entities_and_cdata() {
        let twiml = parse_twiml(
            "<Response><Say>&lt;a&gt; &quot;b&quot; &apos;c&apos; &#233;&#x263A;<![CDATA[ <raw> & ]]></Say></Response>",
        )
        .unwrap();
        assert!(
            matches!(&twiml.verbs[0], Verb::Say { text, .. } if text == "<a> \"b\" 'c' é☺ <raw> &")
        );
    }

    #[test]
    fn empty_response_and_unknown_verbs_are_accepted() {
        assert_eq!(parse_twiml("<Response/>").unwrap().verbs, []);
        assert_eq!(
            parse_twiml("  <Response>\n</Response>  ").unwrap().verbs,
            []
        );
        let other = parse_twiml("<Response><Gather input=\"dtmf\"><Say>Press 1</Say></Gather><Pause length=\"2\"/></Response>").unwrap();
        assert_eq!(other.verb_names(), ["Gather", "Pause"]);
        assert_eq!(other.verbs[1], Verb::Pause { length: 2 });
    }

    #[test]
    fn rejects_malformed_xml() {
        for bad in [
            "",
            "just text",
            "<Response>",
            "<Response></Respons>",
            "<Response><Say>hi</Response>",
            "<Response><Say>a & b</Say></Response>",
            "<Response><Say>&nbsp;</Say></Response>",
            "<Response><Say>&#0;</Say></Response>",
            "<Response><Say>&#xZZ;</Say></Response>",
            "<Response><Say voice=alice>hi</Say></Response>",
            "<Response><Say voice=\"a\" voice=\"b\">hi</Say></Response>",
            "<Response><Say voice=\"a\"language=\"b\">hi</Say></Response>",
            "<Response><Say voice=\"a<b\">hi</Say></Response>",
            "<Response><Say voice=\"a>hi</Say></Response>",
            "<Response/><Response/>",
            "<Response/>trailing",
            "<!DOCTYPE x><Response/>",
            "<Response><!-- a -- b --></Response>",
            "<Response><![CDATA[x</Response>",
            "<1Response/>",
        ] {
            assert!(
                matches!(parse_twiml(bad), Err(TwimlError::Syntax { .. })),
                "{bad:?} gave {:?}",
                parse_twiml(bad)
            );
        }
    }

    #[test]
    fn rejects_invalid_twiml() {
        assert_eq!(
            parse_twiml("<Reponse/>"),
            Err(TwimlError::NotResponse("Reponse".to_owned()))
        );
        assert!(matches!(
            parse_twiml("<Response><Connect><Stream/></Connect></Response>"),
            Err(TwimlError::MissingAttribute {
                attribute: "url",
                ..
            })
        ));
        assert!(matches!(
            parse_twiml("<Response><Connect><Stream url=\" \"/></Connect></Response>"),
            Err(TwimlError::MissingAttribute {
                attribute: "url",
                ..
            })
        ));
        assert!(matches!(
            parse_twiml("<Response><Connect><Stream url=\"wss://x\"><Parameter value=\"v\"/></Stream></Connect></Response>"),
            Err(TwimlError::MissingAttribute { attribute: "name", .. })
        ));
        assert!(matches!(
            parse_twiml("<Response><Connect><Stream url=\"wss://x\"><Say>x</Say></Stream></Connect></Response>"),
            Err(TwimlError::Invalid(_))
        ));
        assert!(matches!(
            parse_twiml("<Response>loose text<Hangup/></Response>"),
            Err(TwimlError::Invalid(_))
        ));
        assert!(matches!(
            parse_twiml("<Response><Pause length=\"x\"/></Response>"),
            Err(TwimlError::Invalid(_))
        ));
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let deep = format!(
            "<Response>{}{}</Response>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(matches!(parse_twiml(&deep), Err(TwimlError::Syntax { .. })));
    }
}
