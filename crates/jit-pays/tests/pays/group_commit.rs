//! Group commit of notified payments: many notifies share one transaction, and each still
//! gets its own exactly-once outcome; a batch that cannot be committed records nothing and
//! answers every notify in it with FAIL. SQLite always, PostgreSQL when configured.

use crate::support;
use std::collections::HashMap;
use std::sync::Arc;

use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, ShopOptions};
use jit_pays::db::NotifyWriterStats;
use jit_pays::{NotifyOutcome, PayEventKind, PayStatus};
use sea_orm::ConnectionTrait;
use wechatpay_v2::{Fen, NOTIFY_SUCCESS_REPLY};

/// More orders than one batch takes (256), each notified three times: the copies of an
/// order land in different batches (a third of the queue apart), and a second copy of
/// every fifth order right behind its first lands in the same batch. Some orders are
/// closed locally first, so the late-paid path runs inside batches too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notifies_across_batches_make_one_transition_and_one_hook_call_each() {
    const ORDERS: usize = 400;
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let mut orders = Vec::new();
        for i in 0..ORDERS {
            let order = shop.pay.create("Batch", Fen::new(88), None).await.unwrap();
            let closed = i % 10 == 3;
            if closed {
                shop.db
                    .store
                    .close_order(&order.order_id, PayStatus::Close)
                    .await
                    .unwrap();
            }
            let body = shop::signed_notify(
                APP_ID,
                MCH_ID,
                API_KEY,
                &order.order_id,
                88,
                &format!("T{}", order.order_id),
            );
            orders.push((order.order_id, body, closed));
        }
        let mut queue: Vec<&String> = Vec::new();
        for round in 0..3 {
            for (i, (_, body, _)) in orders.iter().enumerate() {
                queue.push(body);
                if round == 0 && i % 5 == 0 {
                    queue.push(body);
                }
            }
        }
        let notifies = queue.len() as u64;
        assert_eq!(
            shop.db.store.notify_writer_stats(),
            NotifyWriterStats::default(),
            "{label}"
        );
        let tasks: Vec<_> = queue
            .into_iter()
            .map(|body| {
                let svc = shop.svc.clone();
                let body = body.clone();
                tokio::spawn(async move { svc.wechat_notify(body.as_bytes()).await })
            })
            .collect();
        let mut transitions: HashMap<String, Vec<NotifyOutcome>> = HashMap::new();
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!(
                reply.xml(),
                NOTIFY_SUCCESS_REPLY,
                "{label}: {:?}",
                reply.outcome()
            );
            match &reply.outcome() {
                NotifyOutcome::Paid { order_id } | NotifyOutcome::PaidAfterClose { order_id } => {
                    transitions
                        .entry(order_id.clone())
                        .or_default()
                        .push(reply.outcome().clone());
                }
                NotifyOutcome::AlreadyPaid { .. } => {}
                other => panic!("{label}: {other:?}"),
            }
        }
        for (order_id, _, closed) in &orders {
            let expected = if *closed {
                NotifyOutcome::PaidAfterClose {
                    order_id: order_id.clone(),
                }
            } else {
                NotifyOutcome::Paid {
                    order_id: order_id.clone(),
                }
            };
            assert_eq!(
                transitions.get(order_id).map(Vec::as_slice),
                Some(&[expected][..]),
                "{label}: {order_id}"
            );
            // A closed order's close has its event too, before the late payment's.
            let kinds: &[PayEventKind] = if *closed {
                &[PayEventKind::Closed, PayEventKind::PaidAfterClose]
            } else {
                &[PayEventKind::Paid]
            };
            assert_eq!(
                shop.events_for(order_id).await,
                kinds,
                "{label}: {order_id}"
            );
            let row = shop.db.store.get_order(order_id).await.unwrap();
            assert_eq!(row.status, PayStatus::Success, "{label}: {order_id}");
            assert_eq!(row.paid_after_close, *closed, "{label}: {order_id}");
            assert_eq!(
                row.transaction_id.as_deref(),
                Some(format!("T{order_id}").as_str()),
                "{label}"
            );
            let record = shop.db.store.find_record(order_id).await.unwrap().unwrap();
            assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"), "{label}");
            assert!(record.last_notify.is_some(), "{label}");
        }
        // Shared commits: fewer transactions than payments written, and than notifies.
        let stats = shop.db.store.notify_writer_stats();
        assert!(stats.payments >= ORDERS as u64, "{label}: {stats:?}");
        assert!(stats.payments <= notifies, "{label}: {stats:?}");
        assert!(
            stats.commits < stats.payments,
            "{label}: every payment committed alone: {stats:?}"
        );
        // A payment's event carries the row the transition wrote.
        for event in shop
            .delivered_events()
            .await
            .iter()
            .filter(|event| event.kind.is_payment())
        {
            assert_eq!(
                event.order.as_ref().unwrap().status,
                PayStatus::Success,
                "{label}"
            );
            assert!(event.order.as_ref().unwrap().pay_time.is_some(), "{label}");
        }
    }
}

