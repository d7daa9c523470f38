//! The HTTP client for the merchant API: one [`Client`] per merchant, its configuration, and
//! one method per call.
//!
//! What each call sends and reads lives in [`crate::calls`]; how a call travels (signing,
//! HTTP, retries, verifying the answer) in `transport`; keeping platform certificates fresh
//! in `refresh`. A method here validates the request, sends it, and reads the verified
//! answer with the answer type's `TryFrom<Value>`.
//!
//! # Verifying WeChat: [`Verification`]
//! - [`Verification::PublicKey`]: the WeChat Pay public key (`PUB_KEY_ID_…`), what new
//!   merchants get. Requests carry `Wechatpay-Serial: PUB_KEY_ID_…`.
//! - [`Verification::PlatformCertificates`]: certificates downloaded from `/v3/certificates`
//!   (and any given at start), kept by serial, downloaded again every
//!   [`CertificateRefresh::interval`], when the newest one is within
//!   [`CertificateRefresh::before_expiry`] of its end, and when an answer names a serial not
//!   held (at most once per [`CertificateRefresh::min_gap`], so forged serials cannot make the
//!   client hammer WeChat).
//! - [`Verification::Switchover`]: both at once, picked by each answer's `Wechatpay-Serial`,
//!   for the days WeChat signs some callbacks each way.
//!
//! # Retries
//! A call is retried, with exponential back-off, only for errors that
//! [`Error::is_retryable`] accepts (transport failures, 5xx/429 without a V3 body,
//! `SYSTEM_ERROR`, `BANK_ERROR`, `FREQUENCY_LIMITED`), at most [`RetryPolicy::max_attempts`]
//! times, and always with the byte-identical body: same `out_trade_no`, same
//! `out_refund_no`, same everything. WeChat keys an order on `(mchid, out_trade_no)` and a
//! refund on `out_refund_no`: the same body again returns the same order or refund, never a
//! second one. Each attempt gets a fresh `Authorization` (timestamp and nonce) over those
//! same bytes, so a retry is never mistaken for a replay of the first attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::Error;
use crate::calls::bill::{
    DOWNLOAD_ENDPOINT, FUND_FLOW_BILL_ENDPOINT, MAX_BILL_BYTES, TRADE_BILL_ENDPOINT,
};
use crate::calls::{
    BillDownload, FundFlowBillRequest, OrderRef, PrepayRequest, PrepayResponse, Refund,
    RefundRequest, TradeBillRequest, Transaction, close_order, query_refund,
};
use crate::certificates::{PlatformCertificate, PlatformCertificates};
use crate::json::{malformed, parse_object};
use crate::keys::{ApiV3Key, MerchantPrivateKey, WechatPayPublicKey, normalize_serial};
use crate::notify::{Notify, PaymentNotify, RefundNotify, read_verified_notify};
use crate::pay_params::{AppPayParams, JsapiPayParams, app_pay_params, jsapi_pay_params};
use crate::verify::{DEFAULT_TIMESTAMP_WINDOW, SignedHeaders, VerifiedBy, Verifier};

mod refresh;
mod transport;

pub use wechatpay_v2::RetryPolicy;

/// The production API.
pub const PRODUCTION_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// How the client verifies WeChat's signatures.
#[derive(Debug, Clone)]
pub enum Verification {
    /// With the WeChat Pay public key only.
    PublicKey(WechatPayPublicKey),
    /// With platform certificates only: these (may be none) and those downloaded.
    PlatformCertificates(Vec<PlatformCertificate>),
    /// With both, during a switchover.
    Switchover {
        /// The WeChat Pay public key.
        public_key: WechatPayPublicKey,
        /// Platform certificates held from the start (more are downloaded).
        certificates: Vec<PlatformCertificate>,
    },
}

impl Verification {
    fn public_key(&self) -> Option<&WechatPayPublicKey> {
        match self {
            Verification::PublicKey(key)
            | Verification::Switchover {
                public_key: key, ..
            } => Some(key),
            Verification::PlatformCertificates(_) => None,
        }
    }
}

