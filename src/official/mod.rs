//! The official element families the stock host carries (pays), and what they need to
//! serve: the database, the gateway (a real one, or the in-process simulator when app.toml
//! says `[gateway] simulator = true`), the reconciler, the daily bill download (`[bills]`)
//! and the outbox's dispatcher (hooks and webhooks).

pub mod config;
pub mod events;

use std::sync::Arc;

use futures::future::BoxFuture;
use jit_pays::db::{DbConfig, scrub_database_url};
use jit_pays::{OutboxSettings, PAY_SVC, PayStore, PaysSettings};
use jit_runtime::{AppBuilder, Definitions};
use serde_json::{Value, json};
use wechatpay_sim::{MerchantConfig, SimConfig, SimHandle, Simulator};

use self::config::{BillsConfig, GATEWAY_CHOICES, GatewayTarget, PaysConfig};
use crate::error::{HostError, RewrittenError};
use crate::server::routes::function_url;
use crate::server::state::HealthProbe;

/// The function of [`PAY_SVC`] WeChat's payment notifies are posted to.
const WECHAT_NOTIFY: &str = "wechatNotify";

/// The function of [`PAY_SVC`] WeChat's refund notifies are posted to.
const WECHAT_REFUND_NOTIFY: &str = "wechatRefundNotify";

/// The function of [`PAY_SVC`] WeChat's V3 payment notifies are posted to.
const WECHAT_NOTIFY_V3: &str = "wechatNotifyV3";

/// The function of [`PAY_SVC`] WeChat's V3 refund notifies are posted to.
const WECHAT_REFUND_NOTIFY_V3: &str = "wechatRefundNotifyV3";

/// The in-process simulator's own WeChat Pay V3 keys, as the family reads them: while the
/// simulator is the gateway it *is* WeChat, so V3 instances verify with these.
#[derive(Debug)]
struct SimulatorKeys(wechatpay_sim::WechatV3KeysReader);

impl jit_pays::SimulatedWechat for SimulatorKeys {
    fn wechat_v3_keys(&self) -> Result<jit_pays::SimulatorV3Keys, String> {
        let keys = self.0.read().map_err(|error| error.to_string())?;
        Ok(simulator_v3_keys(
            keys.public_key_id,
            keys.public_key_pem,
            keys.platform_certificate_pem,
            keys.mode,
        ))
    }
}

/// A simulator's WeChat Pay V3 keys (public halves), as the family takes them.
pub(crate) fn simulator_v3_keys(
    public_key_id: String,
    public_key_pem: String,
    platform_certificate_pem: String,
    mode: wechatpay_sim::V3Mode,
) -> jit_pays::SimulatorV3Keys {
    jit_pays::SimulatorV3Keys {
        public_key_id,
        public_key_pem,
        platform_certificate_pem,
        signs_with_certificate: mode != wechatpay_sim::V3Mode::PublicKey,
    }
}

/// A simulator's WeChat Pay V3 keys read once (from a simulator in another process).
#[derive(Debug)]
pub(crate) struct ReadSimulatorKeys(pub(crate) jit_pays::SimulatorV3Keys);

impl jit_pays::SimulatedWechat for ReadSimulatorKeys {
    fn wechat_v3_keys(&self) -> Result<jit_pays::SimulatorV3Keys, String> {
        Ok(self.0.clone())
    }
}

/// The family's settings for an app whose API is at `api_base` (under `public_base_url`)
/// and whose gateway is `gateway_base_url`: the notify URLs of the host's own routes (V2
/// and V3, payments and refunds), and `config`'s reconciler timings. The one maker of them,
/// for `jit serve` and the commands that build the app as it does.
pub(crate) fn pays_settings(
    public_base_url: &str,
    api_base: &str,
    gateway_base_url: String,
    config: &PaysConfig,
) -> PaysSettings {
    let mut settings = PaysSettings::new(
        public_base_url,
        function_url(api_base, PAY_SVC, WECHAT_NOTIFY),
        gateway_base_url,
    )
    .with_refund_notify_url(function_url(api_base, PAY_SVC, WECHAT_REFUND_NOTIFY))
    .with_v3_notify_urls(
        function_url(api_base, PAY_SVC, WECHAT_NOTIFY_V3),
        function_url(api_base, PAY_SVC, WECHAT_REFUND_NOTIFY_V3),
    );
    settings.reconciler = config.reconciler.clone();
    settings
}

