//! What the host tells the family (a service given to `AppBuilder::provide` by
//! [`crate::register`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wechatpay_v3::{KeyError, PlatformCertificate, Verification, WechatPayPublicKey};

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
    /// The URL WeChat sends V3 payment notifies to: where the host serves
    /// `pays.services.PaySvc`'s `wechatNotifyV3`. `None`: V3 instances cannot be built.
    pub v3_notify_url: Option<String>,
    /// The URL WeChat sends V3 refund notifies to, sent with every V3 refund request:
    /// where the host serves `wechatRefundNotifyV3`.
    pub v3_refund_notify_url: Option<String>,
    /// The WeChat Pay API root: `https://api.mch.weixin.qq.com` or a simulator's URL.
    pub gateway_base_url: String,
    /// The simulator the host runs as the gateway, when it does (`[gateway] simulator =
    /// true`): the simulator *is* WeChat then, so V3 instances verify with its keys
    /// instead of configured ones. `None` with a real gateway (and any simulator the host
    /// does not run): the configured keys are used.
    pub simulator: Option<Arc<dyn SimulatedWechat>>,
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
            v3_notify_url: None,
            v3_refund_notify_url: None,
            gateway_base_url: gateway_base_url.into(),
            simulator: None,
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

    /// The same settings with V3 payment notifies sent to `payment` and V3 refund
    /// notifies to `refund`.
    pub fn with_v3_notify_urls(
        mut self,
        payment: impl Into<String>,
        refund: impl Into<String>,
    ) -> Self {
        self.v3_notify_url = Some(payment.into());
        self.v3_refund_notify_url = Some(refund.into());
        self
    }

    /// The same settings with `simulator` as the gateway's keys ([`PaysSettings::simulator`]).
    pub fn with_simulator(mut self, simulator: Arc<dyn SimulatedWechat>) -> Self {
        self.simulator = Some(simulator);
        self
    }
}

/// The gateway simulator a host runs, as far as the family needs it: WeChat Pay's own V3
/// keys, which V3 instances trust while the simulator is their gateway.
pub trait SimulatedWechat: Send + Sync + fmt::Debug {
    /// WeChat Pay's V3 keys of the simulator (generated on first use), or why they cannot
    /// be had.
    fn wechat_v3_keys(&self) -> Result<SimulatorV3Keys, String>;
}

/// WeChat Pay's side of a simulator's V3 keys: the public key with its id, and the
/// platform certificate. No private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatorV3Keys {
    /// The WeChat Pay public key's id (`PUB_KEY_ID_…`).
    pub public_key_id: String,
    /// The WeChat Pay public key, PEM.
    pub public_key_pem: String,
    /// The platform certificate, PEM.
    pub platform_certificate_pem: String,
    /// Whether the simulator signs with its platform certificate (alone, or in a
    /// switchover with the public key): a simulator signing with the public key only has
    /// no certificates to download.
    pub signs_with_certificate: bool,
}

impl SimulatorV3Keys {
    /// Verification with the keys the simulator signs with: its public key, and its
    /// platform certificate too when it signs with it.
    pub fn verification(&self) -> Result<Verification, KeyError> {
        let public_key = WechatPayPublicKey::from_pem(&self.public_key_id, &self.public_key_pem)?;
        Ok(if self.signs_with_certificate {
            Verification::Switchover {
                public_key,
                certificates: vec![PlatformCertificate::from_pem(
                    &self.platform_certificate_pem,
                )?],
            }
        } else {
            Verification::PublicKey(public_key)
        })
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
