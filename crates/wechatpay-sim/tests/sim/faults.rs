//! Notify delivery on WeChat's schedule, and every fault knob.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::{NotifyReceiver, call, default_head, native_order, params};
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_MCH_ID, Endpoint, Fault, FaultRule, MerchantConfig,
    NOTIFY_RETRY_SCHEDULE, SimConfig, SimHandle, Simulator, TradeState,
};
use wechatpay_v2::ApiKey;

async fn fast_sim(time_scale: f64) -> SimHandle {
    Simulator::start(SimConfig::default().with_time_scale(time_scale))
        .await
        .unwrap()
}

async fn create_and_pay(sim: &SimHandle, out_trade_no: &str, notify_url: &str) {
    call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order(out_trade_no, 1, notify_url),
    )
    .await
    .assert_success();
    sim.pay(out_trade_no).unwrap();
}

fn query(out_trade_no: &str) -> wechatpay_v2::Params {
    let mut p = default_head();
    p.insert("out_trade_no".into(), out_trade_no.into());
    p
}

#[tokio::test]
async fn notifies_retry_on_wechats_schedule_until_acknowledged() {
    // 100 times faster: gaps of 150 ms, 150 ms, 300 ms, 1.8 s, then 6 s.
    let scale = 100.0;
    let sim = fast_sim(scale).await;
    let receiver = NotifyReceiver::start(4).await;
    create_and_pay(&sim, "sched-1", &receiver.url).await;
    let received = receiver.wait_for(5, Duration::from_secs(15)).await;

    // The body is the same signed notify every time, and it verifies.
    assert!(received.iter().all(|r| r.body == received[0].body));
    let notify = wechatpay_v2::xml::decode(received[0].body.as_bytes()).unwrap();
    wechatpay_v2::verify(&notify, &ApiKey::new(DEFAULT_API_KEY)).unwrap();
    for field in [
        "appid",
        "mch_id",
        "nonce_str",
        "sign",
        "result_code",
        "return_code",
        "openid",
        "is_subscribe",
        "trade_type",
        "bank_type",
        "total_fee",
        "cash_fee",
        "fee_type",
        "transaction_id",
        "out_trade_no",
        "time_end",
    ] {
        assert!(notify.contains_key(field), "notify lacks {field}");
    }

    // Observed gaps, from the inspection log's monotonic times: from the end of one
    // delivery to the start of the next, so the merchant's own answer time does not count.
    let attempts = common::logged_notifies(&sim, "sched-1", 5).await;
    assert_eq!(attempts.len(), 5);
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "rejected",
            "rejected",
            "rejected",
            "rejected",
            "acknowledged"
        ]
    );
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    let gap = |i: usize| attempts[i + 1].t_ms - (attempts[i].t_ms + attempts[i].elapsed_ms);
    for (index, scheduled) in NOTIFY_RETRY_SCHEDULE.iter().take(4).enumerate() {
        let observed = gap(index);
        let scheduled = scheduled.as_secs_f64() * 1000.0 / scale;
        // Never early; late only by scheduling noise (generous for a loaded machine).
        assert!(
            observed >= scheduled - 2.0 && observed <= scheduled * 1.5 + 150.0,
            "gap {index}: observed {observed:.1} ms, scheduled {scheduled:.1} ms"
        );
    }
    // The schedule's shape shows through: 15 s, 15 s, then longer, then much longer.
    assert!(
        gap(2) > gap(0).max(gap(1)),
        "{:?}",
        (0..4).map(gap).collect::<Vec<_>>()
    );
    assert!(gap(3) > 2.0 * (gap(0) + gap(1) + gap(2)));

    // Acknowledged: the notify is no longer pending, and no delivery came after the fifth.
    let inspection = common::settled(&sim).await;
    assert_eq!(inspection.notifies_for("sched-1").len(), 5);
    assert_eq!(receiver.received().len(), 5);
}

