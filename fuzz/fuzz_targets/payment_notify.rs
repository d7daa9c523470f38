//! Feeds arbitrary bytes to the payment notify parser, as an attacker posting to notify_url
//! can. It must never panic, and a body it accepts must really be signed with the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_v2::{ApiKey, UnverifiedNotify, parse_payment_notify, verify};

fuzz_target!(|body: &[u8]| {
    let key = ApiKey::new("192006250b4c09247ec02edce69f6a2d");
    if let Ok(notify) = parse_payment_notify(body, &key) {
        assert!(verify(&notify.raw, &key).is_ok());
        assert!(notify.total_fee.get() >= 0);
    }
    if let Ok(unverified) = UnverifiedNotify::parse(body) {
        let _ = unverified.mch_id();
        let _ = unverified.verify(&key);
    }
});
