//! The outbox's dispatcher: hands every committed event to its consumers — the
//! in-process subscribers ([`crate::PayEvents`]) and the merchant's webhook endpoints —
//! at least once, in commit order per order, after a crash or restart too.
//!
//! The events themselves are written by the store, in the transaction of the transition
//! they report ([`crate::db::outbox`]), with one delivery row per consumer. Here, one task
//! per consumer claims that consumer's due deliveries (with a lease, so with several
//! instances on one database each delivery is attempted by one), attempts them and
//! records every attempt: a delivered one is done; a failed one comes back after a
//! back-off with jitter (the first retry within seconds), until its retry window (24 hours
//! by default) closes and it is dead. One task per consumer means a slow or dead endpoint
//! holds back only its own deliveries, never another endpoint's, the hooks or a notify.
//!
//! Nothing here runs on a request's task: a transition's request may be long gone (its
//! client hung up) when its event is delivered. A commit in this process wakes the tasks
//! at once; events written by other instances (and retries coming due) are found by
//! polling.

mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jit_runtime::App;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::PayStore;
use crate::db::outbox::{
    AttemptResult, ClaimedDelivery, ConsumerRoute, DEFAULT_RETRY_FOR, HOOKS_CONSUMER,
    claim_deliveries, release_leases, settle_attempts,
};
use crate::db::store::now;
use crate::error::PayError;
use crate::events::{PayEvent, PayEvents};
use crate::meta::service;
use crate::models::row_hooks::RowHooks;

pub use crate::db::outbox::{
    DeliveryStatus, EventFilter, EventRecord, event_detail, list_events, pending_deliveries,
    replay_events, retry_delay,
};
pub use webhook::WebhookEndpoint;

/// How a hooks delivery's claim lasts: the subscribers run in this process; if it dies,
/// another instance takes the claim after this.
const HOOKS_LEASE: Duration = Duration::from_secs(60);

/// How long [`OutboxHandle::stop`] waits for attempts in flight: a shutdown is not held
/// for a slow endpoint's whole timeout.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Webhook deliveries of one consumer in flight at once.
const WEBHOOK_CONCURRENCY: usize = 16;

/// Woken by a commit, a consumer waits this long before claiming, so that under a stream
/// of notifies it claims (and settles) many events per transaction instead of a few per
/// commit: each of its transactions takes SQLite's single write lock, which the notifies'
/// commits wait on. A delivery comes this much later; nobody waits for it.
const COALESCE: Duration = Duration::from_millis(20);

/// What [`start_outbox`] needs.
#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// This instance's name in claims (`lease_owner`). Give each instance sharing a
    /// database its own, the same across its restarts: a restarted instance then takes
    /// back its own claims at once instead of waiting for their leases to lapse.
    pub instance_id: String,
    /// How often each consumer looks for work written by other instances or come due
    /// (a commit in this process wakes it at once).
    pub poll_interval: Duration,
    /// Deliveries claimed at a time, per consumer (a claim takes at most one per order).
    pub batch_size: u64,
    /// How long a failing hooks delivery is retried.
    pub hooks_retry_for: Duration,
    /// The merchant's endpoints.
    pub webhooks: Vec<WebhookEndpoint>,
}

impl OutboxSettings {
    /// The defaults for `instance_id`: a 1 s poll, 256 deliveries a claim, hooks retried
    /// for 24 hours, no webhooks.
    pub fn new(instance_id: impl Into<String>) -> Self {
        OutboxSettings {
            instance_id: instance_id.into(),
            poll_interval: Duration::from_secs(1),
            batch_size: 256,
            hooks_retry_for: DEFAULT_RETRY_FOR,
            webhooks: Vec::new(),
        }
    }

    /// The consumers new events are routed to: the hooks, then each webhook endpoint.
    pub fn routes(&self) -> Vec<ConsumerRoute> {
        std::iter::once(ConsumerRoute::hooks(self.hooks_retry_for))
            .chain(self.webhooks.iter().map(WebhookEndpoint::route))
            .collect()
    }
}

/// The running dispatcher; [`OutboxHandle::stop`] ends it (dropping it does too, without
/// waiting).
#[derive(Debug)]
pub struct OutboxHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl OutboxHandle {
    /// Asks every consumer task to stop and waits up to [`STOP_GRACE`] for the attempts
    /// in flight to be recorded; a task still busy then (an endpoint that does not answer)
    /// is dropped. Its claims stay until this instance starts again (and takes them back)
    /// or they lapse for another: the deliveries are made again, at least once holds.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// Starts delivering `app`'s events: routes new events to the hooks and `settings`'
/// webhooks, takes back this instance's own claims (left by a previous run that died),
/// and starts one task per consumer. Call it after hosted code has subscribed to
/// [`PayEvents`]: events found at start are handed to whoever is subscribed then.
pub async fn start_outbox(app: &App, settings: OutboxSettings) -> Result<OutboxHandle, PayError> {
    let store = service::<PayStore>(app, "PayStore")?;
    let events = service::<PayEvents>(app, "PayEvents")?;
    let row_hooks = RowHooks::find(app)
        .await
        .map_err(|error| PayError::unavailable(error.to_string()))?
        .map(Arc::new);
    if let Some(found) = &row_hooks {
        tracing::info!(elements = ?found.targets(), "pays.models.PayLogModel row hooks are present");
    }
    store.outbox().set_row_hooks(row_hooks.is_some());
    store.outbox().set_routes(settings.routes());
    let released = release_leases(store.connection(), &settings.instance_id).await?;
    if released > 0 {
        tracing::info!(instance = %settings.instance_id, released,
            "took back event deliveries this instance had claimed before it stopped");
    }
    let (stop, stopped) = watch::channel(false);
    let settings = Arc::new(settings);
    let mut tasks = Vec::with_capacity(1 + settings.webhooks.len());
    let hooks = Consumer::Hooks(Arc::clone(&events), row_hooks);
    tasks.push(tokio::spawn(run_consumer(
        hooks,
        Arc::clone(&store),
        Arc::clone(&settings),
        stopped.clone(),
    )));
    let client = webhook::client()?;
    for endpoint in &settings.webhooks {
        let consumer = Consumer::Webhook(Arc::new(endpoint.clone()), client.clone());
        tasks.push(tokio::spawn(run_consumer(
            consumer,
            Arc::clone(&store),
            Arc::clone(&settings),
            stopped.clone(),
        )));
    }
    Ok(OutboxHandle { stop, tasks })
}

/// One consumer of events.
enum Consumer {
    /// The subscribers, then the row hooks (when present), for each event.
    Hooks(Arc<PayEvents>, Option<Arc<RowHooks>>),
    Webhook(Arc<WebhookEndpoint>, reqwest::Client),
}

impl Consumer {
    fn name(&self) -> &str {
        match self {
            Consumer::Hooks(..) => HOOKS_CONSUMER,
            Consumer::Webhook(endpoint, _) => &endpoint.url,
        }
    }

