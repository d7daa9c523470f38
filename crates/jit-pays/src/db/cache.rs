//! What this process remembers about orders, so a notify needs no database read.
//!
//! Two kinds of fact are kept, and both are safe to remember with any number of processes
//! writing the same database, because neither can ever become false:
//!
//! - an order's routing facts (owning element, amount) never change once it is created;
//! - `success` is the one terminal state (close and timeout can still become success on a
//!   late payment, success never changes), so an order this process has committed or read
//!   as paid stays paid, with the transaction id it was paid under.
//!
//! Nothing else is cached: a `wait`, `close` or `timeout` seen once may have moved since,
//! in this process or another, so everything not known as `success` is decided by the
//! database as before. The cache is bounded; an evicted order costs one read, never a
//! wrong answer.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::entity::{PayStatus, pay_log};

/// Orders remembered by default ([`crate::PaysSettings::order_cache_capacity`]).
pub const DEFAULT_ORDER_CACHE_CAPACITY: usize = 100_000;

/// Independent locks, so concurrent notifies rarely wait for each other.
const SHARDS: usize = 16;

/// The facts of one order that never change once true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFacts {
    /// Merchant order number.
    pub order_id: String,
    /// The owning pay element's fullName.
    pub element: String,
    /// Amount in fen.
    pub amount_fen: i64,
    /// `Some(transaction id)` once the order is known to be `success` under that WeChat
    /// transaction. `None` says nothing: the order may be in any state (a payment without
    /// a transaction id is never remembered, so its repeats go to the database).
    pub paid_transaction_id: Option<String>,
}

impl OrderFacts {
    /// The facts a stored row shows.
    pub fn of_row(row: &pay_log::Model) -> Self {
        OrderFacts {
            order_id: row.order_id.clone(),
            element: row.element.clone(),
            amount_fen: row.amount_fen,
            paid_transaction_id: paid_transaction_id(row),
        }
    }
}

fn paid_transaction_id(row: &pay_log::Model) -> Option<String> {
    (row.status == PayStatus::Success)
        .then(|| row.transaction_id.clone())
        .flatten()
}

#[derive(Debug, Default)]
struct Shard {
    orders: HashMap<String, Arc<OrderFacts>>,
    /// Keys in insertion order; the oldest is evicted first. Entries are never removed
    /// otherwise, so this holds exactly the keys of `orders`.
    arrival: VecDeque<String>,
}

/// A bounded, sharded map of [`OrderFacts`], shared by every clone of a store.
#[derive(Debug)]
pub(crate) struct OrderCache {
    shards: Box<[Mutex<Shard>]>,
    /// Per shard; 0 turns the cache off.
    shard_capacity: AtomicUsize,
}

impl OrderCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let cache = OrderCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_capacity: AtomicUsize::new(0),
        };
        cache.set_capacity(capacity);
        cache
    }

    /// At most about `capacity` orders (rounded up to a multiple of the shard count); a
    /// smaller capacity takes effect as orders are added.
    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.shard_capacity
            .store(capacity.div_ceil(SHARDS), Ordering::Relaxed);
    }

    fn shard(&self, order_id: &str) -> &Mutex<Shard> {
        let mut hasher = DefaultHasher::new();
        order_id.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % SHARDS]
    }

    pub(crate) fn get(&self, order_id: &str) -> Option<Arc<OrderFacts>> {
        self.shard(order_id).lock().orders.get(order_id).cloned()
    }

    /// Remembers what `row` shows. A payment already remembered is kept even if `row` is
    /// older (success is final).
    pub(crate) fn remember_row(&self, row: &pay_log::Model) {
        self.remember(OrderFacts::of_row(row));
    }

    pub(crate) fn remember(&self, facts: OrderFacts) {
        let capacity = self.shard_capacity.load(Ordering::Relaxed);
        if capacity == 0 {
            return;
        }
        let mut shard = self.shard(&facts.order_id).lock();
        match shard.orders.entry(facts.order_id.clone()) {
            Entry::Occupied(mut known) => {
                if known.get().paid_transaction_id.is_none() && facts.paid_transaction_id.is_some()
                {
                    known.insert(Arc::new(facts));
                }
                return;
            }
            Entry::Vacant(slot) => {
                slot.insert(Arc::new(facts.clone()));
            }
        }
        shard.arrival.push_back(facts.order_id);
        while shard.arrival.len() > capacity {
            if let Some(oldest) = shard.arrival.pop_front() {
                shard.orders.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().orders.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(order_id: &str, paid: Option<&str>) -> OrderFacts {
        OrderFacts {
            order_id: order_id.into(),
            element: "pays.myWechatPay".into(),
            amount_fen: 100,
            paid_transaction_id: paid.map(str::to_owned),
        }
    }

    #[test]
    fn a_known_payment_is_never_forgotten_by_a_later_older_read() {
        let cache = OrderCache::new(100);
        cache.remember(facts("A", None));
        cache.remember(facts("A", Some("T1")));
        cache.remember(facts("A", None));
        assert_eq!(
            cache.get("A").unwrap().paid_transaction_id.as_deref(),
            Some("T1")
        );
    }

    #[test]
    fn it_stays_within_its_capacity_evicting_the_oldest() {
        let cache = OrderCache::new(SHARDS);
        for i in 0..10 * SHARDS {
            cache.remember(facts(&format!("O{i}"), None));
        }
        assert!(cache.len() <= SHARDS, "{}", cache.len());
        assert!(cache.get(&format!("O{}", 10 * SHARDS - 1)).is_some());
        assert!(cache.get("O0").is_none());
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let cache = OrderCache::new(0);
        cache.remember(facts("A", Some("T")));
        assert!(cache.get("A").is_none());
    }
}
