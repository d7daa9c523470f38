//! The outbox's statements: writing a transition's event (and one delivery per consumer)
//! inside the transition's transaction, claiming due deliveries so that one instance
//! attempts each, settling attempts, and reading and replaying events for the CLI.
//!
//! A delivery is claimed with a lease (`lease_owner`, `lease_until`) in one conditional
//! UPDATE: on PostgreSQL its candidate rows are picked `FOR UPDATE SKIP LOCKED`, so
//! instances claiming at the same moment take different rows; on SQLite writers are
//! serialised anyway. A claim whose instance dies lapses at `lease_until` and another
//! instance takes it (the event is then delivered again, under the same id); an instance
//! that restarts under the same id takes its own claims back at once
//! ([`release_leases`]).
//!
//! Per-order order: a delivery is claimable only when no earlier event of the same order
//! is still pending for the same consumer, so each consumer sees an order's events in the
//! order they were committed (a dead delivery no longer holds the next one back).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};
use tokio::sync::watch;

use super::entity::{event, event_delivery, pay_log, refund, webhook_delivery};
use super::error::{StoreError, db};
use super::rows::now;
use super::statement;
use crate::bills::Mismatch;
use crate::events::{EVENT_VERSION, PayEvent, PayEventKind, PayEvents};

/// The consumer name of the in-process subscribers ([`crate::PayEvents`]).
pub const HOOKS_CONSUMER: &str = "hooks";

/// A delivery's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet taken by its consumer; attempted when due.
    Pending,
    /// Taken (a 2xx answer, or every subscriber returned).
    Delivered,
    /// Given up: still failing when its retry window closed.
    Dead,
}

impl DeliveryStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
}

/// Where new events go: one consumer (the hooks, or a webhook endpoint by its URL), the
/// kinds it takes and how long a failing delivery to it is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRoute {
    /// [`HOOKS_CONSUMER`] or the endpoint's URL.
    pub name: String,
    /// The kinds it takes; `None` takes all.
    pub kinds: Option<Vec<PayEventKind>>,
    /// A delivery still failing this long after its event was written is dead.
    pub retry_for: Duration,
}

impl ConsumerRoute {
    /// The hooks, taking every kind, retried for `retry_for`.
    pub fn hooks(retry_for: Duration) -> Self {
        ConsumerRoute {
            name: HOOKS_CONSUMER.to_owned(),
            kinds: None,
            retry_for,
        }
    }

    /// Whether it takes events of `kind` (a row-hook-only kind goes to the hooks alone).
    pub fn takes(&self, kind: PayEventKind) -> bool {
        if kind.is_row_hook_only() {
            return self.name == HOOKS_CONSUMER;
        }
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&kind))
    }
}

/// How long a delivery is retried unless configured otherwise: 24 hours.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// A store's outbox configuration, shared by its clones: the consumers new events are
/// routed to, the in-process subscribers (the `hooks` consumer), and a signal raised after
/// every commit that wrote events (so a dispatcher in this process starts at once instead
/// of at its next poll).
#[derive(Debug)]
pub struct Outbox {
    routes: RwLock<Arc<Vec<ConsumerRoute>>>,
    hooks: Arc<PayEvents>,
    /// Whether `pays.models.PayLogModel` row hooks are present (set when the outbox
    /// starts): they take every order change, `order.created` included.
    row_hooks: AtomicBool,
    written: watch::Sender<u64>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            routes: RwLock::new(Arc::new(vec![ConsumerRoute::hooks(DEFAULT_RETRY_FOR)])),
            hooks: Arc::default(),
            row_hooks: AtomicBool::new(false),
            written: watch::Sender::new(0),
        }
    }
}

impl Outbox {
    /// Replaces the consumers of events written from now on (earlier events keep theirs;
    /// [`replay_events`] gives them to a new one).
    pub fn set_routes(&self, routes: Vec<ConsumerRoute>) {
        *self.routes.write() = Arc::new(routes);
    }

    /// The consumers of new events.
    pub fn routes(&self) -> Arc<Vec<ConsumerRoute>> {
        Arc::clone(&self.routes.read())
    }

