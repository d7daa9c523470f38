//! The HTTP client for the merchant API: one [`Client`] per merchant, its configuration, and
//! one method per call.
//!
//! What each call sends and reads lives in [`crate::calls`] (one module per call, its request
//! and response types together); how a call travels (signing, HTTP, retries, the checks every
//! answer passes) in `transport`; the merchant certificate in [`ClientIdentity`]. A method
//! here validates the request, sends it, and reads the checked answer with the response's
//! `TryFrom<Params>`.
//!
//! # Retries
//! A call is retried, with exponential back-off, only for errors that [`Error::is_retryable`]
//! accepts (transport failures, 5xx/429, `SYSTEMERROR`, `BIZERR_NEED_RETRY`,
//! `INVALID_REQ_TOO_MUCH`, `FREQUENCY_LIMITED`), at most [`RetryPolicy::max_attempts`] times,
//! and always by re-sending the byte-identical body (same nonce, same signature).
//!
//! That last rule is what makes retrying `unifiedorder` safe: WeChat keys an order on
//! `(mch_id, out_trade_no)`. The same `out_trade_no` with the same parameters returns the
//! same prepay order; with different parameters it fails with `OUT_TRADE_NO_USED` (never
//! retried). A retry therefore cannot create a second order, and an order can be paid only
//! once, so no retry can charge twice. Refunds are keyed on `out_refund_no` the same way.
//! `USERPAYING` is not retried here: it calls for querying later, which is the caller's
//! schedule, not a tight loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::bill::Bill;
use crate::calls::download_bill::BillEncoding;
use crate::calls::{
    CloseOrderResponse, OrderQueryResponse, OrderRef, RefundQueryResponse, RefundRef,
    RefundRequest, RefundResponse, UnifiedOrderRequest, UnifiedOrderResponse, close_order,
    download_bill, order_query, refund, refund_query, unified_order,
};
use crate::pay_params::{AppPayParams, JsapiPayParams, app_pay_params, jsapi_pay_params};
use crate::types::BillType;
use crate::{ApiKey, Error, SignType, nonce_str};

mod identity;
mod transport;

pub use identity::ClientIdentity;
use transport::HttpClients;

/// The production API.
pub const PRODUCTION_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// Whether a gateway at `base_url` is reached over TLS, and so can ask for the merchant
/// certificate on `/secapi/` calls. Over plain HTTP (a simulator on loopback: WeChat itself
/// is HTTPS only) there is no TLS to present one in. The one rule for the client's
/// transport and for callers deciding whether a certificate is required.
pub fn base_url_uses_tls(base_url: &str) -> bool {
    base_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Pause before the first retry; doubled each time.
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Everything a [`Client`] needs. Start from `ClientConfig { .., ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API root: [`PRODUCTION_BASE_URL`], or a simulator such as `http://127.0.0.1:9000`.
    pub base_url: String,
    /// The appid orders are made for.
    pub app_id: String,
    /// The merchant id.
    pub mch_id: String,
    /// The merchant API key.
    pub api_key: ApiKey,
    /// The algorithm requests are signed with.
    pub sign_type: SignType,
    /// Use WeChat's sandbox: paths under `/xdc/apiv2sandbox`, requests signed with the
    /// sandbox key fetched (once) from `/xdc/apiv2getsignkey/sign/getsignkey`.
    pub sandbox: bool,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for one whole request (send and read).
    pub request_timeout: Duration,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// The merchant certificate, needed by `refund`.
    pub identity: Option<ClientIdentity>,
    /// PEM certificates of authorities trusted besides the built-in web roots: for a
    /// gateway whose server certificate a private CA issued (a TLS simulator, a test
    /// proxy). WeChat's own gateway needs none.
    pub trusted_roots_pem: Option<Vec<u8>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: PRODUCTION_BASE_URL.to_owned(),
            app_id: String::new(),
            mch_id: String::new(),
            api_key: ApiKey::new(""),
            sign_type: SignType::Md5,
            sandbox: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            identity: None,
            trusted_roots_pem: None,
        }
    }
}

struct Inner {
    config: ClientConfig,
    /// `config.base_url` without a trailing `/`.
    base_url: String,
    http: HttpClients,
    sandbox_key: OnceCell<ApiKey>,
}

