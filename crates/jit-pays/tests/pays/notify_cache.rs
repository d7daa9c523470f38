//! Notifies answered from what the process remembers: a repeat of a payment this process
//! has committed or read needs no database at all, yet is verified exactly as a first
//! notify; a forgotten (evicted) order and a process that never saw the payment fall back
//! to the database. SQLite always, PostgreSQL when configured.
//!
//! "No database at all" is shown by renaming the family's tables away: any statement on
//! them then fails, which a notify answers with FAIL (`NotifyOutcome::Failed`).

use crate::support;
use std::sync::Arc;
use std::time::Duration;

use crate::support::shop::{
    self, API_KEY, APP_ID, MCH_ID, OTHER_API_KEY, OTHER_APP_ID, OTHER_MCH_ID, Shop, ShopOptions,
};
use jit_pays::db::connect;
use jit_pays::{NotifyOutcome, PayEventKind, PayStatus, PaySvc, PaysSettings};
use sea_orm::ConnectionTrait;
use wechatpay_v2::Fen;

const AMOUNT: i64 = 1234;

fn notify(order_id: &str, transaction_id: &str) -> String {
    shop::signed_notify(APP_ID, MCH_ID, API_KEY, order_id, AMOUNT, transaction_id)
}

async fn set_tables_away(shop: &Shop, away: bool) {
    let connection = shop.db.store.connection();
    for table in ["pays_pay_log", "pays_wechat_record"] {
        let (from, to) = if away {
            (table.to_owned(), format!("{table}_away"))
        } else {
            (format!("{table}_away"), table.to_owned())
        };
        connection
            .execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
            .await
            .unwrap_or_else(|e| panic!("renaming {from}: {e}"));
    }
}

async fn outcome(svc: &PaySvc, body: &str) -> NotifyOutcome {
    svc.wechat_notify(body.as_bytes()).await.into_outcome()
}

fn is_already_paid(outcome: &NotifyOutcome) -> bool {
    matches!(outcome, NotifyOutcome::AlreadyPaid { .. })
}

fn is_rejected(outcome: &NotifyOutcome) -> bool {
    matches!(outcome, NotifyOutcome::Rejected { .. })
}

