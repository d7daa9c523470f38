//! An offline WeChat Pay gateway (V2, and API v3 beside it): the embedded default for demos
//! and tests.
//!
//! This crate owns a simulated `api.mch.weixin.qq.com`: the V2 merchant endpoints over
//! HTTP (axum), an in-memory bounded order book with WeChat's state machine, the payer's
//! side (paying or failing an order as a user scanning its code would), signed payment
//! notifies and encrypted refund notifies delivered on WeChat's retry schedule, fault
//! injection, and an inspection log. Signing and XML come from the `wechatpay-v2` crate.
//! The API v3 endpoints (`/v3/...`, JSON, RSA signatures, AEAD notifies) serve the same
//! merchants on the same order book; their protocol comes from the `wechatpay-v3` crate.
//! This crate knows nothing of elements, databases or the `jit` command line.
//!
//! # Start it in one line
//! ```no_run
//! # async fn demo() {
//! let sim = wechatpay_sim::Simulator::start_default().await;
//! // Merchant: DEFAULT_APPID / DEFAULT_MCH_ID / DEFAULT_API_KEY; base URL e.g.
//! // http://127.0.0.1:40123 (append /pay/unifiedorder, or /xdc/apiv2sandbox/pay/... ).
//! let base = sim.base_url();
//! # let _ = base;
//! sim.shutdown().await;
//! # }
//! ```
//!
//! # API in brief
//! - [`SimConfig`] (plain data; [`SimConfig::from_toml_file`]) with [`MerchantConfig`]s,
//!   [`DEFAULT_APPID`], [`DEFAULT_MCH_ID`], [`DEFAULT_API_KEY`].
//! - [`Simulator::start`] / [`Simulator::start_default`] → [`SimHandle`]:
//!   [`base_url`](SimHandle::base_url), [`pay`](SimHandle::pay),
//!   [`fail_payment`](SimHandle::fail_payment), [`start_paying`](SimHandle::start_paying),
//!   [`inspect`](SimHandle::inspect), [`faults`](SimHandle::faults),
//!   [`add_merchant`](SimHandle::add_merchant), [`shutdown`](SimHandle::shutdown).
//! - Refund outcomes: [`plan_refund`](SimHandle::plan_refund) ([`RefundPlan`]: a refund
//!   ends as `CHANGE` / `REFUNDCLOSE`, or stays `PROCESSING` until
//!   [`settle_refund`](SimHandle::settle_refund)).
//! - Bills that disagree on purpose: [`record_outside_payment`](SimHandle::record_outside_payment)
//!   ([`OutsidePayment`]), [`alter_bill`](SimHandle::alter_bill) ([`BillAlteration`]).
//! - Faults: [`FaultRule`] = [`Fault`] scoped by merchant and [`Endpoint`], for a number of
//!   uses; set at start ([`SimConfig::faults`]) or at run time ([`FaultControl`]).
//! - [`Inspection`]: the calls, notifies and payer actions seen, and the orders, each with
//!   how often and when `orderquery` named it ([`Order::queries`]).
//! - API v3: [`MerchantConfig::v3`] ([`MerchantV3Config`]: APIv3 key, merchant serial and
//!   public key; generated when absent), [`SimConfig::v3`] ([`SimV3Config`]: [`V3Mode`]
//!   public key, platform certificate or switchover share, and WeChat Pay's keys, generated
//!   when absent); [`v3_material`](SimHandle::v3_material) ([`V3Material`]: what the
//!   merchant needs to call and verify), [`set_v3_mode`](SimHandle::set_v3_mode),
//!   [`send_signtest_probe`](SimHandle::send_signtest_probe); [`Order::api_version`].
//! - [`RemoteSim`]: the same payer and fault controls for a simulator in another process
//!   (V3 too: `v3_material`, `set_v3_mode`, `send_signtest_probe`).
//! - HTTP control surface (for the CLI and non-Rust tests): `POST /sim/pay`, `GET /sim/pay/{out_trade_no}` (the payer's HTML page),
//!   `POST /sim/fail`, `POST /sim/paying` (JSON [`PayTarget`]), `GET|DELETE /sim/inspect`,
//!   `GET|POST|DELETE /sim/faults`, `DELETE /sim/faults/{id}`,
//!   `GET|POST|DELETE /sim/refund-plans` (JSON [`RefundPlan`]), `POST /sim/refunds/settle`
//!   (`{"out_refund_no", "status"}`), `POST /sim/outside-payments` (JSON
//!   [`OutsidePayment`]), `GET|POST|DELETE /sim/bill-alterations` (JSON
//!   [`BillAlteration`]), `GET /sim/v3/material/{mch_id}` ([`V3Material`]),
//!   `GET|PUT /sim/v3/mode` (JSON [`V3Mode`]), `POST /sim/v3/signtest`
//!   (`{"out_trade_no"}`), `GET /sim/health`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bill;
mod config;
mod control;
mod fault;
mod gateway;
mod ids;
mod inspect;
mod notify;
mod remote;
mod store;
mod tls;
mod v3_gateway;
mod v3_keys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::routing::post;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wechatpay_v2::{ApiKey, Fen};

