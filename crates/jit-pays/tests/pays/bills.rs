//! Bills and reconciliation: downloading a day's bill from the simulator over HTTP and
//! storing it (replaced on a second download, an empty day for "No Bill Exist", nothing
//! stored for a line that does not parse), reconciling a day with every kind of
//! mismatch, raising each mismatch's event once, and the daily schedule's claim.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{NaiveDate, Utc};
use jit_pays::bills::{
    BillSchedule, MismatchKind, bill_merchants, download_bills, download_day, reconcile_days,
    run_due,
};
use jit_pays::db::bills::BillDayKey;
use jit_pays::db::entity::event;
use jit_pays::db::refunds::{NewRefund, Reserved};
use jit_pays::{PayEventKind, PayStatus, PaySvc, PayType, Payer, RefundArgs, RefundStatus};
use parking_lot::Mutex;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use wechatpay_sim::{BillAlteration, Endpoint, Fault, FaultRule};
use wechatpay_v2::{BillType, Client, ClientConfig, Fen, TradeKind, UnifiedOrderRequest};

use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, OTHER_MCH_ID, Shop, ShopOptions};
use crate::support::{self, TestDb};

const MY_PAY: &str = "pays.myWechatPay";

fn today() -> NaiveDate {
    wechatpay_v2::time::beijing_date(Utc::now())
}

/// An order of `pay` paid through the simulator (notify delivered).
async fn paid_order(shop: &Shop, pay: &Arc<dyn jit_pays::Pay>, fen: i64) -> String {
    let order = pay.create("Bill item", Fen::new(fen), None).await.unwrap();
    let url = pay
        .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    shop.sim.pay(url.pay_url.as_str()).unwrap();
    assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);
    order.order_id
}

fn key(mch_id: &str, bill_type: BillType, date: NaiveDate) -> BillDayKey {
    BillDayKey {
        mch_id: mch_id.to_owned(),
        bill_type,
        date,
    }
}

#[tokio::test]
async fn a_day_is_stored_replaced_on_download_and_an_empty_day_is_known() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let first = paid_order(&shop, &shop.pay, 1234).await;
        let second = paid_order(&shop, &shop.pay, 5).await;
        let other = paid_order(&shop, &shop.other, 700).await;
        let store = &shop.db.store;

        // Every instance, once per merchant: two merchants, two days.
        let days = download_bills(&shop.app, today(), BillType::All, None)
            .await
            .unwrap();
        assert_eq!(days.len(), 2, "{label}: {days:?}");
        let mine = days.iter().find(|d| d.mch_id == MCH_ID).unwrap();
        assert_eq!(
            (mine.element.as_str(), mine.lines, mine.no_bill),
            (MY_PAY, 2, false)
        );
        let lines = store
            .bill_lines(&key(MCH_ID, BillType::All, today()))
            .await
            .unwrap();
        let ids: Vec<(&str, i64, &str)> = lines
            .iter()
            .map(|l| (l.out_trade_no.as_str(), l.total_fee, l.trade_state.as_str()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (first.as_str(), 1234, "SUCCESS"),
                (second.as_str(), 5, "SUCCESS")
            ],
            "{label}"
        );
        assert_eq!(
            lines.iter().map(|l| l.line_number).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(
            lines[0].raw.starts_with('`') && lines[0].raw.contains(&first),
            "{label}"
        );
        assert_eq!(lines[0].appid, APP_ID);
        assert!(lines[0].service_fee > 0, "{label}: the fee is kept exact");
        let other_lines = store
            .bill_lines(&key(OTHER_MCH_ID, BillType::All, today()))
            .await
            .unwrap();
        assert_eq!(other_lines.len(), 1);
        assert_eq!(other_lines[0].out_trade_no, other);

        // A second download replaces the day's lines: never duplicated.
        let third = paid_order(&shop, &shop.pay, 99).await;
        let again = download_bills(&shop.app, today(), BillType::All, Some(MY_PAY))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lines, 3, "{label}");
        let lines = store
            .bill_lines(&key(MCH_ID, BillType::All, today()))
            .await
            .unwrap();
        assert_eq!(lines.len(), 3, "{label}: replaced, not added");
        assert_eq!(lines[2].out_trade_no, third);

        // The SUCCESS bill is a day of its own.
        let success = download_bills(&shop.app, today(), BillType::Success, Some(MY_PAY))
            .await
            .unwrap();
        assert_eq!(success[0].lines, 3);
        let success_lines = store
            .bill_lines(&key(MCH_ID, BillType::Success, today()))
            .await
            .unwrap();
        assert_eq!(success_lines.len(), 3);

        // "No Bill Exist": an empty day, stored as downloaded.
        let quiet = today() - chrono::Duration::days(30);
        let empty = download_bills(&shop.app, quiet, BillType::All, Some(MY_PAY))
            .await
            .unwrap();
        assert_eq!((empty[0].lines, empty[0].no_bill), (0, true), "{label}");
        let day = store
            .bill_day(&key(MCH_ID, BillType::All, quiet))
            .await
            .unwrap()
            .expect("the empty day is recorded");
        assert!(day.no_bill && day.status == "stored" && day.summary.is_none());

        // Bad arguments name what is wrong.
        let err = download_bills(&shop.app, today(), BillType::All, Some("pays.nothing"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("pays.nothing"), "{err}");
        let tomorrow = today() + chrono::Duration::days(1);
        let err = download_bills(&shop.app, tomorrow, BillType::All, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("future"), "{err}");
    }
}

