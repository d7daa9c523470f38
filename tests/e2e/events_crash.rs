//! Issue 12's crash tests: a real `jit serve` killed with SIGKILL at the moments an event
//! could be lost — between the commit and the webhook delivery, during a delivery, and
//! while a notify waits for the database's write lock — then started again on the same
//! app folder under the same instance id. Each runs on SQLite, and on PostgreSQL when
//! `JIT_TEST_POSTGRES_URL` names a server.

use std::time::{Duration, Instant};

use test_support::webhook_receiver::{Answer, WebhookReceiver, url_at};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::Served;
use crate::events_support::{
    Backend, Db, ShopApi, ShopConfig, WEBHOOK_SECRET, WriteLock, events_ls, paid_notify, poll,
    shop_app, transaction_id,
};
use crate::util::{client, free_port, is_success_reply};

/// Consumers look for work every 200 ms (a commit in the process wakes them at once).
const EVENTS: &str = "[events]\npoll_interval_ms = 200\n";

/// Long enough for a debug build of `jit serve` to start or redeliver on a loaded machine;
/// well short of a webhook claim's lease (the endpoint's 10 s timeout + 30 s), which a
/// restarted instance must not wait out.
const PROMPTLY: Duration = Duration::from_secs(20);

/// The notify's path on the shop.
const NOTIFY_PATH: &str = "/api/demo/shop/pays/services/PaySvc/wechatNotify";

#[tokio::test]
async fn events_crash_between_commit_and_delivery_on_sqlite() {
    between_commit_and_delivery(Backend::Sqlite).await;
}

#[tokio::test]
async fn events_crash_between_commit_and_delivery_on_postgres() {
    if let Some(backend) = Backend::postgres("events_crash_between_commit_and_delivery") {
        between_commit_and_delivery(backend).await;
    }
}

#[tokio::test]
async fn events_crash_during_a_delivery_on_sqlite() {
    during_a_delivery(Backend::Sqlite).await;
}

#[tokio::test]
async fn events_crash_during_a_delivery_on_postgres() {
    if let Some(backend) = Backend::postgres("events_crash_during_a_delivery") {
        during_a_delivery(backend).await;
    }
}

#[tokio::test]
async fn events_crash_while_a_notify_waits_for_the_lock_on_sqlite() {
    notify_waiting_for_the_lock(Backend::Sqlite).await;
}

#[tokio::test]
async fn events_crash_while_a_notify_waits_for_the_lock_on_postgres() {
    if let Some(backend) = Backend::postgres("events_crash_while_a_notify_waits_for_the_lock") {
        notify_waiting_for_the_lock(backend).await;
    }
}

#[tokio::test]
async fn events_abandoned_notify_commits_with_its_event_on_sqlite() {
    abandoned_notify_commits_with_its_event(Backend::Sqlite).await;
}

#[tokio::test]
async fn events_abandoned_notify_commits_with_its_event_on_postgres() {
    if let Some(backend) = Backend::postgres("events_abandoned_notify_commits_with_its_event") {
        abandoned_notify_commits_with_its_event(backend).await;
    }
}

