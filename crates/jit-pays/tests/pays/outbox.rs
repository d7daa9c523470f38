//! The outbox: every transition's event reaches the hooks and each webhook endpoint, at
//! least once, in commit order per order, signed; failures are retried with back-off and
//! recorded; a slow endpoint delays no one else; instances sharing a database deliver
//! each event once; a replay delivers it again under the same id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jit_pays::outbox::{DeliveryStatus, EventFilter, event_detail, list_events, replay_events};
use jit_pays::{
    OutboxSettings, PayEvent, PayEventKind, PayStatus, PayType, Payer, WebhookEndpoint,
};
use parking_lot::Mutex;

use crate::support;
use crate::support::shop::{self, ShopOptions};

const SECRET: &str = "whsec_test_0123456789abcdef0123456789abcdef";

/// What a receiver does with the n-th request it gets (0-based).
type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone, Copy)]
enum Reply {
    Status(StatusCode),
    /// Never answer (the client's timeout ends it).
    Hang,
}

/// One POST a receiver got, its signature checked.
#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    event_type: String,
    event: PayEvent,
    signature_ok: bool,
}

/// A loopback webhook endpoint recording what it receives.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    count: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = state.count.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature_ok = jit_webhooks::verify_now(
        SECRET.as_bytes(),
        &header(jit_webhooks::SIGNATURE_HEADER),
        &body,
    )
    .is_ok();
    match state.behaviour.as_ref()(n) {
        Reply::Status(status) => {
            if status.is_success() {
                state.received.lock().push(Received {
                    event_id: header(jit_webhooks::EVENT_ID_HEADER),
                    event_type: header(jit_webhooks::EVENT_TYPE_HEADER),
                    event: serde_json::from_slice(&body).expect("the body is an event"),
                    signature_ok,
                });
            }
            status
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

impl Receiver {
    async fn start(behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            received: received.clone(),
            count: Arc::default(),
            behaviour: Arc::new(behaviour),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/events", post(receive))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver {
            url,
            received,
            task,
        }
    }

    async fn ok() -> Self {
        Self::start(|_| Reply::Status(StatusCode::OK)).await
    }

    fn endpoint(&self) -> WebhookEndpoint {
        WebhookEndpoint {
            url: self.url.clone(),
            secret: SECRET.into(),
            kinds: None,
            timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(3600),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    /// Waits until `count` events were taken (or panics after `within`).
    async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} events received within {within:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn options_with(webhooks: Vec<WebhookEndpoint>) -> ShopOptions {
    let mut options = ShopOptions::default();
    options.outbox.webhooks = webhooks;
    options
}

async fn pay_an_order(shop: &shop::Shop, subject: &str) -> String {
    let order = shop
        .pay
        .create(subject, wechatpay_v2::Fen::new(1234), None)
        .await
        .unwrap();
    let url = shop
        .pay
        .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    shop.sim.pay(url.pay_url.as_str()).unwrap();
    assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);
    order.order_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_reaches_every_endpoint_signed_with_the_stored_envelope() {
    for db in support::all().await {
        let label = db.label;
        let first = Receiver::ok().await;
        let second = Receiver::ok().await;
        let shop = shop::start(db, options_with(vec![first.endpoint(), second.endpoint()])).await;
        let order_id = pay_an_order(&shop, "Webhook").await;
        for receiver in [&first, &second] {
            let got = receiver.wait_for(1, Duration::from_secs(10)).await;
            assert_eq!(got.len(), 1, "{label}");
            let got = &got[0];
            assert!(got.signature_ok, "{label}: the signature verifies");
            assert_eq!(got.event_type, "order.paid", "{label}");
            assert_eq!(got.event.kind, PayEventKind::Paid, "{label}");
            assert_eq!(got.event_id, got.event.id, "{label}");
            assert_eq!(got.event.version, jit_pays::EVENT_VERSION);
            assert_eq!(got.event.order.order_id, order_id, "{label}");
            assert_eq!(got.event.order.status, PayStatus::Success, "{label}");
            assert_eq!(got.event.order_seq, 1, "{label}");
        }
        // The hooks got the same event, and the store shows every delivery made.
        let hooks = shop.delivered_events().await;
        assert_eq!(hooks.len(), 1, "{label}");
        assert_eq!(hooks[0].id, first.received()[0].event_id, "{label}");
        let (record, attempts) = event_detail(shop.db.store.connection(), &hooks[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.deliveries.len(),
            3,
            "{label}: hooks and two endpoints"
        );
        assert!(
            record
                .deliveries
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered.as_str()),
            "{label}"
        );
        // Every webhook attempt is recorded (hooks attempts only when they fail).
        assert_eq!(attempts.len(), 2, "{label}");
        assert!(
            attempts.iter().all(|a| a.status_code == Some(200)),
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_within_seconds_and_every_attempt_recorded() {
    for db in support::all().await {
        let label = db.label;
        // Two failures (a 500, then a 503), then it takes the event.
        let receiver = Receiver::start(|n| match n {
            0 => Reply::Status(StatusCode::INTERNAL_SERVER_ERROR),
            1 => Reply::Status(StatusCode::SERVICE_UNAVAILABLE),
            _ => Reply::Status(StatusCode::NO_CONTENT),
        })
        .await;
        let shop = shop::start(db, options_with(vec![receiver.endpoint()])).await;
        pay_an_order(&shop, "Retried").await;
        // 1-2 s, then 2-4 s: both retries well within 10 s.
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        let (record, attempts) = event_detail(shop.db.store.connection(), &got[0].event_id)
            .await
            .unwrap()
            .unwrap();
        let codes: Vec<_> = attempts.iter().map(|a| a.status_code).collect();
        assert_eq!(codes, [Some(500), Some(503), Some(204)], "{label}");
        let numbers: Vec<_> = attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [1, 2, 3], "{label}");
        assert!(
            attempts[0].error.as_deref().unwrap().contains("500"),
            "{label}"
        );
        let gap = attempts[1].attempted_at - attempts[0].attempted_at;
        assert!(
            gap <= chrono::Duration::seconds(5),
            "{label}: first retry after {gap}"
        );
        let webhook = record
            .deliveries
            .iter()
            .find(|d| d.consumer == receiver.url)
            .unwrap();
        assert_eq!(webhook.status, "delivered", "{label}");
        assert_eq!(webhook.attempts, 3, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_past_its_retry_window_is_dead_and_listed_undelivered() {
    let db = support::sqlite().await;
    let receiver = Receiver::start(|_| Reply::Status(StatusCode::BAD_GATEWAY)).await;
    let mut endpoint = receiver.endpoint();
    endpoint.retry_for = Duration::from_millis(500);
    let shop = shop::start(db, options_with(vec![endpoint])).await;
    let order_id = pay_an_order(&shop, "Dead").await;
    let connection = shop.db.store.connection();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let listed = list_events(
            connection,
            &EventFilter {
                undelivered: true,
                order_id: Some(order_id.clone()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
        let dead = listed.first().and_then(|record| {
            record
                .deliveries
                .iter()
                .find(|d| d.status == DeliveryStatus::Dead.as_str())
                .cloned()
        });
        if let Some(dead) = dead {
            break dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "never dead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.consumer, receiver.url);
    assert!(dead.last_error.unwrap().contains("502"));
    // The hooks took it: only the endpoint's delivery is dead.
    assert_eq!(shop.events_for(&order_id).await, [PayEventKind::Paid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_s_events_reach_an_endpoint_in_commit_order_even_when_the_first_fails() {
    for db in support::all().await {
        let label = db.label;
        // The first request fails: the order's second event must wait for the first.
        let receiver = Receiver::start(|n| {
            if n == 0 {
                Reply::Status(StatusCode::INTERNAL_SERVER_ERROR)
            } else {
                Reply::Status(StatusCode::OK)
            }
        })
        .await;
        let shop = shop::start(db, options_with(vec![receiver.endpoint()])).await;
        let order = shop
            .pay
            .create("Ordered", wechatpay_v2::Fen::new(500), None)
            .await
            .unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        shop.db
            .store
            .close_order(&order.order_id, PayStatus::Timeout)
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        let kinds: Vec<_> = got.iter().map(|r| r.event.kind).collect();
        assert_eq!(
            kinds,
            [PayEventKind::TimedOut, PayEventKind::PaidAfterClose],
            "{label}"
        );
        let seqs: Vec<_> = got.iter().map(|r| r.event.order_seq).collect();
        assert_eq!(seqs, [1, 2], "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_delays_neither_another_endpoint_nor_the_hooks() {
    let db = support::sqlite().await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    let healthy = Receiver::ok().await;
    let mut slow = hanging.endpoint();
    slow.timeout = Duration::from_secs(30);
    let shop = shop::start(db, options_with(vec![slow, healthy.endpoint()])).await;
    let started = std::time::Instant::now();
    for n in 0..3 {
        pay_an_order(&shop, &format!("Busy {n}")).await;
    }
    healthy.wait_for(3, Duration::from_secs(5)).await;
    let hooks = shop.delivered_events_of_hooks().await;
    assert_eq!(hooks.len(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hanging endpoint held the others back"
    );
    assert!(hanging.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_gets_the_event_again_under_the_same_id() {
    let db = support::sqlite().await;
    let shop = shop::start(db, ShopOptions::default()).await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    shop.app
        .service::<jit_pays::PayEvents>()
        .unwrap()
        .subscribe(move |event| {
            let mut seen = sink.lock();
            seen.push(event.id.clone());
            if seen.len() == 1 {
                panic!("the first handling fails");
            }
        });
    let order_id = pay_an_order(&shop, "Panicky").await;
    let events = shop.delivered_events().await;
    let ids = seen.lock().clone();
    assert_eq!(ids.len(), 2, "handed over twice: {ids:?}");
    assert_eq!(ids[0], ids[1], "the same event id both times");
    // The other subscriber got it twice as well: at least once, for everyone.
    let paid: Vec<_> = events
        .iter()
        .filter(|event| event.order.order_id == order_id)
        .collect();
    assert_eq!(paid.len(), 2);
    assert!(paid.iter().all(|event| event.id == ids[0]));
}

/// Two instances (each its own pool and dispatcher, as two processes) on one database:
/// every event reaches the endpoint, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_database_deliver_each_event_once() {
    for db in support::all().await {
        let label = db.label;
        let receiver = Receiver::ok().await;
        let second = support::second_pool(&db).await;
        let mut options = options_with(vec![receiver.endpoint()]);
        options.outbox.instance_id = "one".into();
        let shop = shop::start(db, options).await;
        let mut other_options = options_with(vec![receiver.endpoint()]);
        other_options.outbox.instance_id = "two".into();
        let other = shop::start(second, other_options).await;
        let mut paid = Vec::new();
        for n in 0..20 {
            let on = if n % 2 == 0 { &shop } else { &other };
            paid.push(pay_an_order(on, &format!("Shared {n}")).await);
        }
        let got = receiver.wait_for(20, Duration::from_secs(15)).await;
        // Settle: nothing more may come.
        support::wait_outbox_idle(&shop.db.store).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = receiver.received().len().max(got.len());
        assert_eq!(got, 20, "{label}: each event once");
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for received in receiver.received() {
            *per_event.entry(received.event_id).or_default() += 1;
        }
        assert!(
            per_event.values().all(|&n| n == 1),
            "{label}: {per_event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_event_is_delivered_again_under_the_same_id() {
    for db in support::all().await {
        let label = db.label;
        let receiver = Receiver::ok().await;
        let shop = shop::start(db, options_with(vec![receiver.endpoint()])).await;
        pay_an_order(&shop, "Replay").await;
        let first = receiver.wait_for(1, Duration::from_secs(10)).await;
        let connection = shop.db.store.connection();
        let (record, _) = event_detail(connection, &first[0].event_id)
            .await
            .unwrap()
            .unwrap();
        let routes = OutboxSettings {
            webhooks: vec![receiver.endpoint()],
            ..OutboxSettings::new("cli")
        }
        .routes();
        let webhook_only: Vec<_> = routes
            .into_iter()
            .filter(|route| route.name == receiver.url)
            .collect();
        let queued = replay_events(connection, &[record.event], &webhook_only)
            .await
            .unwrap();
        assert_eq!(queued, 1, "{label}");
        let again = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(again[1].event_id, first[0].event_id, "{label}");
        // The hooks were not asked again.
        assert_eq!(shop.delivered_events().await.len(), 1, "{label}");
    }
}