/// A gateway answering `downloadbill` with whatever text `bill` holds, GZIP-compressed.
async fn bill_gateway(bill: Arc<Mutex<String>>) -> String {
    async fn answer(State(bill): State<Arc<Mutex<String>>>) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bill.lock().as_bytes()).unwrap();
        encoder.finish().unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/pay/downloadbill", post(answer))
        .with_state(bill);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn client(base_url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: base_url.to_owned(),
        app_id: APP_ID.to_owned(),
        mch_id: MCH_ID.to_owned(),
        api_key: API_KEY.into(),
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_line_that_does_not_parse_fails_the_download_naming_it_and_stores_nothing() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        paid_order(&shop, &shop.pay, 100).await;
        paid_order(&shop, &shop.pay, 200).await;
        let text = client(&shop.sim.base_url())
            .download_bill(&wechatpay_v2::time::format_date(today()), BillType::All)
            .await
            .unwrap();
        let served = Arc::new(Mutex::new(text.clone()));
        let gateway = client(&bill_gateway(served.clone()).await);
        let day = key(MCH_ID, BillType::All, today());
        let stored = download_day(&gateway, &shop.db.store, MY_PAY, &day)
            .await
            .unwrap();
        assert_eq!(stored.lines, 2, "{label}");
        let before = shop.db.store.bill_lines(&day).await.unwrap();

        // Line 3's order amount is no amount.
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[2] = lines[2].replacen("`2.00", "`2.0x", 1);
        assert_ne!(
            lines[2],
            text.lines().nth(2).unwrap(),
            "the line was altered"
        );
        *served.lock() = lines.join("\r\n") + "\r\n";
        let err = download_day(&gateway, &shop.db.store, MY_PAY, &day)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("line 3"), "{label}: {message}");
        assert_eq!(
            shop.db.store.bill_lines(&day).await.unwrap(),
            before,
            "{label}: nothing of the failed download is stored"
        );
    }
}

async fn set_sql(db: &TestDb, sql: &str, order_id: &str) {
    let connection = db.store.connection();
    let backend = connection.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        sql.replace('?', "$1")
    } else {
        sql.to_owned()
    };
    connection
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [order_id.into()],
        ))
        .await
        .unwrap();
}