pub use bill::{BillAlteration, InvalidBillAlteration};
pub use config::{
    ConfigError, DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, MerchantConfig, MerchantV3Config,
    SimConfig, SimV3Config, V3Mode,
};
pub use control::{PAYER_PAGE_ROUTE, payer_page_url};
pub use fault::{ActiveFault, Endpoint, Fault, FaultControl, FaultId, FaultRule, InvalidFault};
pub use inspect::{Inspection, NotifyRecord, PayerRecord, RequestRecord};
pub use notify::NOTIFY_RETRY_SCHEDULE;
pub use remote::{RemoteError, RemoteSim};
pub use store::{
    ApiVersion, Env, Order, OrderQueries, OutsidePayment, OutsidePaymentError, PayError, PayTarget,
    RECENT_QUERY_TIMES, Refund, RefundControlError, RefundPlan, TradeState,
};
pub use tls::SimTls;
pub use v3_keys::V3Material;
pub use wechatpay_v2::RefundStatus;

use inspect::InspectLog;
use notify::Notifier;
use store::Store;
use tls::{Peer, TlsListener};

/// Why the simulator could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A fault rule in the configuration is unusable.
    #[error(transparent)]
    Fault(#[from] InvalidFault),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A merchant with this mch_id is already known.
    #[error("merchant `{0}` is already configured")]
    DuplicateMerchant(String),
    /// A merchant with this mch_id is known with another API key: a running gateway does
    /// not change a merchant's key.
    #[error(
        "merchant `{0}` is already configured with another API key; the simulator keeps the key it started with (restart to change it)"
    )]
    MerchantKeyChanged(String),
    /// The V3 platform keys could not be made or read (names the setting).
    #[error("V3 keys: {0}")]
    V3(String),
    /// The TLS configuration is unusable (names the file at fault).
    #[error("TLS: {0}")]
    Tls(String),
}

/// What [`SimHandle::learn_merchant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnedMerchant {
    /// The merchant was new: added.
    Added,
    /// The merchant was known and gained these app ids.
    AppIdsAdded(Vec<String>),
    /// The merchant was known as it is: nothing changed.
    Known,
}

/// A merchant as the running gateway holds it.
pub(crate) struct MerchantEntry {
    pub config: MerchantConfig,
    pub key: ApiKey,
    /// Answered by `getsignkey` (see [`SANDBOX_SIGN_KEY_PATHS`]); signs every other sandbox
    /// call.
    pub sandbox_key: ApiKey,
    /// The V3 side: read from the configuration, or generated on first use.
    v3: std::sync::OnceLock<Arc<v3_keys::MerchantV3>>,
}

impl MerchantEntry {
    fn new(config: MerchantConfig) -> Result<Self, ConfigError> {
        let v3 = std::sync::OnceLock::new();
        if let Some(v3_config) = &config.v3 {
            let material =
                v3_keys::MerchantV3::from_config(v3_config).map_err(|(name, problem)| {
                    ConfigError::Invalid {
                        field: format!("merchant `{}`: v3.{name}", config.mch_id),
                        problem,
                    }
                })?;
            let _ = v3.set(Arc::new(material));
        }
        Ok(MerchantEntry {
            key: ApiKey::new(config.key.clone()),
            sandbox_key: ApiKey::new(ids::alphanumeric(32)),
            config,
            v3,
        })
    }

    /// The merchant's V3 material (generated now if neither configured nor made yet).
    pub(crate) fn v3(&self) -> Arc<v3_keys::MerchantV3> {
        Arc::clone(
            self.v3
                .get_or_init(|| Arc::new(v3_keys::MerchantV3::generate())),
        )
    }
}

