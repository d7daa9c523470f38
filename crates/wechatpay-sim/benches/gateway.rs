//! Round trips through the simulator over loopback, as a client sees them: how much of a
//! test's time the simulated gateway takes.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wechatpay_sim::{DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, Simulator};
use wechatpay_v2::{ApiKey, Params, SignType};

fn signed(pairs: &[(&str, &str)]) -> String {
    let mut params: Params = [
        ("appid", DEFAULT_APPID),
        ("mch_id", DEFAULT_MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
    ]
    .iter()
    .chain(pairs)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    wechatpay_v2::sign_params(&mut params, SignType::Md5, &ApiKey::new(DEFAULT_API_KEY));
    wechatpay_v2::xml::encode(&params)
}

fn gateway(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(Simulator::start_default());
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let counter = AtomicU64::new(0);

    let mut group = c.benchmark_group("wechatpay_sim");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("unifiedorder_round_trip", |b| {
        b.to_async(&runtime).iter(|| {
            let out_trade_no = format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed));
            let body = signed(&[
                ("body", "bench"),
                ("out_trade_no", &out_trade_no),
                ("total_fee", "1"),
                ("spbill_create_ip", "127.0.0.1"),
                ("notify_url", "http://127.0.0.1:9/n"),
                ("trade_type", "NATIVE"),
                ("product_id", "p"),
            ]);
            let request = http.post(format!("{base}/pay/unifiedorder")).body(body);
            async move {
                let answer = request.send().await.unwrap().text().await.unwrap();
                assert!(answer.contains("prepay_id"));
            }
        })
    });
    // A fresh order: the earliest ones were evicted once the store reached its bound.
    let create = signed(&[
        ("body", "bench"),
        ("out_trade_no", "bench-query"),
        ("total_fee", "1"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/n"),
        ("trade_type", "NATIVE"),
        ("product_id", "p"),
    ]);
    runtime.block_on(async {
        let answer = http
            .post(format!("{base}/pay/unifiedorder"))
            .body(create)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(answer.contains("prepay_id"));
    });
    let query = signed(&[("out_trade_no", "bench-query")]);
    group.bench_function("orderquery_round_trip", |b| {
        b.to_async(&runtime).iter(|| {
            let request = http
                .post(format!("{base}/pay/orderquery"))
                .body(query.clone());
            async move {
                let answer = request.send().await.unwrap().text().await.unwrap();
                assert!(answer.contains("NOTPAY"));
            }
        })
    });
    group.finish();
    runtime.block_on(sim.shutdown());
}

criterion_group!(benches, gateway);
criterion_main!(benches);