/// A notify that arrives alone is committed alone, once: group commit waits for no company.
/// Its repeat is answered from what this process knows, with no commit at all.
#[tokio::test]
async fn a_notify_alone_is_one_commit_and_its_repeat_none() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let order = shop.pay.create("Alone", Fen::new(5), None).await.unwrap();
        let body = shop::signed_notify(APP_ID, MCH_ID, API_KEY, &order.order_id, 5, "T-alone");
        let one = NotifyWriterStats {
            commits: 1,
            payments: 1,
        };
        let reply = shop.svc.wechat_notify(body.as_bytes()).await;
        assert!(
            matches!(reply.outcome(), NotifyOutcome::Paid { .. }),
            "{label}: {reply:?}"
        );
        assert_eq!(shop.db.store.notify_writer_stats(), one, "{label}");
        let repeat = shop.svc.wechat_notify(body.as_bytes()).await;
        assert!(
            matches!(repeat.outcome(), NotifyOutcome::AlreadyPaid { .. }),
            "{label}: {repeat:?}"
        );
        assert_eq!(shop.db.store.notify_writer_stats(), one, "{label}");
    }
}

/// Every notify of a batch that cannot be written answers FAIL (WeChat retries), and no
/// order moves: here the record table is gone, so each batch's upsert fails after its
/// conditional UPDATE ran — which must be rolled back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_cannot_be_written_changes_no_order_and_answers_fail() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let mut orders = Vec::new();
        for _ in 0..60 {
            let order = shop.pay.create("Doomed", Fen::new(10), None).await.unwrap();
            orders.push(order.order_id);
        }
        shop.db
            .store
            .connection()
            .execute_unprepared("DROP TABLE pays_wechat_record")
            .await
            .unwrap();
        let svc = Arc::clone(&shop.svc);
        let tasks: Vec<_> = orders
            .iter()
            .map(|order_id| {
                let svc = svc.clone();
                let body = shop::signed_notify(APP_ID, MCH_ID, API_KEY, order_id, 10, "T-doomed");
                tokio::spawn(async move { svc.wechat_notify(body.as_bytes()).await })
            })
            .collect();
        for task in tasks {
            let reply = task.await.unwrap();
            assert!(
                matches!(reply.outcome(), NotifyOutcome::Failed { .. }),
                "{label}: {:?}",
                reply.outcome()
            );
            assert!(!reply.acknowledged(), "{label}");
            assert!(reply.xml().contains("FAIL"), "{label}: {}", reply.xml());
        }
        for order_id in &orders {
            let row = shop.db.store.get_order(order_id).await.unwrap();
            assert_eq!(row.status, PayStatus::Wait, "{label}: {order_id}");
            assert_eq!(row.transaction_id, None, "{label}: {order_id}");
            assert!(
                shop.events_for(order_id).await.is_empty(),
                "{label}: {order_id}"
            );
        }
        assert_eq!(shop.db.store.notify_writer_stats().commits, 0, "{label}");
    }
}