    fn lease(&self) -> Duration {
        match self {
            Consumer::Hooks(..) => HOOKS_LEASE,
            // Past the attempt's own timeout, so a live attempt is never taken over.
            Consumer::Webhook(endpoint, _) => endpoint.timeout + Duration::from_secs(30),
        }
    }

    /// Attempts `claimed`, each one once.
    async fn deliver(&self, claimed: Vec<ClaimedDelivery>) -> Vec<AttemptResult> {
        match self {
            Consumer::Hooks(events, row_hooks) => {
                let events = Arc::clone(events);
                let events_of: Vec<PayEvent> = match row_hooks {
                    Some(_) => claimed.iter().map(|c| c.event.clone()).collect(),
                    None => Vec::new(),
                };
                // Subscribers are plain functions that may block: off the async workers.
                let attempted = tokio::task::spawn_blocking(move || {
                    claimed
                        .into_iter()
                        .map(|claimed| {
                            let started_at = now();
                            let clock = Instant::now();
                            let error = events
                                .emit(&claimed.event)
                                .err()
                                .map(|panicked| panicked.to_string());
                            AttemptResult {
                                delivery: claimed.delivery,
                                started_at,
                                latency_ms: clock.elapsed().as_millis() as i64,
                                status_code: None,
                                error,
                                record: false,
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .await;
                let mut attempted = attempted.unwrap_or_else(|panic| {
                    tracing::error!(%panic, "the hooks delivery task failed");
                    Vec::new()
                });
                // The row hooks are async element calls: on this task, one event after
                // another (a claim holds at most one event per order, oldest first).
                if let Some(row_hooks) = row_hooks {
                    for (result, claimed) in attempted.iter_mut().zip(&events_of) {
                        let clock = Instant::now();
                        if let Err(failed) = row_hooks.deliver(claimed).await {
                            result.error = Some(match result.error.take() {
                                Some(earlier) => format!("{earlier}; {failed}"),
                                None => failed,
                            });
                        }
                        result.latency_ms += clock.elapsed().as_millis() as i64;
                    }
                }
                attempted
            }
            Consumer::Webhook(endpoint, client) => {
                futures::stream::iter(claimed)
                    .map(|claimed| webhook::send(client, endpoint, claimed))
                    .buffer_unordered(WEBHOOK_CONCURRENCY)
                    .collect()
                    .await
            }
        }
    }
}

async fn run_consumer(
    consumer: Consumer,
    store: Arc<PayStore>,
    settings: Arc<OutboxSettings>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut written = store.outbox().watch_written();
    let connection = crate::db::outbox::dispatcher_connection(store.connection());
    let name = consumer.name().to_owned();
    let shown = match &consumer {
        Consumer::Hooks(..) => name.clone(),
        Consumer::Webhook(endpoint, _) => endpoint.shown_url(),
    };
    loop {
        if *stopped.borrow() {
            break;
        }
        written.borrow_and_update();
        let claimed = claim_deliveries(
            &connection,
            &name,
            &settings.instance_id,
            consumer.lease(),
            settings.batch_size,
        )
        .await;
        let more = match claimed {
            Ok(claimed) if !claimed.is_empty() => {
                let full = claimed.len() as u64 >= settings.batch_size;
                let results = consumer.deliver(claimed).await;
                crate::metrics::deliveries(&name, &results);
                let failed = results.iter().filter(|r| r.error.is_some()).count();
                if failed > 0 {
                    tracing::warn!(consumer = %shown, failed, "event deliveries failed; retried later");
                }
                if let Err(error) =
                    settle_attempts(&connection, &settings.instance_id, results).await
                {
                    // The claims lapse and the deliveries are made again: at least once.
                    tracing::error!(consumer = %shown, %error,
                        "recording event deliveries failed; they will be made again");
                }
                full
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(consumer = %shown, %error, "claiming event deliveries failed");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            // The handle dropped without `stop` ends the task too.
            changed = stopped.changed() => if changed.is_err() { break },
            _ = written.changed() => tokio::time::sleep(COALESCE).await,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}
