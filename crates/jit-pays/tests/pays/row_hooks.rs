//! `pays.models.PayLogModel` row hooks: `onCreate` and `onUpdate` get every committed
//! change of an order, after its commit, on the outbox's dispatcher, at least once (a
//! failure calls `onException` and comes again; a dispatcher stopped mid-delivery hands
//! the event over again); nothing changes for an app without hooks.

use std::sync::Arc;
use std::time::Duration;

use jit_pays::db::PayStore;
use jit_pays::outbox::{EventFilter, list_events};
use jit_pays::{
    OutboxSettings, PAY_LOG_MODEL, PayEventKind, PayLog, PayLogHooks, PayStatus, PayType, Payer,
    RowEvent, RowHookFailure, WebhookEndpoint, pay_log_hooks_loader,
};
use jit_runtime::CallError;
use parking_lot::Mutex;
use test_support::webhook_receiver::WebhookReceiver;

use crate::support;
use crate::support::shop::{self, ShopOptions};

/// One hook call as a recorder saw it.
#[derive(Clone, Debug)]
struct Seen {
    hook: &'static str,
    order_id: String,
    status: PayStatus,
    event: RowEvent,
    /// The order as the database had it during the call.
    stored_status: Option<PayStatus>,
    /// The task the hook ran on.
    task: Option<tokio::task::Id>,
    failure: Option<RowHookFailure>,
}