/// When platform certificates are downloaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateRefresh {
    /// Download again after this long.
    pub interval: Duration,
    /// Download again (at most once per `min_gap`) when every certificate held ends within
    /// this.
    pub before_expiry: Duration,
    /// The shortest pause between two downloads caused by an expiry or an unknown serial.
    pub min_gap: Duration,
}

impl Default for CertificateRefresh {
    fn default() -> Self {
        CertificateRefresh {
            interval: Duration::from_secs(12 * 3600),
            before_expiry: Duration::from_secs(24 * 3600),
            min_gap: Duration::from_secs(60),
        }
    }
}

/// Everything a [`Client`] needs. Build it with [`ClientConfig::new`] and change the public
/// fields for the rest.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API root: [`PRODUCTION_BASE_URL`], or a simulator such as `http://127.0.0.1:9000`.
    pub base_url: String,
    /// The appid orders are made for.
    pub app_id: String,
    /// The merchant id (digits).
    pub mch_id: String,
    /// The merchant certificate's serial number (hexadecimal), sent as `serial_no`.
    pub merchant_serial_no: String,
    /// The merchant private key, which signs requests and pay parameters.
    pub merchant_key: MerchantPrivateKey,
    /// The APIv3 key, which decrypts notifies and platform certificates.
    pub api_v3_key: ApiV3Key,
    /// How WeChat's signatures are verified.
    pub verification: Verification,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for one whole request (send and read).
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// How far a signature's timestamp may be from now (replays).
    pub timestamp_window: Duration,
    /// When platform certificates are downloaded again.
    pub certificate_refresh: CertificateRefresh,
    /// PEM certificates of authorities trusted besides the built-in web roots (a TLS
    /// simulator, a test proxy). WeChat's own gateway needs none.
    pub trusted_roots_pem: Option<Vec<u8>>,
}

impl ClientConfig {
    /// A configuration for the production API with the default timeouts (5 s connect, 10 s
    /// request), retries, replay window (5 minutes) and certificate refresh.
    pub fn new(
        app_id: impl Into<String>,
        mch_id: impl Into<String>,
        merchant_serial_no: impl Into<String>,
        merchant_key: MerchantPrivateKey,
        api_v3_key: ApiV3Key,
        verification: Verification,
    ) -> ClientConfig {
        ClientConfig {
            base_url: PRODUCTION_BASE_URL.to_owned(),
            app_id: app_id.into(),
            mch_id: mch_id.into(),
            merchant_serial_no: merchant_serial_no.into(),
            merchant_key,
            api_v3_key,
            verification,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW,
            certificate_refresh: CertificateRefresh::default(),
            trusted_roots_pem: None,
        }
    }
}

struct Inner {
    config: ClientConfig,
    /// `config.base_url` parsed, without a trailing `/`.
    base: reqwest::Url,
    http: reqwest::Client,
    verifier: Verifier,
    /// When platform certificates were last downloaded (or tried); the lock makes one
    /// download at a time.
    last_download: tokio::sync::Mutex<Option<Instant>>,
}