/// State shared by every request handler and background task.
pub(crate) struct Shared {
    merchants: RwLock<HashMap<String, Arc<MerchantEntry>>>,
    pub store: Store,
    pub faults: FaultControl,
    pub log: Arc<InspectLog>,
    pub notifier: Arc<Notifier>,
    pub shutdown: watch::Receiver<bool>,
    pub hang: Duration,
    /// How long a new refund stays `PROCESSING`.
    pub refund_processing: Duration,
    /// Background work (notifies) is spawned here, so payer calls work from any thread.
    pub runtime: tokio::runtime::Handle,
    /// Deliberate differences between the bills and the orders (see [`BillAlteration`]).
    pub bill_alterations: parking_lot::Mutex<Vec<BillAlteration>>,
    /// The WeChat Pay side of V3 as configured; built on first use into `platform`.
    v3_config: SimV3Config,
    platform: std::sync::OnceLock<Result<Arc<v3_keys::Platform>, String>>,
    /// How V3 answers and notifies are signed now.
    v3_mode: RwLock<V3Mode>,
    /// V3 bill files announced and not yet forgotten.
    pub v3_bills: v3_gateway::BillFiles,
}

impl Shared {
    pub(crate) fn merchant(&self, mch_id: &str) -> Option<Arc<MerchantEntry>> {
        self.merchants.read().get(mch_id).cloned()
    }

    /// WeChat Pay's V3 keys (generated on first use); an error names what could not be
    /// made.
    pub(crate) fn platform(&self) -> Result<Arc<v3_keys::Platform>, String> {
        self.platform
            .get_or_init(|| {
                v3_keys::Platform::new(&self.v3_config)
                    .map(Arc::new)
                    .map_err(|(name, problem)| format!("v3.{name}: {problem}"))
            })
            .clone()
    }

    /// How V3 answers and notifies are signed now.
    pub(crate) fn v3_mode(&self) -> V3Mode {
        *self.v3_mode.read()
    }

    /// See [`SimHandle::v3_material`].
    pub(crate) fn v3_material(&self, mch_id: &str) -> Option<Result<V3Material, String>> {
        let merchant = self.merchant(mch_id)?;
        Some(
            self.platform()
                .map(|platform| V3Material::new(mch_id, &merchant.v3(), &platform)),
        )
    }

    /// See [`SimHandle::set_v3_mode`].
    pub(crate) fn set_v3_mode(&self, mode: V3Mode) -> Result<(), ConfigError> {
        SimConfig::default().with_v3_mode(mode).validate()?;
        *self.v3_mode.write() = mode;
        Ok(())
    }

    /// See [`SimHandle::send_signtest_probe`].
    pub(crate) fn send_signtest_probe(&self, out_trade_no: &str) -> Result<(), PayError> {
        let order = self
            .store
            .all_orders()
            .into_iter()
            .find(|order| order.out_trade_no == out_trade_no && order.api_version == ApiVersion::V3)
            .ok_or_else(|| PayError::NotFound(format!("V3 order `{out_trade_no}`")))?;
        if let Some(job) = v3_gateway::payment_notify(self, &order, true) {
            let _guard = self.runtime.enter();
            self.notifier.dispatch(job);
        }
        Ok(())
    }

    /// Pays the order and sends its notify.
    pub(crate) fn pay(&self, target: &PayTarget) -> Result<Order, PayError> {
        let order = self.store.pay(target)?;
        self.log.record_payer("pay", &order);
        if let Some(job) = self.payment_notify(&order) {
            let notifier = Arc::clone(&self.notifier);
            let _guard = self.runtime.enter();
            notifier.dispatch(job);
        }
        Ok(order)
    }

    /// The payment notify of a paid order, in the protocol that created it (`None` only
    /// when V3 keys cannot be made, which is logged).
    pub(crate) fn payment_notify(&self, order: &Order) -> Option<notify::NotifyJob> {
        match order.api_version {
            ApiVersion::V2 => Some(notify::payment_notify(order, &self.order_key(order))),
            ApiVersion::V3 => v3_gateway::payment_notify(self, order, false),
        }
    }

    /// The refund notify of a settled refund, in the protocol of its order.
    pub(crate) fn refund_notify(
        &self,
        order: &Order,
        refund: &Refund,
        url: &str,
    ) -> Option<notify::NotifyJob> {
        match order.api_version {
            ApiVersion::V2 => Some(notify::refund_notify(
                order,
                refund,
                url,
                &self.order_key(order),
            )),
            ApiVersion::V3 => v3_gateway::refund_notify(self, order, refund, url),
        }
    }

