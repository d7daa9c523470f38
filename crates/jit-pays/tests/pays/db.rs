//! The order store against real databases: migrations, uniqueness, the state machine
//! under concurrency, queries.

use crate::support;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jit_pays::db::entity::PayStatus;
use jit_pays::db::store::{CloseOutcome, NewOrder, OrderFilter, PaidOutcome, StoreError};
use jit_pays::db::{DbConfig, DbOpenError, PayStore, connect};

fn order(id: &str, amount_fen: i64) -> NewOrder {
    let now = Utc::now();
    NewOrder {
        order_id: id.to_owned(),
        subject: "Product Purchase".to_owned(),
        amount_fen,
        element: "pays.myWechatPay".to_owned(),
        expires_at: now + chrono::Duration::hours(2),
        first_check_at: now + chrono::Duration::minutes(1),
    }
}

#[tokio::test]
async fn sqlite_is_opened_in_wal_with_a_busy_timeout_and_reopens_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let config = DbConfig::sqlite_beside(dir.path(), "shop");
    let store = connect(&config).await.unwrap();
    store.insert_order(order("REOPEN1", 100)).await.unwrap();
    drop(store);
    // Migrations are idempotent and data survives.
    let store = connect(&config).await.unwrap();
    assert_eq!(store.get_order("REOPEN1").await.unwrap().amount_fen, 100);
    assert!(dir.path().join("shop.db").exists());
}

#[tokio::test]
async fn an_in_memory_sqlite_is_refused_because_wal_does_not_hold() {
    let err = connect(&DbConfig::new("sqlite::memory:"))
        .await
        .unwrap_err();
    match err {
        DbOpenError::Pragma { pragma, found, .. } => {
            assert_eq!(pragma, "journal_mode");
            assert_eq!(found.to_ascii_lowercase(), "memory");
        }
        other => panic!("expected a pragma refusal, got {other}"),
    }
}

#[tokio::test]
async fn an_unknown_url_scheme_is_refused_and_passwords_are_not_shown() {
    let err = connect(&DbConfig::new("mysql://u:hunter2@localhost/db"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not supported"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let mut unreachable = DbConfig::new("postgres://u:hunter2@127.0.0.1:1/db");
    unreachable.connect_timeout = Duration::from_millis(300);
    unreachable.busy_timeout = Duration::from_millis(100);
    let err = connect(&unreachable).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn duplicate_order_ids_are_refused_and_write_nothing() {
    for db in support::all().await {
        let store = &db.store;
        store.insert_order(order("DUP1", 500)).await.unwrap();
        let err = store.insert_order(order("DUP1", 700)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::DuplicateOrder { ref order_id } if order_id == "DUP1"),
            "{}: {err}",
            db.label
        );
        let filter = OrderFilter::default();
        assert_eq!(
            store.count_orders(&filter).await.unwrap(),
            1,
            "{}",
            db.label
        );
        assert_eq!(store.get_order("DUP1").await.unwrap().amount_fen, 500);
    }
}

#[tokio::test]
async fn states_only_move_forward() {
    for db in support::all().await {
        let store = &db.store;
        store.insert_order(order("FWD1", 100)).await.unwrap();
        assert_eq!(
            store.close_order("FWD1", PayStatus::Close).await.unwrap(),
            CloseOutcome::Closed
        );
        assert_eq!(
            store.close_order("FWD1", PayStatus::Timeout).await.unwrap(),
            CloseOutcome::AlreadyFinal(PayStatus::Close)
        );
        let closed = store.get_order("FWD1").await.unwrap();
        assert_eq!(closed.status, PayStatus::Close);
        assert!(closed.closed_at.is_some());

        store.insert_order(order("FWD2", 100)).await.unwrap();
        assert_eq!(
            store
                .mark_paid("FWD2", Some("T2"), Utc::now())
                .await
                .unwrap()
                .outcome,
            PaidOutcome::Paid
        );
        assert_eq!(
            store.close_order("FWD2", PayStatus::Close).await.unwrap(),
            CloseOutcome::AlreadyFinal(PayStatus::Success)
        );
        assert_eq!(
            store
                .mark_paid("FWD2", Some("T2"), Utc::now())
                .await
                .unwrap()
                .outcome,
            PaidOutcome::AlreadyPaid
        );
        let paid = store.get_order("FWD2").await.unwrap();
        assert_eq!(paid.status, PayStatus::Success);
        assert_eq!(paid.transaction_id.as_deref(), Some("T2"));
        assert!(!paid.paid_after_close);

        // Money that arrives for a closed order is recorded and flagged, never dropped.
        assert_eq!(
            store
                .mark_paid("FWD1", Some("T1"), Utc::now())
                .await
                .unwrap()
                .outcome,
            PaidOutcome::PaidAfterClose {
                previous: PayStatus::Close
            }
        );
        let late = store.get_order("FWD1").await.unwrap();
        assert_eq!(late.status, PayStatus::Success);
        assert!(late.paid_after_close);
        assert_eq!(
            store
                .mark_paid("FWD1", Some("T1"), Utc::now())
                .await
                .unwrap()
                .outcome,
            PaidOutcome::AlreadyPaid
        );

        let err = store
            .close_order("NOPE", PayStatus::Close)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownOrder { .. }), "{err}");
        let err = store.mark_paid("NOPE", None, Utc::now()).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownOrder { .. }), "{err}");
    }
}

