//! The flat XML documents of WeChat Pay V2: `<xml><key>value</key>…</xml>`.
//!
//! Decoding is deliberately narrow. A notify body comes from the internet, and the 2018 XXE in
//! WeChat Pay's own Java SDK leaked merchant keys through exactly this parser, so anything
//! beyond one root element with flat text children is refused, each case with its own error:
//! DOCTYPE, entity declarations and unknown entity references, processing instructions,
//! nesting, duplicate keys, oversize bodies, non-UTF-8 and trailing content. Nothing is ever
//! resolved, so no file or connection can be opened while parsing.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::Params;

/// The default cap on an XML body: 64 KiB, far above any real WeChat Pay document.
pub const DEFAULT_MAX_XML_BYTES: usize = 64 * 1024;

/// Why a body was refused. Positions are byte offsets into the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is larger than the cap.
    #[error("XML body is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size of the body.
        size: usize,
        /// The cap in force.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("XML body is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The XML declaration names an encoding other than UTF-8.
    #[error("XML declaration names encoding `{encoding}`; only UTF-8 is accepted")]
    UnsupportedEncoding {
        /// The declared encoding.
        encoding: String,
    },
    /// A `<!DOCTYPE …>`.
    #[error("XML contains a DOCTYPE at byte {position}; DTDs are refused")]
    Doctype {
        /// Where it starts.
        position: u64,
    },
    /// A DOCTYPE that declares entities (XXE, billion laughs).
    #[error("XML declares entities at byte {position}; entity declarations are refused")]
    EntityDeclaration {
        /// Where the DOCTYPE starts.
        position: u64,
    },
    /// A reference to an entity other than the five predefined ones or a character reference.
    #[error("XML references undeclared entity `&{name};` at byte {position}")]
    UnknownEntity {
        /// The entity name.
        name: String,
        /// Where the reference is.
        position: u64,
    },
    /// A processing instruction `<?target …?>` (the `<?xml …?>` declaration itself is fine).
    #[error("XML contains processing instruction `{target}` at byte {position}")]
    ProcessingInstruction {
        /// The instruction's target.
        target: String,
        /// Where it is.
        position: u64,
    },
    /// An element inside a field: only `<root><key>value</key></root>` is accepted.
    #[error(
        "element <{element}> inside <{parent}> at byte {position}; only flat documents are accepted"
    )]
    Nested {
        /// The nested element.
        element: String,
        /// The field it is inside.
        parent: String,
        /// Where it starts.
        position: u64,
    },
    /// An element name that is not a WeChat field name (ASCII letter or `_`, then letters,
    /// digits, `_`, `-`, `.`).
    #[error("invalid element name `{name}` at byte {position}")]
    InvalidName {
        /// The name as read.
        name: String,
        /// Where the element starts.
        position: u64,
    },
    /// The same key twice.
    #[error("duplicate field <{key}> at byte {position}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Where the second occurrence starts.
        position: u64,
    },
    /// Anything but whitespace or comments after the root element.
    #[error("content after the root element at byte {position}")]
    TrailingContent {
        /// Where it starts.
        position: u64,
    },
    /// No root element at all.
    #[error("XML body has no root element")]
    NoRoot,
    /// Anything else that is not well-formed or not of the expected shape.
    #[error("malformed XML at byte {position}: {reason}")]
    Malformed {
        /// Where the problem was found.
        position: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Decodes a flat XML document into an ordered map, with the default 64 KiB cap.
/// The root element's name is not checked (`<xml>` for API documents, `<root>` for the
/// decrypted refund notify).
pub fn decode(body: &[u8]) -> Result<Params, XmlError> {
    decode_with_limit(body, DEFAULT_MAX_XML_BYTES)
}

enum State {
    Prolog,
    InRoot,
    InField {
        key: String,
        value: String,
        start: u64,
    },
    AfterRoot,
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Whether `bytes` is a WeChat field name: an ASCII letter or `_`, then letters, digits,
/// `_`, `-`, `.`.
fn is_field_name(bytes: &[u8]) -> bool {
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        None => false,
    }
}

/// WeChat's field names are ASCII identifiers; anything else (empty names included, which
/// quick-xml lets through for `<\r>`) is refused rather than carried into a signed map.
fn element_name(bytes: &[u8], position: u64) -> Result<String, XmlError> {
    if is_field_name(bytes) {
        Ok(lossy(bytes))
    } else {
        Err(XmlError::InvalidName {
            name: lossy(bytes),
            position,
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes a flat XML document into an ordered map, refusing bodies over `max_bytes`.
pub fn decode_with_limit(body: &[u8], max_bytes: usize) -> Result<Params, XmlError> {
    if body.len() > max_bytes {
        return Err(XmlError::TooLarge {
            size: body.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    match decode_plain(text) {
        Some(params) => Ok(params),
        None => decode_events(text),
    }
}

/// The documents WeChat actually sends, read in one pass over the bytes: optional blanks,
/// `<root>`, then fields `<name>value</name>` (a value being plain text and CDATA
/// sections) separated by blanks, `</root>`, blanks. Blanks here are spaces, tabs and line
/// feeds; a plain value holds no `&`, `]]>` or control character but tab and line feed;
/// no value holds a carriage return (quick-xml keeps them as they are; this reader need
/// not agree on it).
///
/// `None` for anything else — a declaration, a comment, an entity or character
/// reference, attributes, an empty element, a duplicate field, an invalid name, any
/// malformation — which [`decode_events`] then reads, accepting or refusing it with its own
/// error: this reader accepts a strict subset of what that one accepts, and for that subset
/// yields the same fields, so it changes how fast a document is read, never whether it is
/// accepted or what it says.
fn decode_plain(text: &str) -> Option<Params> {
    let bytes = text.as_bytes();
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n');
    let skip_blanks = |mut at: usize| {
        while bytes.get(at).is_some_and(blank) {
            at += 1;
        }
        at
    };
    // `<name>` at `at`: the name and where the content starts.
    let start_tag = |at: usize| -> Option<(&str, usize)> {
        let rest = bytes.get(at..)?.strip_prefix(b"<")?;
        let end = rest.iter().position(|b| *b == b'>')?;
        let name = &rest[..end];
        is_field_name(name).then(|| (&text[at + 1..at + 1 + end], at + end + 2))
    };
    let mut at = skip_blanks(0);
    let (root, mut at_field) = start_tag(at)?;
    let mut params = Params::with_capacity(32);
    loop {
        at = skip_blanks(at_field);
        let rest = bytes.get(at..)?;
        if let Some(after) = rest.strip_prefix(b"</") {
            // The root's end, then nothing but blanks.
            let after = after.strip_prefix(root.as_bytes())?.strip_prefix(b">")?;
            return after.iter().all(blank).then_some(params);
        }
        let (key, content) = start_tag(at)?;
        let mut value = String::new();
        let mut at_value = content;
        loop {
            let rest = bytes.get(at_value..)?;
            if let Some(cdata) = rest.strip_prefix(b"<![CDATA[") {
                let end = cdata.windows(3).position(|w| w == b"]]>")?;
                let section = &cdata[..end];
                if section
                    .iter()
                    .any(|b| b.is_ascii_control() && !matches!(b, b'\t' | b'\n'))
                {
                    return None;
                }
                let from = at_value + b"<![CDATA[".len();
                value.push_str(&text[from..from + end]);
                at_value = from + end + 3;
            } else if let Some(after) = rest.strip_prefix(b"</") {
                let after = after.strip_prefix(key.as_bytes())?.strip_prefix(b">")?;
                at_field = bytes.len() - after.len();
                break;
            } else {
                // A `<` starting anything but a CDATA section or the end tag (an element
                // inside the field, a comment) is for the full reader.
                let end = rest
                    .iter()
                    .position(|b| *b == b'<')
                    .filter(|end| *end > 0)?;
                let plain = &rest[..end];
                if plain
                    .iter()
                    .any(|b| *b == b'&' || (b.is_ascii_control() && !matches!(b, b'\t' | b'\n')))
                    || plain.windows(3).any(|w| w == b"]]>")
                {
                    return None;
                }
                value.push_str(&text[at_value..at_value + end]);
                at_value += end;
            }
        }
        match params.entry(key.to_owned()) {
            indexmap::map::Entry::Occupied(_) => return None,
            indexmap::map::Entry::Vacant(entry) => {
                entry.insert(value);
            }
        }
    }
}

/// The full reader behind [`decode_with_limit`]: every document, each refusal with its own
/// error.
fn decode_events(text: &str) -> Result<Params, XmlError> {
    let mut reader = Reader::from_str(text);
    // Room for a typical notify without rehashing.
    let mut params = Params::with_capacity(32);
    let mut state = State::Prolog;
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError::Malformed {
            position: reader.error_position(),
            reason: e.to_string(),
        })?;
        match event {
            Event::DocType(doctype) => {
                let declares_entities = doctype
                    .windows(b"<!ENTITY".len())
                    .any(|w| w.eq_ignore_ascii_case(b"<!ENTITY"));
                return Err(if declares_entities {
                    XmlError::EntityDeclaration { position }
                } else {
                    XmlError::Doctype { position }
                });
            }
            Event::PI(pi) => {
                return Err(XmlError::ProcessingInstruction {
                    target: lossy(pi.target()),
                    position,
                });
            }
            Event::Comment(_) => {}
            Event::Decl(decl) => {
                if !matches!(state, State::Prolog) || position != 0 {
                    return Err(XmlError::Malformed {
                        position,
                        reason: "XML declaration not at the start of the document".into(),
                    });
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| XmlError::Malformed {
                        position,
                        reason: e.to_string(),
                    })?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8")
                        && !encoding.eq_ignore_ascii_case(b"utf8")
                    {
                        return Err(XmlError::UnsupportedEncoding {
                            encoding: lossy(&encoding),
                        });
                    }
                }
            }
            Event::Eof => {
                return match state {
                    State::AfterRoot => Ok(params),
                    State::Prolog => Err(XmlError::NoRoot),
                    State::InRoot | State::InField { .. } => Err(XmlError::Malformed {
                        position,
                        reason: "document ends before the root element is closed".into(),
                    }),
                };
            }
            event => {
                state = step(state, event, &mut params, position)?;
            }
        }
    }
}

/// One structural event (start, end, empty, text, CDATA, reference) in the given state.
fn step(
    state: State,
    event: Event<'_>,
    params: &mut Params,
    position: u64,
) -> Result<State, XmlError> {
    let malformed = |reason: &str| XmlError::Malformed {
        position,
        reason: reason.to_owned(),
    };
    let self_closing = matches!(event, Event::Empty(_));
    match state {
        State::Prolog => match event {
            Event::Start(root) | Event::Empty(root) => {
                element_name(root.name().as_ref(), position)?;
                Ok(if self_closing {
                    State::AfterRoot
                } else {
                    State::InRoot
                })
            }
            Event::Text(t) if is_blank(&t) => Ok(State::Prolog),
            _ => Err(malformed("content before the root element")),
        },
        State::InRoot => match event {
            Event::Start(start) | Event::Empty(start) => {
                let key = element_name(start.name().as_ref(), position)?;
                if self_closing {
                    insert_unique(params, key, String::new(), position)?;
                    Ok(State::InRoot)
                } else {
                    Ok(State::InField {
                        key,
                        value: String::new(),
                        start: position,
                    })
                }
            }
            Event::End(_) => Ok(State::AfterRoot),
            Event::Text(t) if is_blank(&t) => Ok(State::InRoot),
            _ => Err(malformed("text directly inside the root element")),
        },
        State::InField {
            key,
            mut value,
            start,
        } => match event {
            Event::Text(text) => {
                value.push_str(&text.decode().map_err(|e| malformed(&e.to_string()))?);
                Ok(State::InField { key, value, start })
            }
            Event::CData(cdata) => {
                value.push_str(&cdata.decode().map_err(|e| malformed(&e.to_string()))?);
                Ok(State::InField { key, value, start })
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|e| malformed(&e.to_string()))?;
                if let Some(ch) = reference
                    .resolve_char_ref()
                    .map_err(|e| malformed(&e.to_string()))?
                {
                    value.push(ch);
                } else if let Some(resolved) = quick_xml::escape::resolve_predefined_entity(&name) {
                    value.push_str(resolved);
                } else {
                    return Err(XmlError::UnknownEntity {
                        name: name.into_owned(),
                        position,
                    });
                }
                Ok(State::InField { key, value, start })
            }
            Event::Start(nested) | Event::Empty(nested) => Err(XmlError::Nested {
                element: lossy(nested.name().as_ref()),
                parent: key,
                position,
            }),
            Event::End(_) => {
                insert_unique(params, key, value, start)?;
                Ok(State::InRoot)
            }
            _ => Err(malformed("unexpected content inside a field")),
        },
        State::AfterRoot => match event {
            Event::Text(t) if is_blank(&t) => Ok(State::AfterRoot),
            _ => Err(XmlError::TrailingContent { position }),
        },
    }
}

/// Adds a field, refusing a key seen before (a second `total_fee` must not override the
/// signed one, nor the other way round).
fn insert_unique(
    params: &mut Params,
    key: String,
    value: String,
    position: u64,
) -> Result<(), XmlError> {
    match params.entry(key) {
        indexmap::map::Entry::Occupied(entry) => Err(XmlError::DuplicateKey {
            key: entry.key().clone(),
            position,
        }),
        indexmap::map::Entry::Vacant(entry) => {
            entry.insert(value);
            Ok(())
        }
    }
}

/// Values made only of these characters are written bare; anything else goes in CDATA.
fn is_bare_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/@+=,|*%".contains(&b))
}

/// Encodes a flat map as `<xml>…</xml>`. See [`encode_with_root`].
pub fn encode(params: &Params) -> String {
    encode_with_root("xml", params)
}

/// Encodes a flat map as `<root><key>value</key>…</root>`, in the map's order.
///
/// Plain tokens (digits, letters and a few URL-safe characters) are written bare; every other
/// value is wrapped in CDATA, and a `]]>` inside a value is split across two CDATA sections so
/// it survives intact. Keys must be XML names (WeChat's field names always are).
pub fn encode_with_root(root: &str, params: &Params) -> String {
    let mut out = String::with_capacity(
        params
            .iter()
            .map(|(k, v)| 2 * k.len() + v.len() + 17)
            .sum::<usize>()
            + 2 * root.len()
            + 5,
    );
    out.push('<');
    out.push_str(root);
    out.push('>');
    for (key, value) in params {
        debug_assert!(
            !key.is_empty() && !key.contains(['<', '>', '&', ' ', '/']),
            "`{key}` is not an XML name"
        );
        out.push('<');
        out.push_str(key);
        out.push('>');
        if value.is_empty() || is_bare_safe(value) {
            out.push_str(value);
        } else {
            push_cdata(&mut out, value);
        }
        out.push_str("</");
        out.push_str(key);
        out.push('>');
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

/// Writes `value` as CDATA; a `]]>` inside it is split across two sections
/// (`]]` + `]]><![CDATA[` + `>`), so every value survives intact.
pub(crate) fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of documents, well-formed and not: the plain reader must accept only what the
    /// full reader accepts, with the same fields.
    const FRAGMENTS: &[&str] = &[
        "<xml>",
        "</xml>",
        "<a>",
        "</a>",
        "<b_1>",
        "</b_1>",
        "<![CDATA[",
        "]]>",
        "x",
        "中文",
        " ",
        "\n",
        "\t",
        "\r",
        "&amp;",
        "&#x4E2D;",
        "<!--c-->",
        "<a/>",
        ">",
        "]]",
        "<",
        "</",
        "<?xml version=\"1.0\"?>",
        "<a x=\"1\">",
        "<1>",
        "\u{c}",
        "<!DOCTYPE x>",
    ];

    fn fragments() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)
            .prop_map(|pieces| pieces.concat())
    }

    /// A document as WeChat writes it, with one fragment put somewhere into it.
    fn mutated() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(("[a-z_]{1,3}", "[ -~中]{0,8}"), 0..6),
            prop::sample::select(FRAGMENTS),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(fields, fragment, at)| {
                let mut params = Params::new();
                for (key, value) in fields {
                    params.insert(key, value);
                }
                let mut text = encode(&params);
                let mut at = at.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, fragment);
                text
            })
    }

    proptest! {
        #[test]
        fn the_plain_reader_accepts_only_what_the_full_reader_reads_alike(
            text in prop_oneof![fragments(), mutated()]
        ) {
            if let Some(params) = decode_plain(&text) {
                prop_assert_eq!(Ok(params), decode_events(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn documents_as_wechat_writes_them_take_the_plain_reader() {
        let notify = include_str!("../benches/payment_notify.xml");
        let plain = decode_plain(notify).expect("the plain reader reads a notify");
        assert_eq!(Ok(plain), decode_events(notify));
        let mut params = Params::new();
        params.insert("a".into(), "x]]>y<z>&".into());
        params.insert("b".into(), String::new());
        let text = encode(&params);
        assert_eq!(decode_plain(&text), Some(params));
        // Refusals are the full reader's, with its errors.
        for refused in [
            "<xml><a>1</a><a>2</a></xml>",
            "<xml><a>&bad;</a></xml>",
            "<xml>",
        ] {
            assert_eq!(decode_plain(refused), None, "{refused}");
            assert!(decode(refused.as_bytes()).is_err(), "{refused}");
        }
    }

    #[test]
    fn decodes_a_wechat_document() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <return_code><![CDATA[SUCCESS]]></return_code>\n  <total_fee>1</total_fee>\n  <attach>a &amp; b &#x4E2D;</attach><empty/>\n</xml>\n";
        let params = decode(body.as_bytes()).unwrap();
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("return_code", "SUCCESS"),
                ("total_fee", "1"),
                ("attach", "a & b 中"),
                ("empty", "")
            ]
        );
    }

    #[test]
    fn cdata_end_marker_survives_encoding() {
        let mut params = Params::new();
        params.insert("a".into(), "x]]>y<z>&".into());
        params.insert("b".into(), "中文".into());
        params.insert("c".into(), "123".into());
        let xml = encode(&params);
        assert_eq!(decode(xml.as_bytes()).unwrap(), params);
        assert!(xml.contains("<c>123</c>"));
    }
}