    /// Acts on a new refund: its notify now when it settled at once, at its settlement
    /// time otherwise (settling it then, unless a settlement came first), never while it
    /// is held.
    pub(crate) fn follow_refund(self: &Arc<Self>, env: Env, order: &Order, refund: &Refund) {
        if refund.announced {
            self.notify_refund(order, refund);
            return;
        }
        let Some(scheduled) = refund.settles_at else {
            return;
        };
        let delay = (scheduled - refund.created_at).to_std().unwrap_or_default();
        let shared = Arc::clone(self);
        let mch_id = order.mch_id.clone();
        let out_refund_no = refund.out_refund_no.clone();
        let settle = move || {
            let settled = shared
                .store
                .settle_due(env, &mch_id, &out_refund_no, scheduled)?;
            let url = settled.refund.notify_url.as_deref()?;
            shared.refund_notify(&settled.order, &settled.refund, url)
        };
        let _guard = self.runtime.enter();
        if refund.notify_url.is_some() {
            self.notifier.dispatch_after(delay, settle);
        } else {
            // Nothing to tell, but a closed refund still returns its money when it closes.
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                if sleep_unless_stopped(&shutdown, delay).await {
                    settle();
                }
            });
        }
    }

    /// Sends a settled refund's notify, if the merchant asked for one.
    fn notify_refund(&self, order: &Order, refund: &Refund) {
        if let Some(url) = &refund.notify_url
            && let Some(job) = self.refund_notify(order, refund, url)
        {
            let _guard = self.runtime.enter();
            self.notifier.dispatch(job);
        }
    }

    /// Settles a refund still `PROCESSING` and sends its notify.
    pub(crate) fn settle_refund(
        &self,
        out_refund_no: &str,
        status: RefundStatus,
    ) -> Result<Refund, RefundControlError> {
        let settled = self.store.settle_refund(out_refund_no, status)?;
        self.notify_refund(&settled.order, &settled.refund);
        Ok(settled.refund)
    }

    /// Records a payment WeChat has and the merchant never asked for.
    pub(crate) fn record_outside_payment(
        &self,
        payment: &OutsidePayment,
    ) -> Result<Order, OutsidePaymentError> {
        if payment.total_fee <= Fen::ZERO {
            return Err(OutsidePaymentError::Amount);
        }
        let merchant = match &payment.mch_id {
            Some(mch_id) => self
                .merchant(mch_id)
                .ok_or_else(|| OutsidePaymentError::UnknownMerchant(mch_id.clone()))?,
            None => {
                let merchants = self.merchants.read();
                let mut all = merchants.values();
                match (all.next(), all.next()) {
                    (Some(only), None) => Arc::clone(only),
                    _ => return Err(OutsidePaymentError::WhichMerchant),
                }
            }
        };
        let order = self
            .store
            .record_outside_payment(&merchant.config, payment)?;
        self.log.record_payer("outside", &order);
        Ok(order)
    }

    pub(crate) fn fail_payment(&self, target: &PayTarget) -> Result<Order, PayError> {
        let order = self.store.fail_payment(target)?;
        self.log.record_payer("fail", &order);
        Ok(order)
    }

    pub(crate) fn start_paying(&self, target: &PayTarget) -> Result<Order, PayError> {
        let order = self.store.start_paying(target)?;
        self.log.record_payer("paying", &order);
        Ok(order)
    }

    /// What the simulator received and sent, its orders, and its pending notifies.
    pub(crate) fn inspection(&self) -> Inspection {
        // Pending first: a notify that finishes between the two reads is then already in
        // the log, never missing from both.
        let pending_notifies = self.notifier.pending();
        self.log.snapshot(self.store.all_orders(), pending_notifies)
    }

    /// Forgets the inspection log and restarts the orders' query counts (orders stay).
    pub(crate) fn clear_inspection(&self) {
        self.log.clear();
        self.store.forget_queries();
    }

    /// The key an order's notifies are signed with: the sandbox key for sandbox orders.
    fn order_key(&self, order: &Order) -> ApiKey {
        match self.merchant(&order.mch_id) {
            Some(merchant) if order.env == Env::Sandbox => merchant.sandbox_key.clone(),
            Some(merchant) => merchant.key.clone(),
            // Merchants are never removed, so an order's merchant is always known.
            None => ApiKey::new(String::new()),
        }
    }
}

/// Sleeps for `duration` unless the simulator stops first (`shutdown` turns `true`): `false`
/// when it stopped, so hangs, latency faults and notify schedules end with the simulator.
pub(crate) async fn sleep_unless_stopped(
    shutdown: &watch::Receiver<bool>,
    duration: Duration,
) -> bool {
    let mut shutdown = shutdown.clone();
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.changed() => false,
    }
}

// The path table: every path the gateway serves, and the call it stands for. `routes` is the
// one place it is put together.

