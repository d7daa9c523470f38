//! The simulator's configuration: merchants, clock scale, bounds, start-up faults.
//!
//! Plain data with no command-line parsing, so a CLI can fill it from flags and a host can
//! fill it from its own merchant list. A TOML file reads into the same struct:
//!
//! ```toml
//! listen = "127.0.0.1:8990"
//! time_scale = 60.0            # notify retries 60 times faster than WeChat's
//! max_orders_per_merchant = 10000
//!
//! [[merchants]]
//! appid = "wxd930ea5d5a258f4f"
//! mch_id = "10000100"
//! key = "192006250b4c09247ec02edce69f6a2d"
//!
//! [merchants.v3]                 # optional: generated on first V3 use when absent
//! api_v3_key = "a12d3924fd499edac8a5efc5b8c9a7d2"
//! merchant_serial_no = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB"
//! merchant_public_key_pem = """
//! -----BEGIN PUBLIC KEY-----
//! ...
//! -----END PUBLIC KEY-----
//! """
//!
//! [v3]                           # WeChat Pay's side; keys generated when absent
//! mode = { kind = "switchover", public_key_percent = 30 }
//!
//! [[faults]]
//! mch_id = "10000100"
//! endpoint = "orderquery"
//! fault = { kind = "system_error" }
//! times = 2
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wechatpay_v2::Fen;

use crate::fault::FaultRule;

/// The app id of the merchant every [`SimConfig::default`] knows (WeChat's documentation
/// example).
pub const DEFAULT_APPID: &str = "wxd930ea5d5a258f4f";
/// The merchant number of the default merchant.
pub const DEFAULT_MCH_ID: &str = "10000100";
/// The API key of the default merchant (WeChat's documentation example, public).
pub const DEFAULT_API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// One merchant account the simulator accepts calls for.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    /// The app id bound to the merchant (`appid` of every call).
    pub appid: String,
    /// Further app ids bound to the same merchant (e.g. a mini-program and an app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_appids: Vec<String>,
    /// The merchant number (`mch_id`).
    pub mch_id: String,
    /// The API key that signs the merchant's calls.
    pub key: String,
    /// Money available for refunds, in fen; refunds beyond it answer `NOTENOUGH` as WeChat
    /// does when the merchant's balance is short. `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_balance: Option<Fen>,
    /// The merchant's API v3 material. `None`: generated on first V3 use (an APIv3 key, an
    /// RSA key pair and its serial; read them with
    /// [`SimHandle::v3_material`](crate::SimHandle::v3_material)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v3: Option<MerchantV3Config>,
}

/// What the simulator knows of a merchant's API v3 side: enough to check its request
/// signatures and to encrypt its notifies, never its private key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MerchantV3Config {
    /// The APIv3 key (32 bytes), which encrypts notify resources and platform certificates.
    pub api_v3_key: String,
    /// The serial of the merchant certificate its requests name (`serial_no`), hexadecimal.
    pub merchant_serial_no: String,
    /// The merchant's RSA public key (`-----BEGIN PUBLIC KEY-----`) or its certificate
    /// (`apiclient_cert.pem`), PEM: checks the request signatures.
    pub merchant_public_key_pem: String,
}

impl fmt::Debug for MerchantV3Config {
    // The APIv3 key is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantV3Config")
            .field("api_v3_key", &"<redacted>")
            .field("merchant_serial_no", &self.merchant_serial_no)
            .finish_non_exhaustive()
    }
}

/// How the simulator signs its V3 answers and notifies (`Wechatpay-Serial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum V3Mode {
    /// With the WeChat Pay public key (`PUB_KEY_ID_...`), as for merchants since late 2024.
    PublicKey,
    /// With the platform certificate (`GET /v3/certificates` serves it).
    PlatformCertificate,
    /// During a switchover: this share (0 to 100) of signatures with the public key, the
    /// rest with the platform certificate.
    Switchover {
        /// Percent signed with the public key.
        public_key_percent: u8,
    },
}

/// The WeChat Pay side of API v3, one per simulator. Keys not given are generated on first
/// V3 use (RSA 2048, a self-signed platform certificate valid a year).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SimV3Config {
    /// How answers and notifies are signed.
    pub mode: V3Mode,
    /// The WeChat Pay public key id (`PUB_KEY_ID_...`); generated when absent.
    pub public_key_id: Option<String>,
    /// The private half of the WeChat Pay public key, PEM (PKCS#8 or PKCS#1).
    pub public_key_private_pem: Option<String>,
    /// A platform certificate, PEM, with [`SimV3Config::platform_private_key_pem`].
    pub platform_certificate_pem: Option<String>,
    /// The key the platform certificate certifies, PEM.
    pub platform_private_key_pem: Option<String>,
}