/// A WeChat Pay API v3 client for one merchant. Clones share connections, certificates and
/// the download schedule, and may be used from many tasks at once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url)
            .field("mch_id", &self.inner.config.mch_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Fails, naming the setting, when the appid, mchid, serial or base URL
    /// is unusable.
    pub fn new(mut config: ClientConfig) -> Result<Client, Error> {
        let config_error = |what: &str| Error::Config(what.to_owned());
        if config.app_id.trim().is_empty() {
            return Err(config_error("app_id is empty"));
        }
        if config.mch_id.is_empty() || !config.mch_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(config_error("mch_id must be the merchant id's digits"));
        }
        config.merchant_serial_no =
            normalize_serial("merchant_serial_no", &config.merchant_serial_no)?;
        let base_text = config.base_url.trim_end_matches('/');
        let base = reqwest::Url::parse(base_text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.query().is_none())
            .ok_or_else(|| {
                config_error("base_url must be an http:// or https:// URL without query")
            })?;
        let http = transport::http_client(&config)?;
        let window = config.timestamp_window;
        let verifier = match &config.verification {
            Verification::PublicKey(key) => Verifier::public_key(key.clone()),
            Verification::PlatformCertificates(certificates) => Verifier::platform_certificates(
                Arc::new(PlatformCertificates::with(certificates.iter().cloned())),
            ),
            Verification::Switchover {
                public_key,
                certificates,
            } => Verifier::both(
                public_key.clone(),
                Arc::new(PlatformCertificates::with(certificates.iter().cloned())),
            ),
        }
        .with_window(window);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                base,
                http,
                verifier,
                last_download: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The verifier holding the keys this client trusts (its certificate store is the
    /// client's, kept fresh by it).
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// Prepay: creates the order (JSAPI, APP, H5 or NATIVE). See the module docs on why
    /// retrying it is safe.
    pub async fn prepay(&self, request: &PrepayRequest) -> Result<PrepayResponse, Error> {
        let config = &self.inner.config;
        let call = request.call(&config.app_id, &config.mch_id)?;
        let answer = self.execute(&call).await?;
        PrepayResponse::try_from(parse_object(&answer.body, call.endpoint)?)?
            .ensure_requested(&request.kind)
    }

    /// Queries an order, and checks that the answer is about this merchant and appid.
    pub async fn query_order(&self, order: &OrderRef) -> Result<Transaction, Error> {
        let call = order.call(&self.inner.config.mch_id)?;
        let answer = self.execute(&call).await?;
        let transaction = Transaction::try_from(parse_object(&answer.body, call.endpoint)?)?;
        self.ensure_own(call.endpoint, &transaction)?;
        let other_order = match order {
            OrderRef::OutTradeNo(no) => Some(no) != Some(&transaction.out_trade_no),
            OrderRef::TransactionId(id) => Some(id) != transaction.transaction_id.as_ref(),
        };
        if other_order {
            return Err(malformed(
                call.endpoint,
                "the answer is about another order",
            ));
        }
        Ok(transaction)
    }

    fn ensure_own(&self, context: &'static str, transaction: &Transaction) -> Result<(), Error> {
        let config = &self.inner.config;
        for (field, got, expected) in [
            ("mchid", &transaction.mchid, &config.mch_id),
            ("appid", &transaction.appid, &config.app_id),
        ] {
            if got != expected {
                return Err(malformed(
                    context,
                    format!("`{field}` is `{got}`, expected `{expected}`"),
                ));
            }
        }
        Ok(())
    }

    /// Closes an unpaid order (204). Query first: a paid order cannot be closed.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), Error> {
        let call = close_order::call(out_trade_no, &self.inner.config.mch_id)?;
        let answer = self.execute(&call).await?;
        close_order::read_answer(answer.status, &answer.body)
    }

    /// Asks for a refund (keyed on `out_refund_no`; see the module docs on retries).
    pub async fn refund(&self, request: &RefundRequest) -> Result<Refund, Error> {
        let call = request.call()?;
        let answer = self.execute(&call).await?;
        let refund = Refund::try_from(parse_object(&answer.body, call.endpoint)?)?;
        if refund.out_refund_no != request.out_refund_no {
            return Err(malformed(
                call.endpoint,
                "the answer is about another refund",
            ));
        }
        Ok(refund)
    }

    /// Queries a refund by the merchant's refund number.
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, Error> {
        let call = query_refund::call(out_refund_no)?;
        let answer = self.execute(&call).await?;
        let refund = Refund::read(parse_object(&answer.body, call.endpoint)?, call.endpoint)?;
        if refund.out_refund_no != out_refund_no {
            return Err(malformed(
                call.endpoint,
                "the answer is about another refund",
            ));
        }
        Ok(refund)
    }

    /// Where a day's trade bill is, and its SHA1.
    pub async fn trade_bill(&self, request: &TradeBillRequest) -> Result<BillDownload, Error> {
        let call = request.call();
        let answer = self.execute(&call).await?;
        BillDownload::read(
            parse_object(&answer.body, TRADE_BILL_ENDPOINT)?,
            TRADE_BILL_ENDPOINT,
            request.gzip,
        )
    }

    /// Where a day's fund-flow bill is, and its SHA1.
    pub async fn fund_flow_bill(
        &self,
        request: &FundFlowBillRequest,
    ) -> Result<BillDownload, Error> {
        let call = request.call();
        let answer = self.execute(&call).await?;
        BillDownload::read(
            parse_object(&answer.body, FUND_FLOW_BILL_ENDPOINT)?,
            FUND_FLOW_BILL_ENDPOINT,
            request.gzip,
        )
    }

    /// Downloads a bill with a signed GET, checks its SHA1 and returns its text
    /// (decompressed when GZIP). The URL must lie under the client's API root: the signed
    /// request goes nowhere else.
    pub async fn download_bill(&self, download: &BillDownload) -> Result<String, Error> {
        let file = self.download_file(&download.download_url).await?;
        download.open(&file)
    }

    /// A day's trade bill: its URL, the signed download, the SHA1 check, GZIP.
    pub async fn download_trade_bill(&self, request: &TradeBillRequest) -> Result<String, Error> {
        let download = self.trade_bill(request).await?;
        self.download_bill(&download).await
    }

    /// A day's fund-flow bill: its URL, the signed download, the SHA1 check, GZIP.
    pub async fn download_fund_flow_bill(
        &self,
        request: &FundFlowBillRequest,
    ) -> Result<String, Error> {
        let download = self.fund_flow_bill(request).await?;
        self.download_bill(&download).await
    }

    async fn download_file(&self, download_url: &str) -> Result<Vec<u8>, Error> {
        let url = reqwest::Url::parse(download_url)
            .map_err(|_| malformed(DOWNLOAD_ENDPOINT, "`download_url` is not a URL"))?;
        let base = &self.inner.base;
        let base_path = base.path().trim_end_matches('/');
        if url.origin() != base.origin()
            || !url.path().starts_with(&format!("{base_path}/"))
            || url.fragment().is_some()
        {
            return Err(malformed(
                DOWNLOAD_ENDPOINT,
                "`download_url` is not under the configured API root",
            ));
        }
        let answer = self
            .execute_unsigned(DOWNLOAD_ENDPOINT, url, MAX_BILL_BYTES as usize)
            .await?;
        Ok(answer.body)
    }

    /// Verifies a signed body received from WeChat (a notify), downloading platform
    /// certificates first when they are due or when the serial is not held.
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<VerifiedBy, Error> {
        self.verify_signed(crate::notify::NOTIFY, headers, body)
            .await
    }

    /// Verifies, reads and decrypts a notify (see [`crate::notify`]).
    pub async fn open_notify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Notify, Error> {
        let verified_by = self.verify(headers, body).await?;
        read_verified_notify(&self.inner.config.api_v3_key, body, verified_by)
    }

    /// A payment notify, verified and decrypted. Comparing it with the stored order stays
    /// the caller's.
    pub async fn parse_payment_notify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<PaymentNotify, Error> {
        self.open_notify(headers, body).await?.into_payment()
    }

    /// A refund notify, verified and decrypted.
    pub async fn parse_refund_notify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<RefundNotify, Error> {
        self.open_notify(headers, body).await?.into_refund()
    }

    /// JSAPI pay parameters for a prepay id, signed now with a fresh nonce.
    pub fn jsapi_pay_params(&self, prepay_id: &str) -> Result<JsapiPayParams, Error> {
        let config = &self.inner.config;
        Ok(jsapi_pay_params(
            &config.app_id,
            prepay_id,
            &config.merchant_key,
            &wechatpay_v2::time::unix_seconds_now(),
            &wechatpay_v2::nonce_str(),
        )?)
    }

    /// APP pay parameters for a prepay id (the appid must be the open-platform one).
    pub fn app_pay_params(&self, prepay_id: &str) -> Result<AppPayParams, Error> {
        let config = &self.inner.config;
        Ok(app_pay_params(
            &config.app_id,
            &config.mch_id,
            prepay_id,
            &config.merchant_key,
            &wechatpay_v2::time::unix_seconds_now(),
            &wechatpay_v2::nonce_str(),
        )?)
    }

    /// Reads the signature headers of an answer or notify.
    fn signed_headers(context: &'static str, headers: &HeaderMap) -> Result<SignedHeaders, Error> {
        SignedHeaders::from_headers(headers)
            .map_err(|source| Error::InvalidSignature { context, source })
    }
}
