//! Every hostile XML case is refused with its own error, quickly, without resolving anything.

use std::time::{Duration, Instant};

use wechatpay_v2::XmlError;
use wechatpay_v2::xml::{decode, decode_with_limit};

fn refuse(body: &[u8]) -> XmlError {
    let start = Instant::now();
    let error = decode(body).expect_err("hostile body must be refused");
    // Generous bound: a refusal is a scan of at most 64 KiB, never an expansion or a fetch.
    assert!(start.elapsed() < Duration::from_secs(1));
    error
}

#[test]
fn plain_doctype_is_refused() {
    let e = refuse(b"<!DOCTYPE xml><xml><a>1</a></xml>");
    assert!(matches!(e, XmlError::Doctype { position: 0 }), "{e:?}");
}

#[test]
fn xxe_external_entity_is_refused_without_reading_the_file() {
    let body = br#"<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>&xxe;</return_code></xml>"#;
    let e = refuse(body);
    assert!(matches!(e, XmlError::EntityDeclaration { .. }), "{e:?}");
}

#[test]
fn xxe_over_the_network_is_refused() {
    let body = br#"<!DOCTYPE foo [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;]><xml/>"#;
    let e = refuse(body);
    assert!(matches!(e, XmlError::EntityDeclaration { .. }), "{e:?}");
}

#[test]
fn billion_laughs_is_refused() {
    let body = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml><a>&lol9;</a></xml>"#;
    let e = refuse(body);
    assert!(matches!(e, XmlError::EntityDeclaration { .. }), "{e:?}");
}

#[test]
fn undeclared_entity_reference_is_refused() {
    let e = refuse(b"<xml><a>&xxe;</a></xml>");
    assert!(
        matches!(&e, XmlError::UnknownEntity { name, .. } if name == "xxe"),
        "{e:?}"
    );
}

#[test]
fn processing_instruction_is_refused() {
    let e = refuse(br#"<?xml version="1.0"?><?xml-stylesheet href="http://x/s.xsl"?><xml/>"#);
    assert!(
        matches!(&e, XmlError::ProcessingInstruction { target, .. } if target == "xml-stylesheet"),
        "{e:?}"
    );
    let inside = refuse(b"<xml><a>1</a><?php evil() ?></xml>");
    assert!(
        matches!(inside, XmlError::ProcessingInstruction { .. }),
        "{inside:?}"
    );
}

#[test]
fn nesting_is_refused() {
    let e = refuse(b"<xml><a><b>1</b></a></xml>");
    assert!(
        matches!(&e, XmlError::Nested { element, parent, .. } if element == "b" && parent == "a"),
        "{e:?}"
    );
    let deep = format!("<xml>{}{}</xml>", "<a>".repeat(5_000), "</a>".repeat(5_000));
    assert!(matches!(refuse(deep.as_bytes()), XmlError::Nested { .. }));
}

#[test]
fn duplicate_keys_are_refused() {
    // A second total_fee could otherwise override the signed one in a naive map.
    let e = refuse(b"<xml><total_fee>1</total_fee><total_fee>200000</total_fee></xml>");
    assert!(
        matches!(&e, XmlError::DuplicateKey { key, .. } if key == "total_fee"),
        "{e:?}"
    );
}

#[test]
fn oversize_body_is_refused_before_parsing() {
    let big = format!("<xml><a>{}</a></xml>", "x".repeat(70 * 1024));
    let e = refuse(big.as_bytes());
    assert!(
        matches!(e, XmlError::TooLarge { limit: 65536, .. }),
        "{e:?}"
    );
    assert!(matches!(
        decode_with_limit(b"<xml><a>1</a></xml>", 10),
        Err(XmlError::TooLarge {
            size: 19,
            limit: 10
        })
    ));
}

#[test]
fn non_utf8_is_refused() {
    // "中" in GBK.
    let e = refuse(b"<xml><body>\xd6\xd0</body></xml>");
    assert!(matches!(e, XmlError::NotUtf8 { offset: 11 }), "{e:?}");
    let declared = refuse(br#"<?xml version="1.0" encoding="GBK"?><xml/>"#);
    assert!(
        matches!(&declared, XmlError::UnsupportedEncoding { encoding } if encoding == "GBK"),
        "{declared:?}"
    );
}

#[test]
fn trailing_content_is_refused() {
    for body in [
        &b"<xml><a>1</a></xml><xml><a>2</a></xml>"[..],
        b"<xml><a>1</a></xml>garbage",
        b"<xml/><b/>",
    ] {
        let e = refuse(body);
        assert!(matches!(e, XmlError::TrailingContent { .. }), "{e:?}");
    }
    // Whitespace and comments after the root are harmless.
    assert!(decode(b"<xml><a>1</a></xml>\n<!-- c -->\n").is_ok());
}

#[test]
fn other_malformations_are_reported_as_malformed() {
    for body in [
        &b"<xml><a>1</b></xml>"[..],
        b"<xml><a>1</a>",
        b"text<xml/>",
        b"<xml>text</xml>",
        b"<xml><a>1 & 2</a></xml>",
    ] {
        let e = refuse(body);
        assert!(matches!(e, XmlError::Malformed { .. }), "{e:?}");
    }
    assert_eq!(decode(b"   "), Err(XmlError::NoRoot));
    assert_eq!(decode(b""), Err(XmlError::NoRoot));
}

#[test]
fn invalid_element_names_are_refused() {
    // Found by fuzzing: quick-xml reads `<\r>` as an element with an empty name.
    for body in [
        &b"<\r>\r\r<\r>\r\r\r\r</>\r\r\r\r\r</>\r"[..],
        b"<xml><\r>1</></xml>",
        b"<xml><1a>1</1a></xml>",
        "<xml><金额>1</金额></xml>".as_bytes(),
    ] {
        let e = refuse(body);
        assert!(matches!(e, XmlError::InvalidName { .. }), "{e:?}");
    }
    assert!(decode(b"<xml><coupon_fee_0>1</coupon_fee_0><a.b-c>2</a.b-c></xml>").is_ok());
}