impl Default for SimV3Config {
    /// The public-key mode, everything generated.
    fn default() -> Self {
        SimV3Config {
            mode: V3Mode::PublicKey,
            public_key_id: None,
            public_key_private_pem: None,
            platform_certificate_pem: None,
            platform_private_key_pem: None,
        }
    }
}

impl fmt::Debug for SimV3Config {
    // Private keys are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimV3Config")
            .field("mode", &self.mode)
            .field("public_key_id", &self.public_key_id)
            .field(
                "platform_certificate",
                &self.platform_certificate_pem.is_some(),
            )
            .finish_non_exhaustive()
    }
}

impl MerchantConfig {
    /// A merchant with one app id and an unlimited refund balance.
    pub fn new(
        appid: impl Into<String>,
        mch_id: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        MerchantConfig {
            appid: appid.into(),
            extra_appids: Vec::new(),
            mch_id: mch_id.into(),
            key: key.into(),
            refund_balance: None,
            v3: None,
        }
    }

    /// The merchant of [`DEFAULT_APPID`], [`DEFAULT_MCH_ID`] and [`DEFAULT_API_KEY`].
    pub fn default_merchant() -> Self {
        MerchantConfig::new(DEFAULT_APPID, DEFAULT_MCH_ID, DEFAULT_API_KEY)
    }

    /// Whether `appid` belongs to this merchant.
    pub fn owns_appid(&self, appid: &str) -> bool {
        self.appid == appid || self.extra_appids.iter().any(|extra| extra == appid)
    }
}

impl fmt::Debug for MerchantConfig {
    // The key is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantConfig")
            .field("appid", &self.appid)
            .field("extra_appids", &self.extra_appids)
            .field("mch_id", &self.mch_id)
            .field("key", &"<redacted>")
            .field("refund_balance", &self.refund_balance)
            .field("v3", &self.v3)
            .finish()
    }
}

/// Everything [`Simulator::start`](crate::Simulator::start) needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The merchants the gateway knows; calls for any other `mch_id` answer `MCHID_NOT_EXIST`.
    pub merchants: Vec<MerchantConfig>,
    /// How many times faster than WeChat the simulated clock runs for notify retries
    /// (1.0: WeChat's real 15 s, 15 s, 30 s, 3 m, ... schedule; 1000.0: 15 ms, 15 ms, ...).
    pub time_scale: f64,
    /// How long one notify delivery may take before it counts as unanswered, in
    /// milliseconds of real time.
    pub notify_timeout_ms: u64,
    /// How long a request fault of kind `hang` holds the request, in milliseconds of real
    /// time, before the connection is dropped without an answer.
    pub hang_ms: u64,
    /// Orders kept per merchant; beyond it the oldest finished order is forgotten (the
    /// oldest unfinished one when none is finished).
    pub max_orders_per_merchant: usize,
    /// Records kept by the inspection log (requests and notify attempts, each bounded).
    pub max_log_entries: usize,
    /// How long a new refund stays `PROCESSING` before it succeeds, in milliseconds of
    /// real time (at most a year). Its refund notify is sent when it succeeds. 0: at once.
    pub refund_processing_ms: u64,
    /// Serve HTTPS, and check the merchant certificate of `/secapi/` calls, as WeChat
    /// does (see [`SimTls`](crate::SimTls)). Plain HTTP when absent.
    pub tls: Option<crate::SimTls>,
    /// Faults active from start-up.
    pub faults: Vec<FaultRule>,
    /// The WeChat Pay side of API v3: signing mode and platform keys.
    pub v3: SimV3Config,
}

impl Default for SimConfig {
    /// Listens on `127.0.0.1:0` with the default merchant, WeChat's real notify clock, no
    /// faults.
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            merchants: vec![MerchantConfig::default_merchant()],
            time_scale: 1.0,
            notify_timeout_ms: 5_000,
            hang_ms: 60 * 60 * 1_000,
            max_orders_per_merchant: 10_000,
            max_log_entries: 10_000,
            refund_processing_ms: 0,
            tls: None,
            faults: Vec::new(),
            v3: SimV3Config::default(),
        }
    }
}