/// What lets the other tests show a notify was *not* sent again without sleeping: a notify
/// counts as pending from dispatch until no delivery of it is left.
#[tokio::test]
async fn a_notify_is_pending_until_no_delivery_is_left() {
    let sim = fast_sim(1000.0).await;
    let receiver = NotifyReceiver::start(2).await;
    receiver.set_delay(Duration::from_millis(300));
    create_and_pay(&sim, "pend-1", &receiver.url).await;
    assert_eq!(
        sim.inspect().pending_notifies,
        1,
        "pending before its first delivery is answered"
    );
    let inspection = common::settled(&sim).await;
    let outcomes: Vec<&str> = inspection
        .notifies_for("pend-1")
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["rejected", "rejected", "acknowledged"]);
    assert_eq!(receiver.received().len(), 3);

    // A merchant that never answers keeps its notify pending while retries remain.
    create_and_pay(&sim, "pend-2", "http://127.0.0.1:9/notify").await;
    common::logged_notifies(&sim, "pend-2", 2).await;
    assert_eq!(sim.inspect().pending_notifies, 1);
    let over_http: serde_json::Value = reqwest::get(format!("{}/sim/inspect", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["pending_notifies"], 1);
}

#[tokio::test]
async fn an_unreachable_merchant_is_retried_and_recorded() {
    let sim = fast_sim(1000.0).await;
    // Nothing listens on port 9 of loopback.
    create_and_pay(&sim, "gone-1", "http://127.0.0.1:9/notify").await;
    let attempts = common::logged_notifies(&sim, "gone-1", 3).await;
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == "unreachable" && a.error.is_some())
    );
}

#[tokio::test]
async fn a_slow_merchant_counts_as_unanswered() {
    let sim = Simulator::start(SimConfig {
        notify_timeout_ms: 100,
        ..SimConfig::default().with_time_scale(1000.0)
    })
    .await
    .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    receiver.set_delay(Duration::from_millis(400));
    create_and_pay(&sim, "slow-1", &receiver.url).await;
    receiver.wait_for(2, Duration::from_secs(5)).await;
    let first = common::logged_notifies(&sim, "slow-1", 1).await[0].clone();
    assert_eq!(first.outcome, "timeout");
}

#[tokio::test]
async fn dropped_notifies_never_arrive_but_the_order_is_paid() {
    let sim = fast_sim(1000.0).await;
    sim.faults()
        .add(FaultRule::new(Fault::DropNotify).times(1))
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    create_and_pay(&sim, "drop-1", &receiver.url).await;
    create_and_pay(&sim, "drop-2", &receiver.url).await;
    // Nothing left to deliver: the dropped notify is not retried.
    let inspection = common::settled(&sim).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "only the second notify arrives");
    assert!(received[0].body.contains("drop-2"));
    let dropped = inspection.notifies_for("drop-1");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].outcome, "dropped");
    let answer = call(&sim.base_url(), "/pay/orderquery", query("drop-1")).await;
    assert_eq!(
        answer.get("trade_state"),
        "SUCCESS",
        "querying finds the payment"
    );
}

#[tokio::test]
async fn duplicated_notifies_arrive_concurrently() {
    let sim = fast_sim(1000.0).await;
    sim.faults()
        .add(FaultRule::new(Fault::DuplicateNotify { copies: 3 }).for_merchant(DEFAULT_MCH_ID))
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    // Slow answers show the copies overlap instead of following one another.
    receiver.set_delay(Duration::from_millis(500));
    let started = Instant::now();
    create_and_pay(&sim, "dup-1", &receiver.url).await;
    let received = receiver.wait_for(3, Duration::from_secs(5)).await;
    assert!(received.iter().all(|r| r.body == received[0].body));
    let spread = received[2].at.duration_since(received[0].at);
    assert!(
        spread < Duration::from_millis(500),
        "copies were sequential: {spread:?}"
    );
    let inspection = common::settled(&sim).await;
    let copies: Vec<u32> = {
        let mut copies: Vec<u32> = inspection
            .notifies_for("dup-1")
            .iter()
            .map(|a| a.copy)
            .collect();
        copies.sort();
        copies
    };
    assert_eq!(copies, [1, 2, 3], "acknowledged copies stop the retries");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn reordered_notifies_arrive_newest_first() {
    let sim = fast_sim(1000.0).await;
    sim.faults()
        .add(FaultRule::new(Fault::ReorderNotify { window: 2 }).on(Endpoint::PayNotify))
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    create_and_pay(&sim, "ro-1", &receiver.url).await;
    create_and_pay(&sim, "ro-2", &receiver.url).await;
    let received = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert!(received[0].body.contains("ro-2"), "{}", received[0].body);
    assert!(received[1].body.contains("ro-1"));

    // A lone notify is not held for ever.
    create_and_pay(&sim, "ro-3", &receiver.url).await;
    let received = receiver.wait_for(3, Duration::from_secs(5)).await;
    assert!(received[2].body.contains("ro-3"));
}

#[tokio::test]
async fn a_notify_can_arrive_before_the_unifiedorder_reply() {
    let sim = fast_sim(1000.0).await;
    sim.faults()
        .add(FaultRule::new(Fault::NotifyBeforeReply).times(1))
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    let answer = call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order("early-1", 1, &receiver.url),
    )
    .await;
    let replied = Instant::now();
    answer.assert_success();
    let received = receiver.received();
    assert_eq!(
        received.len(),
        1,
        "the notify was delivered and answered before the reply"
    );
    assert!(received[0].at < replied);
    let inspection = sim.inspect();
    assert_eq!(
        inspection.order("early-1").unwrap().state,
        TradeState::Success
    );
    let notify = &inspection.notifies_for("early-1")[0];
    assert_eq!(notify.outcome, "acknowledged");
    let request = &inspection.requests_to("unifiedorder")[0];
    assert!(notify.t_ms < request.t_ms + request.elapsed_ms);
    assert!(request.faults.contains(&"notify_before_reply".to_string()));

    // Used up: the next order waits for its payer.
    call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order("early-2", 1, &receiver.url),
    )
    .await
    .assert_success();
    assert_eq!(sim.order("early-2").unwrap().state, TradeState::NotPay);
}