/// Adds the official families' definitions and loaders, no service: what `jit check` needs
/// to tell which instances this host can build, without a database.
pub(crate) fn loaders(builder: AppBuilder) -> AppBuilder {
    jit_services::register(jit_pays::register_loaders(builder))
}

/// What the official families hold while the server runs.
pub(crate) struct Official {
    gateway_base_url: String,
    simulator: Option<SimHandle>,
    store: PayStore,
    settings: PaysSettings,
    bills: BillsConfig,
}

impl Official {
    /// Starts the simulator when it is the gateway, connects the database.
    pub(crate) async fn prepare(
        definitions: &Definitions,
        config: &PaysConfig,
        public_base_url: &str,
        api_base: &str,
    ) -> Result<Self, HostError> {
        // What `jit check` reports stops the start: no payer meets a merchant that WeChat
        // would refuse on every call. Resolved (and certificate files read) once, here.
        let merchant_settings = jit_pays::merchant_settings(definitions)?;
        let v3_merchant_settings = jit_pays::v3_merchant_settings(definitions)?;
        let (gateway_base_url, simulator) = match &config.gateway {
            // The start-up rules refuse this before anything starts; never a default.
            None => {
                return Err(HostError::service(
                    "gateway",
                    format!("no payment gateway is chosen; {GATEWAY_CHOICES}"),
                ));
            }
            Some(GatewayTarget::Remote(url)) => (url.clone(), None),
            Some(GatewayTarget::Simulator) => {
                let merchants = merchants_of(merchant_settings, v3_merchant_settings);
                let sim_config = SimConfig::default()
                    .with_merchants(merchants)
                    // Notify retries a hundred times faster than WeChat's: a demo shop
                    // whose first notify failed sees the retry in seconds, not minutes.
                    .with_time_scale(100.0);
                let handle = Simulator::start(sim_config)
                    .await
                    .map_err(|err| HostError::service("in-process WeChat Pay simulator", err))?;
                (handle.base_url(), Some(handle))
            }
        };
        let store = match open_store(config).await {
            Ok(store) => store,
            Err(err) => {
                if let Some(simulator) = simulator {
                    simulator.shutdown().await;
                }
                return Err(err);
            }
        };
        // The host owns its routes: the family is handed the URLs WeChat notifies.
        let mut settings =
            pays_settings(public_base_url, api_base, gateway_base_url.clone(), config);
        if let Some(simulator) = &simulator {
            // The simulator is WeChat here: V3 instances trust its keys, not configured
            // ones (said in the start banner). A real gateway never gets this.
            settings = settings.with_simulator(Arc::new(SimulatorKeys(simulator.wechat_v3_keys())));
        }
        Ok(Self {
            gateway_base_url,
            simulator,
            store,
            settings,
            bills: config.bills.clone(),
        })
    }

    /// Registers the official families' layers, loaders and services.
    pub(crate) fn register(&self, builder: AppBuilder) -> AppBuilder {
        let builder = jit_pays::register(builder, self.store.clone(), self.settings.clone());
        jit_services::register(builder)
    }

    /// `/healthz` probes: the database answers. The driver's error goes to the log only:
    /// it may name the database's host, file or user.
    pub(crate) fn health_probes(&self, database_url: &str) -> Vec<(String, HealthProbe)> {
        let store = self.store.clone();
        let database_url: Arc<str> = Arc::from(database_url);
        let probe: HealthProbe = Arc::new(move || {
            let store = store.clone();
            let database_url = Arc::clone(&database_url);
            Box::pin(async move {
                store
                    .ping()
                    .await
                    .map(|()| json!("reachable"))
                    .map_err(|err| {
                        tracing::error!(
                            error = %scrub_database_url(&err.to_string(), &database_url),
                            "health check: the database does not answer"
                        );
                        "unreachable; see the server log".to_owned()
                    })
            })
        });
        vec![("database".to_owned(), probe)]
    }

