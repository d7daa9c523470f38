//! A merchant's webhook endpoint on loopback, for the events tests: it checks every POST's
//! `Jit-Signature` with `jit_webhooks::verify`, records what came (event id, type, body,
//! whether the signature held), and answers as the test says — 200, another status, or
//! not at all (the request is held open, as an endpoint that hangs would).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status, at once.
    Status(u16),
    /// Never: the request is recorded, then held open until the sender goes away.
    Hold,
}

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `Jit-Event-Id`.
    pub event_id: String,
    /// `Jit-Event-Type`.
    pub event_type: String,
    /// The raw body.
    pub body: String,
    /// What `jit_webhooks::verify` said of the signature.
    pub verified: Result<(), String>,
    /// How it was answered.
    pub answer: Answer,
}

struct Shared {
    secret: String,
    answer: Mutex<Answer>,
    received: Mutex<Vec<Received>>,
    /// Counts POSTs, so a test can wait for one without sleeping.
    arrived: watch::Sender<usize>,
}

/// A running receiver; dropping it closes its port (requests held open stay so until
/// their sender goes away).
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// The path events are POSTed to.
const PATH: &str = "/jit/events";

impl Receiver {
    /// A receiver on a free loopback port, answering 200.
    pub async fn start(secret: &str) -> Self {
        Self::start_on(0, secret).await
    }

    /// A receiver on loopback port `port` (0: any free one), answering 200.
    pub async fn start_on(port: u16, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|error| panic!("the receiver binds 127.0.0.1:{port}: {error}"));
        let address = listener.local_addr().expect("the receiver's address");
        let shared = Arc::new(Shared {
            secret: secret.to_owned(),
            answer: Mutex::new(Answer::Status(200)),
            received: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
        });
        let router = Router::new()
            .route(PATH, post(receive))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver {
            address,
            shared,
            task,
        }
    }

    /// Where to point `[[webhooks]] url`: `http://127.0.0.1:PORT/jit/events`.
    pub fn url(&self) -> String {
        url_at(self.address.port())
    }

    /// Answers every request from now on with `answer`.
    pub fn answer_with(&self, answer: Answer) {
        *self.shared.answer.lock().expect("the receiver's lock") = answer;
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .expect("the receiver's lock")
            .clone()
    }

    /// Waits until `done(received so far)` holds; panics with `what` and what came after
    /// `limit`.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
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
                "the receiver at {} waited {limit:?} for {what}; it got {} POST(s): {:?}",
                self.url(),
                received.len(),
                received
                    .iter()
                    .map(|r| (&r.event_id, &r.event_type))
                    .collect::<Vec<_>>()
            );
            let _ = tokio::time::timeout(left, arrived.changed()).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The URL of a receiver on loopback port `port`, running or not.
pub fn url_at(port: u16) -> String {
    format!("http://127.0.0.1:{port}{PATH}")
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let now = chrono::Utc::now().timestamp();
    let verified = jit_webhooks::verify(
        shared.secret.as_bytes(),
        &header(jit_webhooks::SIGNATURE_HEADER),
        &body,
        now,
        jit_webhooks::DEFAULT_TOLERANCE_SECS,
    )
    .map_err(|error| error.to_string());
    let answer = *shared.answer.lock().expect("the receiver's lock");
    shared
        .received
        .lock()
        .expect("the receiver's lock")
        .push(Received {
            event_id: header(jit_webhooks::EVENT_ID_HEADER),
            event_type: header(jit_webhooks::EVENT_TYPE_HEADER),
            body: String::from_utf8_lossy(&body).into_owned(),
            verified,
            answer,
        });
    shared.arrived.send_modify(|count| *count += 1);
    match answer {
        Answer::Status(status) => StatusCode::from_u16(status).expect("a valid status"),
        Answer::Hold => std::future::pending().await,
    }
}