    /// The in-process subscribers: the `hooks` consumer. An event is routed to it only
    /// while someone is subscribed (an app without hooks pays nothing for them), so
    /// hosted code subscribes before the store takes payments.
    pub fn hooks(&self) -> Arc<PayEvents> {
        Arc::clone(&self.hooks)
    }

    /// Says whether row hooks are present ([`crate::models::row_hooks`]); the outbox's
    /// dispatcher sets it when it starts.
    pub fn set_row_hooks(&self, present: bool) {
        self.row_hooks.store(present, Ordering::Release);
    }

    /// Whether row hooks are present: then a new order writes `order.created`.
    pub fn has_row_hooks(&self) -> bool {
        self.row_hooks.load(Ordering::Acquire)
    }

    /// Whether new events of `kind` go to `route` now: the hooks take events only while
    /// someone listens (subscribers, or row hooks; `order.created` only row hooks).
    fn routes_to(&self, route: &ConsumerRoute, kind: PayEventKind) -> bool {
        if !route.takes(kind) {
            return false;
        }
        if route.name != HOOKS_CONSUMER {
            return true;
        }
        self.has_row_hooks() || (!kind.is_row_hook_only() && self.hooks.has_subscribers())
    }

    /// A receiver that changes after every commit that wrote events in this process.
    pub fn watch_written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Raises the signal of [`Outbox::watch_written`] and counts `events`; called after
    /// the commit that wrote them.
    pub(crate) fn announce_written(&self, events: &[PayEvent]) {
        crate::metrics::transitions(events);
        self.written
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// A transition (or payment conflict) to write the event of.
#[derive(Clone, Debug)]
pub(crate) struct NewEvent {
    pub kind: PayEventKind,
    /// The order the event is about.
    pub order_id: String,
    /// The order's event number (the order's `event_seq`, already counting this event).
    pub order_seq: i32,
    /// The pay element that owns the order.
    pub element: String,
    /// The order as the transition left it.
    pub order: Option<pay_log::Model>,
    /// For a refund's transition: the refund as it left it.
    pub refund: Option<refund::Model>,
    pub conflicting_transaction_id: Option<String>,
    /// For `reconcile.mismatch`: what disagrees.
    pub mismatch: Option<Mismatch>,
}

impl NewEvent {
    pub(crate) fn transition(kind: PayEventKind, order: pay_log::Model) -> Self {
        NewEvent {
            kind,
            order_id: order.order_id.clone(),
            order_seq: order.event_seq,
            element: order.element.clone(),
            order: Some(order),
            refund: None,
            conflicting_transaction_id: None,
            mismatch: None,
        }
    }

    /// A `reconcile.mismatch` about `order_id` as event `order_seq` of that key: with the
    /// order when the shop has it (its `event_seq` already counting this event), without
    /// when only the bill has it.
    pub(crate) fn mismatch(
        order_id: String,
        order_seq: i32,
        element: String,
        order: Option<pay_log::Model>,
        mismatch: Mismatch,
    ) -> Self {
        NewEvent {
            kind: PayEventKind::ReconcileMismatch,
            order_id,
            order_seq,
            element,
            order,
            refund: None,
            conflicting_transaction_id: None,
            mismatch: Some(mismatch),
        }
    }

    /// A refund's transition, which counts in its order's events.
    pub(crate) fn refund_transition(
        kind: PayEventKind,
        order: pay_log::Model,
        refund: refund::Model,
    ) -> Self {
        NewEvent {
            refund: Some(refund),
            ..NewEvent::transition(kind, order)
        }
    }
}

/// Rows per multi-row INSERT: the batch is cut into power-of-two chunks, so a handful of
/// statement texts (each prepared once per connection) cover every batch size.
fn power_of_two_chunks<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    while !rows.is_empty() {
        let size = 1usize << (usize::BITS - 1 - rows.len().leading_zeros());
        let rest = rows.split_off(size.min(rows.len()));
        chunks.push(std::mem::replace(&mut rows, rest));
    }
    chunks
}

/// One `pays_event` row to write.
#[derive(Debug)]
pub(crate) struct EventRow {
    id: String,
    event_type: &'static str,
    order_id: String,
    order_seq: i32,
    element: String,
    payload: String,
    created_at: DateTime<Utc>,
}

/// One `pays_event_delivery` row to write (pending, due at once).
#[derive(Debug)]
pub(crate) struct DeliveryRow {
    event_id: String,
    consumer: String,
    order_id: String,
    order_seq: i32,
    created_at: DateTime<Utc>,
    give_up_at: DateTime<Utc>,
}

/// What writing some transitions' events takes: the events (their envelopes, as announced
/// after the commit) and the rows that write them and their deliveries.
pub(crate) struct EventWrites {
    events: Vec<PayEvent>,
    event_rows: Vec<EventRow>,
    delivery_rows: Vec<DeliveryRow>,
}

/// The [`EventWrites`] of `transitions`, routed by `outbox`: the one place both writers
/// ([`write_events_on`], [`write_events_sqlite`]) take them from.
pub(crate) fn event_rows(
    outbox: &Outbox,
    transitions: Vec<NewEvent>,
) -> Result<EventWrites, StoreError> {
    let routes = outbox.routes();
    let at = now();
    let mut events = Vec::with_capacity(transitions.len());
    let mut event_rows = Vec::with_capacity(transitions.len());
    let mut delivery_rows = Vec::new();
    for transition in transitions {
        let event = PayEvent {
            id: uuid::Uuid::now_v7().to_string(),
            kind: transition.kind,
            version: EVENT_VERSION,
            created_at: at,
            order_seq: transition.order_seq,
            order_id: transition.order_id,
            order: transition.order.map(Into::into),
            refund: transition.refund.map(Into::into),
            conflicting_transaction_id: transition.conflicting_transaction_id,
            mismatch: transition.mismatch,
        };
        let payload = serde_json::to_string(&event).map_err(|error| StoreError::Db {
            doing: "writing an event",
            source: sea_orm::DbErr::Custom(format!("the event does not serialise: {error}")),
        })?;
        for route in routes
            .iter()
            .filter(|route| outbox.routes_to(route, event.kind))
        {
            delivery_rows.push(DeliveryRow {
                event_id: event.id.clone(),
                consumer: route.name.clone(),
                order_id: event.order_id.clone(),
                order_seq: event.order_seq,
                created_at: at,
                give_up_at: give_up_at(at, route.retry_for),
            });
        }
        event_rows.push(EventRow {
            id: event.id.clone(),
            event_type: event.kind.name(),
            order_id: event.order_id.clone(),
            order_seq: event.order_seq,
            element: transition.element,
            payload,
            created_at: at,
        });
        events.push(event);
    }
    Ok(EventWrites {
        events,
        event_rows,
        delivery_rows,
    })
}

const EVENT_COLUMNS: &str =
    "pays_event (id, event_type, version, order_id, order_seq, element, payload, created_at)";
const DELIVERY_COLUMNS: &str = "pays_event_delivery (event_id, consumer, order_id, order_seq, \
     status, next_attempt_at, give_up_at, created_at)";

/// Writes the events of `transitions` and their deliveries on `connection` (the
/// transition's own transaction), routed by `outbox`. The caller commits, then calls
/// [`Outbox::announce_written`].
pub(crate) async fn write_events_on<C: ConnectionTrait>(
    connection: &C,
    outbox: &Outbox,
    transitions: Vec<NewEvent>,
) -> Result<Vec<PayEvent>, StoreError> {
    if transitions.is_empty() {
        return Ok(Vec::new());
    }
    let writes = event_rows(outbox, transitions)?;
    let event_rows: Vec<Vec<Value>> = writes
        .event_rows
        .into_iter()
        .map(|row| {
            vec![
                row.id.into(),
                row.event_type.into(),
                (EVENT_VERSION as i32).into(),
                row.order_id.into(),
                row.order_seq.into(),
                row.element.into(),
                row.payload.into(),
                row.created_at.into(),
            ]
        })
        .collect();
    let delivery_rows: Vec<Vec<Value>> = writes
        .delivery_rows
        .into_iter()
        .map(|row| {
            vec![
                row.event_id.into(),
                row.consumer.into(),
                row.order_id.into(),
                row.order_seq.into(),
                DeliveryStatus::Pending.as_str().into(),
                row.created_at.into(),
                row.give_up_at.into(),
                row.created_at.into(),
            ]
        })
        .collect();
    // Plain multi-row INSERTs: a batch writes one event per payment inside the notify
    // writer's transaction, where every microsecond is held against SQLite's single
    // writer; building them through the query builder cost a tree of values per cell.
    let backend = connection.get_database_backend();
    connection
        .execute_raw(multi_row_insert(
            backend,
            EVENT_COLUMNS,
            padded(backend, event_rows),
            "(id)",
        ))
        .await
        .map_err(db("writing events"))?;
    if !delivery_rows.is_empty() {
        connection
            .execute_raw(multi_row_insert(
                backend,
                DELIVERY_COLUMNS,
                padded(backend, delivery_rows),
                "(event_id, consumer)",
            ))
            .await
            .map_err(db("writing event deliveries"))?;
    }
    Ok(writes.events)
}

/// [`write_events_on`] on the SQLite writer's own connection ([`super::sqlite_writer`]),
/// inside its batch transaction: one prepared INSERT per row, no hand-off.
pub(crate) fn write_events_sqlite(
    transaction: &rusqlite::Transaction<'_>,
    outbox: &Outbox,
    transitions: Vec<NewEvent>,
) -> Result<Vec<PayEvent>, StoreError> {
    use super::sqlite_writer::{sqlite_error, sqlite_time};
    if transitions.is_empty() {
        return Ok(Vec::new());
    }
    let EventWrites {
        events,
        event_rows,
        delivery_rows,
    } = event_rows(outbox, transitions)?;
    let mut insert_event = transaction
        .prepare_cached(&format!(
            "INSERT INTO {EVENT_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .map_err(sqlite_error("writing events"))?;
    for row in event_rows {
        insert_event
            .execute(rusqlite::params![
                row.id,
                row.event_type,
                EVENT_VERSION,
                row.order_id,
                row.order_seq,
                row.element,
                row.payload,
                sqlite_time(&row.created_at),
            ])
            .map_err(sqlite_error("writing events"))?;
    }
    if !delivery_rows.is_empty() {
        let mut insert_delivery = transaction
            .prepare_cached(&format!(
                "INSERT INTO {DELIVERY_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .map_err(sqlite_error("writing event deliveries"))?;
        for row in delivery_rows {
            let created_at = sqlite_time(&row.created_at);
            insert_delivery
                .execute(rusqlite::params![
                    row.event_id,
                    row.consumer,
                    row.order_id,
                    row.order_seq,
                    DeliveryStatus::Pending.as_str(),
                    created_at,
                    sqlite_time(&row.give_up_at),
                    created_at,
                ])
                .map_err(sqlite_error("writing event deliveries"))?;
        }
    }
    Ok(events)
}

/// `INSERT INTO {table_and_columns} VALUES (…), … ON CONFLICT {key} DO NOTHING` for `rows`
/// (each the same length).
fn multi_row_insert(
    backend: DbBackend,
    table_and_columns: &str,
    rows: Vec<Vec<Value>>,
    key: &str,
) -> Statement {
    let width = rows.first().map_or(0, Vec::len);
    let row = format!("({})", vec!["?"; width].join(", "));
    let sql = format!(
        "INSERT INTO {table_and_columns} VALUES {} ON CONFLICT {key} DO NOTHING",
        vec![row.as_str(); rows.len()].join(", ")
    );
    statement(backend, &sql, rows.into_iter().flatten().collect())
}

/// On SQLite, `rows` padded to a power of two by repeating the last one, so a batch's
/// INSERT is one statement of one of a handful of texts (each prepared once per
/// connection); the repeats conflict with the row they copy and are skipped (`ON CONFLICT
/// DO NOTHING`). PostgreSQL takes them as they are.
fn padded<T: Clone>(backend: DbBackend, mut rows: Vec<T>) -> Vec<T> {
    if backend == DbBackend::Sqlite
        && let Some(last) = rows.last().cloned()
    {
        rows.resize(rows.len().next_power_of_two(), last);
    }
    rows
}

/// The smallest event id (UUIDv7) that can be written at `at` or later: the 48-bit
/// millisecond timestamp, the version and variant bits, zeros elsewhere. Ids compare as
/// their times do, so `id >= first_event_id_at(t)` selects the events written since `t`.
pub fn first_event_id_at(at: DateTime<Utc>) -> String {
    let millis = at.timestamp_millis().clamp(0, (1 << 48) - 1) as u128;
    uuid::Uuid::from_u128((millis << 80) | (0x7 << 76) | (0b10 << 62)).to_string()
}

fn give_up_at(from: DateTime<Utc>, retry_for: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(retry_for).unwrap_or(chrono::Duration::days(3650))
}

/// The connection the dispatcher claims and settles on. On SQLite, a small pool of its own
/// with `synchronous = NORMAL`: a claim or a settlement lost to a power cut can only make
/// a delivery happen again (at least once holds), so it need not wait for an fsync of
/// its own — the next durable commit (a notify's, `synchronous = FULL`) flushes it with
/// the rest of the WAL. Waiting for fsyncs would hold SQLite's single write lock longer,
/// and notifies wait on that lock. PostgreSQL shares the store's pool.
pub fn dispatcher_connection(connection: &DatabaseConnection) -> DatabaseConnection {
    super::sqlite_side_pool(connection, 2, |options| {
        options.synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
    })
}

/// A claimed delivery with its event.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    /// The delivery, as the claim left it (`attempts` counts this attempt).
    pub delivery: event_delivery::Model,
    /// The event's stored envelope: the exact bytes a webhook is sent.
    pub payload: String,
    /// The same, parsed.
    pub event: PayEvent,
}

/// Claims up to `limit` due deliveries of `consumer` for `instance` until `now + lease`,
/// oldest due first, at most one per order (its earliest pending event).
pub async fn claim_deliveries<C: ConnectionTrait>(
    connection: &C,
    consumer: &str,
    instance: &str,
    lease: Duration,
    limit: u64,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let backend = connection.get_database_backend();
    let at = now();
    let lease_until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::hours(1));
    let skip_locked = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // A read first: an UPDATE takes SQLite's write lock even when it changes nothing, and
    // the notifies' commits wait on that lock. Most wake-ups of a quiet consumer find no
    // work; they cost a read, which never blocks a writer under WAL.
    let due = connection
        .query_one_raw(statement(
            backend,
            "SELECT 1 FROM pays_event_delivery WHERE status = 'pending' AND consumer = ? \
             AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) LIMIT 1",
            vec![consumer.into(), at.into(), at.into()],
        ))
        .await
        .map_err(db("looking for due event deliveries"))?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE pays_event_delivery SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 \
         WHERE id IN (SELECT d.id FROM pays_event_delivery d \
             WHERE d.status = 'pending' AND d.consumer = ? AND d.next_attempt_at <= ? \
             AND (d.lease_until IS NULL OR d.lease_until < ?) \
             AND NOT EXISTS (SELECT 1 FROM pays_event_delivery e \
                 WHERE e.order_id = d.order_id AND e.consumer = d.consumer \
                 AND e.status = 'pending' AND e.order_seq < d.order_seq) \
             ORDER BY d.next_attempt_at, d.id LIMIT ?{skip_locked}) \
         AND status = 'pending' AND (lease_until IS NULL OR lease_until < ?) \
         RETURNING *"
    );
    let values: Vec<Value> = vec![
        instance.into(),
        lease_until.into(),
        consumer.into(),
        at.into(),
        at.into(),
        (limit.max(1) as i64).into(),
        at.into(),
    ];
    let rows = connection
        .query_all_raw(statement(backend, &sql, values))
        .await
        .map_err(db("claiming event deliveries"))?;
    let deliveries = rows
        .iter()
        .map(|row| event_delivery::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db("reading claimed deliveries"))?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = deliveries.iter().map(|d| d.event_id.clone()).collect();
    let mut payloads: HashMap<String, String> = event::Entity::find()
        .filter(event::Column::Id.is_in(ids))
        .all(connection)
        .await
        .map_err(db("reading claimed events"))?
        .into_iter()
        .map(|row| (row.id, row.payload))
        .collect();
    let mut claimed = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let payload = payloads.remove(&delivery.event_id).unwrap_or_default();
        let mut event: PayEvent =
            serde_json::from_str(&payload).map_err(|error| StoreError::Db {
                doing: "reading a claimed event",
                source: sea_orm::DbErr::Custom(format!(
                    "event {} has an unreadable payload: {error}",
                    delivery.event_id
                )),
            })?;
        // Envelopes written before `orderId` was a field of its own.
        if event.order_id.is_empty() {
            event.order_id.clone_from(&delivery.order_id);
        }
        claimed.push(ClaimedDelivery {
            delivery,
            payload,
            event,
        });
    }
    // Oldest first, so a consumer handling them one by one keeps commit order.
    claimed.sort_by(|a, b| a.event.id.cmp(&b.event.id));
    Ok(claimed)
}

/// Gives back every claim `instance` holds: at start, when nothing of this instance can
/// still be in flight (its previous run died or stopped).
pub async fn release_leases<C: ConnectionTrait>(
    connection: &C,
    instance: &str,
) -> Result<u64, StoreError> {
    let result = event_delivery::Entity::update_many()
        .col_expr(
            event_delivery::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            event_delivery::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(event_delivery::Column::LeaseOwner.eq(instance))
        .filter(event_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(connection)
        .await
        .map_err(db("releasing this instance's event claims"))?;
    Ok(result.rows_affected)
}

/// One attempt's result, for [`settle_attempts`].
#[derive(Clone, Debug)]
pub struct AttemptResult {
    /// The claimed delivery.
    pub delivery: event_delivery::Model,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub latency_ms: i64,
    /// The HTTP status answered (webhooks).
    pub status_code: Option<u16>,
    /// `None`: delivered. Otherwise why it failed (no secret, no response body).
    pub error: Option<String>,
    /// Whether to keep the attempt in `pays_webhook_delivery` (every webhook attempt; a
    /// hooks attempt only when it failed).
    pub record: bool,
}

/// The pause before the next attempt after `failures` failures in a row: 2 s doubling up
/// to an hour, less up to half of it at random (so deliveries failed together do not come
/// back together). The first retry comes within 2 seconds.
pub fn retry_delay(failures: i32) -> Duration {
    let doublings = failures.clamp(1, 12) as u32 - 1;
    let full = Duration::from_secs(2)
        .saturating_mul(1 << doublings)
        .min(Duration::from_secs(3600));
    let jitter = rand::random_range(0.0..0.5);
    full.mul_f64(1.0 - jitter)
}

/// Records attempts and moves each delivery on: delivered, rescheduled with back-off, or
/// dead when the next attempt would fall past its retry window. One transaction.
pub async fn settle_attempts(
    connection: &DatabaseConnection,
    instance: &str,
    results: Vec<AttemptResult>,
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let transaction = connection
        .begin()
        .await
        .map_err(db("starting to settle deliveries"))?;
    let at = now();
    let delivered: Vec<i64> = results
        .iter()
        .filter(|result| result.error.is_none())
        .map(|result| result.delivery.id)
        .collect();
    if !delivered.is_empty() {
        event_delivery::Entity::update_many()
            .col_expr(
                event_delivery::Column::Status,
                Expr::value(DeliveryStatus::Delivered.as_str()),
            )
            .col_expr(event_delivery::Column::DeliveredAt, Expr::value(at))
            .col_expr(
                event_delivery::Column::LeaseOwner,
                Expr::value(None::<String>),
            )
            .col_expr(
                event_delivery::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                event_delivery::Column::LastError,
                Expr::value(None::<String>),
            )
            .filter(event_delivery::Column::Id.is_in(delivered))
            .filter(event_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&transaction)
            .await
            .map_err(db("marking deliveries delivered"))?;
    }
    for result in results.iter().filter(|result| result.error.is_some()) {
        let delivery = &result.delivery;
        let failures = delivery.attempts - delivery.backoff_from;
        let next = at
            + chrono::Duration::from_std(retry_delay(failures))
                .unwrap_or(chrono::Duration::hours(1));
        let status = if next > delivery.give_up_at {
            DeliveryStatus::Dead
        } else {
            DeliveryStatus::Pending
        };
        event_delivery::Entity::update_many()
            .col_expr(event_delivery::Column::Status, Expr::value(status.as_str()))
            .col_expr(event_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                event_delivery::Column::LastError,
                Expr::value(result.error.clone()),
            )
            .col_expr(
                event_delivery::Column::LeaseOwner,
                Expr::value(None::<String>),
            )
            .col_expr(
                event_delivery::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(event_delivery::Column::Id.eq(delivery.id))
            .filter(event_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&transaction)
            .await
            .map_err(db("rescheduling a failed delivery"))?;
        if status == DeliveryStatus::Dead {
            tracing::error!(event_id = %delivery.event_id, consumer = %delivery.consumer,
                attempts = delivery.attempts, "event delivery given up: its retry window closed");
        }
    }
    let attempts: Vec<webhook_delivery::ActiveModel> = results
        .into_iter()
        .filter(|result| result.record || result.error.is_some())
        .map(|result| webhook_delivery::ActiveModel {
            id: NotSet,
            event_id: Set(result.delivery.event_id),
            endpoint: Set(result.delivery.consumer),
            attempt: Set(result.delivery.attempts),
            status_code: Set(result.status_code.map(i32::from)),
            latency_ms: Set(result.latency_ms),
            error: Set(result.error),
            instance: Set(instance.to_owned()),
            attempted_at: Set(result.started_at),
        })
        .collect();
    for chunk in power_of_two_chunks(attempts) {
        webhook_delivery::Entity::insert_many(chunk)
            .exec_without_returning(&transaction)
            .await
            .map_err(db("recording delivery attempts"))?;
    }
    transaction
        .commit()
        .await
        .map_err(db("settling deliveries"))
}

/// Which events [`list_events`] returns.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this kind.
    pub kind: Option<PayEventKind>,
    /// Only this order's.
    pub order_id: Option<String>,
    /// Only events with a delivery not (yet) made: pending or dead.
    pub undelivered: bool,
    /// Only events written at or after this instant.
    pub since: Option<DateTime<Utc>>,
}

/// An event with its deliveries.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// The event.
    pub event: event::Model,
    /// One per consumer, in consumer-name order.
    pub deliveries: Vec<event_delivery::Model>,
}

/// Events matching `filter`, oldest first, at most `limit`.
pub async fn list_events<C: ConnectionTrait>(
    connection: &C,
    filter: &EventFilter,
    limit: u64,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut query = event::Entity::find();
    if let Some(kind) = filter.kind {
        query = query.filter(event::Column::EventType.eq(kind.name()));
    }
    if let Some(order_id) = &filter.order_id {
        query = query.filter(event::Column::OrderId.eq(order_id.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(event::Column::Id.gte(first_event_id_at(since)));
    }
    if filter.undelivered {
        query = query.filter(
            event::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(event_delivery::Column::EventId)
                    .from(event_delivery::Entity)
                    .and_where(
                        event_delivery::Column::Status.ne(DeliveryStatus::Delivered.as_str()),
                    )
                    .to_owned(),
            ),
        );
    }
    let events = query
        .order_by_asc(event::Column::Id)
        .limit(limit)
        .all(connection)
        .await
        .map_err(db("listing events"))?;
    let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    let mut deliveries: HashMap<String, Vec<event_delivery::Model>> = HashMap::new();
    for delivery in event_delivery::Entity::find()
        .filter(event_delivery::Column::EventId.is_in(ids))
        .order_by_asc(event_delivery::Column::Consumer)
        .all(connection)
        .await
        .map_err(db("listing event deliveries"))?
    {
        deliveries
            .entry(delivery.event_id.clone())
            .or_default()
            .push(delivery);
    }
    Ok(events
        .into_iter()
        .map(|event| EventRecord {
            deliveries: deliveries.remove(&event.id).unwrap_or_default(),
            event,
        })
        .collect())
}

/// One event with its deliveries and every attempt, oldest first; `None`: no such event.
pub async fn event_detail<C: ConnectionTrait>(
    connection: &C,
    event_id: &str,
) -> Result<Option<(EventRecord, Vec<webhook_delivery::Model>)>, StoreError> {
    let Some(event) = event::Entity::find_by_id(event_id.to_owned())
        .one(connection)
        .await
        .map_err(db("reading an event"))?
    else {
        return Ok(None);
    };
    let deliveries = event_delivery::Entity::find()
        .filter(event_delivery::Column::EventId.eq(event_id))
        .order_by_asc(event_delivery::Column::Consumer)
        .all(connection)
        .await
        .map_err(db("reading an event's deliveries"))?;
    let attempts = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventId.eq(event_id))
        .order_by_asc(webhook_delivery::Column::Id)
        .all(connection)
        .await
        .map_err(db("reading an event's attempts"))?;
    Ok(Some((EventRecord { event, deliveries }, attempts)))
}

/// Delivers `events` again to `routes` (each route taking the event's kind): a delivery
/// that exists is made pending and due now with a fresh retry window and back-off; a
/// missing one (an endpoint added since) is created. How many deliveries were queued.
pub async fn replay_events(
    connection: &DatabaseConnection,
    events: &[event::Model],
    routes: &[ConsumerRoute],
) -> Result<u64, StoreError> {
    use event_delivery::Column as D;
    let transaction = connection.begin().await.map_err(db("starting a replay"))?;
    let at = now();
    let mut queued = 0;
    for event in events {
        let Some(kind) = PayEventKind::from_name(&event.event_type) else {
            continue;
        };
        for route in routes.iter().filter(|route| route.takes(kind)) {
            let row = event_delivery::ActiveModel {
                id: NotSet,
                event_id: Set(event.id.clone()),
                consumer: Set(route.name.clone()),
                order_id: Set(event.order_id.clone()),
                order_seq: Set(event.order_seq),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                backoff_from: Set(0),
                next_attempt_at: Set(at),
                give_up_at: Set(give_up_at(at, route.retry_for)),
                lease_owner: Set(None),
                lease_until: Set(None),
                last_error: Set(None),
                created_at: Set(at),
                delivered_at: Set(None),
            };
            event_delivery::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([D::EventId, D::Consumer])
                        .update_columns([D::Status, D::NextAttemptAt, D::GiveUpAt])
                        .value(
                            D::BackoffFrom,
                            Expr::col((event_delivery::Entity, D::Attempts)),
                        )
                        .value(D::DeliveredAt, Expr::value(None::<DateTime<Utc>>))
                        .to_owned(),
                )
                .exec_without_returning(&transaction)
                .await
                .map_err(db("queueing a replay"))?;
            queued += 1;
        }
    }
    transaction
        .commit()
        .await
        .map_err(db("committing a replay"))?;
    Ok(queued)
}

/// How many deliveries are pending (due or not), per consumer.
pub async fn pending_deliveries<C: ConnectionTrait>(
    connection: &C,
) -> Result<HashMap<String, u64>, StoreError> {
    #[derive(FromQueryResult)]
    struct Count {
        consumer: String,
        pending: i64,
    }
    let counts = event_delivery::Entity::find()
        .select_only()
        .column(event_delivery::Column::Consumer)
        .column_as(event_delivery::Column::Id.count(), "pending")
        .filter(event_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .group_by(event_delivery::Column::Consumer)
        .into_model::<Count>()
        .all(connection)
        .await
        .map_err(db("counting pending deliveries"))?;
    Ok(counts
        .into_iter()
        .map(|count| (count.consumer, count.pending.max(0) as u64))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_sorts_after_the_first_id_of_its_millisecond_and_before_the_next() {
        let at = now();
        let id = uuid::Uuid::now_v7().to_string();
        assert!(id >= first_event_id_at(at), "{id}");
        let later = at + chrono::Duration::milliseconds(2);
        assert!(id < first_event_id_at(later), "{id}");
    }

    #[test]
    fn chunks_are_powers_of_two_covering_every_row_in_order() {
        for n in 0..300usize {
            let chunks = power_of_two_chunks((0..n).collect::<Vec<_>>());
            assert!(chunks.iter().all(|c| c.len().is_power_of_two()), "{n}");
            let flat: Vec<usize> = chunks.into_iter().flatten().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_retry_comes_within_five_seconds_and_later_ones_back_off_to_an_hour() {
        for _ in 0..100 {
            let first = retry_delay(1);
            assert!(first <= Duration::from_secs(2) && first >= Duration::from_secs(1));
            let tenth = retry_delay(10);
            assert!(tenth >= Duration::from_secs(512) && tenth <= Duration::from_secs(1024));
            assert!(retry_delay(40) <= Duration::from_secs(3600));
        }
    }
}
