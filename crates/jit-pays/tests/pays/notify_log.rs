//! `pays_notify_log`: every notify received through PaySvc's URLs is logged — a verified
//! payment with its batch, a repeat, a forgery and an unknown order off the request path —
//! with its reason kind, and refusals are counted by kind. SQLite always, PostgreSQL when
//! configured.

use std::time::Duration;

use crate::support;
use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, OTHER_API_KEY, ShopOptions};
use jit_pays::db::entity::notify_log;
use jit_pays::db::store::OrderFilter;
use jit_pays::{NotifyOutcome, PayStatus};
use wechatpay_v2::Fen;

const AMOUNT: i64 = 4321;

async fn wait_for_rows(
    store: &jit_pays::PayStore,
    order_id: &str,
    rows: usize,
) -> Vec<notify_log::Model> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = store.notifies_of(order_id).await.unwrap();
        if found.len() >= rows || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notify_is_logged_with_its_outcome_and_reason() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let store = &shop.db.store;
        let since = chrono::Utc::now() - chrono::Duration::seconds(1);
        let order = shop
            .pay
            .create("Logged", Fen::new(AMOUNT), None)
            .await
            .unwrap();
        let id = order.order_id.as_str();

        let forged = shop::signed_notify(APP_ID, MCH_ID, OTHER_API_KEY, id, AMOUNT, "T-1");
        let got = shop
            .svc
            .wechat_notify(forged.as_bytes())
            .await
            .into_outcome();
        assert!(
            matches!(got, NotifyOutcome::Rejected { .. }),
            "{label}: {got:?}"
        );
        let genuine = shop::signed_notify(APP_ID, MCH_ID, API_KEY, id, AMOUNT, "T-1");
        let got = shop
            .svc
            .wechat_notify(genuine.as_bytes())
            .await
            .into_outcome();
        assert!(
            matches!(got, NotifyOutcome::Paid { .. }),
            "{label}: {got:?}"
        );
        let got = shop
            .svc
            .wechat_notify(genuine.as_bytes())
            .await
            .into_outcome();
        assert!(
            matches!(got, NotifyOutcome::AlreadyPaid { .. }),
            "{label}: {got:?}"
        );
        let unknown = shop::signed_notify(APP_ID, MCH_ID, API_KEY, "NO-SUCH-ORDER", AMOUNT, "T-9");
        shop.svc.wechat_notify(unknown.as_bytes()).await;
        shop.svc.wechat_notify(b"not xml at all").await;

        let rows = wait_for_rows(store, id, 3).await;
        let outcomes: Vec<&str> = rows.iter().map(|row| row.outcome.as_str()).collect();
        // Newest first; the payment's row came with its commit, the others off the path.
        assert_eq!(outcomes.len(), 3, "{label}: {rows:#?}");
        assert!(outcomes.contains(&"paid"), "{label}: {outcomes:?}");
        assert!(outcomes.contains(&"already_paid"), "{label}: {outcomes:?}");
        let refused = rows
            .iter()
            .find(|row| row.outcome == "refused")
            .expect("the forgery");
        assert!(!refused.verified, "{label}");
        assert_eq!(
            refused.reason_kind.as_deref(),
            Some("bad_signature"),
            "{label}"
        );
        assert!(
            refused.reason.as_deref().unwrap().contains("signature"),
            "{label}"
        );
        assert!(refused.body.contains(id), "{label}");
        assert!(!refused.body.contains(API_KEY) && !refused.body.contains(OTHER_API_KEY));
        let paid = rows.iter().find(|row| row.outcome == "paid").unwrap();
        assert!(paid.verified && paid.reason.is_none(), "{label}");
        assert_eq!(paid.kind, "payment");
        assert_eq!(paid.body_len as usize, genuine.len());

        wait_for_rows(store, "NO-SUCH-ORDER", 1).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let counts = loop {
            let counts = store.notify_refusals_since(since).await.unwrap();
            if counts.iter().map(|(_, n)| n).sum::<i64>() >= 3
                || tokio::time::Instant::now() > deadline
            {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let count_of = |kind: &str| counts.iter().find(|(k, _)| k == kind).map(|(_, n)| *n);
        assert_eq!(count_of("bad_signature"), Some(1), "{label}: {counts:?}");
        assert_eq!(count_of("unknown_order"), Some(1), "{label}: {counts:?}");
        assert_eq!(count_of("malformed"), Some(1), "{label}: {counts:?}");
        assert_eq!(store.notify_log().stats().dropped, 0, "{label}");
        assert!(
            store
                .notify_refusals_since(chrono::Utc::now() + chrono::Duration::hours(1))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn orders_filter_by_id_prefix_amount_expiry_and_payment_time() {
    for db in support::all().await {
        let store = &db.store;
        let now = chrono::Utc::now();
        for (id, fen, expires_in) in [
            ("AB_1", 100, 60),
            ("ABx1", 250, 60),
            ("AC%2", 900, -60),
            ("ZZ-3", 5000, -60),
        ] {
            store
                .insert_order(jit_pays::db::store::NewOrder {
                    order_id: id.to_owned(),
                    subject: "s".into(),
                    amount_fen: fen,
                    element: "pays.myWechatPay".into(),
                    expires_at: now + chrono::Duration::seconds(expires_in),
                    first_check_at: now + chrono::Duration::minutes(5),
                })
                .await
                .unwrap();
        }
        store.mark_paid("ZZ-3", None, now).await.unwrap();
        let count = |filter: OrderFilter| async move { store.count_orders(&filter).await.unwrap() };
        let prefix = |p: &str| OrderFilter {
            order_id_prefix: Some(p.to_owned()),
            ..OrderFilter::default()
        };
        assert_eq!(count(prefix("AB")).await, 2, "{}", db.label);
        // `_` and `%` are text, not wildcards.
        assert_eq!(count(prefix("AB_")).await, 1, "{}", db.label);
        assert_eq!(count(prefix("AC%")).await, 1, "{}", db.label);
        assert_eq!(count(prefix("A%")).await, 0, "{}", db.label);
        let amounts = OrderFilter {
            amount_min_fen: Some(250),
            amount_max_fen: Some(900),
            ..OrderFilter::default()
        };
        let listed = store.list_orders(&amounts, 0, 10).await.unwrap();
        let mut ids: Vec<&str> = listed.iter().map(|row| row.order_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["ABx1", "AC%2"], "{}", db.label);
        assert_eq!(store.sum_amount_fen(&amounts).await.unwrap(), 1150);
        let stuck = OrderFilter {
            status: Some(PayStatus::Wait),
            expires_before: Some(now),
            ..OrderFilter::default()
        };
        assert_eq!(count(stuck).await, 1, "{}", db.label);
        let paid_today = OrderFilter {
            status: Some(PayStatus::Success),
            paid_from: Some(now - chrono::Duration::hours(1)),
            paid_to: Some(now + chrono::Duration::hours(1)),
            ..OrderFilter::default()
        };
        assert_eq!(store.sum_amount_fen(&paid_today).await.unwrap(), 5000);
        assert_eq!(
            store
                .sum_amount_fen(&OrderFilter {
                    amount_min_fen: Some(1_000_000),
                    ..OrderFilter::default()
                })
                .await
                .unwrap(),
            0
        );
    }
}
