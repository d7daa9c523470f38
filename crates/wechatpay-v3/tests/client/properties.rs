//! Properties: canonical messages, the Authorization header, signatures over any body, and
//! AEAD round trips with any change detected.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use wechatpay_v3::aead::{self, AeadError};
use wechatpay_v3::{ApiV3Key, Authorization, request_message, response_message};

use crate::support::*;

/// Text without line breaks, as methods, URLs, timestamps and nonces are.
fn line() -> impl Strategy<Value = String> {
    "[^\n]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn request_messages_split_back_into_their_parts(
        method in "[A-Z]{3,6}", path in line(), timestamp in "[0-9]{1,12}", nonce in line(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let message = request_message(&method, &path, &timestamp, &nonce, &body);
        prop_assert!(message.ends_with(b"\n"));
        let mut expected = format!("{method}\n{path}\n{timestamp}\n{nonce}\n").into_bytes();
        expected.extend_from_slice(&body);
        expected.push(b'\n');
        prop_assert_eq!(&message, &expected);
        // The first four lines are exactly the four parts; the rest is the body.
        let mut parts = message.splitn(5, |b| *b == b'\n');
        prop_assert_eq!(parts.next().unwrap(), method.as_bytes());
        prop_assert_eq!(parts.next().unwrap(), path.as_bytes());
        prop_assert_eq!(parts.next().unwrap(), timestamp.as_bytes());
        prop_assert_eq!(parts.next().unwrap(), nonce.as_bytes());
        let rest = parts.next().unwrap();
        prop_assert_eq!(&rest[..rest.len() - 1], &body[..]);
    }

    #[test]
    fn response_messages_are_three_lines(timestamp in "[0-9]{1,12}", nonce in line(), body in ".{0,200}") {
        let message = response_message(&timestamp, &nonce, body.as_bytes());
        prop_assert_eq!(message, format!("{timestamp}\n{nonce}\n{body}\n").into_bytes());
    }

    #[test]
    fn signatures_cover_every_byte_of_the_body(
        body in proptest::collection::vec(any::<u8>(), 1..120), index in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let key = merchant_key();
        let auth = Authorization::sign(&key, MCH_ID, MERCHANT_SERIAL, "POST", "/v3/refund/domestic/refunds", "1700000000", "N", &body).unwrap();
        let parsed = Authorization::parse(&auth.to_header_value().unwrap()).unwrap();
        prop_assert_eq!(&parsed, &auth);
        let public = key.public_key();
        prop_assert!(parsed.verify(&public, "POST", "/v3/refund/domestic/refunds", &body).is_ok());
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        prop_assert!(parsed.verify(&public, "POST", "/v3/refund/domestic/refunds", &changed).is_err());
    }

    #[test]
    fn authorization_headers_round_trip(
        mchid in "[0-9]{1,12}", nonce in "[0-9A-Za-z]{1,32}", timestamp in "[0-9]{1,12}",
        serial in "[0-9A-F]{1,40}", signature in "[A-Za-z0-9+/=]{1,344}",
    ) {
        let auth = Authorization { mchid, nonce_str: nonce, timestamp, serial_no: serial, signature };
        prop_assert_eq!(Authorization::parse(&auth.to_header_value().unwrap()).unwrap(), auth);
    }

    #[test]
    fn aead_round_trips_and_detects_any_change(
        key in proptest::collection::vec(any::<u8>(), 32), nonce in "[0-9A-Za-z]{12}", aad in "[ -~]{0,30}",
        plaintext in proptest::collection::vec(any::<u8>(), 0..300), index in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let key = ApiV3Key::from_bytes(&key).unwrap();
        let sealed = aead::encrypt(&key, &nonce, &aad, &plaintext).unwrap();
        prop_assert_eq!(aead::decrypt(&key, &nonce, &aad, &sealed).unwrap(), plaintext);
        let mut bytes = BASE64.decode(&sealed).unwrap();
        let at = index.index(bytes.len());
        bytes[at] ^= flip;
        prop_assert_eq!(aead::decrypt(&key, &nonce, &aad, &BASE64.encode(&bytes)), Err(AeadError::Authentication));
        let other_aad = format!("{aad}x");
        prop_assert_eq!(aead::decrypt(&key, &nonce, &other_aad, &sealed), Err(AeadError::Authentication));
        let mut other_nonce = nonce.clone().into_bytes();
        other_nonce[at % 12] ^= 1;
        let other_nonce = String::from_utf8(other_nonce).unwrap();
        prop_assert_eq!(aead::decrypt(&key, &other_nonce, &aad, &sealed), Err(AeadError::Authentication));
    }
}