#[tokio::test]
async fn latency_delays_answers_and_notifies() {
    let sim = fast_sim(1000.0).await;
    let faults = sim.faults();
    let id = faults
        .add(FaultRule::new(Fault::Latency { ms: 800 }).on(Endpoint::OrderQuery))
        .unwrap();
    faults
        .add(FaultRule::new(Fault::Latency { ms: 200 }).on(Endpoint::PayNotify))
        .unwrap();
    let started = Instant::now();
    call(&sim.base_url(), "/pay/orderquery", query("lat-0")).await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(faults.remove(id));
    let started = Instant::now();
    call(&sim.base_url(), "/pay/orderquery", query("lat-0")).await;
    assert!(started.elapsed() < Duration::from_millis(800));

    let receiver = NotifyReceiver::start(0).await;
    let paid_at = Instant::now();
    create_and_pay(&sim, "lat-1", &receiver.url).await;
    let received = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert!(received[0].at.duration_since(paid_at) >= Duration::from_millis(200));
}

#[tokio::test]
async fn hanging_requests_time_out_at_the_client() {
    let sim = Simulator::start(SimConfig {
        hang_ms: 30_000,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.faults()
        .add(
            FaultRule::new(Fault::Hang)
                .on(Endpoint::UnifiedOrder)
                .times(1),
        )
        .unwrap();
    let mut body = native_order("hang-1", 1, "http://127.0.0.1:9/n");
    wechatpay_v2::sign_params(
        &mut body,
        wechatpay_v2::SignType::Md5,
        &ApiKey::new(DEFAULT_API_KEY),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .post(format!("{}/pay/unifiedorder", sim.base_url()))
        .body(wechatpay_v2::xml::encode(&body))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        sim.order("hang-1").is_none(),
        "a hung call is not processed"
    );
    // Stopping the simulator ends the hang instead of waiting 30 s.
    let stopping = Instant::now();
    sim.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn http_errors_and_system_errors() {
    let sim = fast_sim(1000.0).await;
    let base = sim.base_url();
    let faults = sim.faults();
    faults
        .add(
            FaultRule::new(Fault::HttpStatus { status: 503 })
                .on(Endpoint::UnifiedOrder)
                .times(1),
        )
        .unwrap();
    let answer = call(
        &base,
        "/pay/unifiedorder",
        native_order("e-1", 1, "http://127.0.0.1:9/n"),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert!(answer.body.contains("<html>"));
    assert!(sim.order("e-1").is_none());

    faults
        .add(
            FaultRule::new(Fault::SystemError)
                .on(Endpoint::UnifiedOrder)
                .times(1),
        )
        .unwrap();
    let answer = call(
        &base,
        "/pay/unifiedorder",
        native_order("e-1", 1, "http://127.0.0.1:9/n"),
    )
    .await;
    assert_eq!(answer.get("return_code"), "SUCCESS");
    assert_eq!(answer.get("result_code"), "FAIL");
    assert_eq!(answer.err_code(), "SYSTEMERROR");
    wechatpay_v2::verify(&answer.params, &ApiKey::new(DEFAULT_API_KEY)).unwrap();
    assert!(
        sim.order("e-1").is_none(),
        "SYSTEMERROR before processing creates nothing"
    );
    call(
        &base,
        "/pay/unifiedorder",
        native_order("e-1", 1, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();

    // The reply is lost but the refund happened: retrying with the same out_refund_no
    // returns the same refund, and only one exists.
    sim.pay("e-1").unwrap();
    faults
        .add(
            FaultRule::new(Fault::SystemErrorAfterCommit)
                .on(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    let mut refund = default_head();
    refund.extend(params(&[
        ("out_trade_no", "e-1"),
        ("out_refund_no", "er-1"),
        ("total_fee", "1"),
        ("refund_fee", "1"),
    ]));
    assert_eq!(
        call(&base, "/secapi/pay/refund", refund.clone())
            .await
            .err_code(),
        "SYSTEMERROR"
    );
    let retried = call(&base, "/secapi/pay/refund", refund).await;
    retried.assert_success();
    assert_eq!(sim.order("e-1").unwrap().refunds.len(), 1);
    assert!(faults.list().is_empty(), "every counted rule is used up");
}

#[tokio::test]
async fn faults_are_scoped_per_merchant_and_settable_over_http() {
    let sim = Simulator::start(SimConfig::default().with_merchant(MerchantConfig::new(
        "wxother",
        "40000001",
        "other-key",
    )))
    .await
    .unwrap();
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/sim/faults"))
        .json(&serde_json::json!({
            "mch_id": "40000001",
            "fault": { "kind": "system_error" }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let refused = http
        .post(format!("{base}/sim/faults"))
        .json(&serde_json::json!({ "endpoint": "pay_notify", "fault": { "kind": "hang" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("hang"));

    assert_eq!(
        call(&base, "/pay/orderquery", query("s-1"))
            .await
            .err_code(),
        "ORDERNOTEXIST",
        "the default merchant is not affected"
    );
    let other = params(&[
        ("appid", "wxother"),
        ("mch_id", "40000001"),
        ("nonce_str", "n"),
        ("out_trade_no", "s-1"),
    ]);
    let answer = common::call_with(
        &base,
        "/pay/orderquery",
        other.clone(),
        "other-key",
        wechatpay_v2::SignType::Md5,
    )
    .await;
    assert_eq!(answer.err_code(), "SYSTEMERROR");
    let listed: serde_json::Value = http
        .get(format!("{base}/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["mch_id"], "40000001");
    let removed = http
        .delete(format!("{base}/sim/faults/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let answer = common::call_with(
        &base,
        "/pay/orderquery",
        other,
        "other-key",
        wechatpay_v2::SignType::Md5,
    )
    .await;
    assert_eq!(answer.err_code(), "ORDERNOTEXIST");
}

#[tokio::test]
async fn refund_notifies_are_encrypted_with_the_md5_of_the_key() {
    let sim = fast_sim(1000.0).await;
    let receiver = NotifyReceiver::start(0).await;
    create_and_pay(&sim, "rn-1", &receiver.url).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let mut refund = default_head();
    refund.extend(params(&[
        ("out_trade_no", "rn-1"),
        ("out_refund_no", "rnr-1"),
        ("total_fee", "1"),
        ("refund_fee", "1"),
        ("notify_url", &receiver.url),
    ]));
    call(&sim.base_url(), "/secapi/pay/refund", refund)
        .await
        .assert_success();
    let received = receiver.wait_for(2, Duration::from_secs(5)).await;
    let outer = wechatpay_v2::xml::decode(received[1].body.as_bytes()).unwrap();
    assert_eq!(outer.get("return_code").unwrap(), "SUCCESS");
    assert!(
        !outer.contains_key("sign"),
        "refund notifies are not signed"
    );
    // The simulator logs a delivery once it has read the answer: wait for that.
    let inspection = common::settled(&sim).await;
    let record = inspection
        .notifies
        .into_iter()
        .find(|n| n.kind == "refund")
        .expect("the refund notify is logged");
    assert_eq!(record.out_refund_no.as_deref(), Some("rnr-1"));
    assert_eq!(record.outcome, "acknowledged");
    // Decrypted by wechatpy in the conformance tests; here: it is base64 of whole blocks.
    use base64::Engine;
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(outer.get("req_info").unwrap())
        .unwrap();
    assert!(!cipher.is_empty() && cipher.len().is_multiple_of(16));
}
