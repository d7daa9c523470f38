//! The WeChat record table never contradicts the order: a verified FAIL notify after the
//! payment leaves the record paid, and a second payment under another transaction id is
//! kept as a conflict (the order and its record keep the first), logged, announced once,
//! and acknowledged. SQLite always, PostgreSQL when configured.

use std::sync::Arc;

use jit_pays::{NotifyOutcome, PayEventKind, PayStatus};
use wechatpay_v2::{Fen, NOTIFY_SUCCESS_REPLY};

use crate::support;
use crate::support::shop::{
    self, API_KEY, APP_ID, MCH_ID, Shop, ShopOptions, signed_notify, signed_notify_with_result,
};

async fn notify(shop: &Shop, order_id: &str, transaction_id: &str) -> jit_pays::NotifyReply {
    let body = signed_notify(APP_ID, MCH_ID, API_KEY, order_id, 500, transaction_id);
    shop.svc.wechat_notify(body.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_notify_after_the_payment_leaves_the_record_paid() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let order = shop.pay.create("Paid", Fen::new(500), None).await.unwrap();
        let id = order.order_id.as_str();
        let paid = notify(&shop, id, "T-first").await;
        assert_eq!(
            *paid.outcome(),
            NotifyOutcome::Paid {
                order_id: id.into()
            },
            "{label}"
        );

        // Genuine (signed with the merchant's key), and after the payment.
        let failed = signed_notify_with_result(APP_ID, MCH_ID, API_KEY, id, 500, "T-late", "FAIL");
        let reply = shop.svc.wechat_notify(failed.as_bytes()).await;
        assert_eq!(
            *reply.outcome(),
            NotifyOutcome::NotPaid {
                order_id: id.into()
            },
            "{label}"
        );
        assert_eq!(reply.xml(), NOTIFY_SUCCESS_REPLY, "{label}");

        let record = shop.db.store.find_record(id).await.unwrap().unwrap();
        assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"), "{label}");
        assert_eq!(record.transaction_id.as_deref(), Some("T-first"), "{label}");
        let order = shop.db.store.get_order(id).await.unwrap();
        assert_eq!(order.status, PayStatus::Success, "{label}");
        assert_eq!(order.transaction_id.as_deref(), Some("T-first"), "{label}");

        // Before a payment a FAIL notify is recorded as it says.
        let other = shop
            .pay
            .create("Unpaid", Fen::new(500), None)
            .await
            .unwrap();
        let failed =
            signed_notify_with_result(APP_ID, MCH_ID, API_KEY, &other.order_id, 500, "T-x", "FAIL");
        shop.svc.wechat_notify(failed.as_bytes()).await;
        let record = shop
            .db
            .store
            .find_record(&other.order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.trade_state.as_deref(), Some("PAYERROR"), "{label}");
    }
}