/// A WeChat Pay V2 client for one merchant. Cheap to clone; clones share connections and the
/// cached sandbox key, and may be used concurrently.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("app_id", &self.inner.config.app_id)
            .field("mch_id", &self.inner.config.mch_id)
            .field("sandbox", &self.inner.config.sandbox)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Fails when a required setting is empty or the certificate is
    /// unusable.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let config_error = |what: &str| Error::Config(what.to_owned());
        if config.app_id.is_empty() {
            return Err(config_error("app_id is empty"));
        }
        if config.mch_id.is_empty() {
            return Err(config_error("mch_id is empty"));
        }
        if config.api_key.expose_secret().is_empty() {
            return Err(config_error("api_key is empty"));
        }
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(config_error("base_url must start with http:// or https://"));
        }
        let http = HttpClients::new(&config)?;
        Ok(Client {
            inner: Arc::new(Inner {
                base_url,
                config,
                http,
                sandbox_key: OnceCell::new(),
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The sandbox signing key, fetched once from `/xdc/apiv2getsignkey/sign/getsignkey`
    /// (signed with the real key, MD5) and cached for the life of the client and its clones.
    pub async fn sandbox_sign_key(&self) -> Result<ApiKey, Error> {
        self.inner
            .sandbox_key
            .get_or_try_init(|| self.fetch_sandbox_key())
            .await
            .cloned()
    }

    /// `unifiedorder`: creates the prepay order. See the module docs on why retrying it is
    /// safe.
    pub async fn unified_order(
        &self,
        request: &UnifiedOrderRequest,
    ) -> Result<UnifiedOrderResponse, Error> {
        let params = request.to_params()?;
        let answer = self.call(unified_order::ENDPOINT, params).await?;
        UnifiedOrderResponse::try_from(answer)?.ensure_requested(&request.kind)
    }

    /// `orderquery`: the state of an order.
    pub async fn order_query(&self, order: &OrderRef) -> Result<OrderQueryResponse, Error> {
        let params = order.to_params()?;
        self.call(order_query::ENDPOINT, params).await?.try_into()
    }

    /// `closeorder`: closes an unpaid order. Query first: a paid order answers `ORDERPAID`.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<CloseOrderResponse, Error> {
        let params = close_order::request(out_trade_no)?;
        self.call(close_order::ENDPOINT, params).await?.try_into()
    }

    /// `refund` (`/secapi/pay/refund`, with the merchant certificate outside the sandbox).
    pub async fn refund(&self, request: &RefundRequest) -> Result<RefundResponse, Error> {
        let params = request.to_params()?;
        self.call(refund::ENDPOINT, params).await?.try_into()
    }

    /// `refundquery`.
    pub async fn refund_query(&self, refund: &RefundRef) -> Result<RefundQueryResponse, Error> {
        let params = refund.to_params()?;
        self.call(refund_query::ENDPOINT, params).await?.try_into()
    }

    /// `downloadbill`: the daily bill as plain text (CSV-like, backquote-prefixed values).
    /// `bill_date` is `yyyyMMdd`. An XML answer is an error: a day without a bill is
    /// [`Error::Business`] with code `20002` ("No Bill Exist"), never an empty text.
    pub async fn download_bill(
        &self,
        bill_date: &str,
        bill_type: BillType,
    ) -> Result<String, Error> {
        self.download_bill_as(bill_date, bill_type, BillEncoding::Plain)
            .await
    }

    /// `downloadbill` with `tar_type=GZIP`: the daily bill compressed on the wire, returned
    /// decoded. Errors as [`Client::download_bill`].
    pub async fn download_bill_gzip(
        &self,
        bill_date: &str,
        bill_type: BillType,
    ) -> Result<String, Error> {
        self.download_bill_as(bill_date, bill_type, BillEncoding::Gzip)
            .await
    }

    /// The daily bill, downloaded as GZIP and parsed ([`crate::bill::parse`]): every line
    /// typed and the summary checked. A text that is not a bill is [`Error::Bill`] naming the
    /// line and field; a bill of another type than asked for is [`Error::Malformed`]. A day
    /// without a bill stays the error [`Client::download_bill`] describes.
    pub async fn bill(&self, bill_date: &str, bill_type: BillType) -> Result<Bill, Error> {
        let text = self.download_bill_gzip(bill_date, bill_type).await?;
        let bill = Bill::parse(&text)?;
        if bill.bill_type != bill_type {
            return Err(Error::Malformed {
                context: download_bill::ENDPOINT.path,
                reason: format!(
                    "a {} bill was asked for and a {} bill came",
                    bill_type, bill.bill_type
                ),
            });
        }
        Ok(bill)
    }

    async fn download_bill_as(
        &self,
        bill_date: &str,
        bill_type: BillType,
        encoding: BillEncoding,
    ) -> Result<String, Error> {
        let params = download_bill::request(bill_date, bill_type, encoding)?;
        self.send(download_bill::ENDPOINT, params, move |bytes, _key| {
            download_bill::read_answer(bytes, encoding)
        })
        .await
    }

    /// JSAPI pay parameters for a prepay id, signed with this client's algorithm and key,
    /// with the current time and a fresh nonce.
    pub async fn jsapi_pay_params(&self, prepay_id: &str) -> Result<JsapiPayParams, Error> {
        let key = self.signing_key().await?;
        let config = &self.inner.config;
        Ok(jsapi_pay_params(
            &config.app_id,
            prepay_id,
            config.sign_type,
            &key,
            &crate::time::unix_seconds_now(),
            &nonce_str(),
        ))
    }

    /// APP pay parameters for a prepay id (appid must be the open-platform one).
    pub async fn app_pay_params(&self, prepay_id: &str) -> Result<AppPayParams, Error> {
        let key = self.signing_key().await?;
        let config = &self.inner.config;
        Ok(app_pay_params(
            &config.app_id,
            &config.mch_id,
            prepay_id,
            config.sign_type,
            &key,
            &crate::time::unix_seconds_now(),
            &nonce_str(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_https_gateway_asks_for_the_certificate() {
        assert!(base_url_uses_tls("https://api.mch.weixin.qq.com"));
        assert!(base_url_uses_tls("HTTPS://api.mch.weixin.qq.com"));
        assert!(!base_url_uses_tls("http://127.0.0.1:9000"));
        assert!(!base_url_uses_tls("http"));
    }
}
