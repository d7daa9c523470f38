//! What the host tells the family (a service given to `AppBuilder::provide` by
//! [`crate::register`]).

use std::time::Duration;

/// Host settings of the pays family.
#[derive(Clone, Debug)]
pub struct PaysSettings {
    /// Where payers reach this app, e.g. `https://shop.example.com` (the H5 scene's
    /// `wap_url`).
    pub public_base_url: String,
    /// The URL WeChat sends payment notifies to: where the host serves
    /// `pays.services.PaySvc`'s `wechatNotify`. The host owns its routes and builds it.
    pub notify_url: String,
    /// The URL WeChat sends refund notifies to, sent with every refund request: where the
    /// host serves `pays.services.PaySvc`'s `wechatRefundNotify`. `None` sends none, and
    /// WeChat uses the one set on its merchant platform (or sends no notify; the
    /// reconciler's queries then settle the refund).
    pub refund_notify_url: Option<String>,
    /// The WeChat Pay API root: `https://api.mch.weixin.qq.com` or a simulator's URL.
    pub gateway_base_url: String,
    /// An unpaid order times out this long after creation (WeChat's prepay id lives 2 h).
    pub order_expiry: Duration,
    /// Timeout of one call to WeChat.
    pub gateway_timeout: Duration,
    /// Attempts per call to WeChat for retryable failures.
    pub gateway_attempts: u32,
    /// The reconciler's timings.
    pub reconciler: ReconcilerSettings,
    /// How many orders' unchanging facts (owner, amount, a committed payment) the process
    /// remembers, so a notify for a remembered order reads nothing from the database. An
    /// order forgotten (beyond this many) costs one read; 0 remembers none.
    pub order_cache_capacity: usize,
}

impl PaysSettings {
    /// Settings with the defaults (2 h expiry, 10 s calls, reconciler defaults, 100,000
    /// remembered orders).
    pub fn new(
        public_base_url: impl Into<String>,
        notify_url: impl Into<String>,
        gateway_base_url: impl Into<String>,
    ) -> Self {
        PaysSettings {
            public_base_url: public_base_url.into(),
            notify_url: notify_url.into(),
            refund_notify_url: None,
            gateway_base_url: gateway_base_url.into(),
            order_expiry: Duration::from_secs(2 * 3600),
            gateway_timeout: Duration::from_secs(10),
            gateway_attempts: 3,
            reconciler: ReconcilerSettings::default(),
            order_cache_capacity: crate::db::cache::DEFAULT_ORDER_CACHE_CAPACITY,
        }
    }

    /// The same settings with refund notifies sent to `url`.
    pub fn with_refund_notify_url(mut self, url: impl Into<String>) -> Self {
        self.refund_notify_url = Some(url.into());
        self
    }
}

/// When the reconciler looks at waiting orders.
#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    /// First query of an order still waiting this long after creation (its notify may
    /// have been lost).
    pub first_check_after: Duration,
    /// Later queries back off, doubling up to this.
    pub max_backoff: Duration,
    /// How often the reconciler scans for due orders.
    pub scan_interval: Duration,
    /// At most this many orders per scan.
    pub batch_size: u64,
    /// A scan claims its orders for this long: another instance does not query them
    /// before, unless the claimant reschedules them first (as it does once it has looked).
    /// Long enough for a scan's calls to WeChat; if the claimant dies, its orders wait this
    /// long for another instance.
    pub claim_lease: Duration,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        ReconcilerSettings {
            first_check_after: Duration::from_secs(60),
            max_backoff: Duration::from_secs(15 * 60),
            scan_interval: Duration::from_secs(5),
            batch_size: 100,
            claim_lease: Duration::from_secs(120),
        }
    }
}

impl ReconcilerSettings {
    /// The pause before the next query after `attempts` queries found the order waiting.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = attempts.clamp(0, 20) as u32;
        self.first_check_after
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}