async fn mismatch_events(db: &TestDb) -> Vec<jit_pays::PayEvent> {
    event::Entity::find()
        .filter(event::Column::EventType.eq(PayEventKind::ReconcileMismatch.name()))
        .order_by_asc(event::Column::Id)
        .all(db.store.connection())
        .await
        .unwrap()
        .iter()
        .map(|row| serde_json::from_str(&row.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn reconcile_reports_every_kind_and_raises_each_mismatch_once() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let store = shop.db.store.clone();

        // Agrees everywhere.
        let matched = paid_order(&shop, &shop.pay, 1000).await;
        // A lost notify: paid at WeChat, waiting in the shop.
        shop.sim
            .faults()
            .add(
                FaultRule::new(Fault::DropNotify)
                    .on(Endpoint::PayNotify)
                    .times(1),
            )
            .unwrap();
        let lost = shop
            .pay
            .create("Lost notify", Fen::new(300), None)
            .await
            .unwrap()
            .order_id;
        let url = shop
            .pay
            .get_pay_url(&lost, PayType::Native, &Payer::default())
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        shop.wait_no_pending_notifies().await;
        assert_eq!(
            store.get_order(&lost).await.unwrap().status,
            PayStatus::Wait
        );
        // Paid in the shop's books only.
        let phantom = shop
            .pay
            .create("Not at WeChat", Fen::new(450), None)
            .await
            .unwrap()
            .order_id;
        shop.pay
            .get_pay_url(&phantom, PayType::Native, &Payer::default())
            .await
            .unwrap();
        store
            .mark_paid(&phantom, Some("4200000000000000000000000001"), Utc::now())
            .await
            .unwrap();
        // Another amount in the shop's books.
        let altered = paid_order(&shop, &shop.pay, 800).await;
        set_sql(
            &shop.db,
            "UPDATE pays_pay_log SET amount_fen = 801 WHERE order_id = ?",
            &altered,
        )
        .await;
        // A payment only WeChat knows.
        let stranger = "STRANGER0000000001";
        let direct = client(&shop.sim.base_url());
        direct
            .unified_order(&UnifiedOrderRequest::new(
                TradeKind::Native {
                    product_id: "p".into(),
                },
                "paid elsewhere",
                stranger,
                Fen::new(66),
                "127.0.0.1",
                "http://127.0.0.1:9/notify",
            ))
            .await
            .unwrap();
        shop.sim.pay(stranger).unwrap();
        // A refund the shop asked for that WeChat never saw.
        let refunded = paid_order(&shop, &shop.pay, 500).await;
        let reserved = store
            .reserve_refund(NewRefund {
                refund_id: "R-LOCAL-ONLY".into(),
                order_id: refunded.clone(),
                element: MY_PAY.into(),
                amount_fen: 200,
                reason: None,
                first_check_at: Utc::now() + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
        assert!(matches!(reserved, Reserved::New { .. }));
        // The other merchant's books agree.
        paid_order(&shop, &shop.other, 42).await;

        let days = reconcile_days(&shop.app, today(), None).await.unwrap();
        assert_eq!(days.len(), 2, "{label}");
        let other = days.iter().find(|d| d.mch_id == OTHER_MCH_ID).unwrap();
        assert!(other.is_clean() && other.matched == 1, "{label}: {other:?}");
        let day = days.iter().find(|d| d.element == MY_PAY).unwrap();
        let kinds: Vec<(MismatchKind, &str, Option<&str>)> = day
            .mismatches
            .iter()
            .map(|m| (m.kind, m.order_id.as_str(), m.refund_id.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MismatchKind::AmountMismatch, altered.as_str(), None),
                (MismatchKind::MissingLocally, stranger, None),
                (MismatchKind::MissingInBill, phantom.as_str(), None),
                (
                    MismatchKind::MissingInBill,
                    refunded.as_str(),
                    Some("R-LOCAL-ONLY")
                ),
            ],
            "{label}: {day:#?}"
        );
        // matched and refunded agree; lost was fixed by the live query.
        assert_eq!(day.matched, 2, "{label}: {day:#?}");
        assert_eq!(day.fixed_by_query.len(), 1, "{label}");
        let fixed = &day.fixed_by_query[0];
        assert_eq!(
            (fixed.kind, fixed.order_id.as_str()),
            (MismatchKind::StatusMismatch, lost.as_str())
        );
        assert_eq!(
            store.get_order(&lost).await.unwrap().status,
            PayStatus::Success
        );
        let amount = &day.mismatches[0];
        assert_eq!(amount.local.as_ref().unwrap().amount_fen, Fen::new(801));
        assert_eq!(amount.bill.as_ref().unwrap().amount_fen, Fen::new(800));
        let missing = &day.mismatches[2];
        assert!(
            missing.query.as_deref().unwrap().contains("NOTPAY"),
            "{label}: {missing:?}"
        );
        assert_eq!(day.events_raised, 4);
        let _ = matched;

        // The events: with the order when the shop has it, counted in its events.
        let events = mismatch_events(&shop.db).await;
        assert_eq!(events.len(), 4, "{label}");
        let of = |id: &str| events.iter().find(|e| e.order_id == id).unwrap();
        let stranger_event = of(stranger);
        assert!(stranger_event.order.is_none());
        assert_eq!(stranger_event.order_seq, 1);
        let mismatch = stranger_event.mismatch.as_ref().unwrap();
        assert_eq!(mismatch.kind, MismatchKind::MissingLocally);
        assert_eq!(mismatch.bill.as_ref().unwrap().amount_fen, Fen::new(66));
        let altered_event = of(&altered);
        let order = store.get_order(&altered).await.unwrap();
        assert_eq!(altered_event.order_seq, order.event_seq);
        assert_eq!(altered_event.order.as_ref().unwrap().order_id, altered);
        let json = serde_json::to_value(altered_event).unwrap();
        assert_eq!(json["mismatch"]["kind"], "amount_mismatch");
        assert_eq!(json["mismatch"]["orderId"], altered.as_str());
        assert_eq!(json["mismatch"]["local"]["amountFen"], 801);

        // A second run raises nothing again; a new disagreement raises its own event.
        let again = paid_order(&shop, &shop.pay, 250).await;
        set_sql(
            &shop.db,
            "UPDATE pays_pay_log SET status = 'wait', paid_at = NULL WHERE order_id = ?",
            &again,
        )
        .await;
        shop.sim
            .faults()
            .add(FaultRule::new(Fault::SystemError).on(Endpoint::OrderQuery))
            .unwrap();
        // Reconciling uses the day as stored: a new download brings the new payment.
        download_bills(&shop.app, today(), BillType::All, Some(MY_PAY))
            .await
            .unwrap();
        let svc = shop
            .app
            .get::<PaySvc>("pays.services.PaySvc")
            .await
            .unwrap();
        let days = svc.reconcile(today(), Some(MY_PAY)).await.unwrap();
        let day = &days[0];
        assert_eq!(day.events_raised, 1, "{label}: {day:#?}");
        let status = day
            .mismatches
            .iter()
            .find(|m| m.kind == MismatchKind::StatusMismatch)
            .expect("the unsettled status mismatch");
        assert_eq!(status.order_id, again);
        assert!(
            status.query.as_deref().unwrap().contains("failed"),
            "{status:?}"
        );
        assert_eq!(day.mismatches.len(), 5, "{label}: {day:#?}");
        assert_eq!(mismatch_events(&shop.db).await.len(), 5);
        assert_eq!(
            store
                .reconcile_mismatches(MY_PAY, today())
                .await
                .unwrap()
                .len(),
            5
        );
        shop.sim.faults().clear();
    }
}

#[tokio::test]
async fn the_daily_download_is_claimed_by_one_instance() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let yesterday = today() - chrono::Duration::days(1);
        let first = BillSchedule::new(BillSchedule::DEFAULT_DOWNLOAD_AT, "instance-a");
        let second = BillSchedule::new(BillSchedule::DEFAULT_DOWNLOAD_AT, "instance-b");
        // Noon Beijing: past 10:00, so yesterday is due.
        let noon = wechatpay_v2::time::from_beijing_local(today().and_hms_opt(12, 0, 0).unwrap());
        assert_eq!(first.due_date(noon), yesterday);
        let early = noon - chrono::Duration::hours(3);
        assert_eq!(first.due_date(early), yesterday - chrono::Duration::days(1));

        // Another instance holds the day for one merchant: this one leaves it.
        let merchants = bill_merchants(&shop.app, Some(MY_PAY)).unwrap();
        let mine = merchants[0].day(BillType::All, yesterday);
        assert!(
            shop.db
                .store
                .claim_bill_day(&mine, MY_PAY, "instance-b", noon, Duration::from_secs(600))
                .await
                .unwrap()
        );
        let done = run_due(&shop.app, &first, noon).await.unwrap();
        assert_eq!(done.len(), 1, "{label}: only the other merchant's day");
        assert_eq!(done[0].downloaded.mch_id, OTHER_MCH_ID);
        assert!(done[0].downloaded.no_bill);
        assert_eq!(done[0].reconciled.len(), 1);
        assert!(done[0].reconciled[0].is_clean());
        // Stored days are not downloaded again, by anyone.
        assert!(run_due(&shop.app, &second, noon).await.unwrap().is_empty());
        // A claim that lapsed (its instance died) is taken over.
        let later = noon + chrono::Duration::minutes(11);
        let done = run_due(&shop.app, &first, later).await.unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].downloaded.mch_id, MCH_ID);
        let day = shop.db.store.bill_day(&mine).await.unwrap().unwrap();
        assert_eq!((day.status.as_str(), day.no_bill), ("stored", true));
        assert!(run_due(&shop.app, &first, later).await.unwrap().is_empty());

        // A failed download holds the day for `retry_after`, then any instance retries.
        let tomorrow_noon = noon + chrono::Duration::days(1);
        assert_eq!(first.due_date(tomorrow_noon), today());
        let failing = shop
            .sim
            .faults()
            .add(FaultRule::new(Fault::HttpStatus { status: 503 }).on(Endpoint::DownloadBill))
            .unwrap();
        assert!(
            run_due(&shop.app, &first, tomorrow_noon)
                .await
                .unwrap()
                .is_empty()
        );
        let held = shop
            .db
            .store
            .bill_day(&merchants[0].day(BillType::All, today()))
            .await
            .unwrap()
            .expect("the claim stays");
        assert_eq!(held.status, "claimed", "{label}");
        shop.sim.faults().remove(failing);
        let soon = tomorrow_noon + chrono::Duration::minutes(5);
        assert!(run_due(&shop.app, &second, soon).await.unwrap().is_empty());
        let after = tomorrow_noon + chrono::Duration::minutes(11);
        let done = run_due(&shop.app, &second, after).await.unwrap();
        assert_eq!(done.len(), 2, "{label}: both merchants' days, retried");
    }
}

