//! The outbox: every transition's event reaches the hooks and each webhook endpoint, at
//! least once, in commit order per order, signed; failures are retried with back-off and
//! recorded; a slow endpoint delays no one else; instances sharing a database deliver
//! each event once; a replay delivers it again under the same id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jit_pays::outbox::{DeliveryStatus, EventFilter, event_detail, list_events, replay_events};
use jit_pays::{
    OutboxSettings, PayEvent, PayEventKind, PayStatus, PayType, Payer, WebhookEndpoint,
};
use parking_lot::Mutex;
use test_support::webhook_receiver::{Answer, Received, WebhookReceiver};

use crate::support;
use crate::support::shop::{self, ShopOptions};

const SECRET: &str = "whsec_test_0123456789abcdef0123456789abcdef";

/// A receiver answering each request with `script(n)`, n its number (0-based).
async fn receiver_answering(
    script: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> WebhookReceiver {
    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.answer_by(script);
    receiver
}

/// `receiver` as a webhook endpoint of the outbox, for every kind of event.
fn endpoint(receiver: &WebhookReceiver) -> WebhookEndpoint {
    WebhookEndpoint {
        url: receiver.url(),
        secret: SECRET.into(),
        kinds: None,
        timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(3600),
    }
}

/// Waits until `receiver` took `count` events (a 2xx answer) and the outbox recorded every
/// answer (it does so just after each one), so the store can be read.
async fn taken_and_recorded(
    receiver: &WebhookReceiver,
    shop: &shop::Shop,
    count: usize,
) -> Vec<Received> {
    let taken = receiver
        .wait_for_delivered(count, Duration::from_secs(10))
        .await;
    support::wait_outbox_idle(&shop.db.store).await;
    taken
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
        let first = WebhookReceiver::start(SECRET).await;
        let second = WebhookReceiver::start(SECRET).await;
        let shop = shop::start(db, options_with(vec![endpoint(&first), endpoint(&second)])).await;
        let order_id = pay_an_order(&shop, "Webhook").await;
        for receiver in [&first, &second] {
            let got = receiver
                .wait_for_delivered(1, Duration::from_secs(10))
                .await;
            assert_eq!(got.len(), 1, "{label}");
            let got = &got[0];
            let event: PayEvent = got.json();
            assert_eq!(got.verified, Ok(()), "{label}: the signature verifies");
            assert_eq!(got.event_type, "order.paid", "{label}");
            assert_eq!(event.kind, PayEventKind::Paid, "{label}");
            assert_eq!(got.event_id, event.id, "{label}");
            assert_eq!(event.version, jit_pays::EVENT_VERSION);
            assert_eq!(event.order_id, order_id, "{label}");
            assert_eq!(
                event.order.as_ref().unwrap().status,
                PayStatus::Success,
                "{label}"
            );
            assert_eq!(event.order_seq, 1, "{label}");
        }
        // The hooks got the same event, and the store shows every delivery made.
        let hooks = shop.delivered_events().await;
        assert_eq!(hooks.len(), 1, "{label}");
        assert_eq!(hooks[0].id, first.delivered()[0].event_id, "{label}");
        // The receivers answered; the dispatcher records their answers just after.
        support::wait_outbox_idle(&shop.db.store).await;
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
        let receiver = receiver_answering(|n| match n {
            0 => Answer::Status(500),
            1 => Answer::Status(503),
            _ => Answer::Status(204),
        })
        .await;
        let shop = shop::start(db, options_with(vec![endpoint(&receiver)])).await;
        pay_an_order(&shop, "Retried").await;
        // 1-2 s, then 2-4 s: both retries well within 10 s.
        let got = taken_and_recorded(&receiver, &shop, 1).await;
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
            .find(|d| d.consumer == receiver.url())
            .unwrap();
        assert_eq!(webhook.status, "delivered", "{label}");
        assert_eq!(webhook.attempts, 3, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_past_its_retry_window_is_dead_and_listed_undelivered() {
    let db = support::sqlite().await;
    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.answer_with(Answer::Status(502));
    let mut short_lived = endpoint(&receiver);
    short_lived.retry_for = Duration::from_millis(500);
    let shop = shop::start(db, options_with(vec![short_lived])).await;
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
    assert_eq!(dead.consumer, receiver.url());
    assert!(dead.last_error.unwrap().contains("502"));
    // The hooks took it: only the endpoint's delivery is dead.
    assert_eq!(shop.events_for(&order_id).await, [PayEventKind::Paid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_s_events_reach_an_endpoint_in_commit_order_even_when_the_first_fails() {
    for db in support::all().await {
        let label = db.label;
        // The first request fails: the order's second event must wait for the first.
        let receiver = receiver_answering(|n| Answer::Status(if n == 0 { 500 } else { 200 })).await;
        let shop = shop::start(db, options_with(vec![endpoint(&receiver)])).await;
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
        let got: Vec<PayEvent> = receiver
            .wait_for_delivered(2, Duration::from_secs(10))
            .await
            .iter()
            .map(|r| r.json())
            .collect();
        let kinds: Vec<_> = got.iter().map(|event| event.kind).collect();
        assert_eq!(
            kinds,
            [PayEventKind::TimedOut, PayEventKind::PaidAfterClose],
            "{label}"
        );
        let seqs: Vec<_> = got.iter().map(|event| event.order_seq).collect();
        assert_eq!(seqs, [1, 2], "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_delays_neither_another_endpoint_nor_the_hooks() {
    let db = support::sqlite().await;
    let hanging = WebhookReceiver::start(SECRET).await;
    hanging.answer_with(Answer::Hold);
    let healthy = WebhookReceiver::start(SECRET).await;
    let mut slow = endpoint(&hanging);
    slow.timeout = Duration::from_secs(30);
    let shop = shop::start(db, options_with(vec![slow, endpoint(&healthy)])).await;
    let started = std::time::Instant::now();
    for n in 0..3 {
        pay_an_order(&shop, &format!("Busy {n}")).await;
    }
    healthy.wait_for_delivered(3, Duration::from_secs(5)).await;
    let hooks = shop.delivered_events_of_hooks().await;
    assert_eq!(hooks.len(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hanging endpoint held the others back"
    );
    assert!(hanging.delivered().is_empty());
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
        .filter(|event| event.order_id == order_id)
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
        let receiver = WebhookReceiver::start(SECRET).await;
        let second = support::second_pool(&db).await;
        let mut options = options_with(vec![endpoint(&receiver)]);
        options.outbox.instance_id = "one".into();
        let shop = shop::start(db, options).await;
        let mut other_options = options_with(vec![endpoint(&receiver)]);
        other_options.outbox.instance_id = "two".into();
        let other = shop::start(second, other_options).await;
        let mut paid = Vec::new();
        for n in 0..20 {
            let on = if n % 2 == 0 { &shop } else { &other };
            paid.push(pay_an_order(on, &format!("Shared {n}")).await);
        }
        let got = receiver
            .wait_for_delivered(20, Duration::from_secs(15))
            .await;
        // Settle: nothing more may come.
        support::wait_outbox_idle(&shop.db.store).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = receiver.delivered().len().max(got.len());
        assert_eq!(got, 20, "{label}: each event once");
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for received in receiver.delivered() {
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
        let receiver = WebhookReceiver::start(SECRET).await;
        let shop = shop::start(db, options_with(vec![endpoint(&receiver)])).await;
        pay_an_order(&shop, "Replay").await;
        // Recorded as delivered before it is replayed.
        let first = taken_and_recorded(&receiver, &shop, 1).await;
        let connection = shop.db.store.connection();
        let (record, _) = event_detail(connection, &first[0].event_id)
            .await
            .unwrap()
            .unwrap();
        let routes = OutboxSettings {
            webhooks: vec![endpoint(&receiver)],
            ..OutboxSettings::new("cli")
        }
        .routes();
        let webhook_only: Vec<_> = routes
            .into_iter()
            .filter(|route| route.name == receiver.url())
            .collect();
        let queued = replay_events(connection, &[record.event], &webhook_only)
            .await
            .unwrap();
        assert_eq!(queued, 1, "{label}");
        let again = receiver
            .wait_for_delivered(2, Duration::from_secs(10))
            .await;
        assert_eq!(again[1].event_id, first[0].event_id, "{label}");
        // The hooks were not asked again.
        assert_eq!(shop.delivered_events().await.len(), 1, "{label}");
    }
}