// One thread, so the log capture sees the error line.
#[tokio::test(flavor = "current_thread")]
async fn a_second_payment_is_kept_as_a_conflict_logged_announced_once_and_acknowledged() {
    let (log, _guard) = support::capture_logs();
    let shop = shop::start(support::sqlite().await, ShopOptions::default()).await;
    let order = shop.pay.create("Twice", Fen::new(500), None).await.unwrap();
    let id = order.order_id.as_str();
    assert_eq!(
        notify(&shop, id, "T-first").await.into_outcome(),
        NotifyOutcome::Paid {
            order_id: id.into()
        }
    );
    // The order's payment is now known to this process (the order-facts cache): a second
    // transaction must still reach the database.
    let second = notify(&shop, id, "T-second").await;
    assert_eq!(
        *second.outcome(),
        NotifyOutcome::PaymentConflict {
            order_id: id.into(),
            transaction_id: "T-second".into()
        }
    );
    // Genuine: WeChat is told SUCCESS, or it would send it again for a day.
    assert_eq!(second.xml(), NOTIFY_SUCCESS_REPLY);

    let order = shop.db.store.get_order(id).await.unwrap();
    assert_eq!(order.status, PayStatus::Success);
    assert_eq!(order.transaction_id.as_deref(), Some("T-first"));
    let record = shop.db.store.find_record(id).await.unwrap().unwrap();
    assert_eq!(record.transaction_id.as_deref(), Some("T-first"));
    assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"));
    assert!(
        !record.last_notify.unwrap_or_default().contains("T-second"),
        "the record holds the order's own notify"
    );
    let conflicts = shop.db.store.payment_conflicts(id).await.unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].transaction_id, "T-second");
    assert_eq!(
        conflicts[0].order_transaction_id.as_deref(),
        Some("T-first")
    );
    assert_eq!(conflicts[0].total_fee, 500);
    assert!(conflicts[0].raw_notify.contains("T-second"));

    // Repeats: the conflict again (no second row, no second event), the first payment
    // again (a plain repeat).
    assert!(matches!(
        notify(&shop, id, "T-second").await.into_outcome(),
        NotifyOutcome::PaymentConflict { .. }
    ));
    assert_eq!(
        notify(&shop, id, "T-first").await.into_outcome(),
        NotifyOutcome::AlreadyPaid {
            order_id: id.into()
        }
    );
    assert_eq!(shop.db.store.payment_conflicts(id).await.unwrap().len(), 1);
    assert_eq!(
        shop.events_for(id).await,
        [PayEventKind::Paid, PayEventKind::PaymentConflict]
    );
    let conflict_events: Vec<_> = shop
        .delivered_events()
        .await
        .iter()
        .filter(|event| event.kind == PayEventKind::PaymentConflict)
        .map(|event| {
            (
                event.conflicting_transaction_id.clone(),
                event.order.as_ref().unwrap().transaction_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        conflict_events,
        [(Some("T-second".to_owned()), Some("T-first".to_owned()))]
    );

    let log = log.text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("second payment"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("T-second") && errors[0].contains("T-first"),
        "{}",
        errors[0]
    );
}

/// Two payments of one waiting order arriving together (one batch, or two): exactly one
/// pays the order, the other is the conflict, whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_payments_arriving_together_make_one_payment_and_one_conflict() {
    const ORDERS: usize = 40;
    for db in support::all().await {
        let shop = Arc::new(shop::start(db, ShopOptions::default()).await);
        let label = shop.db.label;
        let mut tasks = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..ORDERS {
            let order = shop.pay.create("Race", Fen::new(500), None).await.unwrap();
            for transaction in ["A", "B"] {
                let shop = shop.clone();
                let id = order.order_id.clone();
                tasks.push(tokio::spawn(async move {
                    let reply = notify(&shop, &id, &format!("{transaction}-{id}")).await;
                    (id, reply)
                }));
            }
            ids.push(order.order_id);
        }
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        for id in &ids {
            let outcomes: Vec<&NotifyOutcome> = replies
                .iter()
                .filter(|(order, _)| order == id)
                .map(|(_, reply)| {
                    assert_eq!(
                        reply.xml(),
                        NOTIFY_SUCCESS_REPLY,
                        "{label}: {:?}",
                        reply.outcome()
                    );
                    reply.outcome()
                })
                .collect();
            let paid = outcomes
                .iter()
                .filter(|o| matches!(o, NotifyOutcome::Paid { .. }))
                .count();
            let conflicts: Vec<&String> = outcomes
                .iter()
                .filter_map(|o| match o {
                    NotifyOutcome::PaymentConflict { transaction_id, .. } => Some(transaction_id),
                    _ => None,
                })
                .collect();
            assert_eq!((paid, conflicts.len()), (1, 1), "{label}: {outcomes:?}");
            let order = shop.db.store.get_order(id).await.unwrap();
            let kept = order.transaction_id.unwrap();
            assert_ne!(&kept, conflicts[0], "{label}");
            let record = shop.db.store.find_record(id).await.unwrap().unwrap();
            assert_eq!(record.transaction_id.as_ref(), Some(&kept), "{label}");
            let rows = shop.db.store.payment_conflicts(id).await.unwrap();
            assert_eq!(rows.len(), 1, "{label}");
            assert_eq!(&rows[0].transaction_id, conflicts[0], "{label}");
            assert_eq!(
                rows[0].order_transaction_id.as_ref(),
                Some(&kept),
                "{label}"
            );
            // Each caller announces after the commit, on its own task: in either order.
            let mut events = shop.events_for(id).await;
            events.sort_by_key(|kind| *kind == PayEventKind::PaymentConflict);
            assert_eq!(
                events,
                [PayEventKind::Paid, PayEventKind::PaymentConflict],
                "{label}"
            );
        }
    }
}