/// Many tasks, over two independent pools (as two processes would be), race every kind
/// of transition on the same order: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_concurrent_transition_wins() {
    for db in support::all().await {
        let second = Arc::new(connect(&db.config).await.unwrap());
        let first = Arc::new(db.store.clone());
        for round in 0..5 {
            let order_id = format!("RACE{round}");
            first.insert_order(order(&order_id, 1999)).await.unwrap();
            let mut tasks = Vec::new();
            for i in 0..48 {
                let store: Arc<PayStore> = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let order_id = order_id.clone();
                tasks.push(tokio::spawn(async move {
                    match i % 3 {
                        0 => matches!(
                            store
                                .mark_paid(&order_id, Some("TX"), Utc::now())
                                .await
                                .unwrap()
                                .outcome,
                            PaidOutcome::Paid
                        ),
                        1 => {
                            store
                                .close_order(&order_id, PayStatus::Close)
                                .await
                                .unwrap()
                                == CloseOutcome::Closed
                        }
                        _ => {
                            store
                                .close_order(&order_id, PayStatus::Timeout)
                                .await
                                .unwrap()
                                == CloseOutcome::Closed
                        }
                    }
                }));
            }
            let mut winners = 0;
            for task in tasks {
                if task.await.unwrap() {
                    winners += 1;
                }
            }
            assert_eq!(winners, 1, "{} round {round}", db.label);
            let row = first.get_order(&order_id).await.unwrap();
            assert!(row.status.is_final(), "{}", db.label);
        }

        // Late payments racing each other: one flags, the rest see it paid.
        first.insert_order(order("LATE", 10)).await.unwrap();
        first.close_order("LATE", PayStatus::Timeout).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..32 {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                store
                    .mark_paid("LATE", Some("TL"), Utc::now())
                    .await
                    .unwrap()
                    .outcome
            }));
        }
        let mut flagged = 0;
        for task in tasks {
            match task.await.unwrap() {
                PaidOutcome::PaidAfterClose { previous } => {
                    assert_eq!(previous, PayStatus::Timeout);
                    flagged += 1;
                }
                PaidOutcome::AlreadyPaid => {}
                PaidOutcome::Paid => {
                    panic!("{}: a timed-out order cannot be plainly paid", db.label)
                }
                PaidOutcome::Conflict { .. } => {
                    panic!("{}: one transaction id, no conflict", db.label)
                }
            }
        }
        assert_eq!(flagged, 1, "{}", db.label);
    }
}

#[tokio::test]
async fn filters_pages_and_counts() {
    for db in support::all().await {
        let store = &db.store;
        let start = Utc::now() - chrono::Duration::seconds(1);
        for i in 0..7 {
            store
                .insert_order(order(&format!("Q{i}"), 100 + i))
                .await
                .unwrap();
        }
        store.mark_paid("Q1", None, Utc::now()).await.unwrap();
        store.mark_paid("Q3", None, Utc::now()).await.unwrap();
        store.close_order("Q5", PayStatus::Close).await.unwrap();
        let paid = OrderFilter {
            status: Some(PayStatus::Success),
            ..OrderFilter::default()
        };
        assert_eq!(store.count_orders(&paid).await.unwrap(), 2, "{}", db.label);
        let waiting = OrderFilter {
            status: Some(PayStatus::Wait),
            ..OrderFilter::default()
        };
        assert_eq!(store.count_orders(&waiting).await.unwrap(), 4);
        let page1 = store.list_orders(&waiting, 0, 3).await.unwrap();
        let page2 = store.list_orders(&waiting, 3, 3).await.unwrap();
        assert_eq!(page1.len(), 3);
        assert_eq!(page2.len(), 1);
        let in_window = OrderFilter {
            created_from: Some(start),
            created_to: Some(Utc::now() + chrono::Duration::seconds(1)),
            ..OrderFilter::default()
        };
        assert_eq!(
            store.count_orders(&in_window).await.unwrap(),
            7,
            "{}",
            db.label
        );
        let future = OrderFilter {
            created_from: Some(Utc::now() + chrono::Duration::hours(1)),
            ..OrderFilter::default()
        };
        assert_eq!(
            store.count_orders(&future).await.unwrap(),
            0,
            "{}",
            db.label
        );
        let other_element = OrderFilter {
            element: Some("pays.other".into()),
            ..OrderFilter::default()
        };
        assert_eq!(store.count_orders(&other_element).await.unwrap(), 0);
        // Times read back equal to what was written.
        let row = store.get_order("Q0").await.unwrap();
        let again = store
            .list_orders(&OrderFilter::default(), 6, 1)
            .await
            .unwrap();
        assert_eq!(again[0], row, "{}", db.label);
    }
}

