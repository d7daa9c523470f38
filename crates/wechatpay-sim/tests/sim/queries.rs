//! How often each order was queried: the count and times the inspection shows per order,
//! which multi-instance tests read to see each waiting order queried once per reconcile
//! round.

use crate::common::{call, call_with, default_head, native_order};
use wechatpay_sim::{
    DEFAULT_MCH_ID, Endpoint, Fault, FaultRule, Inspection, RECENT_QUERY_TIMES, Simulator,
};
use wechatpay_v2::SignType;

fn by_out_trade_no(out_trade_no: &str) -> wechatpay_v2::Params {
    let mut params = default_head();
    params.insert("out_trade_no".into(), out_trade_no.into());
    params
}

fn by_transaction_id(transaction_id: &str) -> wechatpay_v2::Params {
    let mut params = default_head();
    params.insert("transaction_id".into(), transaction_id.into());
    params
}

/// The arrival times of the successful orderquery calls naming `out_trade_no`.
fn answered_query_times(inspection: &Inspection, out_trade_no: &str) -> Vec<f64> {
    inspection
        .requests_to("orderquery")
        .into_iter()
        .filter(|record| {
            let answer = record
                .response_body
                .as_deref()
                .and_then(|body| wechatpay_v2::xml::decode(body.as_bytes()).ok())
                .unwrap_or_default();
            record.err_code.is_none()
                && answer.get("out_trade_no").map(String::as_str) == Some(out_trade_no)
        })
        .map(|record| record.t_ms)
        .collect()
}

#[tokio::test]
async fn each_order_counts_the_valid_queries_that_named_it() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    for out_trade_no in ["q-1", "q-2", "q-idle"] {
        call(
            &base,
            "/pay/unifiedorder",
            native_order(out_trade_no, 100, "http://127.0.0.1:9/notify"),
        )
        .await
        .assert_success();
    }
    let paid = sim.pay("q-2").expect("the payer pays q-2");
    let transaction_id = paid
        .transaction_id
        .expect("a paid order has a transaction id");

    for _ in 0..3 {
        call(&base, "/pay/orderquery", by_out_trade_no("q-1"))
            .await
            .assert_success();
    }
    // By transaction_id counts on the same order as by out_trade_no.
    for _ in 0..2 {
        call(&base, "/pay/orderquery", by_transaction_id(&transaction_id))
            .await
            .assert_success();
    }
    call(&base, "/pay/orderquery", by_out_trade_no("q-2"))
        .await
        .assert_success();

    // Calls that do not count: a bad signature, an unknown order, the same number in the
    // sandbox (another order book), a call refused before the handler, other endpoints.
    let forged = call_with(
        &base,
        "/pay/orderquery",
        by_out_trade_no("q-1"),
        "not-the-key-not-the-key-not-the-",
        SignType::Md5,
    )
    .await;
    assert_eq!(forged.err_code(), "SIGNERROR");
    assert_eq!(
        call(&base, "/pay/orderquery", by_out_trade_no("q-404"))
            .await
            .err_code(),
        "ORDERNOTEXIST"
    );
    let sandbox_key = sim.sandbox_key(DEFAULT_MCH_ID).expect("a sandbox key");
    let sandbox = call_with(
        &base,
        "/sandboxnew/pay/orderquery",
        by_out_trade_no("q-1"),
        sandbox_key.expose_secret(),
        SignType::Md5,
    )
    .await;
    assert_eq!(sandbox.err_code(), "ORDERNOTEXIST");
    sim.faults()
        .add(
            FaultRule::new(Fault::SystemError)
                .on(Endpoint::OrderQuery)
                .times(1),
        )
        .unwrap();
    assert_eq!(
        call(&base, "/pay/orderquery", by_out_trade_no("q-1"))
            .await
            .err_code(),
        "SYSTEMERROR"
    );
    let mut refund_query = default_head();
    refund_query.insert("out_trade_no".into(), "q-1".into());
    call(&base, "/pay/refundquery", refund_query).await;
    call(&base, "/pay/closeorder", by_out_trade_no("q-idle"))
        .await
        .assert_success();

    let inspection = sim.inspect();
    assert_eq!(inspection.query_count("q-1"), 3);
    assert_eq!(inspection.query_count("q-2"), 3);
    assert_eq!(inspection.query_count("q-idle"), 0);
    assert_eq!(inspection.query_count("q-404"), 0);
    for out_trade_no in ["q-1", "q-2"] {
        let queries = &inspection.order(out_trade_no).unwrap().queries;
        // The times are those of the calls' own records, in order.
        assert_eq!(
            queries.recent_t_ms,
            answered_query_times(&inspection, out_trade_no),
            "{out_trade_no}"
        );
        assert!(queries.recent_t_ms.is_sorted());
    }
    assert!(
        inspection
            .order("q-idle")
            .unwrap()
            .queries
            .recent_t_ms
            .is_empty()
    );
}

