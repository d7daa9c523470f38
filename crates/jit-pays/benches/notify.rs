//! Notify handling inside the family: parse, verify (MD5), check, and the durable
//! conditional UPDATE, on SQLite (WAL, synchronous=FULL) in a temporary directory. No HTTP:
//! this is the part of a notify's cost that the pays family owns.
//!
//! `PAYS_BENCH_ORDER_CACHE=N` sets `PaysSettings::order_cache_capacity` (0: no cache).
//!
//! `sequential_*` runs one notify at a time (each waits for its own commit); `concurrent_*`
//! keeps [`IN_FLIGHT`] notifies in flight on the multi-threaded runtime, as an HTTP host
//! under load does, so the payment writer commits them in groups.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jit_pays::db::{DbConfig, connect};
use jit_pays::{Pay, PaySvc, PaysSettings};
use wechatpay_v2::{ApiKey, Fen, Params, SignType, sign_params, xml};

const APP_ID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// Notifies in flight in the concurrent cases (an HTTP host's connection concurrency).
const IN_FLIGHT: usize = 64;

/// Runs every body through `svc` with [`IN_FLIGHT`] tasks; every reply must be SUCCESS.
async fn notify_all_concurrently(svc: &Arc<PaySvc>, bodies: Arc<Vec<Vec<u8>>>) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (svc, bodies, next) = (svc.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let reply = svc.wechat_notify(body).await;
                    assert!(reply.acknowledged(), "{:?}", reply.outcome());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    start.elapsed()
}

fn notify_body(order_id: &str) -> Vec<u8> {
    let mut params = Params::new();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", APP_ID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("trade_type", "NATIVE"),
        ("bank_type", "CMC"),
        ("total_fee", "100"),
        ("cash_fee", "100"),
        ("fee_type", "CNY"),
        ("transaction_id", "4200000000000000000000000000"),
        ("out_trade_no", order_id),
        ("time_end", "20261127103000"),
    ] {
        params.insert(k.into(), v.into());
    }
    sign_params(&mut params, SignType::Md5, &ApiKey::new(API_KEY));
    xml::encode(&params).into_bytes()
}

struct Bench {
    pay: std::sync::Arc<dyn Pay>,
    svc: Arc<PaySvc>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("app.toml"),
        "[app]\norg = \"demo\"\nname = \"shop\"\n",
    )
    .unwrap();
    let element = root.join("elements/pays/myWechatPay");
    std::fs::create_dir_all(&element).unwrap();
    std::fs::write(
        element.join("e.json"),
        format!(
            r#"{{"type": "pays.WechatPayType", "title": "Pay", "appId": "{APP_ID}", "mchId": "{MCH_ID}", "apiKey": "{API_KEY}"}}"#
        ),
    )
    .unwrap();
    let store = connect(&DbConfig::sqlite_beside(root, "shop"))
        .await
        .unwrap();
    let mut settings = PaysSettings::new(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/notify",
        "http://127.0.0.1:9",
    );
    // `PAYS_BENCH_ORDER_CACHE=0` turns the order cache off: every notify then reads its
    // order, as before the cache existed (the comparison in docs/benchmarks.md).
    if let Some(capacity) = std::env::var("PAYS_BENCH_ORDER_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.order_cache_capacity = capacity;
    }
    let app = jit_pays::register(jit_runtime::AppBuilder::new(root), store, settings)
        .build()
        .await
        .unwrap();
    let pay = app.get::<dyn Pay>("pays.myWechatPay").await.unwrap();
    let svc = app.get::<PaySvc>("pays.services.PaySvc").await.unwrap();
    std::mem::forget(app);
    Bench {
        pay,
        svc,
        _dir: dir,
    }
}

fn notify(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bench = runtime.block_on(setup());
    let mut group = c.benchmark_group("pays_notify_sqlite");
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    group.bench_function("concurrent_distinct_orders_wait_to_success", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut bodies = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let order = bench
                        .pay
                        .create("Bench", Fen::new(100), None)
                        .await
                        .unwrap();
                    bodies.push(notify_body(&order.order_id));
                }
                notify_all_concurrently(&bench.svc, Arc::new(bodies)).await
            })
        })
    });
    group.bench_function("sequential_distinct_orders_wait_to_success", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut bodies = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let order = bench
                        .pay
                        .create("Bench", Fen::new(100), None)
                        .await
                        .unwrap();
                    bodies.push(notify_body(&order.order_id));
                }
                let start = Instant::now();
                for body in &bodies {
                    let reply = bench.svc.wechat_notify(body).await;
                    assert!(reply.acknowledged());
                }
                start.elapsed()
            })
        })
    });
    let paid = runtime.block_on(async {
        let order = bench
            .pay
            .create("Bench", Fen::new(100), None)
            .await
            .unwrap();
        let body = notify_body(&order.order_id);
        assert!(bench.svc.wechat_notify(&body).await.acknowledged());
        body
    });
    group.bench_function("concurrent_duplicates_of_a_paid_order", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let bodies = vec![paid.clone(); iters as usize];
                notify_all_concurrently(&bench.svc, Arc::new(bodies)).await
            })
        })
    });
    group.bench_function("sequential_duplicate_of_a_paid_order", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let reply = bench.svc.wechat_notify(&paid).await;
                assert!(reply.acknowledged());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, notify);
criterion_main!(benches);
