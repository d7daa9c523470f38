//! The simulator's bills, read by the client's parser (`Client::bill`, GZIP form): every bill
//! type parses, and every line agrees with the simulator's own orders and refunds.

use std::time::Duration;

use crate::common::{call, default_head, native_order, params};
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, SimConfig, SimHandle, Simulator,
};
use wechatpay_v2::bill::BillRow;
use wechatpay_v2::time::{beijing_date, beijing_readable_time, format_date};
use wechatpay_v2::{
    ApiKey, Bill, BillType, Client, ClientConfig, Error, Fen, RefundStatus, RetryPolicy,
    ServiceFee, SignType, TradeState, TradeType,
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

async fn paid_order(sim: &SimHandle, out_trade_no: &str, fee: u32, attach: Option<&str>) {
    let mut order = native_order(out_trade_no, fee, "http://127.0.0.1:9/n");
    if let Some(attach) = attach {
        order.insert("attach".into(), attach.into());
    }
    call(&sim.base_url(), "/pay/unifiedorder", order)
        .await
        .assert_success();
    sim.pay(out_trade_no).unwrap();
}

async fn refund(sim: &SimHandle, out_trade_no: &str, out_refund_no: &str, total: u32, fee: u32) {
    let mut p = default_head();
    p.extend(params(&[
        ("out_trade_no", out_trade_no),
        ("out_refund_no", out_refund_no),
        ("total_fee", &total.to_string()),
        ("refund_fee", &fee.to_string()),
    ]));
    call(&sim.base_url(), "/secapi/pay/refund", p)
        .await
        .assert_success();
}

/// Checks one line against the simulator's order (and refund) it names.
fn check_line(sim: &SimHandle, bill_type: BillType, row: &BillRow) {
    let order = sim
        .order(&row.out_trade_no)
        .expect("a line of a known order");
    let seconds = |at: chrono::DateTime<chrono::Utc>| beijing_readable_time(at);
    assert_eq!(row.appid, order.appid);
    assert_eq!(row.mch_id, order.mch_id);
    assert_eq!(Some(&row.transaction_id), order.transaction_id.as_ref());
    assert_eq!(row.trade_type, TradeType::Native);
    assert_eq!(row.fee_type, "CNY");
    assert_eq!(row.body, order.body);
    assert_eq!(row.rate.as_str(), "0.60%");
    match &row.refund {
        None => {
            assert_eq!(row.trade_state, TradeState::Success);
            assert_eq!(
                seconds(row.trade_time),
                beijing_readable_time(order.paid_at.unwrap())
            );
            assert_eq!(row.total_fee, order.total_fee);
            assert_eq!(row.settlement_total_fee, order.total_fee);
            assert_eq!(
                row.service_fee,
                ServiceFee::from_units(6 * order.total_fee.get())
            );
        }
        Some(refund) => {
            let stored = order
                .refunds
                .iter()
                .find(|r| r.out_refund_no == refund.out_refund_no)
                .expect("a refund the simulator made");
            assert_eq!(row.trade_state, TradeState::Refund);
            assert_eq!(
                seconds(row.trade_time),
                beijing_readable_time(stored.created_at)
            );
            assert_eq!(row.total_fee, Fen::ZERO);
            assert_eq!(row.settlement_total_fee, Fen::ZERO);
            assert_eq!(refund.refund_id, stored.refund_id);
            assert_eq!(refund.settlement_refund_fee, stored.refund_fee);
            assert_eq!(refund.refund_fee, stored.refund_fee);
            assert_eq!(refund.refund_channel, "ORIGINAL");
            assert_eq!(
                row.service_fee,
                ServiceFee::from_units(-6 * stored.refund_fee.get())
            );
            if bill_type == BillType::Refund {
                assert_eq!(
                    refund.applied_at.map(seconds),
                    Some(beijing_readable_time(stored.created_at))
                );
            } else {
                assert_eq!(refund.applied_at, None);
            }
        }
    }
}

fn out_refund_nos(bill: &Bill) -> Vec<&str> {
    bill.rows()
        .filter_map(|row| row.refund.as_ref())
        .map(|refund| refund.out_refund_no.as_str())
        .collect()
}

#[tokio::test]
async fn every_bill_type_parses_and_agrees_with_the_orders() {
    let sim = Simulator::start_default().await;
    let client = client(&sim);
    let today = today();
    // Before anything happened: no bill, which is not an empty bill.
    let none = client.bill(&today, BillType::All).await.unwrap_err();
    assert!(
        matches!(&none, Error::Business { code, .. } if code.as_str() == "20002"),
        "{none:?}"
    );

    paid_order(&sim, "bl-1", 101, Some("size=L,colour=red")).await;
    paid_order(&sim, "bl-2", 250, None).await;
    paid_order(&sim, "bl-3", 1000, None).await;
    // An unpaid order is in no bill.
    call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order("bl-unpaid", 5, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    refund(&sim, "bl-2", "bl-2-full", 250, 250).await;
    refund(&sim, "bl-3", "bl-3-a", 1000, 300).await;
    refund(&sim, "bl-3", "bl-3-b", 1000, 200).await;

    let all = client.bill(&today, BillType::All).await.unwrap();
    assert_eq!(all.bill_type, BillType::All);
    assert_eq!(all.lines.len(), 6);
    for line in &all.lines {
        check_line(&sim, BillType::All, &line.row);
    }
    assert_eq!(out_refund_nos(&all).len(), 3);
    // A comma in the attach cannot travel in a bill line: it arrives full-width.
    let bl1 = all.rows().find(|row| row.out_trade_no == "bl-1").unwrap();
    assert_eq!(bl1.attach, "size=L，colour=red");
    let totals = all.summary.totals;
    assert_eq!(totals.count, 6);
    assert_eq!(totals.settlement_total_fee, Fen::new(1351));
    assert_eq!(totals.total_fee, Fen::new(1351));
    assert_eq!(totals.settlement_refund_fee, Fen::new(750));
    assert_eq!(totals.refund_fee, Fen::new(750));
    assert_eq!(totals.service_fee, ServiceFee::from_units(6 * (1351 - 750)));

    let success = client.bill(&today, BillType::Success).await.unwrap();
    assert_eq!(success.lines.len(), 3);
    assert!(success.rows().all(|row| row.refund.is_none()));
    for line in &success.lines {
        check_line(&sim, BillType::Success, &line.row);
    }

    let refunds = client.bill(&today, BillType::Refund).await.unwrap();
    assert_eq!(refunds.lines.len(), 3);
    let mut nos = out_refund_nos(&refunds);
    nos.sort_unstable();
    assert_eq!(nos, ["bl-2-full", "bl-3-a", "bl-3-b"]);
    for line in &refunds.lines {
        check_line(&sim, BillType::Refund, &line.row);
        let refund = line.row.refund.as_ref().unwrap();
        assert_eq!(refund.refund_status, RefundStatus::Success);
        assert!(refund.succeeded_at.is_some());
    }

    // The plain form is the same bill.
    let plain = client.download_bill(&today, BillType::All).await.unwrap();
    assert_eq!(Bill::parse(&plain).unwrap(), all);
    // Another day has no bill.
    let other_day = client.bill("20000101", BillType::Refund).await.unwrap_err();
    assert!(
        matches!(&other_day, Error::Business { code, .. } if code.as_str() == "20002"),
        "{other_day:?}"
    );
}

#[tokio::test]
async fn a_refund_still_processing_has_no_success_time() {
    let sim = Simulator::start(SimConfig {
        refund_processing_ms: 3_600_000,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = client(&sim);
    paid_order(&sim, "bp-1", 500, None).await;
    refund(&sim, "bp-1", "bp-1-r", 500, 120).await;

    let refunds = client.bill(&today(), BillType::Refund).await.unwrap();
    assert_eq!(refunds.lines.len(), 1);
    let row = &refunds.lines[0].row;
    check_line(&sim, BillType::Refund, row);
    let refund = row.refund.as_ref().unwrap();
    assert_eq!(refund.refund_status, RefundStatus::Processing);
    assert_eq!(refund.succeeded_at, None);
    let all = client.bill(&today(), BillType::All).await.unwrap();
    assert_eq!(all.lines.len(), 2);
    assert_eq!(
        all.rows()
            .filter_map(|row| row.refund.as_ref())
            .map(|refund| refund.refund_status)
            .collect::<Vec<_>>(),
        [RefundStatus::Processing]
    );
}

#[tokio::test]
async fn a_bad_tar_type_is_refused() {
    let sim = Simulator::start_default().await;
    let mut p = default_head();
    p.extend(params(&[
        ("bill_date", &today()),
        ("bill_type", "ALL"),
        ("tar_type", "ZIP"),
    ]));
    let answer = call(&sim.base_url(), "/pay/downloadbill", p).await;
    assert_eq!(answer.get("return_code"), "FAIL");
    assert_eq!(answer.get("return_msg"), "invalid tar_type");
}