#[tokio::test]
async fn refunds_and_bills_that_disagree_with_wechat_reconcile_through_live_queries() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        let store = shop.db.store.clone();

        // A partial refund WeChat made, whose outcome the shop missed: it still holds it
        // processing (as if neither notify nor query had come).
        let refunded = paid_order(&shop, &shop.pay, 1000).await;
        shop.pay
            .refund(RefundArgs {
                order_id: refunded.clone(),
                amount: Some(Fen::new(300)),
                reason: None,
                refund_id: Some("R-BILL-1".into()),
            })
            .await
            .unwrap();
        let mut settled = false;
        for _ in 0..200 {
            if shop.pay.query_refund("R-BILL-1").await.unwrap().status == RefundStatus::Success {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(settled, "{label}: the simulator settles the refund");
        // Its notify (which would settle it again) has come and gone.
        shop.wait_no_pending_notifies().await;
        set_sql(
            &shop.db,
            "UPDATE pays_refund SET status = 'processing', succeeded_at = NULL WHERE refund_id = ?",
            "R-BILL-1",
        )
        .await;
        set_sql(
            &shop.db,
            "UPDATE pays_pay_log SET refunded_fen = 0 WHERE order_id = ?",
            &refunded,
        )
        .await;
        // Bills that disagree with WeChat's own orders.
        let omitted = paid_order(&shop, &shop.pay, 200).await;
        shop.sim.alter_bill(BillAlteration::omit(&omitted)).unwrap();
        let misstated = paid_order(&shop, &shop.pay, 300).await;
        shop.sim
            .alter_bill(BillAlteration::total_fee(&misstated, Fen::new(30)))
            .unwrap();

        let days = reconcile_days(&shop.app, today(), Some(MY_PAY))
            .await
            .unwrap();
        let day = &days[0];
        let kinds: Vec<(MismatchKind, &str)> = day
            .mismatches
            .iter()
            .map(|m| (m.kind, m.order_id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MismatchKind::AmountMismatch, misstated.as_str()),
                (MismatchKind::MissingInBill, omitted.as_str()),
            ],
            "{label}: {day:#?}"
        );
        // WeChat's live answer contradicts the bill: the query says so.
        for mismatch in &day.mismatches {
            assert!(
                mismatch
                    .query
                    .as_deref()
                    .unwrap()
                    .contains("trade_state SUCCESS"),
                "{label}: {mismatch:?}"
            );
        }
        assert_eq!(
            day.mismatches[0].bill.as_ref().unwrap().amount_fen,
            Fen::new(30)
        );
        // The refund: the bill says SUCCESS, the shop said processing; refundquery says
        // SUCCESS and queryRefund applied it.
        assert_eq!(day.fixed_by_query.len(), 1, "{label}: {day:#?}");
        let fixed = &day.fixed_by_query[0];
        assert_eq!(
            (fixed.kind, fixed.refund_id.as_deref()),
            (MismatchKind::StatusMismatch, Some("R-BILL-1"))
        );
        assert_eq!(fixed.local.as_ref().unwrap().status, "processing");
        assert_eq!(fixed.bill.as_ref().unwrap().status, "SUCCESS");
        let refund = store.find_refund("R-BILL-1").await.unwrap().unwrap();
        assert_eq!(refund.status, RefundStatus::Success, "{label}");
        assert_eq!(store.get_order(&refunded).await.unwrap().refunded_fen, 300);
        // The refunded order's payment line and its refund line both agree now.
        assert_eq!(day.matched, 1, "{label}: {day:#?}");
        assert_eq!(day.local_refunds, 1);
        assert_eq!(day.events_raised, 2);
    }
}