/// Records every hook call; `onUpdate` fails while `fail_updates` is above zero, and
/// `onCreate` of the order `hang_on` never returns the first time.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    store: PayStore,
    fail_updates: Arc<Mutex<u32>>,
    hang_on: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    fn new(store: &PayStore) -> Self {
        Recorder {
            seen: Arc::default(),
            store: store.clone(),
            fail_updates: Arc::default(),
            hang_on: Arc::default(),
        }
    }

    async fn record(&self, hook: &'static str, row: &PayLog, event: &RowEvent) {
        let stored_status = self
            .store
            .find_order(&row.order_id)
            .await
            .unwrap()
            .map(|order| order.status);
        self.seen.lock().push(Seen {
            hook,
            order_id: row.order_id.clone(),
            status: row.status,
            event: event.clone(),
            stored_status,
            task: tokio::task::try_id(),
            failure: None,
        });
    }

    fn of(&self, order_id: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|seen| seen.order_id == order_id)
            .cloned()
            .collect()
    }

    /// Waits until `order_id` has `count` calls recorded (or 15 s pass, then panics).
    async fn wait_for(&self, order_id: &str, count: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let seen = self.of(order_id);
            if seen.len() >= count {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} hook calls for {order_id} expected, got {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[jit_runtime::async_trait]
impl PayLogHooks for Recorder {
    async fn on_create(&self, row: &PayLog, event: &RowEvent) -> Result<(), CallError> {
        self.record("onCreate", row, event).await;
        let hang = self.hang_on.lock().take_if(|id| *id == row.order_id);
        if hang.is_some() {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn on_update(&self, row: &PayLog, event: &RowEvent) -> Result<(), CallError> {
        self.record("onUpdate", row, event).await;
        let mut failing = self.fail_updates.lock();
        if *failing > 0 {
            *failing -= 1;
            return Err(CallError::conflict("the audit log is busy").with_code("AUDIT_BUSY"));
        }
        Ok(())
    }

    async fn on_exception(&self, row: &PayLog, event: &RowEvent, failure: &RowHookFailure) {
        self.record("onException", row, event).await;
        if let Some(last) = self.seen.lock().last_mut() {
            last.failure = Some(failure.clone());
        }
    }
}

/// A shop whose `pays.models.PayLogModel` is wrapped by `recorder` (a Rust loader stacked
/// on the official one), with `webhooks`.
async fn shop_with_hooks(
    db: support::TestDb,
    recorder: impl FnOnce(&PayStore) -> Recorder,
    webhooks: Vec<WebhookEndpoint>,
) -> (shop::Shop, Recorder) {
    let recorder = recorder(&db.store);
    let hooks = recorder.clone();
    let mut options = ShopOptions::default();
    options.outbox.webhooks = webhooks;
    options.builder = Some(Box::new(move |builder| {
        builder.loader(PAY_LOG_MODEL, pay_log_hooks_loader(hooks))
    }));
    (shop::start(db, options).await, recorder)
}

async fn event_kinds(store: &PayStore, order_id: &str) -> Vec<(String, i32)> {
    let filter = EventFilter {
        order_id: Some(order_id.to_owned()),
        ..EventFilter::default()
    };
    list_events(store.connection(), &filter, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.event.event_type, record.event.order_seq))
        .collect()
}

async fn pay(shop: &shop::Shop, order_id: &str) {
    let url = shop
        .pay
        .get_pay_url(order_id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    shop.sim.pay(url.pay_url.as_str()).unwrap();
    assert_eq!(shop.wait_settled(order_id).await, PayStatus::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hooks_an_order_writes_no_created_event() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, ShopOptions::default()).await;
        assert!(!shop.db.store.outbox().has_row_hooks(), "{label}");
        let order = shop
            .pay
            .create("No hooks", wechatpay_v2::Fen::new(100), None)
            .await
            .unwrap();
        pay(&shop, &order.order_id).await;
        support::wait_outbox_idle(&shop.db.store).await;
        assert_eq!(
            event_kinds(&shop.db.store, &order.order_id).await,
            [("order.paid".to_owned(), 1)],
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_hooks_get_every_change_after_its_commit_off_the_request_task() {
    for db in support::all().await {
        let label = db.label;
        let receiver = WebhookReceiver::start("whsec_rowhooks_0123456789abcdef0123456789ab").await;
        let endpoint = WebhookEndpoint {
            url: receiver.url(),
            secret: "whsec_rowhooks_0123456789abcdef0123456789ab".into(),
            kinds: None,
            timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(3600),
        };
        let (shop, recorder) = shop_with_hooks(db, Recorder::new, vec![endpoint]).await;
        assert!(shop.db.store.outbox().has_row_hooks(), "{label}");
        let request_task = tokio::task::try_id();

        let order = shop
            .pay
            .create("Hooked", wechatpay_v2::Fen::new(1234), None)
            .await
            .unwrap();
        let created = recorder.wait_for(&order.order_id, 1).await;
        assert_eq!(created[0].hook, "onCreate", "{label}");
        assert_eq!(created[0].event.kind, "order.created", "{label}");
        assert_eq!(created[0].event.order_seq, 0, "{label}");
        assert_eq!(created[0].status, PayStatus::Wait, "{label}");
        assert_eq!(
            created[0].stored_status,
            Some(PayStatus::Wait),
            "{label}: called after the commit"
        );
        assert_ne!(created[0].task, request_task, "{label}");

        pay(&shop, &order.order_id).await;
        let seen = recorder.wait_for(&order.order_id, 2).await;
        assert_eq!(seen[1].hook, "onUpdate", "{label}");
        assert_eq!(seen[1].event.kind, "order.paid", "{label}");
        assert_eq!(seen[1].event.order_seq, 1, "{label}");
        assert_eq!(seen[1].status, PayStatus::Success, "{label}");
        assert_eq!(seen[1].stored_status, Some(PayStatus::Success), "{label}");

        // A close is an update too.
        let closed = shop
            .pay
            .create("Closed", wechatpay_v2::Fen::new(100), None)
            .await
            .unwrap();
        shop.pay.cancel(&closed.order_id).await.unwrap();
        let seen = recorder.wait_for(&closed.order_id, 2).await;
        assert_eq!(
            seen.iter()
                .map(|s| (s.hook, s.event.kind.as_str(), s.status))
                .collect::<Vec<_>>(),
            [
                ("onCreate", "order.created", PayStatus::Wait),
                ("onUpdate", "order.closed", PayStatus::Close)
            ],
            "{label}"
        );

        // `order.created` went to the hooks only: not to the subscribers, not to the
        // webhook, which sees the order's events numbered as without hooks.
        support::wait_outbox_idle(&shop.db.store).await;
        let delivered = shop.delivered_events().await;
        assert!(
            delivered
                .iter()
                .all(|event| event.kind != PayEventKind::OrderCreated),
            "{label}"
        );
        let webhook: Vec<(String, String)> = receiver
            .delivered()
            .iter()
            .map(|got| {
                (
                    got.event_type.clone(),
                    got.json::<jit_pays::PayEvent>().order_id,
                )
            })
            .collect();
        assert_eq!(
            webhook,
            [
                ("order.paid".to_owned(), order.order_id.clone()),
                ("order.closed".to_owned(), closed.order_id.clone())
            ],
            "{label}"
        );
        let stored = event_kinds(&shop.db.store, &order.order_id).await;
        assert_eq!(
            stored,
            [
                ("order.created".to_owned(), 0),
                ("order.paid".to_owned(), 1)
            ],
            "{label}"
        );
        // Each hook call came once: every delivery succeeded the first time.
        assert_eq!(recorder.of(&order.order_id).len(), 2, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_calls_on_exception_and_comes_again() {
    for db in support::all().await {
        let label = db.label;
        let (shop, recorder) = shop_with_hooks(db, Recorder::new, Vec::new()).await;
        *recorder.fail_updates.lock() = 1;
        let order = shop
            .pay
            .create("Retried", wechatpay_v2::Fen::new(500), None)
            .await
            .unwrap();
        pay(&shop, &order.order_id).await;
        // onCreate, onUpdate (fails), onException, then onUpdate again after the back-off.
        let seen = recorder.wait_for(&order.order_id, 4).await;
        let hooks: Vec<&str> = seen.iter().map(|s| s.hook).collect();
        assert_eq!(
            hooks,
            ["onCreate", "onUpdate", "onException", "onUpdate"],
            "{label}"
        );
        let failure = seen[2].failure.clone().expect("the failure");
        assert_eq!(failure.hook, "onUpdate", "{label}");
        assert_eq!(failure.code, "AUDIT_BUSY", "{label}");
        assert_eq!(failure.message, "the audit log is busy", "{label}");
        assert_eq!(seen[2].status, PayStatus::Success, "{label}: with the row");
        // The same event both times.
        assert_eq!(seen[1].event.id, seen[3].event.id, "{label}");
        support::wait_outbox_idle(&shop.db.store).await;
        let (record, attempts) =
            jit_pays::outbox::event_detail(shop.db.store.connection(), &seen[1].event.id)
                .await
                .unwrap()
                .unwrap();
        let hooks_delivery = record
            .deliveries
            .iter()
            .find(|d| d.consumer == "hooks")
            .expect("a hooks delivery");
        assert_eq!(hooks_delivery.status, "delivered", "{label}");
        assert_eq!(hooks_delivery.attempts, 2, "{label}");
        let failed: Vec<String> = attempts.iter().filter_map(|a| a.error.clone()).collect();
        assert_eq!(failed.len(), 1, "{label}: {failed:?}");
        assert!(
            failed[0].contains("`pays.models.PayLogModel.onUpdate` failed: AUDIT_BUSY"),
            "{label}: {failed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_stopped_mid_hook_hands_the_event_over_again() {
    for db in support::all().await {
        let label = db.label;
        let (mut shop, recorder) = shop_with_hooks(db, Recorder::new, Vec::new()).await;
        // The next order's onCreate hangs the first time, as a process dying mid-call.
        let order_id = jit_pays::order_id::generate_order_id();
        *recorder.hang_on.lock() = Some(order_id.clone());
        shop.pay
            .create("Hangs", wechatpay_v2::Fen::new(700), Some(order_id.clone()))
            .await
            .unwrap();
        let first = recorder.wait_for(&order_id, 1).await;
        assert_eq!(first[0].hook, "onCreate", "{label}");
        shop.outbox.take().expect("the shop's outbox").stop().await;
        // Another run of the same instance takes its claim back and delivers again.
        let _outbox = jit_pays::start_outbox(
            &shop.app,
            OutboxSettings {
                poll_interval: Duration::from_millis(20),
                ..OutboxSettings::new("test-shop")
            },
        )
        .await
        .unwrap();
        let seen = recorder.wait_for(&order_id, 2).await;
        assert_eq!(seen[1].hook, "onCreate", "{label}");
        assert_eq!(
            seen[1].event.id, first[0].event.id,
            "{label}: the same event"
        );
        support::wait_outbox_idle(&shop.db.store).await;
        assert_eq!(recorder.of(&order_id).len(), 2, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_of_the_model_type_gets_the_hooks_too() {
    for db in support::all().await {
        let label = db.label;
        let recorder = Recorder::new(&db.store);
        let hooks = recorder.clone();
        let mut options = ShopOptions::default();
        options.files.push((
            "elements/shop/models/AuditLog/e.json".into(),
            r#"{"type": "pays.models.PayLogModel", "title": "Audit"}"#.into(),
        ));
        options.builder = Some(Box::new(move |builder| {
            builder.loader("shop.models.AuditLog", pay_log_hooks_loader(hooks))
        }));
        let shop = shop::start(db, options).await;
        assert!(shop.db.store.outbox().has_row_hooks(), "{label}");
        let order = shop
            .pay
            .create("Audited", wechatpay_v2::Fen::new(300), None)
            .await
            .unwrap();
        let seen = recorder.wait_for(&order.order_id, 1).await;
        assert_eq!(seen[0].hook, "onCreate", "{label}");
        // The wrapped element still answers the model's own functions.
        let count = shop
            .app
            .get_element("shop.models.AuditLog")
            .await
            .unwrap()
            .call(
                "count",
                serde_json::Map::new(),
                &jit_runtime::CallContext::principal("t"),
            )
            .await
            .unwrap();
        assert_eq!(count, serde_json::json!(1), "{label}");
    }
}
