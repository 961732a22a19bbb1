//! A small TwiML reader: the verbs a voice webhook answers with, as the simulated caller
//! needs them.
//!
//! `roxmltree` reads the XML, and is strict the way Twilio is (error 12100): mismatched or
//! unclosed tags, duplicate attributes, unknown entities, a bare `&` or `<`, a DOCTYPE and
//! content after the root are all refused. This module only maps the tree to verbs, strict
//! where TwiML is (the root must be `<Response>`, `<Stream>` needs a `url` and holds only
//! `<Parameter name>`s, no loose text between verbs, numeric `length`/`timeout`) and
//! lenient about the rest: unknown verbs are kept as [`Verb::Other`], unknown attributes are
//! ignored.

use roxmltree::{Document, Node};
use serde::Serialize;

/// Deepest element nesting accepted (TwiML needs 4: Response/Connect/Stream/Parameter).
const MAX_DEPTH: usize = 32;

/// Why a TwiML document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// Not well-formed XML, or nested too deeply.
    #[error("XML error: {0}")]
    Syntax(#[from] SyntaxError),
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

/// Why a document is not XML the stand-in reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// The XML parser refused it (the message names row and column).
    #[error(transparent)]
    Xml(#[from] roxmltree::Error),
    /// Elements nested deeper than [`MAX_DEPTH`] at this `row:column`.
    #[error("elements nested too deeply at {0}")]
    TooDeep(roxmltree::TextPos),
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
    let document = Document::parse(text).map_err(SyntaxError::Xml)?;
    if let Some(deep) = document
        .descendants()
        .find(|node| node.is_element() && node.ancestors().count() > MAX_DEPTH)
    {
        return Err(SyntaxError::TooDeep(document.text_pos_at(deep.range().start)).into());
    }
    let root = document.root_element();
    if root.tag_name().name() != "Response" {
        return Err(TwimlError::NotResponse(root.tag_name().name().to_owned()));
    }
    if !own_text(root).is_empty() {
        return Err(TwimlError::Invalid(
            "text directly inside <Response>".to_owned(),
        ));
    }
    let verbs = elements(root).map(verb).collect::<Result<_, _>>()?;
    Ok(Twiml { verbs })
}

/// The element children of `node`.
fn elements<'a, 'input>(node: Node<'a, 'input>) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(Node::is_element)
}

/// The element's name without a namespace prefix.
fn name<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

/// All text inside, nested elements included (CDATA is text), trimmed.
fn all_text(node: Node<'_, '_>) -> String {
    let text: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect();
    text.trim().to_owned()
}

/// Only the element's own text nodes, trimmed.
fn own_text(node: Node<'_, '_>) -> String {
    let text: String = node
        .children()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect();
    text.trim().to_owned()
}

fn verb(element: Node<'_, '_>) -> Result<Verb, TwimlError> {
    let attr = |key: &str| element.attribute(key).map(str::to_owned);
    Ok(match name(element) {
        "Say" => Verb::Say {
            text: all_text(element),
            voice: attr("voice"),
            language: attr("language"),
        },
        "Play" => Verb::Play {
            url: all_text(element),
        },
        "Pause" => Verb::Pause {
            length: match element.attribute("length") {
                None => 1,
                Some(length) => length.trim().parse().map_err(|_| {
                    TwimlError::Invalid(format!("<Pause length=\"{length}\"> is not a number"))
                })?,
            },
        },
        "Connect" => {
            let mut streams = Vec::new();
            let mut other_nouns = Vec::new();
            for child in elements(element) {
                if name(child) == "Stream" {
                    streams.push(stream(child)?);
                } else {
                    other_nouns.push(name(child).to_owned());
                }
            }
            Verb::Connect {
                action: attr("action"),
                streams,
                other_nouns,
            }
        }
        "Start" => Verb::Start {
            streams: elements(element)
                .filter(|child| name(*child) == "Stream")
                .map(stream)
                .collect::<Result<_, _>>()?,
        },
        "Stop" => Verb::Stop,
        "Dial" => {
            let mut numbers = Vec::new();
            let mut sips = Vec::new();
            let mut clients = Vec::new();
            for child in elements(element) {
                match name(child) {
                    "Number" => numbers.push(all_text(child)),
                    "Sip" => sips.push(all_text(child)),
                    "Client" => clients.push(all_text(child)),
                    _ => {}
                }
            }
            let bare = own_text(element);
            if !bare.is_empty() {
                numbers.push(bare);
            }
            Verb::Dial {
                caller_id: attr("callerId"),
                timeout: match element.attribute("timeout") {
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
            url: all_text(element),
            method: attr("method"),
        },
        other => Verb::Other {
            name: other.to_owned(),
        },
    })
}

fn stream(element: Node<'_, '_>) -> Result<StreamSpec, TwimlError> {
    let url = element
        .attribute("url")
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .ok_or(TwimlError::MissingAttribute {
            element: "Stream".to_owned(),
            attribute: "url",
        })?;
    let mut parameters = Vec::new();
    for child in elements(element) {
        if name(child) != "Parameter" {
            return Err(TwimlError::Invalid(format!(
                "<{}> is not allowed inside <Stream>",
                name(child)
            )));
        }
        let key = child
            .attribute("name")
            .ok_or(TwimlError::MissingAttribute {
                element: "Parameter".to_owned(),
                attribute: "name",
            })?;
        parameters.push((
            key.to_owned(),
            child.attribute("value").unwrap_or_default().to_owned(),
        ));
    }
    Ok(StreamSpec {
        url: url.to_owned(),
        name: element.attribute("name").map(str::to_owned),
        track: element.attribute("track").map(str::to_owned),
        status_callback: element.attribute("statusCallback").map(str::to_owned),
        parameters,
    })
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
    fn syntax_errors_say_where_and_keep_the_parser_error() {
        let err = parse_twiml("<Response>\n  <Say>hi</Response>").unwrap_err();
        assert!(err.to_string().contains("2:"), "{err}");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            matches!(&err, TwimlError::Syntax(SyntaxError::Xml(_))),
            "{err:?}"
        );
        assert!(source.is_some_and(|s| s.contains("2:")), "{err:?}");
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        assert_eq!(
            parse_twiml("\u{feff}<Response><Hangup/></Response>")
                .unwrap()
                .verb_names(),
            ["Hangup"]
        );
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