#[tokio::test]
async fn reconciler_claims_only_due_waiting_orders_and_each_once_until_its_lease_lapses() {
    let lease = Duration::from_secs(60);
    for db in support::all().await {
        let store = &db.store;
        let mut due = order("DUE", 1);
        due.first_check_at = Utc::now() - chrono::Duration::seconds(5);
        store.insert_order(due).await.unwrap();
        store.insert_order(order("LATER", 1)).await.unwrap();
        let mut paid = order("PAIDDUE", 1);
        paid.first_check_at = Utc::now() - chrono::Duration::seconds(5);
        store.insert_order(paid).await.unwrap();
        store.mark_paid("PAIDDUE", None, Utc::now()).await.unwrap();
        let scan = store
            .claim_due_for_check(Utc::now(), 10, lease)
            .await
            .unwrap();
        let ids: Vec<_> = scan.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["DUE"], "{}", db.label);
        // Claimed: not due for another scan (another instance) while the lease runs.
        let again = store
            .claim_due_for_check(Utc::now(), 10, lease)
            .await
            .unwrap();
        assert!(again.is_empty(), "{}: claimed twice", db.label);
        // Past the lease (its claimant died), it is due again.
        let later = Utc::now() + chrono::Duration::seconds(61);
        let lapsed = store.claim_due_for_check(later, 10, lease).await.unwrap();
        assert!(
            lapsed.iter().any(|row| row.order_id == "DUE"),
            "{}",
            db.label
        );
        store
            .postpone_check("DUE", 1, Utc::now() + chrono::Duration::seconds(30))
            .await
            .unwrap();
        assert!(
            store
                .claim_due_for_check(Utc::now(), 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.get_order("DUE").await.unwrap().check_attempts, 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Several scanners at once (instances sharing the database) split the due orders: each
/// is claimed by exactly one.
#[tokio::test]
async fn concurrent_reconciler_claims_take_each_due_order_exactly_once() {
    for db in support::all().await {
        let store = &db.store;
        for n in 0..60 {
            let mut due = order(&format!("CLAIM{n:03}"), 1);
            due.first_check_at = Utc::now() - chrono::Duration::seconds(5);
            store.insert_order(due).await.unwrap();
        }
        // A second pool on the same data stands for a second process.
        let other = jit_pays::db::connect(&db.config).await.unwrap();
        let claims = (0..8).map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            async move {
                store
                    .claim_due_for_check(Utc::now(), 10, Duration::from_secs(60))
                    .await
                    .unwrap()
            }
        });
        let claimed: Vec<String> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .map(|row| row.order_id)
            .collect();
        let distinct: std::collections::HashSet<_> = claimed.iter().collect();
        assert_eq!(
            distinct.len(),
            claimed.len(),
            "{}: an order claimed twice",
            db.label
        );
        assert_eq!(
            claimed.len(),
            60,
            "{}: 8 scans of 10 cover all 60",
            db.label
        );
    }
}

/// Creating orders one after another (each its own commit, each read back by a later
/// lookup) must let SQLite's checkpoints start the WAL over: a connection left holding a
/// read snapshot would pin it, and the WAL would grow by every commit (about 90 MB for
/// these 4,000 orders) while every read pages through it.
#[tokio::test]
async fn the_sqlite_wal_stays_bounded_while_orders_are_created() {
    let db = support::sqlite().await;
    let path = db.config.url.trim_start_matches("sqlite://").to_owned();
    for i in 0..4000 {
        let order_id = format!("WAL{i}");
        db.store.insert_order(order(&order_id, 100)).await.unwrap();
        assert!(db.store.find_order(&order_id).await.unwrap().is_some());
    }
    let wal = std::fs::metadata(format!("{path}-wal")).unwrap().len();
    assert!(
        wal < 16 * 1024 * 1024,
        "WAL is {wal} bytes after 4,000 orders"
    );
}
