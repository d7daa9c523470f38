//! Signing, verifying and parsing a typical payment notify (benches/payment_notify.xml, 758
//! bytes, MD5-signed with the reference's test key). scripts/bench-wechatpy.py times
//! wechatpy's `parse_payment_result` on the same file and prints the ratio.
//!
//! The floor of parse + verify: `md5_alone` hashes as many bytes as the notify's signed
//! string holds (MD5 is the one step no implementation can skip), and `tokenizer_alone`
//! walks the document's events with quick-xml and nothing else (what the full reader costs
//! before it builds anything).

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use criterion::{Criterion, criterion_group, criterion_main};
use md5::{Digest, Md5};
use quick_xml::events::Event;
use std::hint::black_box;
use wechatpay_v2::{ApiKey, SignType, parse_payment_notify, sign, verify, xml};

const NOTIFY: &[u8] = include_bytes!("payment_notify.xml");
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn benches(c: &mut Criterion) {
    let key = ApiKey::new(KEY);
    let params = xml::decode(NOTIFY).expect("fixture parses");
    assert!(verify(&params, &key).is_ok(), "fixture is signed");

    // The signed string's length: every non-empty field but `sign` as `k=v&`, then `key=…`.
    let signed_len = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.as_str() != "sign")
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>()
        + "key=".len()
        + KEY.len();
    let signed_bytes = vec![b'a'; signed_len];

    let mut group = c.benchmark_group("wechatpay-v2");
    group.bench_function("md5_alone", |b| {
        b.iter(|| Md5::digest(black_box(&signed_bytes)))
    });
    group.bench_function("tokenizer_alone", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(NOTIFY)).expect("UTF-8");
            let mut reader = quick_xml::Reader::from_str(text);
            let mut events = 0usize;
            while !matches!(reader.read_event().expect("well-formed"), Event::Eof) {
                events += 1;
            }
            events
        })
    });
    group.bench_function("sign_md5", |b| {
        b.iter(|| sign(black_box(&params), SignType::Md5, &key))
    });
    group.bench_function("sign_hmac_sha256", |b| {
        b.iter(|| sign(black_box(&params), SignType::HmacSha256, &key))
    });
    group.bench_function("verify_md5", |b| {
        b.iter(|| verify(black_box(&params), &key))
    });
    group.bench_function("xml_decode", |b| b.iter(|| xml::decode(black_box(NOTIFY))));
    group.bench_function("parse_and_verify_notify", |b| {
        b.iter(|| parse_payment_notify(black_box(NOTIFY), &key).expect("valid"))
    });
    group.finish();
}

criterion_group!(notify, benches);
criterion_main!(notify);