/// The live path of each endpoint.
const LIVE_ROUTES: &[(&str, Endpoint)] = &[
    ("/pay/unifiedorder", Endpoint::UnifiedOrder),
    ("/pay/orderquery", Endpoint::OrderQuery),
    ("/pay/closeorder", Endpoint::CloseOrder),
    ("/secapi/pay/refund", Endpoint::Refund),
    ("/pay/refundquery", Endpoint::RefundQuery),
    ("/pay/downloadbill", Endpoint::DownloadBill),
];

/// The root of WeChat's V2 sandbox: every live path is also served below it, as a sandbox
/// call. WeChat moved its sandbox here from [`OLD_SANDBOX_ROOT`] (reported by wechatpy's
/// users in 2023).
const SANDBOX_ROOT: &str = "/xdc/apiv2sandbox";

/// Where the sandbox was until WeChat moved it: still served, alike in every way (the same
/// sandbox key and sandbox orders), for older clients; wechatpy's `sandbox=True` still sends
/// its calls here.
const OLD_SANDBOX_ROOT: &str = "/sandboxnew";

/// `getsignkey`, at its current path beside [`SANDBOX_ROOT`] and at its old one below
/// [`OLD_SANDBOX_ROOT`].
const SANDBOX_SIGN_KEY_PATHS: [&str; 2] = [
    "/xdc/apiv2getsignkey/sign/getsignkey",
    "/sandboxnew/pay/getsignkey",
];

/// Every path served, with the environment and the endpoint it stands for.
fn routes() -> Vec<(String, Env, Endpoint)> {
    let live = LIVE_ROUTES
        .iter()
        .map(|&(path, endpoint)| (path.to_owned(), Env::Live, endpoint));
    let sandbox = [SANDBOX_ROOT, OLD_SANDBOX_ROOT]
        .into_iter()
        .flat_map(|root| {
            LIVE_ROUTES
                .iter()
                .copied()
                // The sandbox takes refunds without the /secapi/ part too.
                .chain([("/pay/refund", Endpoint::Refund)])
                .map(move |(path, endpoint)| (format!("{root}{path}"), Env::Sandbox, endpoint))
        });
    let sign_key = SANDBOX_SIGN_KEY_PATHS
        .into_iter()
        .map(|path| (path.to_owned(), Env::Sandbox, Endpoint::GetSignKey));
    live.chain(sandbox).chain(sign_key).collect()
}

fn api_router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for (path, env, endpoint) in routes() {
        let route_path = path.clone();
        router = router.route(
            &route_path,
            post(
                move |State(shared): State<Arc<Shared>>,
                      ConnectInfo(peer): ConnectInfo<Peer>,
                      body: Bytes| {
                    gateway::handle(shared, env, endpoint, path, peer, body)
                },
            ),
        );
    }
    router
        // Bodies beyond the XML parser's cap are refused there with XML_FORMAT_ERROR;
        // this only stops a client from streaming megabytes first.
        .layer(DefaultBodyLimit::max(256 * 1024))
        .with_state(shared)
}

