//! Properties of signing, XML and money over generated inputs.

use proptest::prelude::*;
use wechatpay_v2::xml::{decode, encode};
use wechatpay_v2::{ApiKey, Fen, Params, SignType, sign_params, verify};

fn key_strategy() -> impl Strategy<Value = String> {
    "[0-9A-Za-z]{32}"
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,15}"
}

/// Any text XML 1.0 can carry (no control characters other than tab, LF, CR).
fn field_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            any::<char>().prop_filter("XML char", |c| {
                !c.is_control() || matches!(c, '\t' | '\n' | '\r')
            }),
            Just(']'),
            Just('>'),
            Just('<'),
            Just('&'),
            Just('中'),
        ],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn document() -> impl Strategy<Value = Params> {
    proptest::collection::vec((field_name(), field_value()), 1..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .filter(|(k, _)| k != "sign" && k != "sign_type")
            .collect()
    })
}

fn sign_type() -> impl Strategy<Value = SignType> {
    prop_oneof![Just(SignType::Md5), Just(SignType::HmacSha256)]
}

proptest! {
    #[test]
    fn signed_documents_verify(mut doc in document(), st in sign_type(), key in key_strategy()) {
        let key = ApiKey::new(key);
        sign_params(&mut doc, st, &key);
        prop_assert_eq!(verify(&doc, &key), Ok(st));
        // And after an XML round trip, as received from the wire.
        let received = decode(encode(&doc).as_bytes()).unwrap();
        prop_assert_eq!(verify(&received, &key), Ok(st));
    }

    #[test]
    fn any_single_byte_change_breaks_the_signature(
        mut doc in document(),
        st in sign_type(),
        key in key_strategy(),
        pick in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = ApiKey::new(key);
        sign_params(&mut doc, st, &key);
        let xml = encode(&doc);
        // Change one byte inside a value (keys and markup changes make other documents).
        let mut bytes = xml.into_bytes();
        let candidates: Vec<usize> = {
            let mut positions = Vec::new();
            let text = String::from_utf8(bytes.clone()).unwrap();
            for (k, v) in &doc {
                if k == "sign" || v.is_empty() {
                    continue;
                }
                let open = format!("<{k}>");
                let start = text.find(&open).unwrap() + open.len();
                let end = text[start..].find(&format!("</{k}>")).unwrap() + start;
                positions.extend(start..end);
            }
            positions
        };
        prop_assume!(!candidates.is_empty());
        let at = candidates[pick.index(candidates.len())];
        bytes[at] ^= flip;
        // Either the document no longer parses or it no longer verifies.
        if let Ok(tampered) = decode(&bytes) {
            prop_assert!(verify(&tampered, &key).is_err());
        }
    }

    #[test]
    fn changing_the_signature_itself_fails(
        mut doc in document(), st in sign_type(), key in key_strategy(),
        pick in any::<prop::sample::Index>(), replacement in "[0-9A-F]",
    ) {
        let key = ApiKey::new(key);
        sign_params(&mut doc, st, &key);
        let mut signature: Vec<char> = doc["sign"].chars().collect();
        let at = pick.index(signature.len());
        let new = replacement.chars().next().unwrap();
        prop_assume!(signature[at] != new);
        signature[at] = new;
        doc.insert("sign".into(), signature.into_iter().collect());
        prop_assert!(verify(&doc, &key).is_err());
    }

    #[test]
    fn xml_round_trips(doc in document()) {
        let xml = encode(&doc);
        prop_assert_eq!(decode(xml.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn fen_format_then_parse_is_identity(fen in 0i64..=i64::MAX) {
        let fen = Fen::new(fen);
        prop_assert_eq!(Fen::from_yuan_str(&fen.to_string()), Ok(fen));
        prop_assert_eq!(Fen::from_fen_str(&fen.to_fen_string()), Ok(fen));
    }

    #[test]
    fn yuan_text_parses_to_the_digits(int in 0u64..=92_233_720_368_547_757, cents in 0u8..100) {
        let text = format!("{int}.{cents:02}");
        let fen = Fen::from_yuan_str(&text).unwrap();
        prop_assert_eq!(fen.get(), int as i64 * 100 + i64::from(cents));
        prop_assert_eq!(fen.to_string(), text);
    }

    #[test]
    fn json_numbers_with_two_decimals_parse_exactly(int in 0u64..10_000_000, cents in 0u8..100) {
        let value: serde_json::Value = serde_json::from_str(&format!("{int}.{cents:02}")).unwrap();
        prop_assert_eq!(Fen::from_yuan_json(&value).unwrap().get(), int as i64 * 100 + i64::from(cents));
    }
}