#[tokio::test]
async fn the_times_kept_are_bounded_and_the_count_is_not() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    call(
        &base,
        "/pay/unifiedorder",
        native_order("b-1", 100, "http://127.0.0.1:9/notify"),
    )
    .await
    .assert_success();
    let total = RECENT_QUERY_TIMES + 8;
    for _ in 0..total {
        call(&base, "/pay/orderquery", by_out_trade_no("b-1"))
            .await
            .assert_success();
    }
    let inspection = sim.inspect();
    let queries = &inspection.order("b-1").unwrap().queries;
    assert_eq!(queries.count, total as u64);
    let all_times = answered_query_times(&inspection, "b-1");
    assert_eq!(all_times.len(), total);
    assert_eq!(
        queries.recent_t_ms,
        all_times[total - RECENT_QUERY_TIMES..],
        "the newest {RECENT_QUERY_TIMES} times are kept"
    );
}

#[tokio::test]
async fn concurrent_queries_are_all_counted() {
    // Several reconcilers querying at once must each be seen.
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    for n in 0..4 {
        call(
            &base,
            "/pay/unifiedorder",
            native_order(&format!("c-{n}"), 100, "http://127.0.0.1:9/notify"),
        )
        .await
        .assert_success();
    }
    let calls = (0..40).map(|i| {
        let base = base.clone();
        async move {
            call(
                &base,
                "/pay/orderquery",
                by_out_trade_no(&format!("c-{}", i % 4)),
            )
            .await
            .assert_success();
        }
    });
    futures::future::join_all(calls).await;
    let inspection = sim.inspect();
    for n in 0..4 {
        assert_eq!(inspection.query_count(&format!("c-{n}")), 10, "c-{n}");
    }
}

#[tokio::test]
async fn the_counts_show_over_http_and_clearing_the_inspection_restarts_them() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    call(
        &base,
        "/pay/unifiedorder",
        native_order("h-1", 100, "http://127.0.0.1:9/notify"),
    )
    .await
    .assert_success();
    for _ in 0..2 {
        call(&base, "/pay/orderquery", by_out_trade_no("h-1"))
            .await
            .assert_success();
    }
    let http = reqwest::Client::new();
    let inspect = || async {
        http.get(format!("{base}/sim/inspect"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let inspection = inspect().await;
    let order = &inspection["orders"][0];
    assert_eq!(order["out_trade_no"], "h-1");
    assert_eq!(order["queries"]["count"], 2);
    assert_eq!(order["queries"]["recent_t_ms"].as_array().unwrap().len(), 2);

    sim.clear_inspection();
    assert_eq!(sim.inspect().query_count("h-1"), 0);
    assert!(sim.order("h-1").unwrap().queries.recent_t_ms.is_empty());
    call(&base, "/pay/orderquery", by_out_trade_no("h-1"))
        .await
        .assert_success();
    assert_eq!(sim.inspect().query_count("h-1"), 1, "counting goes on");

    let cleared = http
        .delete(format!("{base}/sim/inspect"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    let inspection = inspect().await;
    assert_eq!(inspection["orders"][0]["queries"]["count"], 0);
    assert_eq!(
        inspection["orders"][0]["queries"]["recent_t_ms"],
        serde_json::json!([])
    );
    assert_eq!(sim.inspect().orders.len(), 1, "the order stays");
}