fn is_failed(outcome: &NotifyOutcome) -> bool {
    matches!(outcome, NotifyOutcome::Failed { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_of_a_known_payment_needs_no_database_but_a_forged_one_is_still_refused() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let paid = shop
            .pay
            .create("Cached", Fen::new(AMOUNT), None)
            .await
            .unwrap();
        let waiting = shop
            .pay
            .create("Waiting", Fen::new(AMOUNT), None)
            .await
            .unwrap();
        let first = outcome(&shop.svc, &notify(&paid.order_id, "T-1")).await;
        assert!(
            matches!(first, NotifyOutcome::Paid { .. }),
            "{label}: {first:?}"
        );

        set_tables_away(&shop, true).await;
        assert!(
            shop.db.store.get_order(&paid.order_id).await.is_err(),
            "{label}"
        );

        // Genuine repeats: through the shared URL and through the element itself.
        let repeat = notify(&paid.order_id, "T-1");
        for _ in 0..3 {
            let got = outcome(&shop.svc, &repeat).await;
            assert!(is_already_paid(&got), "{label}: {got:?}");
        }
        let direct = shop.pay.notify(repeat.as_bytes()).await;
        assert!(is_already_paid(direct.outcome()), "{label}: {direct:?}");
        assert!(direct.acknowledged(), "{label}");

        // Forged or tampered repeats are refused as before, from memory too.
        let forged = [
            (
                "signed with another key",
                shop::signed_notify(APP_ID, MCH_ID, OTHER_API_KEY, &paid.order_id, AMOUNT, "T-1"),
            ),
            (
                "another amount",
                shop::signed_notify(APP_ID, MCH_ID, API_KEY, &paid.order_id, AMOUNT + 1, "T-1"),
            ),
            (
                "another appid",
                shop::signed_notify(OTHER_APP_ID, MCH_ID, API_KEY, &paid.order_id, AMOUNT, "T-1"),
            ),
            (
                "another merchant",
                shop::signed_notify(APP_ID, OTHER_MCH_ID, API_KEY, &paid.order_id, AMOUNT, "T-1"),
            ),
            (
                "the other merchant's own",
                shop::signed_notify(
                    OTHER_APP_ID,
                    OTHER_MCH_ID,
                    OTHER_API_KEY,
                    &paid.order_id,
                    AMOUNT,
                    "T-1",
                ),
            ),
            (
                "a changed field",
                repeat.replace("<bank_type>CMC", "<bank_type>ICBC"),
            ),
        ];
        for (what, body) in &forged {
            assert_ne!(body, &repeat, "{what}");
            let got = outcome(&shop.svc, body).await;
            assert!(is_rejected(&got), "{label}: {what}: {got:?}");
        }

        // What memory cannot vouch for goes to the (now missing) tables and fails: another
        // transaction id for the paid order, the first payment of a waiting order.
        let other_transaction = outcome(&shop.svc, &notify(&paid.order_id, "T-2")).await;
        assert!(
            is_failed(&other_transaction),
            "{label}: {other_transaction:?}"
        );
        let first_of_waiting = outcome(&shop.svc, &notify(&waiting.order_id, "T-3")).await;
        assert!(
            is_failed(&first_of_waiting),
            "{label}: {first_of_waiting:?}"
        );

        set_tables_away(&shop, false).await;
        // Another transaction for a paid order is a second payment: kept as a conflict.
        let other_transaction = outcome(&shop.svc, &notify(&paid.order_id, "T-2")).await;
        assert!(
            matches!(other_transaction, NotifyOutcome::PaymentConflict { .. }),
            "{label}: {other_transaction:?}"
        );
        let first_of_waiting = outcome(&shop.svc, &notify(&waiting.order_id, "T-3")).await;
        assert!(
            matches!(first_of_waiting, NotifyOutcome::Paid { .. }),
            "{label}: {first_of_waiting:?}"
        );
        let row = shop.db.store.get_order(&paid.order_id).await.unwrap();
        assert_eq!(row.status, PayStatus::Success, "{label}");
        assert_eq!(row.transaction_id.as_deref(), Some("T-1"), "{label}");
        assert_eq!(
            shop.events_for(&paid.order_id).await,
            [PayEventKind::Paid, PayEventKind::PaymentConflict],
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_order_is_read_again_from_the_database() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        // About one order per shard: the orders created next push the paid one out.
        shop.db.store.set_order_cache_capacity(1);
        let order_id = "EVICT-A".to_owned();
        shop.pay
            .create("Evicted", Fen::new(AMOUNT), Some(order_id.clone()))
            .await
            .unwrap();
        let body = notify(&order_id, "T-E");
        let first = outcome(&shop.svc, &body).await;
        assert!(
            matches!(first, NotifyOutcome::Paid { .. }),
            "{label}: {first:?}"
        );
        for i in 0..200 {
            shop.pay
                .create("Filler", Fen::new(1), Some(format!("EVICT-{i}")))
                .await
                .unwrap();
        }

        // Forgotten: the repeat needs the database, so without it the answer is FAIL…
        set_tables_away(&shop, true).await;
        let got = outcome(&shop.svc, &body).await;
        assert!(is_failed(&got), "{label}: {got:?}");
        // …and with it the payment is found, and remembered again.
        set_tables_away(&shop, false).await;
        let got = outcome(&shop.svc, &body).await;
        assert!(is_already_paid(&got), "{label}: {got:?}");
        set_tables_away(&shop, true).await;
        let got = outcome(&shop.svc, &body).await;
        assert!(is_already_paid(&got), "{label}: {got:?}");
        set_tables_away(&shop, false).await;
        assert_eq!(shop.events_for(&order_id).await.len(), 1, "{label}");
    }
}

/// A second process: its own store (pool and memory) and app over the same database.
async fn second_process(shop: &Shop) -> (jit_runtime::App, Arc<PaySvc>, tempfile::TempDir) {
    let store = connect(&shop.db.config).await.expect("second store");
    let dir = tempfile::tempdir().unwrap();
    shop::write_app(dir.path());
    let mut settings = PaysSettings::new(
        shop.public_base_url.clone(),
        format!(
            "{}/api/demo/shop/pays/services/PaySvc/wechatNotify",
            shop.public_base_url
        ),
        shop.sim.base_url(),
    );
    settings.gateway_timeout = Duration::from_secs(5);
    let app = jit_pays::register(jit_runtime::AppBuilder::new(dir.path()), store, settings)
        .build()
        .await
        .unwrap_or_else(|e| panic!("second app: {e}"));
    let svc = app.get::<PaySvc>("pays.services.PaySvc").await.unwrap();
    (app, svc, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_did_not_see_the_payment_still_answers_correctly() {
    for db in support::all().await {
        let shop = shop::start(db, ShopOptions::default()).await;
        let label = shop.db.label;
        let (_app, second, _dir) = second_process(&shop).await;

        // The second process never saw the order before its payment.
        let unseen = shop
            .pay
            .create("Unseen", Fen::new(AMOUNT), None)
            .await
            .unwrap();
        // The second process saw this order waiting (it remembers its owner and amount,
        // not that it is paid).
        let seen = shop
            .pay
            .create("Seen", Fen::new(AMOUNT), None)
            .await
            .unwrap();
        let early = second
            .query(&seen.order_id)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(early.status, PayStatus::Wait, "{label}");

        for order in [&unseen, &seen] {
            let body = notify(&order.order_id, "T-P");
            let first = outcome(&shop.svc, &body).await;
            assert!(
                matches!(first, NotifyOutcome::Paid { .. }),
                "{label}: {first:?}"
            );
            // The second process finds the payment in the database…
            let got = outcome(&second, &body).await;
            assert!(is_already_paid(&got), "{label}: {got:?}");
            // …and a tampered repeat is refused there too.
            let tampered =
                shop::signed_notify(APP_ID, MCH_ID, API_KEY, &order.order_id, AMOUNT - 1, "T-P");
            assert!(is_rejected(&outcome(&second, &tampered).await), "{label}");
        }

        // Having found them, it remembers them: no database needed for further repeats.
        set_tables_away(&shop, true).await;
        for order in [&unseen, &seen] {
            let got = outcome(&second, &notify(&order.order_id, "T-P")).await;
            assert!(is_already_paid(&got), "{label}: {got:?}");
        }
        set_tables_away(&shop, false).await;
        for order in [&unseen, &seen] {
            assert_eq!(shop.events_for(&order.order_id).await.len(), 1, "{label}");
        }
    }
}
