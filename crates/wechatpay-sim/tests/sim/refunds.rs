//! Refund outcomes and deliberate bill differences, driven from Rust ([`SimHandle`]) and
//! over the `/sim/...` control surface ([`RemoteSim`]), read back with this workspace's
//! client: refund query, refund notify and bills say the same thing.

use std::time::Duration;

use crate::common::{NotifyReceiver, call, default_head, native_order, params};
use wechatpay_sim::{
    BillAlteration, DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, OutsidePayment,
    RefundControlError, RefundPlan, RemoteError, RemoteSim, SimConfig, SimHandle, Simulator,
};
use wechatpay_v2::time::{beijing_date, format_date};
use wechatpay_v2::{
    ApiKey, BillType, Client, ClientConfig, Error, Fen, OrderRef, RefundRef, RefundStatus,
    RetryPolicy, SignType, TradeState,
};

fn client(sim: &SimHandle) -> Client {
    Client::new(ClientConfig {
        base_url: sim.base_url(),
        app_id: DEFAULT_APPID.into(),
        mch_id: DEFAULT_MCH_ID.into(),
        api_key: ApiKey::new(DEFAULT_API_KEY),
        sign_type: SignType::Md5,
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
        },
        ..ClientConfig::default()
    })
    .unwrap()
}

fn today() -> String {
    format_date(beijing_date(chrono::Utc::now()))
}

