//! Refunds through the pay element, against the simulator over real HTTP, on every
//! database: full, partial and several partial refunds; idempotent retries; bad input
//! refused with nothing written; concurrent refunds held within the paid amount; a
//! refund WeChat refuses; refund notifies (genuine, undecryptable, contradicting); and the
//! reconciler settling refunds whose answer was lost or that WeChat never got.

use std::time::Duration;

use crate::support;
use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, REFUND_NOTIFY_PATH, Shop, ShopOptions};
use jit_pays::{
    NotifyOutcome, OrderRefundStatus, PayError, PayEventKind, PayLog, PayStatus,
    ReconcilerSettings, Refund, RefundArgs, RefundStatus, reconcile_due,
};
use wechatpay_sim::{Endpoint, Fault, FaultRule};
use wechatpay_v2::{ApiKey, Fen, Params};

fn yuan(text: &str) -> Fen {
    Fen::from_yuan_str(text).unwrap()
}

/// An order of `amount` yuan, paid at the simulator and recorded by its notify.
async fn paid_order(shop: &Shop, amount: &str) -> PayLog {
    shop.paid_order(amount).await
}

fn refund_of(order_id: &str, amount: Option<&str>) -> RefundArgs {
    RefundArgs {
        order_id: order_id.to_owned(),
        amount: amount.map(yuan),
        ..RefundArgs::default()
    }
}

