//! Arbitrary bytes through the strict XML decoder: no panic, and whatever it accepts
//! re-encodes to a document that decodes to the same map.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_v2::xml::{decode, encode};

fuzz_target!(|body: &[u8]| {
    if let Ok(params) = decode(body) {
        let again = decode(encode(&params).as_bytes()).expect("re-encoded document decodes");
        assert_eq!(again, params);
    }
});