/// What the simulator listens with: plain HTTP, or HTTPS ([`SimConfig::tls`]).
enum Front {
    Plain(tokio::net::TcpListener),
    Tls(TlsListener),
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Validates `config`, binds its address and serves until [`SimHandle::shutdown`] (or
    /// until the handle is dropped).
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let faults = FaultControl::default();
        for rule in &config.faults {
            faults.add(rule.clone())?;
        }
        let log = Arc::new(InspectLog::new(config.max_log_entries));
        let notifier = Arc::new(Notifier::new(
            Arc::clone(&log),
            faults.clone(),
            config.time_scale,
            config.notify_timeout(),
            shutdown_rx.clone(),
        ));
        let merchants = config
            .merchants
            .iter()
            .map(|merchant| {
                Ok((
                    merchant.mch_id.clone(),
                    Arc::new(MerchantEntry::new(merchant.clone())?),
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        let balances = config
            .merchants
            .iter()
            .filter_map(|merchant| Some((merchant.mch_id.clone(), merchant.refund_balance?)));
        let shared = Arc::new(Shared {
            merchants: RwLock::new(merchants),
            store: Store::new(config.max_orders_per_merchant, balances),
            faults,
            log,
            notifier,
            shutdown: shutdown_rx.clone(),
            hang: Duration::from_millis(config.hang_ms),
            refund_processing: config.refund_processing(),
            runtime: tokio::runtime::Handle::current(),
            bill_alterations: parking_lot::Mutex::new(Vec::new()),
            v3_mode: RwLock::new(config.v3.mode),
            v3_config: config.v3.clone(),
            platform: std::sync::OnceLock::new(),
            v3_bills: v3_gateway::BillFiles::default(),
        });
        let router = api_router(Arc::clone(&shared))
            .merge(v3_gateway::router(Arc::clone(&shared)))
            .merge(control::router(Arc::clone(&shared)))
            .into_make_service_with_connect_info::<Peer>();
        let front = match &config.tls {
            Some(tls) => {
                let server_config = tls.server_config().map_err(SimError::Tls)?;
                let tls_listener = TlsListener::spawn(listener, server_config, shutdown_rx.clone())
                    .map_err(|source| SimError::Bind {
                        addr: config.listen,
                        source,
                    })?;
                Front::Tls(tls_listener)
            }
            None => Front::Plain(listener),
        };
        let scheme = match front {
            Front::Plain(_) => "http",
            Front::Tls(_) => "https",
        };
        let mut stop = shutdown_rx;
        let stopped = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        let server = tokio::spawn(async move {
            let served = match front {
                Front::Tls(listener) => {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                }
                Front::Plain(listener) => {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                }
            };
            if let Err(error) = served {
                tracing::error!(%error, "wechatpay simulator stopped with an error");
            }
        });
        tracing::info!(%addr, "wechatpay simulator listening");
        Ok(SimHandle {
            addr,
            scheme,
            shared,
            shutdown: shutdown_tx,
            server: Some(server),
        })
    }

    /// Starts on `127.0.0.1:0` with the default merchant ([`DEFAULT_APPID`],
    /// [`DEFAULT_MCH_ID`], [`DEFAULT_API_KEY`]) and WeChat's real notify clock.
    ///
    /// # Panics
    /// If no loopback port can be bound, which leaves a test nothing to do.
    pub async fn start_default() -> SimHandle {
        Self::start(SimConfig::default())
            .await
            .unwrap_or_else(|error| panic!("the WeChat Pay simulator cannot start: {error}"))
    }
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`] also waits
/// for it.
pub struct SimHandle {
    addr: SocketAddr,
    /// `http`, or `https` with [`SimConfig::tls`].
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimHandle {
    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the production base URL's
    /// stand-in (`{base_url}/pay/unifiedorder`).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `{base_url}/xdc/apiv2sandbox`: the sandbox base URL's stand-in (WeChat's current
    /// sandbox root; the old `{base_url}/sandboxnew` is served alike).
    pub fn sandbox_base_url(&self) -> String {
        format!("{}{SANDBOX_ROOT}", self.base_url())
    }

    /// The key sandbox calls of `mch_id` must be signed with (what `getsignkey` answers).
    pub fn sandbox_key(&self, mch_id: &str) -> Option<ApiKey> {
        self.shared
            .merchant(mch_id)
            .map(|merchant| merchant.sandbox_key.clone())
    }

    /// The V3 material of `mch_id` (`None` for an unknown merchant): its APIv3 key and
    /// certificate serial, its private key when the simulator generated it, and WeChat
    /// Pay's public key (with its id) and platform certificate to verify answers and
    /// notifies with. Keys not configured are generated on the first call or V3 request
    /// (once per simulator); `Err` names configured platform keys that could not be used.
    pub fn v3_material(&self, mch_id: &str) -> Option<Result<V3Material, SimError>> {
        self.shared
            .v3_material(mch_id)
            .map(|material| material.map_err(SimError::V3))
    }

    /// A reader of WeChat Pay's own V3 keys of this simulator (its public key with the
    /// id, its platform certificate; no private half), cheap to clone and to keep: a host
    /// running the simulator as its gateway hands it to the V3 merchants it serves, who
    /// verify the simulator's signatures with them. The keys are generated on the first
    /// read when not configured.
    pub fn wechat_v3_keys(&self) -> WechatV3KeysReader {
        WechatV3KeysReader(Arc::clone(&self.shared))
    }

    /// How V3 answers and notifies are signed from now on (see [`V3Mode`]).
    pub fn set_v3_mode(&self, mode: V3Mode) -> Result<(), SimError> {
        Ok(self.shared.set_v3_mode(mode)?)
    }

    /// Sends the merchant a `WECHATPAY/SIGNTEST/` probe: the payment notify of the V3 order
    /// `out_trade_no` whose `Wechatpay-Signature` starts with that prefix, as WeChat probes
    /// merchants that skip verification. Delivered once (never retried), in the background;
    /// the inspection logs it as `signtest_probe`. The receiver must refuse it cleanly.
    pub fn send_signtest_probe(&self, out_trade_no: &str) -> Result<(), PayError> {
        self.shared.send_signtest_probe(out_trade_no)
    }

    /// Pays an order as its payer would (`"weixin://..."` code URLs and out_trade_nos are
    /// both accepted as targets), then delivers the payment notify in the background.
    pub fn pay(&self, target: impl Into<PayTarget>) -> Result<Order, PayError> {
        self.shared.pay(&target.into())
    }

    /// Makes the payment fail: the order becomes PAYERROR (no notify, as WeChat).
    pub fn fail_payment(&self, target: impl Into<PayTarget>) -> Result<Order, PayError> {
        self.shared.fail_payment(&target.into())
    }

    /// The payer is entering a password: the order becomes USERPAYING until paid or failed.
    pub fn start_paying(&self, target: impl Into<PayTarget>) -> Result<Order, PayError> {
        self.shared.start_paying(&target.into())
    }

    /// Decides how a refund not yet asked for ends (see [`RefundPlan`]): `CHANGE` or
    /// `REFUNDCLOSE` instead of `SUCCESS` after the usual processing time, or `PROCESSING`
    /// until [`SimHandle::settle_refund`]. A plan is used by one refund.
    pub fn plan_refund(&self, plan: RefundPlan) -> Result<(), RefundControlError> {
        self.shared.store.plan_refund(plan)
    }

    /// The refund plans not used yet, oldest first.
    pub fn refund_plans(&self) -> Vec<RefundPlan> {
        self.shared.store.refund_plans()
    }

    /// Forgets the refund plans not used yet.
    pub fn clear_refund_plans(&self) {
        self.shared.store.clear_refund_plans();
    }

    /// Settles the refund `out_refund_no`, still `PROCESSING`, as `status` (`SUCCESS`,
    /// `CHANGE` or `REFUNDCLOSE`) now, and sends its refund notify (in the background) if
    /// the refund call named a notify_url. A closed refund no longer counts against its
    /// order's refundable amount, and its money returns to the merchant's refund balance.
    pub fn settle_refund(
        &self,
        out_refund_no: &str,
        status: RefundStatus,
    ) -> Result<Refund, RefundControlError> {
        self.shared.settle_refund(out_refund_no, status)
    }

    /// Records a live order paid at WeChat that the merchant never created (no notify):
    /// the bill then lists a payment the merchant's books lack.
    pub fn record_outside_payment(
        &self,
        payment: &OutsidePayment,
    ) -> Result<Order, OutsidePaymentError> {
        self.shared.record_outside_payment(payment)
    }

    /// Makes the bills disagree with the orders on purpose (see [`BillAlteration`]),
    /// replacing an earlier alteration of the same order.
    pub fn alter_bill(&self, alteration: BillAlteration) -> Result<(), InvalidBillAlteration> {
        bill::alter(&self.shared.bill_alterations, alteration)
    }

    /// The bill alterations in force.
    pub fn bill_alterations(&self) -> Vec<BillAlteration> {
        self.shared.bill_alterations.lock().clone()
    }

    /// Lifts every bill alteration.
    pub fn clear_bill_alterations(&self) {
        self.shared.bill_alterations.lock().clear();
    }

    /// What the simulator received and sent, and its orders.
    pub fn inspect(&self) -> Inspection {
        self.shared.inspection()
    }

    /// Forgets the inspection log and restarts the orders' query counts (orders stay).
    pub fn clear_inspection(&self) {
        self.shared.clear_inspection();
    }

    /// The order with this out_trade_no, in any merchant or environment.
    pub fn order(&self, out_trade_no: &str) -> Option<Order> {
        self.shared
            .store
            .all_orders()
            .into_iter()
            .find(|order| order.out_trade_no == out_trade_no)
    }

    /// Adds, lists and removes faults at run time.
    pub fn faults(&self) -> FaultControl {
        self.shared.faults.clone()
    }

    /// Accepts calls for one more merchant from now on.
    pub fn add_merchant(&self, merchant: MerchantConfig) -> Result<(), SimError> {
        SimConfig::default()
            .with_merchants([merchant.clone()])
            .validate()?;
        let mut merchants = self.shared.merchants.write();
        if merchants.contains_key(&merchant.mch_id) {
            return Err(SimError::DuplicateMerchant(merchant.mch_id));
        }
        self.shared
            .store
            .set_refund_balance(&merchant.mch_id, merchant.refund_balance);
        let entry = MerchantEntry::new(merchant)?;
        merchants.insert(entry.config.mch_id.clone(), Arc::new(entry));
        Ok(())
    }

    /// Makes sure calls for `merchant` are accepted from now on, as a host does when its
    /// app gains merchants while running: an unknown merchant is added; a known one (same
    /// `mch_id` and key) gains the app ids it does not own yet. A known merchant with
    /// another key is refused ([`SimError::MerchantKeyChanged`]), the running one untouched.
    pub fn learn_merchant(&self, merchant: MerchantConfig) -> Result<LearnedMerchant, SimError> {
        SimConfig::default()
            .with_merchants([merchant.clone()])
            .validate()?;
        let mut merchants = self.shared.merchants.write();
        let Some(known) = merchants.get(&merchant.mch_id).cloned() else {
            drop(merchants);
            self.add_merchant(merchant)?;
            return Ok(LearnedMerchant::Added);
        };
        if known.config.key != merchant.key
            || (merchant.v3.is_some() && known.config.v3 != merchant.v3)
        {
            return Err(SimError::MerchantKeyChanged(merchant.mch_id));
        }
        let new_appids: Vec<String> = std::iter::once(&merchant.appid)
            .chain(&merchant.extra_appids)
            .filter(|appid| !known.config.owns_appid(appid))
            .cloned()
            .collect();
        if new_appids.is_empty() {
            return Ok(LearnedMerchant::Known);
        }
        let mut config = known.config.clone();
        config.extra_appids.extend(new_appids.iter().cloned());
        // The same keys (the sandbox key a client may hold included), more app ids.
        merchants.insert(
            merchant.mch_id.clone(),
            Arc::new(MerchantEntry {
                config,
                key: known.key.clone(),
                sandbox_key: known.sandbox_key.clone(),
                v3: known.v3.clone(),
            }),
        );
        Ok(LearnedMerchant::AppIdsAdded(new_appids))
    }

    /// Serves until `signal` completes (e.g. `tokio::signal::ctrl_c()` in a command line),
    /// then shuts down.
    pub async fn run_until<F: std::future::Future>(self, signal: F) {
        signal.await;
        self.shutdown().await;
    }

    /// Stops accepting connections, ends pending notifies and hanging requests, and waits
    /// for the server to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// WeChat Pay's own V3 keys of a simulator, public halves only: what its merchants verify
/// its answers and notifies with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WechatV3Keys {
    /// The WeChat Pay public key's id (`PUB_KEY_ID_...`).
    pub public_key_id: String,
    /// The WeChat Pay public key, PEM (`PUBLIC KEY`).
    pub public_key_pem: String,
    /// The platform certificate, PEM.
    pub platform_certificate_pem: String,
    /// How the simulator signs now (which of the two keys it uses).
    pub mode: V3Mode,
}

/// Reads a running simulator's [`WechatV3Keys`] ([`SimHandle::wechat_v3_keys`]).
#[derive(Clone)]
pub struct WechatV3KeysReader(Arc<Shared>);

impl std::fmt::Debug for WechatV3KeysReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WechatV3KeysReader")
    }
}

impl WechatV3KeysReader {
    /// The keys (generated now if this is the first V3 use), or why configured ones
    /// cannot be used.
    pub fn read(&self) -> Result<WechatV3Keys, SimError> {
        let platform = self.0.platform().map_err(SimError::V3)?;
        Ok(WechatV3Keys {
            public_key_id: platform.public_key_signer.serial().to_owned(),
            public_key_pem: platform.public_key_pem.clone(),
            platform_certificate_pem: platform.certificate.pem().to_owned(),
            mode: self.0.v3_mode(),
        })
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(path: &str) -> Option<(Env, Endpoint)> {
        routes()
            .into_iter()
            .find(|(served, _, _)| served == path)
            .map(|(_, env, endpoint)| (env, endpoint))
    }

    #[test]
    fn the_sandbox_is_served_at_its_new_and_its_old_root_alike() {
        for (live, endpoint) in LIVE_ROUTES {
            assert_eq!(served(live), Some((Env::Live, *endpoint)));
            for root in ["/xdc/apiv2sandbox", "/sandboxnew"] {
                assert_eq!(
                    served(&format!("{root}{live}")),
                    Some((Env::Sandbox, *endpoint)),
                    "{root}{live}"
                );
            }
        }
        for refund in ["/xdc/apiv2sandbox/pay/refund", "/sandboxnew/pay/refund"] {
            assert_eq!(served(refund), Some((Env::Sandbox, Endpoint::Refund)));
        }
        for sign_key in [
            "/xdc/apiv2getsignkey/sign/getsignkey",
            "/sandboxnew/pay/getsignkey",
        ] {
            assert_eq!(served(sign_key), Some((Env::Sandbox, Endpoint::GetSignKey)));
        }
        assert_eq!(
            served("/pay/getsignkey"),
            None,
            "getsignkey is sandbox only"
        );
    }
}