    /// `/healthz`'s gateway entry: which kind, never an address.
    pub(crate) fn gateway_description(&self) -> Value {
        let payments = match self.simulator {
            Some(_) => crate::serve::SIMULATED_PAYMENTS,
            None => "real: the configured WeChat Pay gateway",
        };
        json!({
            "status": "ok",
            "detail": {
                "simulator": self.simulator.is_some(),
                "payments": payments,
            }
        })
    }

    /// The in-process simulator's base URL (loopback), when it is the gateway.
    pub(crate) fn simulator_url(&self) -> Option<String> {
        self.simulator.as_ref().map(SimHandle::base_url)
    }

    /// Facts printed at start and exposed through `ServerHandle::info`.
    pub(crate) fn info(&self) -> Vec<(String, String)> {
        match &self.simulator {
            Some(simulator) => vec![
                (
                    "gateway".to_owned(),
                    format!(
                        "the built-in WeChat Pay simulator at {} (pay an order: jit sim pay ORDER_ID)",
                        simulator.base_url()
                    ),
                ),
                ("simulator".to_owned(), simulator.base_url()),
                (
                    "wechat pay v3".to_owned(),
                    "V3 instances verify the simulator's own WeChat Pay keys (it is their \
                     gateway), not configured ones"
                        .to_owned(),
                ),
            ],
            None => vec![("gateway".to_owned(), self.gateway_base_url.clone())],
        }
    }

    /// Background tasks: the outbox's dispatcher (with `outbox`'s consumers), then the
    /// reconciler and the daily bill download (unless `[bills] enabled = false`); each
    /// future completes once its task stopped, the bill download's and the reconciler's
    /// first (their last pass may still write events for the dispatcher).
    pub(crate) async fn start_background(
        &self,
        app: &jit_runtime::App,
        outbox: OutboxSettings,
    ) -> Result<Vec<BoxFuture<'static, ()>>, HostError> {
        let instance_id = outbox.instance_id.clone();
        let outbox = jit_pays::start_outbox(app, outbox)
            .await
            .map_err(|err| HostError::service("outbox", err))?;
        let reconciler = match jit_pays::start_reconciler(app) {
            Ok(reconciler) => reconciler,
            Err(err) => {
                outbox.stop().await;
                return Err(HostError::service("reconciler", err));
            }
        };
        let mut stops: Vec<BoxFuture<'static, ()>> = Vec::new();
        if self.bills.enabled {
            let schedule = jit_pays::BillSchedule::new(self.bills.download_at, instance_id);
            let bills = jit_pays::start_bill_schedule(app, schedule);
            stops.push(Box::pin(async move { bills.stop().await }));
        }
        stops.push(Box::pin(async move { reconciler.stop().await }));
        stops.push(Box::pin(async move { outbox.stop().await }));
        Ok(stops)
    }

    /// Makes the in-process simulator (when it is the gateway) accept every merchant of
    /// `definitions`, resolved and validated as at start (`jit_pays::merchant_settings`):
    /// what a reload does before the new generation is served. Returns what it learned,
    /// or every problem (a merchant's settings, or a known merchant with another key).
    pub(crate) fn learn_merchants(
        &self,
        definitions: &Definitions,
    ) -> Result<Vec<String>, Vec<String>> {
        // A real gateway learns nothing: the settings were checked with the rest of the
        // tree (`commands::check_app`), and their certificate files need no second read.
        let Some(simulator) = &self.simulator else {
            return Ok(Vec::new());
        };
        let unusable = |errors: jit_runtime::LoadErrors| {
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let settings = jit_pays::merchant_settings(definitions).map_err(unusable)?;
        let v3_settings = jit_pays::v3_merchant_settings(definitions).map_err(unusable)?;
        let mut learned = Vec::new();
        let mut problems = Vec::new();
        for merchant in merchants_of(settings, v3_settings) {
            let mch_id = merchant.mch_id.clone();
            match simulator.learn_merchant(merchant) {
                Ok(wechatpay_sim::LearnedMerchant::Added) => {
                    learned.push(format!("simulator: merchant {mch_id} added"));
                }
                Ok(wechatpay_sim::LearnedMerchant::AppIdsAdded(appids)) => learned.push(format!(
                    "simulator: merchant {mch_id} gained app ids {}",
                    appids.join(", ")
                )),
                Ok(wechatpay_sim::LearnedMerchant::Known) => {}
                Err(err) => problems.push(format!("simulator: {err}")),
            }
        }
        if problems.is_empty() {
            Ok(learned)
        } else {
            Err(problems)
        }
    }

    /// Stops the simulator.
    pub(crate) async fn stop(self) {
        if let Some(simulator) = self.simulator {
            simulator.shutdown().await;
        }
    }
}

