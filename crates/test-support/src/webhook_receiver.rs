//! A merchant's webhook endpoint on loopback, the one every events test POSTs to.
//!
//! [`WebhookReceiver`] is a real axum server on `127.0.0.1` that checks each POST's
//! `Jit-Signature` with `jit_webhooks::verify_now`, records what came (event id, type,
//! signature header, raw body, whether the signature held, how it was answered), and
//! answers as the test says: a status, a status chosen by the request's number, or not at
//! all (the request is held open, as an endpoint that hangs would). Tests wait for what
//! they expect with a deadline, woken by each arrival rather than by sleeping, and a
//! deadline passed panics saying what was awaited and what came instead.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The path a receiver takes events on.
pub const PATH: &str = "/jit/events";

/// How a receiver answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This HTTP status, at once.
    Status(u16),
    /// Never: the request is recorded, then held open until its sender goes away.
    Hold,
}

impl Answer {
    /// Whether jit counts this answer as the event taken (a 2xx status).
    pub fn is_success(self) -> bool {
        matches!(self, Answer::Status(status) if (200..300).contains(&status))
    }
}

/// One POST a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `Jit-Event-Id` header (empty when missing).
    pub event_id: String,
    /// The `Jit-Event-Type` header (empty when missing).
    pub event_type: String,
    /// The `Jit-Signature` header as sent (empty when missing).
    pub signature: String,
    /// The raw body.
    pub body: Bytes,
    /// What `jit_webhooks::verify_now` said of the signature on arrival, with the
    /// receiver's secret.
    pub verified: Result<(), String>,
    /// How it was answered.
    pub answer: Answer,
}

impl Received {
    /// The body as text (invalid UTF-8 replaced), for `contains` checks and messages.
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON into `T`; panics saying what the body was when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body of event {} is not the JSON expected ({error}): {}",
                self.event_id,
                self.body_text()
            )
        })
    }

    /// Whether the request was answered with a 2xx status: the event was taken.
    pub fn delivered(&self) -> bool {
        self.answer.is_success()
    }
}

/// Picks the answer to the n-th request (0-based, counted from the receiver's start).
type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

struct Shared {
    secret: String,
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    /// Counts requests, so a waiting test wakes on each one instead of sleeping.
    arrived: watch::Sender<usize>,
}