async fn paid_order(sim: &SimHandle, out_trade_no: &str, fee: u32) {
    call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order(out_trade_no, fee, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    sim.pay(out_trade_no).unwrap();
}

/// Asks for a refund; `notify_url` is sent when given. The raw answer is returned.
async fn refund(
    sim: &SimHandle,
    out_trade_no: &str,
    out_refund_no: &str,
    (total, fee): (u32, u32),
    notify_url: Option<&str>,
) -> crate::common::Answer {
    let mut p = default_head();
    p.extend(params(&[
        ("out_trade_no", out_trade_no),
        ("out_refund_no", out_refund_no),
        ("total_fee", &total.to_string()),
        ("refund_fee", &fee.to_string()),
    ]));
    if let Some(url) = notify_url {
        p.insert("notify_url".into(), url.into());
    }
    call(&sim.base_url(), "/secapi/pay/refund", p).await
}

async fn status_of(client: &Client, out_refund_no: &str) -> RefundStatus {
    client
        .refund_query(&RefundRef::OutRefundNo(out_refund_no.into()))
        .await
        .unwrap()
        .refunds[0]
        .refund_status
}

fn refund_notifies(receiver: &NotifyReceiver) -> Vec<wechatpay_v2::RefundNotify> {
    receiver
        .received()
        .iter()
        .filter(|r| r.body.contains("req_info"))
        .map(|r| {
            wechatpay_v2::parse_refund_notify(r.body.as_bytes(), &ApiKey::new(DEFAULT_API_KEY))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_held_refund_is_processing_until_settled_then_queried_notified_and_billed() {
    let sim = Simulator::start_default().await;
    let client = client(&sim);
    let receiver = NotifyReceiver::start(0).await;
    paid_order(&sim, "rh-1", 1000).await;
    sim.plan_refund(RefundPlan::next_refund_of("rh-1", RefundStatus::Processing))
        .unwrap();
    refund(&sim, "rh-1", "rh-1-a", (1000, 400), Some(&receiver.url))
        .await
        .assert_success();
    // The plan was for one refund: the next one succeeds at once.
    refund(&sim, "rh-1", "rh-1-b", (1000, 100), Some(&receiver.url))
        .await
        .assert_success();
    // Payment notifies go elsewhere: the receiver sees refund notifies only.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(status_of(&client, "rh-1-a").await, RefundStatus::Processing);
    assert_eq!(status_of(&client, "rh-1-b").await, RefundStatus::Success);
    let bill = client.bill(&today(), BillType::Refund).await.unwrap();
    let held = bill
        .rows()
        .filter_map(|row| row.refund.as_ref())
        .find(|refund| refund.out_refund_no == "rh-1-a")
        .unwrap();
    assert_eq!(held.refund_status, RefundStatus::Processing);
    let notified: Vec<String> = refund_notifies(&receiver)
        .into_iter()
        .map(|notify| notify.out_refund_no)
        .collect();
    assert_eq!(notified, ["rh-1-b"], "no notify while a refund is held");

    let settled = sim.settle_refund("rh-1-a", RefundStatus::Success).unwrap();
    assert_eq!(settled.ends_as, RefundStatus::Success);
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let notify = refund_notifies(&receiver).pop().unwrap();
    assert_eq!(notify.out_refund_no, "rh-1-a");
    assert_eq!(notify.refund_status, RefundStatus::Success);
    assert_eq!(notify.refund_fee, Fen::new(400));
    let query = client
        .refund_query(&RefundRef::OutRefundNo("rh-1-a".into()))
        .await
        .unwrap();
    assert_eq!(query.refunds[0].refund_status, RefundStatus::Success);
    assert_eq!(query.refunds[0].refund_success_time, notify.success_time);
    assert!(matches!(
        sim.settle_refund("rh-1-a", RefundStatus::Change),
        Err(RefundControlError::AlreadySettled {
            status: RefundStatus::Success,
            ..
        })
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_closed_refund_frees_its_amount_and_a_change_refund_does_not() {
    let sim = Simulator::start_default().await;
    let client = client(&sim);
    let receiver = NotifyReceiver::start(0).await;
    paid_order(&sim, "rc-1", 500).await;
    sim.plan_refund(RefundPlan::refund("rc-1-closed", RefundStatus::RefundClose))
        .unwrap();
    sim.plan_refund(RefundPlan::refund("rc-1-change", RefundStatus::Change))
        .unwrap();
    refund(&sim, "rc-1", "rc-1-closed", (500, 500), Some(&receiver.url))
        .await
        .assert_success();
    assert_eq!(
        status_of(&client, "rc-1-closed").await,
        RefundStatus::RefundClose
    );
    // The closed 500 can go back again, under a new number; CHANGE money stays spent.
    refund(&sim, "rc-1", "rc-1-change", (500, 300), Some(&receiver.url))
        .await
        .assert_success();
    assert_eq!(
        status_of(&client, "rc-1-change").await,
        RefundStatus::Change
    );
    let over = refund(&sim, "rc-1", "rc-1-over", (500, 201), None).await;
    assert_eq!(over.err_code(), "PARAM_ERROR");
    refund(&sim, "rc-1", "rc-1-rest", (500, 200), None)
        .await
        .assert_success();

    receiver.wait_for(2, Duration::from_secs(10)).await;
    let mut notified: Vec<(String, RefundStatus, Option<String>)> = refund_notifies(&receiver)
        .into_iter()
        .map(|n| {
            assert!(n.refund_recv_account.is_some());
            (n.out_refund_no, n.refund_status, n.success_time)
        })
        .collect();
    notified.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        notified,
        [
            ("rc-1-change".to_string(), RefundStatus::Change, None),
            ("rc-1-closed".to_string(), RefundStatus::RefundClose, None),
        ]
    );

    let bill = client.bill(&today(), BillType::All).await.unwrap();
    let mut lines: Vec<(String, RefundStatus, bool)> = bill
        .rows()
        .filter_map(|row| row.refund.as_ref())
        .map(|refund| {
            (
                refund.out_refund_no.clone(),
                refund.refund_status,
                refund.succeeded_at.is_some(),
            )
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        lines,
        [
            ("rc-1-change".to_string(), RefundStatus::Change, false),
            ("rc-1-closed".to_string(), RefundStatus::RefundClose, false),
            ("rc-1-rest".to_string(), RefundStatus::Success, false),
        ],
        "the ALL bill has no success time column"
    );
    assert_eq!(bill.summary.totals.refund_fee, Fen::new(1000));
    sim.shutdown().await;
}

/// A refund settled by hand before its processing time ends is notified once, as settled;
/// the timer that would have settled it does nothing.
#[tokio::test]
async fn a_timed_refund_settled_early_is_notified_once() {
    let processing = Duration::from_millis(300);
    let sim = Simulator::start(SimConfig::default().with_refund_processing(processing))
        .await
        .unwrap();
    let client = client(&sim);
    let receiver = NotifyReceiver::start(0).await;
    paid_order(&sim, "rt-1", 100).await;
    refund(&sim, "rt-1", "rt-1-r", (100, 100), Some(&receiver.url))
        .await
        .assert_success();
    sim.settle_refund("rt-1-r", RefundStatus::Change).unwrap();
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // Past the processing time, the refund is still CHANGE and nothing more came.
    tokio::time::sleep(processing * 2).await;
    assert_eq!(status_of(&client, "rt-1-r").await, RefundStatus::Change);
    let notified: Vec<RefundStatus> = refund_notifies(&receiver)
        .into_iter()
        .map(|n| n.refund_status)
        .collect();
    assert_eq!(notified, [RefundStatus::Change]);
    sim.shutdown().await;
}

#[tokio::test]
async fn refund_controls_over_http_and_their_refusals() {
    let sim = Simulator::start_default().await;
    let client = client(&sim);
    let remote = RemoteSim::new(sim.base_url());
    paid_order(&sim, "rr-1", 100).await;
    remote
        .plan_refund(&RefundPlan::refund("rr-1-a", RefundStatus::Processing))
        .await
        .unwrap();
    assert_eq!(
        sim.refund_plans(),
        [RefundPlan::refund("rr-1-a", RefundStatus::Processing)]
    );
    refund(&sim, "rr-1", "rr-1-a", (100, 60), None)
        .await
        .assert_success();
    assert!(sim.refund_plans().is_empty());
    let refused = |error: RemoteError| match error {
        RemoteError::Refused {
            status, message, ..
        } => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let (status, message) = refused(
        remote
            .plan_refund(&RefundPlan::refund("rr-1-a", RefundStatus::Change))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 409);
    assert!(message.contains("rr-1-a"), "{message}");
    let (status, _) = refused(
        remote
            .plan_refund(&RefundPlan {
                out_refund_no: Some("x".into()),
                out_trade_no: Some("rr-1".into()),
                status: RefundStatus::Change,
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    let (status, _) = refused(
        remote
            .settle_refund("rr-1-a", RefundStatus::Processing)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    let (status, message) = refused(
        remote
            .settle_refund("nope", RefundStatus::Success)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert!(message.contains("nope"), "{message}");

    let settled = remote
        .settle_refund("rr-1-a", RefundStatus::RefundClose)
        .await
        .unwrap();
    assert_eq!(settled["ends_as"], "REFUNDCLOSE");
    assert_eq!(
        status_of(&client, "rr-1-a").await,
        RefundStatus::RefundClose
    );
    let (status, _) = refused(
        remote
            .settle_refund("rr-1-a", RefundStatus::Success)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 409);
    // A plan can be listed and cleared.
    remote
        .plan_refund(&RefundPlan::next_refund_of("rr-1", RefundStatus::Change))
        .await
        .unwrap();
    sim.clear_refund_plans();
    refund(&sim, "rr-1", "rr-1-b", (100, 100), None)
        .await
        .assert_success();
    assert_eq!(status_of(&client, "rr-1-b").await, RefundStatus::Success);
    sim.shutdown().await;
}

#[tokio::test]
async fn bills_disagree_with_the_orders_only_where_told() {
    let sim = Simulator::start_default().await;
    let client = client(&sim);
    let remote = RemoteSim::new(sim.base_url());
    paid_order(&sim, "ba-kept", 100).await;
    paid_order(&sim, "ba-omitted", 200).await;
    paid_order(&sim, "ba-altered", 300).await;
    let outside = remote
        .record_outside_payment(&OutsidePayment::new("ba-outside", Fen::new(400)))
        .await
        .unwrap();
    assert_eq!(outside["state"], "SUCCESS");
    remote
        .alter_bill(&BillAlteration::omit("ba-omitted"))
        .await
        .unwrap();
    sim.alter_bill(BillAlteration::total_fee("ba-altered", Fen::new(1)))
        .unwrap();
    sim.alter_bill(BillAlteration::total_fee("ba-altered", Fen::new(301)))
        .unwrap();
    assert_eq!(
        sim.bill_alterations().len(),
        2,
        "the later alteration replaces"
    );

    let all = client.bill(&today(), BillType::All).await.unwrap();
    let mut lines: Vec<(String, Fen)> = all
        .rows()
        .map(|row| (row.out_trade_no.clone(), row.total_fee))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            ("ba-altered".to_string(), Fen::new(301)),
            ("ba-kept".to_string(), Fen::new(100)),
            ("ba-outside".to_string(), Fen::new(400)),
        ]
    );
    assert_eq!(all.summary.totals.total_fee, Fen::new(801));
    let success = client.bill(&today(), BillType::Success).await.unwrap();
    assert_eq!(success.lines.len(), 3);
    // The orders themselves are as they were: a live query contradicts the bill.
    for (out_trade_no, fee) in [
        ("ba-omitted", 200),
        ("ba-altered", 300),
        ("ba-outside", 400),
    ] {
        let order = client
            .order_query(&OrderRef::OutTradeNo(out_trade_no.into()))
            .await
            .unwrap();
        assert_eq!(order.trade_state, TradeState::Success);
        assert_eq!(order.total_fee, Some(Fen::new(fee)), "{out_trade_no}");
    }

    // Refusals: both changes, a non-positive amount, an order number in use.
    let both = BillAlteration {
        omit: true,
        ..BillAlteration::total_fee("ba-kept", Fen::new(5))
    };
    assert!(sim.alter_bill(both.clone()).is_err());
    assert!(matches!(
        remote.alter_bill(&both).await,
        Err(RemoteError::Refused { status: 422, .. })
    ));
    assert!(
        sim.alter_bill(BillAlteration::total_fee("ba-kept", Fen::ZERO))
            .is_err()
    );
    assert!(matches!(
        remote
            .record_outside_payment(&OutsidePayment::new("ba-kept", Fen::new(1)))
            .await,
        Err(RemoteError::Refused { status: 409, .. })
    ));

    // Lifted, the bill agrees again; omitting every line leaves no bill at all.
    sim.clear_bill_alterations();
    assert_eq!(
        client
            .bill(&today(), BillType::All)
            .await
            .unwrap()
            .lines
            .len(),
        4
    );
    for out_trade_no in ["ba-kept", "ba-omitted", "ba-altered", "ba-outside"] {
        sim.alter_bill(BillAlteration::omit(out_trade_no)).unwrap();
    }
    let none = client.bill(&today(), BillType::Success).await.unwrap_err();
    assert!(
        matches!(&none, Error::Business { code, .. } if code.as_str() == "20002"),
        "{none:?}"
    );
    sim.shutdown().await;
}