/// The endpoint is down when the order is paid: the event is committed and listed as
/// undelivered; the server dies; the endpoint comes up; the restarted server delivers it.
async fn between_commit_and_delivery(backend: Backend) {
    let label = backend.label();
    // The endpoint's port, closed until after the crash.
    let port = free_port();
    let app = shop_app(&ShopConfig {
        backend: &backend,
        gateway: None,
        instance_id: "crash-a",
        webhooks: &[url_at(port)],
        extra: EVENTS,
    });
    let http = client();
    let mut server = Served::start_logging_to(app.path(), &[], "serve-1.log");
    server.ready(&http).await;
    let shop = ShopApi::new(&server.base, &http);
    let order_id = shop.create_order().await;
    let (status, reply) = shop
        .notify(&paid_notify(&order_id, &transaction_id(1)))
        .await;
    assert!(
        status.is_success() && is_success_reply(&reply),
        "{label}: {reply}"
    );

    // Committed with its transition, and waiting for the endpoint.
    let listed = events_ls(app.path(), &["--undelivered", "--order", &order_id]).await;
    assert_eq!(listed.len(), 1, "{label}: {listed:?}");
    let event_id = listed[0]["id"].as_str().expect("an event id").to_owned();
    assert_eq!(listed[0]["type"], "order.paid", "{label}: {listed:?}");
    let endpoint = listed[0]["deliveries"]
        .as_array()
        .expect("its deliveries")
        .iter()
        .find(|delivery| delivery["consumer"] == url_at(port).as_str())
        .unwrap_or_else(|| panic!("{label}: a delivery to the endpoint: {listed:?}"));
    assert_eq!(endpoint["status"], "pending", "{label}: {listed:?}");
    let db = Db::open(&backend, app.path()).await;
    let events = db.events_of(&order_id).await;
    assert_eq!(events.len(), 1, "{label}: {events:?}");
    assert_eq!(events[0].id, event_id);

    server.kill();
    let receiver = WebhookReceiver::start_on(port, WEBHOOK_SECRET).await;
    let mut server = Served::start_logging_to(app.path(), &[], "serve-2.log");
    server.ready(&http).await;
    let received = receiver
        .wait_until(PROMPTLY, "the event, after the restart", |got| {
            got.iter().any(|r| r.event_id == event_id)
        })
        .await;
    let delivered = &received[0];
    assert_eq!(delivered.event_id, event_id, "{label}");
    assert_eq!(delivered.event_type, "order.paid", "{label}");
    assert_eq!(
        delivered.verified,
        Ok(()),
        "{label}: the signature verifies"
    );
    assert!(
        delivered.body_text().contains(&order_id),
        "{label}: {}",
        delivered.body_text()
    );

    // Recorded as delivered, so no longer listed.
    poll(PROMPTLY, "the delivery to be recorded", async || {
        events_ls(app.path(), &["--undelivered", "--order", &order_id])
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        db.events_of(&order_id).await,
        events,
        "{label}: no new event"
    );
    db.close().await;
    server.stop().await;
}

/// The endpoint takes the POST and never answers; the server dies holding the claim;
/// restarted under the same instance id it takes its claim back at once and delivers the
/// event again, under the same `Jit-Event-Id`, with the same body.
async fn during_a_delivery(backend: Backend) {
    let label = backend.label();
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await;
    receiver.answer_with(Answer::Hold);
    let app = shop_app(&ShopConfig {
        backend: &backend,
        gateway: None,
        instance_id: "crash-b",
        webhooks: &[receiver.url()],
        extra: EVENTS,
    });
    let http = client();
    let mut server = Served::start_logging_to(app.path(), &[], "serve-1.log");
    server.ready(&http).await;
    let shop = ShopApi::new(&server.base, &http);
    let order_id = shop.create_order().await;
    let (_, reply) = shop
        .notify(&paid_notify(&order_id, &transaction_id(2)))
        .await;
    assert!(is_success_reply(&reply), "{label}: {reply}");

    let held = receiver
        .wait_until(PROMPTLY, "the delivery it holds", |got| !got.is_empty())
        .await;
    let first = held[0].clone();
    assert_eq!(first.answer, Answer::Hold);
    assert_eq!(first.event_type, "order.paid", "{label}");
    assert_eq!(first.verified, Ok(()), "{label}");

    server.kill();
    receiver.answer_with(Answer::Status(200));
    let restarted = Instant::now();
    let mut server = Served::start_logging_to(app.path(), &[], "serve-2.log");
    server.ready(&http).await;
    let received = receiver
        .wait_until(PROMPTLY, "the delivery again, after the restart", |got| {
            got.iter().any(|r| r.answer == Answer::Status(200))
        })
        .await;
    let again = received
        .iter()
        .find(|r| r.answer == Answer::Status(200))
        .expect("the answered delivery");
    assert!(
        restarted.elapsed() < PROMPTLY,
        "{label}: the claim was waited out, not taken back"
    );
    assert_eq!(again.event_id, first.event_id, "{label}: the same event id");
    assert_eq!(again.body, first.body, "{label}: the same envelope");
    assert_eq!(again.verified, Ok(()), "{label}");

    let db = Db::open(&backend, app.path()).await;
    poll(PROMPTLY, "the delivery to be recorded", async || {
        (db.undelivered().await == 0).then_some(())
    })
    .await;
    let events = db.events_of(&order_id).await;
    assert_eq!(events.len(), 1, "{label}: {events:?}");
    assert_eq!(events[0].id, first.event_id);
    assert_eq!(
        receiver.received().len(),
        2,
        "{label}: the held attempt and the one after the restart, no more"
    );
    db.close().await;
    server.stop().await;
}

/// A notify is in flight, its write waiting for the lock the test holds; the notifier
/// hangs up; the server dies; the lock is released. Neither the transition nor its event
/// is there; WeChat's retry to the restarted server makes exactly one of each, delivered.
async fn notify_waiting_for_the_lock(backend: Backend) {
    let label = backend.label();
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let app = shop_app(&ShopConfig {
        backend: &backend,
        gateway: None,
        instance_id: "crash-c",
        webhooks: &[receiver.url()],
        extra: EVENTS,
    });
    let http = client();
    let mut server = Served::start_logging_to(app.path(), &[], "serve-1.log");
    server.ready(&http).await;
    let shop = ShopApi::new(&server.base, &http);
    let order_id = shop.create_order().await;
    let notify = paid_notify(&order_id, &transaction_id(3));

    let mut lock = WriteLock::take(&backend, app.path(), &order_id).await;
    let in_flight = InFlightNotify::send(&server.base, &notify).await;
    let in_flight = in_flight.wait_for_the_lock(&mut lock).await;
    drop(in_flight);
    server.kill();
    lock.release().await;

    // The process died before its transaction committed: neither is there.
    let db = Db::open(&backend, app.path()).await;
    assert_eq!(
        db.statuses().await.get(&order_id).map(String::as_str),
        Some("wait"),
        "{label}"
    );
    assert_eq!(db.events_of(&order_id).await, vec![], "{label}");

    // WeChat's retries settle it: one transition, one event, delivered once.
    let mut server = Served::start_logging_to(app.path(), &[], "serve-2.log");
    server.ready(&http).await;
    let shop = ShopApi::new(&server.base, &http);
    for _ in 0..2 {
        let (status, reply) = shop.notify(&notify).await;
        assert!(
            status.is_success() && is_success_reply(&reply),
            "{label}: {reply}"
        );
    }
    assert_eq!(shop.status(&order_id).await, "success", "{label}");
    let events = db.events_of(&order_id).await;
    assert_eq!(events.len(), 1, "{label}: {events:?}");
    assert_eq!(events[0].event_type, "order.paid");
    receiver
        .wait_until(PROMPTLY, "the event", |got| {
            got.iter().any(|r| r.event_id == events[0].id)
        })
        .await;
    poll(PROMPTLY, "the delivery to be recorded", async || {
        (db.undelivered().await == 0).then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 1, "{label}: delivered once");
    db.close().await;
    server.stop().await;
}

/// A notify is in flight, its write waiting for the lock; the notifier hangs up; the lock
/// is released. The write was not the request's to cancel: the transition commits with
/// its event, which is delivered; WeChat's retry is a repeat and writes nothing.
async fn abandoned_notify_commits_with_its_event(backend: Backend) {
    let label = backend.label();
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let app = shop_app(&ShopConfig {
        backend: &backend,
        gateway: None,
        instance_id: "crash-d",
        webhooks: &[receiver.url()],
        extra: EVENTS,
    });
    let http = client();
    let mut server = Served::start(app.path(), &[]);
    server.ready(&http).await;
    let shop = ShopApi::new(&server.base, &http);
    let order_id = shop.create_order().await;
    let notify = paid_notify(&order_id, &transaction_id(4));

    let mut lock = WriteLock::take(&backend, app.path(), &order_id).await;
    let in_flight = InFlightNotify::send(&server.base, &notify).await;
    let in_flight = in_flight.wait_for_the_lock(&mut lock).await;
    drop(in_flight);
    lock.release().await;

    let db = Db::open(&backend, app.path()).await;
    poll(PROMPTLY, "the abandoned notify's commit", async || {
        (db.statuses().await.get(&order_id).map(String::as_str) == Some("success")).then_some(())
    })
    .await;
    let events = db.events_of(&order_id).await;
    assert_eq!(
        events.len(),
        1,
        "{label}: the transition has its event: {events:?}"
    );
    assert_eq!(events[0].event_type, "order.paid");
    receiver
        .wait_until(PROMPTLY, "the event", |got| {
            got.iter().any(|r| r.event_id == events[0].id)
        })
        .await;

    let (status, reply) = shop.notify(&notify).await;
    assert!(
        status.is_success() && is_success_reply(&reply),
        "{label}: {reply}"
    );
    assert_eq!(
        db.events_of(&order_id).await,
        events,
        "{label}: a repeat writes nothing"
    );
    poll(PROMPTLY, "the delivery to be recorded", async || {
        (db.undelivered().await == 0).then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 1, "{label}: delivered once");
    db.close().await;
    server.stop().await;
}

/// A notify POSTed on a raw connection, its body sent once the server asked for it
/// (`Expect: 100-continue`: the handler has started), its answer not read.
struct InFlightNotify {
    stream: TcpStream,
}

impl InFlightNotify {
    async fn send(base: &str, body: &str) -> Self {
        let address = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let head = format!(
            "POST {NOTIFY_PATH} HTTP/1.1\r\nhost: {address}\r\ncontent-type: text/xml\r\n\
             expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the head");
        let mut interim = Vec::new();
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0_u8; 1];
            let read = tokio::time::timeout(PROMPTLY, stream.read(&mut byte))
                .await
                .expect("the server asks for the body")
                .expect("read");
            assert_eq!(read, 1, "closed before 100 Continue");
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        stream
            .write_all(body.as_bytes())
            .await
            .expect("send the body");
        InFlightNotify { stream }
    }

    /// Returns once the notify's write waits for `lock`. PostgreSQL names the session
    /// waiting for the test's row lock. SQLite keeps no record of who waits for its lock,
    /// so there the notify must stay unanswered for a second: its write waits up to the
    /// busy timeout (5 s) before failing, while anything else (a refusal, an error) answers
    /// in milliseconds.
    async fn wait_for_the_lock(mut self, lock: &mut WriteLock) -> Self {
        if lock.waiters().await.is_some() {
            poll(
                PROMPTLY,
                "the notify's write to wait for the row lock",
                async || (lock.waiters().await.unwrap_or(0) > 0).then_some(()),
            )
            .await;
        }
        let mut buffer = [0_u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), self.stream.read(&mut buffer)).await {
            Err(_) => {}
            Ok(Ok(read)) => panic!(
                "the notify was answered while the lock was held: {}",
                String::from_utf8_lossy(&buffer[..read])
            ),
            Ok(Err(error)) => panic!("the notify's connection failed: {error}"),
        }
        self
    }
}
