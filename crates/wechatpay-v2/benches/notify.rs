//! Signing, verifying and parsing a typical payment notify (benches/payment_notify.xml, 758
//! bytes, MD5-signed with the reference's test key). scripts/bench-wechatpy.py times
//! wechatpy's `parse_payment_result` on the same file and prints the ratio.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wechatpay_v2::{ApiKey, SignType, parse_payment_notify, sign, verify, xml};

const NOTIFY: &[u8] = include_bytes!("payment_notify.xml");
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn benches(c: &mut Criterion) {
    let key = ApiKey::new(KEY);
    let params = xml::decode(NOTIFY).expect("fixture parses");
    assert!(verify(&params, &key).is_ok(), "fixture is signed");

    let mut group = c.benchmark_group("wechatpay-v2");
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