/// A running receiver; dropping it closes its port (requests held open stay so until
/// their sender goes away).
pub struct WebhookReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver on a free loopback port, checking signatures with `secret`, answering
    /// 200. Must be called within a tokio runtime, which serves it.
    pub async fn start(secret: &str) -> Self {
        Self::start_on(0, secret).await
    }

    /// A receiver on loopback port `port` (0: any free one), answering 200. Panics when
    /// the port cannot be bound.
    pub async fn start_on(port: u16, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|error| panic!("the webhook receiver binds 127.0.0.1:{port}: {error}"));
        let address = listener
            .local_addr()
            .expect("the webhook receiver's address");
        let shared = Arc::new(Shared {
            secret: secret.to_owned(),
            script: Mutex::new(Arc::new(|_| Answer::Status(200))),
            received: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
        });
        let router = Router::new()
            .route(PATH, post(receive))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        WebhookReceiver {
            address,
            shared,
            task,
        }
    }

    /// Where to point a webhook: `http://127.0.0.1:PORT/jit/events`.
    pub fn url(&self) -> String {
        url_at(self.address.port())
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Answers every request from now on with `answer`.
    pub fn answer_with(&self, answer: Answer) {
        self.answer_by(move |_| answer);
    }

    /// Answers each request from now on with `script(n)`, n being the request's number
    /// (0-based, counted from the receiver's start): "fail the first two, then take it".
    pub fn answer_by(&self, script: impl Fn(usize) -> Answer + Send + Sync + 'static) {
        *self.shared.script.lock() = Arc::new(script);
    }

    /// Every request received so far, oldest first, however it was answered.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().clone()
    }

    /// The requests answered with a 2xx status so far (the events taken), oldest first.
    pub fn delivered(&self) -> Vec<Received> {
        delivered(&self.received())
    }

    /// Waits until at least `count` requests came, however answered; returns them all.
    /// Panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        self.wait_until(within, &format!("{count} request(s)"), |got| {
            got.len() >= count
        })
        .await
    }

    /// Waits until at least `count` requests were answered with a 2xx status; returns
    /// those (the events taken). Panics after `within`.
    pub async fn wait_for_delivered(&self, count: usize, within: Duration) -> Vec<Received> {
        let got = self
            .wait_until(within, &format!("{count} delivered event(s)"), |got| {
                got.iter().filter(|r| r.delivered()).count() >= count
            })
            .await;
        delivered(&got)
    }

    /// Waits until `done(every request so far)` holds; returns those requests. Panics
    /// after `within`, naming `what` it waited for and listing what came.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut arrived = self.shared.arrived.subscribe();
        loop {
            arrived.borrow_and_update();
            let received = self.received();
            if done(&received) {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the webhook receiver at {} waited {within:?} for {what}; it got {} \
                 request(s) (event id, type, answer): {:?}",
                self.url(),
                received.len(),
                received
                    .iter()
                    .map(|r| (&r.event_id, &r.event_type, r.answer))
                    .collect::<Vec<_>>()
            );
            let _ = tokio::time::timeout(left, arrived.changed()).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The URL of a receiver on loopback port `port`, running or not (yet).
pub fn url_at(port: u16) -> String {
    format!("http://127.0.0.1:{port}{PATH}")
}

fn delivered(received: &[Received]) -> Vec<Received> {
    received.iter().filter(|r| r.delivered()).cloned().collect()
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = header(jit_webhooks::SIGNATURE_HEADER);
    let verified = jit_webhooks::verify_now(shared.secret.as_bytes(), &signature, &body)
        .map_err(|error| error.to_string());
    let script = Arc::clone(&*shared.script.lock());
    let answer = {
        // Numbered and recorded under one lock, so concurrent requests get distinct numbers
        // in the order they are recorded.
        let mut received = shared.received.lock();
        let answer = script(received.len());
        received.push(Received {
            event_id: header(jit_webhooks::EVENT_ID_HEADER),
            event_type: header(jit_webhooks::EVENT_TYPE_HEADER),
            signature,
            body,
            verified,
            answer,
        });
        answer
    };
    shared.arrived.send_modify(|count| *count += 1);
    match answer {
        Answer::Status(status) => StatusCode::from_u16(status)
            .unwrap_or_else(|_| panic!("the webhook receiver's answer {status} is no HTTP status")),
        Answer::Hold => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_receiver_test_0123456789abcdef";

    async fn post(receiver: &WebhookReceiver, event_id: &str, secret: &str) -> u16 {
        let body = format!(r#"{{"id":"{event_id}"}}"#);
        let signature = jit_webhooks::sign(
            secret.as_bytes(),
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap(),
            body.as_bytes(),
        );
        reqwest::Client::new()
            .post(receiver.url())
            .header(jit_webhooks::EVENT_ID_HEADER, event_id)
            .header(jit_webhooks::EVENT_TYPE_HEADER, "order.paid")
            .header(jit_webhooks::SIGNATURE_HEADER, signature)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the receiver answers")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn records_each_request_verified_and_answers_by_its_script() {
        let receiver = WebhookReceiver::start(SECRET).await;
        receiver.answer_by(|n| Answer::Status(if n == 0 { 500 } else { 204 }));
        assert_eq!(post(&receiver, "e1", SECRET).await, 500);
        assert_eq!(post(&receiver, "e1", "another secret").await, 204);

        let got = receiver.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event_id, "e1");
        assert_eq!(got[0].event_type, "order.paid");
        assert_eq!(got[0].verified, Ok(()));
        assert_eq!(got[0].answer, Answer::Status(500));
        assert!(!got[0].delivered());
        assert!(got[0].signature.starts_with("t="), "{}", got[0].signature);
        assert_eq!(got[0].json::<serde_json::Value>()["id"], "e1");
        assert!(got[1].verified.is_err(), "signed with another secret");
        let delivered = receiver.delivered();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].answer, Answer::Status(204));
        assert_eq!(
            receiver
                .wait_for_delivered(1, Duration::from_secs(5))
                .await
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_held_request_is_recorded_and_never_answered() {
        let receiver = WebhookReceiver::start(SECRET).await;
        receiver.answer_with(Answer::Hold);
        let url = receiver.url();
        let sent = tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .body("{}")
                .timeout(Duration::from_millis(500))
                .send()
                .await
        });
        let held = receiver
            .wait_until(Duration::from_secs(5), "the held request", |got| {
                !got.is_empty()
            })
            .await;
        assert_eq!(held[0].answer, Answer::Hold);
        let error = sent.await.unwrap().expect_err("no answer comes");
        assert!(error.is_timeout(), "{error}");
        assert!(receiver.delivered().is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "waited 200ms for 1 request(s); it got 0 request(s)")]
    async fn a_deadline_passed_panics_saying_what_was_awaited() {
        let receiver = WebhookReceiver::start(SECRET).await;
        receiver.wait_for(1, Duration::from_millis(200)).await;
    }

    #[tokio::test]
    async fn listens_on_the_port_it_is_given() {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let receiver = WebhookReceiver::start_on(port, SECRET).await;
        assert_eq!(receiver.port(), port);
        assert_eq!(receiver.url(), url_at(port));
        assert_eq!(post(&receiver, "e2", SECRET).await, 200);
    }
}