/// Opens the database `config` names (connecting, then applying the migrations), as
/// `jit serve` and `jit events` both do, and routes the events it will write to the
/// configured consumers from the start. Driver errors are scrubbed of the URL's secrets.
pub(crate) async fn open_store(config: &PaysConfig) -> Result<PayStore, HostError> {
    let mut db_config = DbConfig {
        pg_schema: config.database_schema.clone(),
        ..DbConfig::new(config.database_url.clone())
    };
    if let Some(max_connections) = config.database_max_connections {
        db_config.max_connections = max_connections;
    }
    match jit_pays::db::connect(&db_config).await {
        Ok(store) => {
            // Events written before the dispatcher starts (it sets them again) go where
            // the dispatcher will look for them.
            store.outbox().set_routes(config.events.routes());
            Ok(store)
        }
        Err(err) => {
            // Every level of the chain may show the URL: each is scrubbed.
            let scrubbed =
                RewrittenError::of(&err, &|text| scrub_database_url(text, &config.database_url));
            Err(HostError::service("database", scrubbed))
        }
    }
}

/// The merchants of every pay instance, V2 and V3, for the in-process simulator: exactly
/// the settings each element signs with (`jit_pays::merchant_settings` and
/// `jit_pays::v3_merchant_settings`, the family's resolvers), so the simulator accepts what
/// the shop sends. Instances of one merchant (same mchId, one key) with other appIds add
/// those appIds to it; a V3 instance gives its merchant the V3 side (APIv3 key, certificate
/// serial, the public key of its private key). A merchant only V3 instances name has no V2
/// key: its V2 side is keyed with its APIv3 key, which nothing signs V2 calls with.
fn merchants_of(
    settings: Vec<(String, jit_pays::WechatPayConfig)>,
    v3_settings: Vec<(String, jit_pays::WechatPayV3Config)>,
) -> Vec<MerchantConfig> {
    // The merchant of `mch_id`, known or added keyed with `key`, owning `app_id`.
    fn merchant<'a>(
        merchants: &'a mut Vec<MerchantConfig>,
        app_id: &str,
        mch_id: &str,
        key: &str,
    ) -> &'a mut MerchantConfig {
        let index = match merchants.iter().position(|known| known.mch_id == mch_id) {
            Some(index) => index,
            None => {
                merchants.push(MerchantConfig::new(app_id, mch_id, key));
                merchants.len() - 1
            }
        };
        let known = &mut merchants[index];
        if !known.owns_appid(app_id) {
            known.extra_appids.push(app_id.to_owned());
        }
        known
    }
    let mut merchants: Vec<MerchantConfig> = Vec::new();
    for (_, config) in &settings {
        merchant(
            &mut merchants,
            &config.app_id,
            &config.mch_id,
            config.api_key.expose_secret(),
        );
    }
    for (_, config) in &v3_settings {
        let api_v3_key = String::from_utf8_lossy(config.api_v3_key.expose_secret()).into_owned();
        let merchant = merchant(&mut merchants, &config.app_id, &config.mch_id, &api_v3_key);
        // Instances of one merchant share its V3 side (`v3_merchant_settings` checks it).
        if merchant.v3.is_none()
            && let Ok(public_key_pem) = config.merchant_public_key().to_pem()
        {
            merchant.v3 = Some(wechatpay_sim::MerchantV3Config {
                api_v3_key,
                merchant_serial_no: config.merchant_serial_no.clone(),
                merchant_public_key_pem: public_key_pem,
            });
        }
    }
    merchants
}