/// Waits (at most 10 s) until the refund is `status`, and returns it.
async fn wait_refund(shop: &Shop, refund_id: &str, status: RefundStatus) -> Refund {
    for _ in 0..500 {
        let refund = shop.db.store.find_refund(refund_id).await.unwrap().unwrap();
        if refund.status == status {
            return refund.into();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("refund {refund_id} did not become {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_partial_refunds_add_up_to_at_most_what_was_paid() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;

        // A full refund: no amount.
        let order = paid_order(&shop, "99.99").await;
        let refund = shop
            .pay
            .refund(RefundArgs {
                reason: Some("商品缺货".into()),
                ..refund_of(&order.order_id, None)
            })
            .await
            .unwrap();
        assert_eq!(refund.amount, yuan("99.99"), "{label}");
        assert!(refund.refund_id.starts_with('R'), "{label}: {refund:?}");
        let settled = wait_refund(&shop, &refund.refund_id, RefundStatus::Success).await;
        assert!(settled.wechat_refund_id.is_some(), "{label}");
        assert!(settled.succeeded_at.is_some(), "{label}");
        let order = shop.pay.get_order(&order.order_id).await.unwrap();
        assert_eq!(order.refunded_fen, yuan("99.99"), "{label}");
        assert_eq!(order.refund_status, OrderRefundStatus::Full, "{label}");
        assert_eq!(
            order.status,
            PayStatus::Success,
            "{label}: PayStatus is kept"
        );
        let err = shop
            .pay
            .refund(refund_of(&order.order_id, None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                PayError::Invalid {
                    field: "amount",
                    ..
                }
            ),
            "{label}: {err}"
        );
        assert!(err.to_string().contains("nothing left"), "{label}: {err}");

        // Several partial refunds, up to the amount and not a fen beyond.
        let order = paid_order(&shop, "1.00").await;
        let mut ids = Vec::new();
        for part in ["0.30", "0.30", "0.39"] {
            let refund = shop
                .pay
                .refund(refund_of(&order.order_id, Some(part)))
                .await
                .unwrap();
            ids.push(refund.refund_id);
        }
        for id in &ids {
            wait_refund(&shop, id, RefundStatus::Success).await;
        }
        let partial = shop.pay.get_order(&order.order_id).await.unwrap();
        assert_eq!(partial.refunded_fen, yuan("0.99"), "{label}");
        assert_eq!(partial.refund_status, OrderRefundStatus::Partial, "{label}");
        let err = shop
            .pay
            .refund(refund_of(&order.order_id, Some("0.02")))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("0.01 yuan left to refund"),
            "{label}: {err}"
        );
        // The rest, with no amount: exactly what is left.
        let last = shop
            .pay
            .refund(refund_of(&order.order_id, None))
            .await
            .unwrap();
        assert_eq!(last.amount, yuan("0.01"), "{label}");
        wait_refund(&shop, &last.refund_id, RefundStatus::Success).await;
        let refunds = shop.pay.list_refunds(&order.order_id).await.unwrap();
        assert_eq!(refunds.len(), 4, "{label}");
        assert_eq!(
            shop.sim
                .order(&order.order_id)
                .unwrap()
                .refunded(chrono::Utc::now().fixed_offset()),
            yuan("1.00"),
            "{label}: WeChat refunded what the shop recorded"
        );
        let full = shop.pay.get_order(&order.order_id).await.unwrap();
        assert_eq!(full.refund_status, OrderRefundStatus::Full, "{label}");

        // Each refund's transitions are events of its order, after its payment.
        let kinds = shop.events_for(&order.order_id).await;
        assert_eq!(kinds[0], PayEventKind::Paid, "{label}");
        assert_eq!(
            kinds
                .iter()
                .filter(|kind| **kind == PayEventKind::RefundRequested)
                .count(),
            4,
            "{label}: {kinds:?}"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|kind| **kind == PayEventKind::RefundSucceeded)
                .count(),
            4,
            "{label}: {kinds:?}"
        );
        let events = shop.delivered_events().await;
        let succeeded = events
            .iter()
            .find(|event| {
                event.kind == PayEventKind::RefundSucceeded
                    && event.refund.as_ref().unwrap().refund_id == last.refund_id
            })
            .expect("the last refund's success event");
        assert_eq!(
            succeeded.order.as_ref().unwrap().refund_status,
            OrderRefundStatus::Full,
            "{label}: the event carries the order as the transition left it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_refund_id_is_the_same_refund() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let order = paid_order(&shop, "10.00").await;
        let ask = RefundArgs {
            refund_id: Some("RETRY-1".into()),
            ..refund_of(&order.order_id, Some("2.50"))
        };
        let first = shop.pay.refund(ask.clone()).await.unwrap();
        let again = shop.pay.refund(ask.clone()).await.unwrap();
        assert_eq!(first.refund_id, "RETRY-1", "{label}");
        assert_eq!(again.refund_id, "RETRY-1", "{label}");
        // Without an amount the retry still names the same refund.
        let bare = shop
            .pay
            .refund(RefundArgs {
                amount: None,
                ..ask.clone()
            })
            .await
            .unwrap();
        assert_eq!(bare.amount, yuan("2.50"), "{label}");
        wait_refund(&shop, "RETRY-1", RefundStatus::Success).await;
        assert_eq!(
            shop.pay.list_refunds(&order.order_id).await.unwrap().len(),
            1,
            "{label}"
        );
        assert_eq!(
            shop.sim.order(&order.order_id).unwrap().refunds.len(),
            1,
            "{label}: WeChat was asked for one refund"
        );
        let order = shop.pay.get_order(&order.order_id).await.unwrap();
        assert_eq!(order.refunded_fen, yuan("2.50"), "{label}");

        // The id with another amount, or for another order, is someone else's refund.
        let err = shop
            .pay
            .refund(RefundArgs {
                amount: Some(yuan("3.00")),
                ..ask.clone()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, PayError::RefundIdUsed { .. }),
            "{label}: {err}"
        );
        let other = paid_order(&shop, "5.00").await;
        let err = shop
            .pay
            .refund(RefundArgs {
                order_id: other.order_id.clone(),
                ..ask
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, PayError::RefundIdUsed { .. }),
            "{label}: {err}"
        );
        assert!(
            shop.pay
                .list_refunds(&other.order_id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_refunds_are_refused_and_write_nothing() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let paid = paid_order(&shop, "10.00").await;
        let unpaid = shop
            .pay
            .create("未支付", yuan("10.00"), None)
            .await
            .unwrap();

        let cases: Vec<(RefundArgs, &str)> = vec![
            (refund_of(&paid.order_id, Some("0")), "amount"),
            (refund_of(&paid.order_id, Some("10.01")), "amount"),
            (refund_of(&unpaid.order_id, None), "ORDER_NOT_PAID"),
            (refund_of("NO-SUCH-ORDER", None), "ORDER_NOT_FOUND"),
            (
                RefundArgs {
                    refund_id: Some("bad id!".into()),
                    ..refund_of(&paid.order_id, None)
                },
                "refundId",
            ),
            (
                RefundArgs {
                    reason: Some("x".repeat(81)),
                    ..refund_of(&paid.order_id, None)
                },
                "reason",
            ),
        ];
        for (ask, expected) in cases {
            let err = shop.pay.refund(ask.clone()).await.unwrap_err();
            let said = format!("{} {}", err.code(), err);
            assert!(said.contains(expected), "{label}: {ask:?}: {said}");
        }
        // Another element's order is not this element's to refund.
        let err = shop
            .other
            .refund(refund_of(&paid.order_id, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PayError::WrongElement { .. }),
            "{label}: {err}"
        );

        for order_id in [&paid.order_id, &unpaid.order_id] {
            assert!(
                shop.db
                    .store
                    .list_refunds(order_id)
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}"
            );
            let order = shop.db.store.get_order(order_id).await.unwrap();
            assert_eq!(order.refund_reserved_fen, 0, "{label}");
        }
        assert!(shop.sim.order(&paid.order_id).unwrap().refunds.is_empty());
        let kinds = shop.events_for(&paid.order_id).await;
        assert_eq!(kinds, [PayEventKind::Paid], "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_hold_more_than_was_paid() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let order = paid_order(&shop, "0.50").await;
        let attempts = (0..12).map(|_| {
            let pay = shop.pay.clone();
            let order_id = order.order_id.clone();
            tokio::spawn(async move { pay.refund(refund_of(&order_id, Some("0.10"))).await })
        });
        let mut accepted = 0;
        for attempt in futures::future::join_all(attempts).await {
            match attempt.unwrap() {
                Ok(_) => accepted += 1,
                Err(PayError::Invalid {
                    field: "amount", ..
                }) => {}
                Err(other) => panic!("{label}: {other}"),
            }
        }
        assert_eq!(accepted, 5, "{label}");
        let stored = shop.db.store.get_order(&order.order_id).await.unwrap();
        assert_eq!(stored.refund_reserved_fen, 50, "{label}");
        assert_eq!(
            shop.db
                .store
                .list_refunds(&order.order_id)
                .await
                .unwrap()
                .len(),
            5,
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_wechat_refuses_is_closed_and_its_money_can_be_refunded_again() {
    for db in support::all().await {
        let label = db.label;
        let mut sim = wechatpay_sim::SimConfig::default().with_time_scale(1000.0);
        for merchant in &mut sim.merchants {
            merchant.refund_balance = Some(yuan("1.00"));
        }
        let shop = shop::start(
            db,
            ShopOptions {
                sim,
                ..ShopOptions::default()
            },
        )
        .await;
        let order = paid_order(&shop, "3.00").await;
        let err = shop
            .pay
            .refund(RefundArgs {
                refund_id: Some("R-NOTENOUGH".into()),
                ..refund_of(&order.order_id, Some("2.00"))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NOTENOUGH"), "{label}: {err}");
        let closed = shop
            .db
            .store
            .find_refund("R-NOTENOUGH")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(closed.status, RefundStatus::Closed, "{label}");
        assert!(
            closed.failure.as_deref().unwrap().contains("NOTENOUGH"),
            "{label}"
        );
        let stored = shop.db.store.get_order(&order.order_id).await.unwrap();
        assert_eq!(
            stored.refund_reserved_fen, 0,
            "{label}: the money is free again"
        );
        assert_eq!(stored.refunded_fen, 0, "{label}");
        // Retrying the closed refund answers it as it is; a new one within the balance goes.
        let again = shop
            .pay
            .refund(RefundArgs {
                refund_id: Some("R-NOTENOUGH".into()),
                ..refund_of(&order.order_id, Some("2.00"))
            })
            .await
            .unwrap();
        assert_eq!(again.status, RefundStatus::Closed, "{label}");
        let small = shop
            .pay
            .refund(refund_of(&order.order_id, Some("1.00")))
            .await
            .unwrap();
        wait_refund(&shop, &small.refund_id, RefundStatus::Success).await;
        let kinds = shop.events_for(&order.order_id).await;
        assert_eq!(
            kinds,
            [
                PayEventKind::Paid,
                PayEventKind::RefundRequested,
                PayEventKind::RefundFailed,
                PayEventKind::RefundRequested,
                PayEventKind::RefundSucceeded,
            ],
            "{label}"
        );
    }
}

/// A refund notify as WeChat sends it for `refund`, with `fields` changed, encrypted with
/// `key`.
fn refund_notify(
    refund: &Refund,
    transaction_id: &str,
    key: &str,
    change: &[(&str, &str)],
) -> String {
    let mut info = Params::new();
    for (name, value) in [
        ("transaction_id", transaction_id.to_owned()),
        ("out_trade_no", refund.order_id.clone()),
        ("refund_id", refund.wechat_refund_id.clone().unwrap()),
        ("out_refund_no", refund.refund_id.clone()),
        ("total_fee", "1000".to_owned()),
        ("refund_fee", refund.amount.get().to_string()),
        ("settlement_refund_fee", refund.amount.get().to_string()),
        ("refund_status", "SUCCESS".to_owned()),
        ("success_time", "2026-12-01 10:00:00".to_owned()),
        ("refund_recv_accout", "支付用户的零钱".to_owned()),
        ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS".to_owned()),
        ("refund_request_source", "API".to_owned()),
    ] {
        info.insert(name.into(), value);
    }
    for (name, value) in change {
        info.insert((*name).into(), (*value).into());
    }
    let mut outer = Params::new();
    for (name, value) in [
        ("return_code", "SUCCESS"),
        ("appid", APP_ID),
        ("mch_id", MCH_ID),
        ("nonce_str", "refundNotifyNonce0001"),
    ] {
        outer.insert(name.into(), value.into());
    }
    outer.insert(
        "req_info".into(),
        wechatpay_v2::encrypt_req_info(&info, &ApiKey::new(key)),
    );
    wechatpay_v2::xml::encode(&outer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_notifies_that_do_not_decrypt_or_match_change_nothing() {
    for db in support::all().await {
        let label = db.label;
        // The simulator's own notify never comes, so only the notifies below move it.
        let shop = shop::start(db, ShopOptions::default()).await;
        shop.sim
            .faults()
            .add(FaultRule::new(Fault::DropNotify).on(Endpoint::RefundNotify))
            .unwrap();
        let order = paid_order(&shop, "10.00").await;
        let transaction_id = order.transaction_id.clone().unwrap();
        let refund = shop
            .pay
            .refund(refund_of(&order.order_id, Some("4.00")))
            .await
            .unwrap();
        assert_eq!(refund.status, RefundStatus::Processing, "{label}");

        let forged = [
            refund_notify(
                &refund,
                &transaction_id,
                "0123456789abcdef0123456789abcdef",
                &[],
            ),
            refund_notify(&refund, &transaction_id, API_KEY, &[("refund_fee", "1000")]),
            refund_notify(&refund, &transaction_id, API_KEY, &[("total_fee", "999")]),
            refund_notify(
                &refund,
                &transaction_id,
                API_KEY,
                &[("out_trade_no", "OTHER")],
            ),
            refund_notify(&refund, "4200000000000000000000000999", API_KEY, &[]),
            refund_notify(
                &refund,
                &transaction_id,
                API_KEY,
                &[("out_refund_no", "R-UNKNOWN")],
            ),
            "<xml><return_code>SUCCESS</return_code></xml>".to_owned(),
        ];
        for body in &forged {
            let reply = shop
                .svc
                .wechat_refund_notify_from(body.as_bytes(), None)
                .await;
            assert!(
                matches!(reply.outcome(), NotifyOutcome::Rejected { .. }),
                "{label}: {:?}",
                reply.outcome()
            );
            assert!(reply.xml().contains("FAIL"), "{label}");
        }
        let unchanged = shop
            .db
            .store
            .find_refund(&refund.refund_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(unchanged.status, RefundStatus::Processing, "{label}");

        // The genuine one, over HTTP to the shop's endpoint, applies once; a repeat is
        // acknowledged and changes nothing.
        let genuine = refund_notify(&refund, &transaction_id, API_KEY, &[]);
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let reply = client
                .post(format!("{}{REFUND_NOTIFY_PATH}", shop.public_base_url))
                .body(genuine.clone())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(reply.contains("SUCCESS"), "{label}: {reply}");
        }
        let settled = wait_refund(&shop, &refund.refund_id, RefundStatus::Success).await;
        assert_eq!(
            settled.account.as_deref(),
            Some("支付用户的零钱"),
            "{label}"
        );
        let kinds = shop.events_for(&order.order_id).await;
        assert_eq!(
            kinds,
            [
                PayEventKind::Paid,
                PayEventKind::RefundRequested,
                PayEventKind::RefundSucceeded
            ],
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_settles_refunds_whose_answer_was_lost_or_never_came() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(
            db,
            ShopOptions {
                reconciler: ReconcilerSettings {
                    first_check_after: Duration::ZERO,
                    ..ReconcilerSettings::default()
                },
                ..ShopOptions::default()
            },
        )
        .await;
        let order = paid_order(&shop, "10.00").await;
        // No refund notify comes: only the reconciler's queries can settle these refunds.
        shop.sim
            .faults()
            .add(FaultRule::new(Fault::DropNotify).on(Endpoint::RefundNotify))
            .unwrap();

        // WeChat takes the refund but every answer is lost: the outcome is unknown.
        let lost = shop
            .sim
            .faults()
            .add(
                FaultRule::new(Fault::SystemErrorAfterCommit)
                    .on(Endpoint::Refund)
                    .times(10),
            )
            .unwrap();
        let answered_lost = shop
            .pay
            .refund(refund_of(&order.order_id, Some("1.00")))
            .await
            .unwrap();
        shop.sim.faults().remove(lost);
        assert_eq!(answered_lost.status, RefundStatus::Processing, "{label}");
        assert_eq!(answered_lost.wechat_refund_id, None, "{label}");

        // The request never reaches WeChat at all.
        let down = shop
            .sim
            .faults()
            .add(
                FaultRule::new(Fault::HttpStatus { status: 503 })
                    .on(Endpoint::Refund)
                    .times(10),
            )
            .unwrap();
        let never_sent = shop
            .pay
            .refund(refund_of(&order.order_id, Some("2.00")))
            .await
            .unwrap();
        shop.sim.faults().remove(down);
        assert_eq!(never_sent.status, RefundStatus::Processing, "{label}");
        assert_eq!(shop.sim.order(&order.order_id).unwrap().refunds.len(), 1);

        // The first pass finds the lost answer's refund settled at WeChat, and WeChat never
        // having heard of the other: that one is asked for again (the same request). The
        // next pass finds it settled.
        let first = reconcile_due(&shop.app).await.unwrap();
        assert_eq!(first.refunds_examined, 2, "{label}: {first:?}");
        assert_eq!(first.refunds_settled, 1, "{label}: {first:?}");
        assert_eq!(
            shop.db
                .store
                .find_refund(&answered_lost.refund_id)
                .await
                .unwrap()
                .unwrap()
                .status,
            RefundStatus::Success,
            "{label}"
        );
        let resent = shop
            .db
            .store
            .find_refund(&never_sent.refund_id)
            .await
            .unwrap()
            .unwrap();
        assert!(resent.wechat_refund_id.is_some(), "{label}: {resent:?}");
        let second = reconcile_due(&shop.app).await.unwrap();
        assert_eq!(second.refunds_settled, 1, "{label}: {second:?}");
        for id in [&answered_lost.refund_id, &never_sent.refund_id] {
            wait_refund(&shop, id, RefundStatus::Success).await;
        }
        let at_wechat = shop.sim.order(&order.order_id).unwrap();
        assert_eq!(at_wechat.refunds.len(), 2, "{label}: each asked once");
        assert_eq!(
            at_wechat.refunded(chrono::Utc::now().fixed_offset()),
            yuan("3.00"),
            "{label}"
        );
        let stored = shop.db.store.get_order(&order.order_id).await.unwrap();
        assert_eq!(stored.refunded_fen, 300, "{label}");
        // Settled refunds are not claimed again.
        let report = reconcile_due(&shop.app).await.unwrap();
        assert_eq!(report.refunds_examined, 0, "{label}: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_refund_reads_processing_then_success() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(
            db,
            ShopOptions {
                sim: wechatpay_sim::SimConfig::default()
                    .with_time_scale(1000.0)
                    .with_refund_processing(Duration::from_millis(400)),
                ..ShopOptions::default()
            },
        )
        .await;
        shop.sim
            .faults()
            .add(FaultRule::new(Fault::DropNotify).on(Endpoint::RefundNotify))
            .unwrap();
        let order = paid_order(&shop, "10.00").await;
        let refund = shop
            .pay
            .refund(refund_of(&order.order_id, None))
            .await
            .unwrap();
        let queried = shop.pay.query_refund(&refund.refund_id).await.unwrap();
        assert_eq!(queried.status, RefundStatus::Processing, "{label}");
        assert!(queried.wechat_refund_id.is_some(), "{label}");
        let mut last = queried;
        for _ in 0..100 {
            last = shop.svc.query_refund(&refund.refund_id).await.unwrap();
            if last.status != RefundStatus::Processing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last.status, RefundStatus::Success, "{label}");
        let order = shop.svc.query(&order.order_id).await.unwrap();
        assert_eq!(order.status, PayStatus::Success, "{label}");
        let err = shop.svc.query_refund("R-NONE").await.unwrap_err();
        assert_eq!(err.code(), "REFUND_NOT_FOUND", "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_wechat_cannot_pay_back_stays_held_as_change() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let order = paid_order(&shop, "6.00").await;
        shop.sim
            .plan_refund(wechatpay_sim::RefundPlan::next_refund_of(
                &order.order_id,
                wechatpay_sim::RefundStatus::Change,
            ))
            .unwrap();
        let refund = shop
            .pay
            .refund(refund_of(&order.order_id, Some("6.00")))
            .await
            .unwrap();
        let change = wait_refund(&shop, &refund.refund_id, RefundStatus::Change).await;
        assert!(
            change.failure.as_deref().unwrap().contains("CHANGE"),
            "{label}: {change:?}"
        );
        // Not refunded, and still held: nothing more can be refunded meanwhile.
        let stored = shop.db.store.get_order(&order.order_id).await.unwrap();
        assert_eq!(stored.refunded_fen, 0, "{label}");
        assert_eq!(stored.refund_reserved_fen, 600, "{label}");
        let err = shop
            .pay
            .refund(refund_of(&order.order_id, Some("0.01")))
            .await
            .unwrap_err();
        assert!(matches!(err, PayError::Invalid { .. }), "{label}: {err}");
        // A query repeating CHANGE changes nothing.
        let queried = shop.pay.query_refund(&refund.refund_id).await.unwrap();
        assert_eq!(queried.status, RefundStatus::Change, "{label}");
        let kinds = shop.events_for(&order.order_id).await;
        assert_eq!(
            kinds,
            [
                PayEventKind::Paid,
                PayEventKind::RefundRequested,
                PayEventKind::RefundAbnormal
            ],
            "{label}"
        );
    }
}

/// A refund notify, its repeats and a query racing to settle one refund: exactly one of
/// them moves it, on any database, and exactly one event is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_reports_settle_a_refund_once() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        shop.sim
            .faults()
            .add(FaultRule::new(Fault::DropNotify).on(Endpoint::RefundNotify))
            .unwrap();
        let order = paid_order(&shop, "3.00").await;
        let refund = shop
            .pay
            .refund(refund_of(&order.order_id, None))
            .await
            .unwrap();
        let transaction_id = order.transaction_id.clone().unwrap();
        let genuine = refund_notify(&refund, &transaction_id, API_KEY, &[("total_fee", "300")]);
        let mut racers = Vec::new();
        for n in 0..12 {
            let svc = shop.svc.clone();
            let pay = shop.pay.clone();
            let body = genuine.clone();
            let refund_id = refund.refund_id.clone();
            racers.push(tokio::spawn(async move {
                if n % 3 == 0 {
                    pay.query_refund(&refund_id)
                        .await
                        .map(|refund| refund.status)
                } else {
                    match svc
                        .wechat_refund_notify_from(body.as_bytes(), None)
                        .await
                        .into_outcome()
                    {
                        NotifyOutcome::Refund { status, .. } => Ok(status),
                        other => panic!("{other:?}"),
                    }
                }
            }));
        }
        for racer in futures::future::join_all(racers).await {
            assert_eq!(racer.unwrap().unwrap(), RefundStatus::Success, "{label}");
        }
        let stored = shop.db.store.get_order(&order.order_id).await.unwrap();
        assert_eq!(stored.refunded_fen, 300, "{label}: counted once");
        let kinds = shop.events_for(&order.order_id).await;
        assert_eq!(
            kinds,
            [
                PayEventKind::Paid,
                PayEventKind::RefundRequested,
                PayEventKind::RefundSucceeded
            ],
            "{label}"
        );
    }
}