const MAX_REFUND_PROCESSING_MS: u64 = 365 * 24 * 3600 * 1000;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read simulator config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML text is malformed or has a field of the wrong type.
    #[error("invalid simulator config {origin}: {message}")]
    Parse {
        /// The file, or `<string>` for text given directly.
        origin: String,
        /// The parser's message, naming the field, line and column.
        message: String,
    },
    /// A value is syntactically fine but unusable.
    #[error("invalid simulator config: {field}: {problem}")]
    Invalid {
        /// The field, as a path (`merchants[1].mch_id`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl SimConfig {
    /// Reads a TOML configuration file, then [validates](Self::validate) it.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<SimConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_toml(&text, &path.display().to_string())
    }

    /// Reads TOML text, then [validates](Self::validate) it.
    pub fn from_toml_str(text: &str) -> Result<SimConfig, ConfigError> {
        Self::parse_toml(text, "<string>")
    }

    fn parse_toml(text: &str, origin: &str) -> Result<SimConfig, ConfigError> {
        let config: SimConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Replaces the merchants.
    pub fn with_merchants(mut self, merchants: impl IntoIterator<Item = MerchantConfig>) -> Self {
        self.merchants = merchants.into_iter().collect();
        self
    }

    /// Adds a merchant.
    pub fn with_merchant(mut self, merchant: MerchantConfig) -> Self {
        self.merchants.push(merchant);
        self
    }

    /// Sets the notify clock factor (see [`SimConfig::time_scale`]).
    pub fn with_time_scale(mut self, time_scale: f64) -> Self {
        self.time_scale = time_scale;
        self
    }

    /// Sets the listening address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Adds a fault active from start-up.
    pub fn with_fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    /// How long a new refund stays `PROCESSING`.
    pub fn refund_processing(&self) -> Duration {
        Duration::from_millis(self.refund_processing_ms)
    }

    /// Sets how long a new refund stays `PROCESSING` (see
    /// [`SimConfig::refund_processing_ms`]).
    pub fn with_refund_processing(mut self, processing: Duration) -> Self {
        self.refund_processing_ms = u64::try_from(processing.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Serves HTTPS with `tls` (see [`SimConfig::tls`]).
    pub fn with_tls(mut self, tls: crate::SimTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets how V3 answers and notifies are signed.
    pub fn with_v3_mode(mut self, mode: V3Mode) -> Self {
        self.v3.mode = mode;
        self
    }

    /// The notify delivery timeout as a duration.
    pub fn notify_timeout(&self) -> Duration {
        Duration::from_millis(self.notify_timeout_ms)
    }

    /// Checks what types cannot: non-empty identifiers, unique merchants, a positive clock
    /// factor, non-zero bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: &str| ConfigError::Invalid {
            field,
            problem: problem.to_string(),
        };
        // NaN fails this comparison too.
        if !(self.time_scale > 0.0 && self.time_scale.is_finite()) {
            return Err(invalid(
                "time_scale".into(),
                "must be a finite number greater than zero",
            ));
        }
        if self.max_orders_per_merchant == 0 {
            return Err(invalid(
                "max_orders_per_merchant".into(),
                "must be at least 1",
            ));
        }
        if self.max_log_entries == 0 {
            return Err(invalid("max_log_entries".into(), "must be at least 1"));
        }
        if self.notify_timeout_ms == 0 {
            return Err(invalid("notify_timeout_ms".into(), "must be at least 1"));
        }
        if self.refund_processing_ms > MAX_REFUND_PROCESSING_MS {
            return Err(invalid(
                "refund_processing_ms".into(),
                "must be at most a year (31536000000)",
            ));
        }
        for (index, merchant) in self.merchants.iter().enumerate() {
            let field = |name: &str| format!("merchants[{index}].{name}");
            if merchant.appid.trim().is_empty() {
                return Err(invalid(field("appid"), "must not be empty"));
            }
            if merchant.mch_id.trim().is_empty() {
                return Err(invalid(field("mch_id"), "must not be empty"));
            }
            if merchant.key.is_empty() {
                return Err(invalid(field("key"), "must not be empty"));
            }
            if let Some(balance) = merchant.refund_balance
                && balance < Fen::ZERO
            {
                return Err(invalid(field("refund_balance"), "must not be negative"));
            }
            if let Some(v3) = &merchant.v3 {
                crate::v3_keys::MerchantV3::from_config(v3)
                    .map_err(|(name, problem)| invalid(field(&format!("v3.{name}")), &problem))?;
            }
            if self.merchants[..index]
                .iter()
                .any(|earlier| earlier.mch_id == merchant.mch_id)
            {
                return Err(invalid(
                    field("mch_id"),
                    &format!("merchant `{}` is configured twice", merchant.mch_id),
                ));
            }
        }
        crate::v3_keys::check_platform(&self.v3)
            .map_err(|(name, problem)| invalid(format!("v3.{name}"), &problem))?;
        if let V3Mode::Switchover { public_key_percent } = self.v3.mode
            && public_key_percent > 100
        {
            return Err(invalid(
                "v3.mode.public_key_percent".into(),
                "must be between 0 and 100",
            ));
        }
        for (index, rule) in self.faults.iter().enumerate() {
            rule.validate()
                .map_err(|problem| invalid(format!("faults[{index}]"), &problem))?;
        }
        Ok(())
    }
}
