//! The HTTP client for the merchant API: typed requests validated before sending, responses
//! checked (return_code, signature, result_code) before they are trusted.
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

use crate::error::{RetryAdvice, TransportError};
use crate::fields::Fields;
use crate::types::{BillType, RefundStatus, TradeState, TradeType};
use crate::{ApiKey, ErrCode, Error, Fen, Params, SignType, nonce_str, sign, verify, xml};

/// The production API.
pub const PRODUCTION_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// The cap on a response body (daily bills can be large; XML answers never are).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// The merchant client certificate that `refund` requires.
#[derive(Clone)]
pub struct ClientIdentity {
    pem: Vec<u8>,
}

impl ClientIdentity {
    /// From the PEM certificate (`apiclient_cert.pem`) and PEM private key
    /// (`apiclient_key.pem`) WeChat issues. For the `.p12` bundle see
    /// [`ClientIdentity::from_pkcs12`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Self {
        let mut pem = cert_pem.to_vec();
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(key_pem);
        ClientIdentity { pem }
    }

    /// From one PEM text holding both the certificate and the private key.
    pub fn from_pem_bundle(pem: &[u8]) -> Self {
        ClientIdentity { pem: pem.to_vec() }
    }

    /// From the PKCS#12 bundle WeChat issues (`apiclient_cert.p12`, password = the mch_id
    /// unless changed). reqwest reads PKCS#12 only with native-tls, so the bundle is opened
    /// with the `p12-keystore` crate (legacy RC2/3DES and modern AES bundles alike) and
    /// handed to rustls as PEM. The password is used once and not kept.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            Error::Config(format!(
                "merchant certificate: cannot open the PKCS#12 bundle (wrong password or not PKCS#12): {e}"
            ))
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            Error::Config("merchant certificate: the PKCS#12 bundle holds no private key with its certificate".into())
        })?;
        let mut pem = String::new();
        for cert in chain.certs() {
            push_pem(&mut pem, "CERTIFICATE", cert.as_der());
        }
        push_pem(&mut pem, "PRIVATE KEY", chain.key().as_der());
        Ok(ClientIdentity {
            pem: pem.into_bytes(),
        })
    }
}

fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(***)")
    }
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
    /// Use WeChat's sandbox: paths under `/sandboxnew`, requests signed with the sandbox key
    /// fetched (once) from `/sandboxnew/pay/getsignkey`.
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
    base_url: String,
    http: reqwest::Client,
    http_with_identity: Option<reqwest::Client>,
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

/// How a call may be sent.
#[derive(Clone, Copy)]
struct CallSpec {
    path: &'static str,
    needs_identity: bool,
    /// Response carries `appid`/`mch_id` and a signature.
    signed_response: bool,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidRequest {
        field,
        reason: reason.into(),
    }
}

fn require_non_empty(field: &'static str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn check_max_len(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        Err(invalid(field, format!("longer than {max} characters")))
    } else {
        Ok(())
    }
}

/// `out_trade_no` / `out_refund_no`: digits, letters and `_-|*`, at most `max` long.
fn check_merchant_no(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    require_non_empty(field, value)?;
    check_max_len(field, value, max)?;
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-|*".contains(*c)))
    {
        return Err(invalid(
            field,
            format!("character {bad:?} not allowed (digits, letters and _-|* only)"),
        ));
    }
    Ok(())
}

fn check_time(field: &'static str, value: &Option<String>) -> Result<(), Error> {
    if let Some(time) = value
        && (time.len() != 14 || !time.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(field, "must be yyyyMMddHHmmss (Beijing time)"));
    }
    Ok(())
}

fn positive(field: &'static str, fen: Fen) -> Result<Fen, Error> {
    fen.ensure_positive()
        .map_err(|source| Error::Amount { field, source })
}

fn insert_opt(params: &mut Params, key: &str, value: &Option<String>) {
    if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
        params.insert(key.to_owned(), value.clone());
    }
}

/// What is bought, and how. Each trade type carries the field it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeKind {
    /// In WeChat (official account page or mini program): the buyer's `openid` for this appid.
    Jsapi {
        /// The buyer's openid.
        openid: String,
    },
    /// QR code: the merchant's product id. Answered with `code_url`.
    Native {
        /// The product id.
        product_id: String,
    },
    /// H5 in a mobile browser: the `scene_info` JSON. Answered with `mweb_url`.
    Mweb {
        /// `scene_info` JSON, e.g. `{"h5_info":{"type":"Wap","wap_url":"…","wap_name":"…"}}`.
        scene_info: String,
    },
    /// Native app (the client must be configured with the open-platform appid).
    App,
}

impl TradeKind {
    /// The `trade_type` value.
    pub fn trade_type(&self) -> TradeType {
        match self {
            TradeKind::Jsapi { .. } => TradeType::Jsapi,
            TradeKind::Native { .. } => TradeType::Native,
            TradeKind::Mweb { .. } => TradeType::Mweb,
            TradeKind::App => TradeType::App,
        }
    }
}

/// A `unifiedorder` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderRequest {
    /// Trade type and the field it requires.
    pub kind: TradeKind,
    /// What is bought, shown to the buyer (≤ 128 characters).
    pub body: String,
    /// The merchant's order number (≤ 32 of digits, letters, `_-|*`).
    pub out_trade_no: String,
    /// The amount; must be positive.
    pub total_fee: Fen,
    /// The buyer's IP address.
    pub spbill_create_ip: String,
    /// Where the payment notify goes (http or https URL without query).
    pub notify_url: String,
    /// Goods detail JSON.
    pub detail: Option<String>,
    /// Merchant data echoed in queries and notifies (≤ 127 characters).
    pub attach: Option<String>,
    /// Device or shop id.
    pub device_info: Option<String>,
    /// Currency; WeChat defaults to CNY.
    pub fee_type: Option<String>,
    /// Order creation time, `yyyyMMddHHmmss` Beijing time.
    pub time_start: Option<String>,
    /// Order expiry time, `yyyyMMddHHmmss` Beijing time.
    pub time_expire: Option<String>,
    /// Coupon tag.
    pub goods_tag: Option<String>,
    /// `no_credit` to refuse credit cards.
    pub limit_pay: Option<String>,
    /// Further fields sent as they are (signed like the others).
    pub extra: Params,
}

impl UnifiedOrderRequest {
    /// A request with the required fields; the optional ones are `None`.
    pub fn new(
        kind: TradeKind,
        body: impl Into<String>,
        out_trade_no: impl Into<String>,
        total_fee: Fen,
        spbill_create_ip: impl Into<String>,
        notify_url: impl Into<String>,
    ) -> Self {
        UnifiedOrderRequest {
            kind,
            body: body.into(),
            out_trade_no: out_trade_no.into(),
            total_fee,
            spbill_create_ip: spbill_create_ip.into(),
            notify_url: notify_url.into(),
            detail: None,
            attach: None,
            device_info: None,
            fee_type: None,
            time_start: None,
            time_expire: None,
            goods_tag: None,
            limit_pay: None,
            extra: Params::new(),
        }
    }

    /// Checks every field and builds the parameters (without appid, mch_id, nonce, sign).
    pub fn to_params(&self) -> Result<Params, Error> {
        require_non_empty("body", &self.body)?;
        check_max_len("body", &self.body, 128)?;
        check_merchant_no("out_trade_no", &self.out_trade_no, 32)?;
        let total_fee = positive("total_fee", self.total_fee)?;
        require_non_empty("spbill_create_ip", &self.spbill_create_ip)?;
        require_non_empty("notify_url", &self.notify_url)?;
        if !(self.notify_url.starts_with("http://") || self.notify_url.starts_with("https://")) {
            return Err(invalid("notify_url", "must be an http:// or https:// URL"));
        }
        if self.notify_url.contains('?') {
            return Err(invalid("notify_url", "must not carry query parameters"));
        }
        if let Some(attach) = &self.attach {
            check_max_len("attach", attach, 127)?;
        }
        check_time("time_start", &self.time_start)?;
        check_time("time_expire", &self.time_expire)?;

        let mut params = Params::new();
        params.insert("body".into(), self.body.clone());
        params.insert("out_trade_no".into(), self.out_trade_no.clone());
        params.insert("total_fee".into(), total_fee.to_fen_string());
        params.insert("spbill_create_ip".into(), self.spbill_create_ip.clone());
        params.insert("notify_url".into(), self.notify_url.clone());
        params.insert("trade_type".into(), self.kind.trade_type().as_str().into());
        match &self.kind {
            TradeKind::Jsapi { openid } => {
                require_non_empty("openid", openid)?;
                params.insert("openid".into(), openid.clone());
            }
            TradeKind::Native { product_id } => {
                require_non_empty("product_id", product_id)?;
                check_max_len("product_id", product_id, 32)?;
                params.insert("product_id".into(), product_id.clone());
            }
            TradeKind::Mweb { scene_info } => {
                require_non_empty("scene_info", scene_info)?;
                serde_json::from_str::<serde_json::Value>(scene_info)
                    .map_err(|e| invalid("scene_info", format!("not JSON: {e}")))?;
                params.insert("scene_info".into(), scene_info.clone());
            }
            TradeKind::App => {}
        }
        insert_opt(&mut params, "detail", &self.detail);
        insert_opt(&mut params, "attach", &self.attach);
        insert_opt(&mut params, "device_info", &self.device_info);
        insert_opt(&mut params, "fee_type", &self.fee_type);
        insert_opt(&mut params, "time_start", &self.time_start);
        insert_opt(&mut params, "time_expire", &self.time_expire);
        insert_opt(&mut params, "goods_tag", &self.goods_tag);
        insert_opt(&mut params, "limit_pay", &self.limit_pay);
        for (key, value) in &self.extra {
            if matches!(
                key.as_str(),
                "sign" | "sign_type" | "appid" | "mch_id" | "nonce_str"
            ) {
                return Err(invalid("extra", format!("`{key}` is set by the client")));
            }
            params.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Ok(params)
    }
}

/// The answer to `unifiedorder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderResponse {
    /// The trade type WeChat confirmed.
    pub trade_type: TradeType,
    /// The prepay id (valid for 2 hours).
    pub prepay_id: String,
    /// NATIVE: the URL to show as a QR code.
    pub code_url: Option<String>,
    /// MWEB: the URL to send the buyer's browser to.
    pub mweb_url: Option<String>,
    /// Every field received.
    pub raw: Params,
}

/// Which order: by the merchant's number or WeChat's transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// The merchant's `out_trade_no`.
    OutTradeNo(String),
    /// WeChat's `transaction_id`.
    TransactionId(String),
}

impl OrderRef {
    fn insert_into(&self, params: &mut Params) -> Result<(), Error> {
        match self {
            OrderRef::OutTradeNo(no) => {
                check_merchant_no("out_trade_no", no, 32)?;
                params.insert("out_trade_no".into(), no.clone());
            }
            OrderRef::TransactionId(id) => {
                require_non_empty("transaction_id", id)?;
                params.insert("transaction_id".into(), id.clone());
            }
        }
        Ok(())
    }
}

/// The answer to `orderquery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQueryResponse {
    /// The state of the order.
    pub trade_state: TradeState,
    /// WeChat's description of the state.
    pub trade_state_desc: Option<String>,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id (once paid).
    pub transaction_id: Option<String>,
    /// The order amount (present once paid; WeChat omits it for some unpaid states).
    pub total_fee: Option<Fen>,
    /// Cash paid.
    pub cash_fee: Option<Fen>,
    /// The buyer's openid.
    pub openid: Option<String>,
    /// How the buyer paid.
    pub trade_type: Option<TradeType>,
    /// Payment time `yyyyMMddHHmmss`.
    pub time_end: Option<String>,
    /// The merchant's `attach`.
    pub attach: Option<String>,
    /// Every field received.
    pub raw: Params,
}

/// A `refund` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The paid order.
    pub order: OrderRef,
    /// The merchant's refund number (≤ 64 of digits, letters, `_-|*`); retries reuse it.
    pub out_refund_no: String,
    /// The order's total amount.
    pub total_fee: Fen,
    /// The amount to refund (positive, at most `total_fee`).
    pub refund_fee: Fen,
    /// Reason shown to the buyer.
    pub refund_desc: Option<String>,
    /// Where the refund notify goes.
    pub notify_url: Option<String>,
}

/// The answer to `refund` (accepted; the outcome comes by notify or `refundquery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse {
    /// WeChat's refund id.
    pub refund_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The refunded amount.
    pub refund_fee: Fen,
    /// The order amount.
    pub total_fee: Fen,
    /// Every field received.
    pub raw: Params,
}

/// Which refunds `refundquery` asks about; WeChat uses the first of these in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRef {
    /// WeChat's refund id.
    RefundId(String),
    /// The merchant's refund number.
    OutRefundNo(String),
    /// All refunds of a transaction.
    TransactionId(String),
    /// All refunds of an order.
    OutTradeNo(String),
}

/// One refund in a `refundquery` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// The amount.
    pub refund_fee: Fen,
    /// The state.
    pub refund_status: RefundStatus,
    /// When it succeeded.
    pub refund_success_time: Option<String>,
    /// Where the money went.
    pub refund_recv_account: Option<String>,
}

/// The answer to `refundquery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryResponse {
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The order amount.
    pub total_fee: Fen,
    /// The refunds, `_0` first.
    pub refunds: Vec<RefundRecord>,
    /// Every field received.
    pub raw: Params,
}

/// Parameters for `wx.chooseWXPay` / `WeixinJSBridge.invoke('getBrandWCPayRequest')`.
/// Serialises with the exact key names the JS API expects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JsapiPayParams {
    /// `appId`.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// `timeStamp` (capital S), seconds.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// `nonceStr`.
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    /// `package`: `prepay_id=…`.
    pub package: String,
    /// `signType`.
    #[serde(rename = "signType")]
    pub sign_type: SignType,
    /// `paySign`.
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

/// Builds JSAPI pay parameters with a given timestamp and nonce (deterministic; see
/// [`Client::jsapi_pay_params`] for the everyday form).
pub fn jsapi_pay_params(
    app_id: &str,
    prepay_id: &str,
    sign_type: SignType,
    api_key: &ApiKey,
    time_stamp: &str,
    nonce: &str,
) -> JsapiPayParams {
    let package = format!("prepay_id={prepay_id}");
    let mut params = Params::new();
    params.insert("appId".into(), app_id.into());
    params.insert("timeStamp".into(), time_stamp.into());
    params.insert("nonceStr".into(), nonce.into());
    params.insert("package".into(), package.clone());
    params.insert("signType".into(), sign_type.as_str().into());
    JsapiPayParams {
        app_id: app_id.into(),
        time_stamp: time_stamp.into(),
        nonce_str: nonce.into(),
        package,
        sign_type,
        pay_sign: sign(&params, sign_type, api_key),
    }
}

/// Parameters for the APP SDK's `PayReq`. Serialises with the exact key names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppPayParams {
    /// `appid` (open-platform).
    pub appid: String,
    /// `partnerid`: the mch_id.
    pub partnerid: String,
    /// `prepayid`.
    pub prepayid: String,
    /// `package`: always `Sign=WXPay`.
    pub package: String,
    /// `noncestr`.
    pub noncestr: String,
    /// `timestamp`, seconds.
    pub timestamp: String,
    /// `sign`.
    pub sign: String,
}

/// Builds APP pay parameters with a given timestamp and nonce.
pub fn app_pay_params(
    app_id: &str,
    mch_id: &str,
    prepay_id: &str,
    sign_type: SignType,
    api_key: &ApiKey,
    timestamp: &str,
    nonce: &str,
) -> AppPayParams {
    let mut params = Params::new();
    params.insert("appid".into(), app_id.into());
    params.insert("partnerid".into(), mch_id.into());
    params.insert("prepayid".into(), prepay_id.into());
    params.insert("package".into(), "Sign=WXPay".into());
    params.insert("noncestr".into(), nonce.into());
    params.insert("timestamp".into(), timestamp.into());
    AppPayParams {
        sign: sign(&params, sign_type, api_key),
        appid: app_id.into(),
        partnerid: mch_id.into(),
        prepayid: prepay_id.into(),
        package: "Sign=WXPay".into(),
        noncestr: nonce.into(),
        timestamp: timestamp.into(),
    }
}

fn unix_seconds() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string()
}

fn transport(url: &str, error: reqwest::Error) -> Error {
    let url = url.to_owned();
    Error::Transport(if error.is_timeout() {
        TransportError::Timeout { url }
    } else if error.is_connect() {
        TransportError::Connect { url, source: error }
    } else {
        TransportError::Http { url, source: error }
    })
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
        let trusted_roots = match &config.trusted_roots_pem {
            Some(pem) => {
                let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    config_error(&format!("trusted_roots_pem is not usable PEM: {e}"))
                })?;
                if roots.is_empty() {
                    return Err(config_error("trusted_roots_pem holds no certificate"));
                }
                roots
            }
            None => Vec::new(),
        };
        let builder = || {
            trusted_roots.iter().cloned().fold(
                reqwest::Client::builder()
                    .connect_timeout(config.connect_timeout)
                    .timeout(config.request_timeout)
                    .user_agent(concat!("wechatpay-v2/", env!("CARGO_PKG_VERSION"))),
                reqwest::ClientBuilder::add_root_certificate,
            )
        };
        let http = builder()
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let http_with_identity = match &config.identity {
            Some(identity) => {
                let identity = reqwest::Identity::from_pem(&identity.pem).map_err(|e| {
                    Error::Config(format!("merchant certificate is not usable PEM: {e}"))
                })?;
                Some(
                    builder()
                        .identity(identity)
                        .build()
                        .map_err(|e| Error::Config(format!("HTTP client with certificate: {e}")))?,
                )
            }
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base_url,
                config,
                http,
                http_with_identity,
                sandbox_key: OnceCell::new(),
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn url(&self, path: &str) -> String {
        if self.inner.config.sandbox {
            format!("{}/sandboxnew{path}", self.inner.base_url)
        } else {
            format!("{}{path}", self.inner.base_url)
        }
    }

    /// The key requests are signed with: the API key, or in sandbox mode the sandbox key.
    async fn signing_key(&self) -> Result<ApiKey, Error> {
        if self.inner.config.sandbox {
            self.sandbox_sign_key().await
        } else {
            Ok(self.inner.config.api_key.clone())
        }
    }

    /// The sandbox signing key, fetched once from `/sandboxnew/pay/getsignkey` (signed with
    /// the real key, MD5) and cached for the life of the client and its clones.
    pub async fn sandbox_sign_key(&self) -> Result<ApiKey, Error> {
        self.inner
            .sandbox_key
            .get_or_try_init(|| async {
                let mut params = Params::new();
                params.insert("mch_id".into(), self.inner.config.mch_id.clone());
                params.insert("nonce_str".into(), nonce_str());
                let signature = sign(&params, SignType::Md5, &self.inner.config.api_key);
                params.insert("sign".into(), signature);
                let url = format!("{}/sandboxnew/pay/getsignkey", self.inner.base_url);
                let body = xml::encode(&params);
                const PATH: &str = "/sandboxnew/pay/getsignkey";
                let bytes = self
                    .with_retries(|| self.post_once(&url, &body, false))
                    .await?;
                let answer = xml::decode(&bytes).map_err(|source| Error::Xml {
                    context: PATH,
                    source,
                })?;
                let fields = self.check_protocol(PATH, &answer)?;
                Ok(ApiKey::new(fields.required("sandbox_signkey")?))
            })
            .await
            .cloned()
    }

    async fn post_once(
        &self,
        url: &str,
        body: &str,
        with_identity: bool,
    ) -> Result<Vec<u8>, Error> {
        let http = if with_identity {
            self.inner.http_with_identity.as_ref().ok_or_else(|| {
                Error::Config(
                    "this call needs the merchant certificate (ClientConfig::identity)".into(),
                )
            })?
        } else {
            &self.inner.http
        };
        let mut response = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Transport(TransportError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::Malformed {
                    context: "response",
                    reason: format!("{url} answered more than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let policy = self.inner.config.retry;
        let mut delay = policy.base_delay;
        let mut attempts = 1;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    let poll_only = error
                        .err_code()
                        .is_some_and(|code| code.retry_advice() == RetryAdvice::Poll);
                    if poll_only || !error.is_retryable() || attempts >= policy.max_attempts {
                        return Err(error);
                    }
                    let pause = delay.max(
                        error
                            .retry_delay_hint()
                            .unwrap_or_default()
                            .min(policy.max_delay),
                    );
                    tracing::warn!(attempt = attempts, error = %error, ?pause, "retrying WeChat Pay call");
                    tokio::time::sleep(pause).await;
                    delay = (delay * 2).min(policy.max_delay);
                    attempts += 1;
                }
            }
        }
    }

    /// return_code check only.
    fn check_protocol<'a>(
        &self,
        endpoint: &'static str,
        answer: &'a Params,
    ) -> Result<Fields<'a>, Error> {
        let fields = Fields::new(answer, endpoint);
        fields.ensure_return_success()?;
        Ok(fields)
    }

    /// Sends a call with appid, mch_id, nonce and signature added; checks return_code, the
    /// response signature, appid/mch_id and result_code.
    async fn call(&self, spec: CallSpec, mut params: Params) -> Result<Params, Error> {
        let key = self.signing_key().await?;
        let config = &self.inner.config;
        let mut request = Params::new();
        request.insert("appid".into(), config.app_id.clone());
        request.insert("mch_id".into(), config.mch_id.clone());
        request.insert("nonce_str".into(), nonce_str());
        request.append(&mut params);
        crate::sign_params(&mut request, config.sign_type, &key);
        let body = xml::encode(&request);
        let url = self.url(spec.path);
        self.with_retries(|| async {
            let bytes = self.post_once(&url, &body, spec.needs_identity).await?;
            self.check_answer(spec, &bytes, &key)
        })
        .await
    }

    fn check_answer(&self, spec: CallSpec, bytes: &[u8], key: &ApiKey) -> Result<Params, Error> {
        let endpoint = spec.path;
        let answer = xml::decode(bytes).map_err(|source| Error::Xml {
            context: endpoint,
            source,
        })?;
        let fields = self.check_protocol(endpoint, &answer)?;
        if spec.signed_response {
            verify(&answer, key).map_err(|source| Error::InvalidSignature {
                context: endpoint,
                source,
            })?;
            let config = &self.inner.config;
            for (field, expected) in [("appid", &config.app_id), ("mch_id", &config.mch_id)] {
                if let Some(got) = fields.optional(field)
                    && &got != expected
                {
                    return Err(Error::Malformed {
                        context: endpoint,
                        reason: format!("response `{field}` is `{got}`, expected `{expected}`"),
                    });
                }
            }
        }
        if fields.optional("result_code").as_deref() == Some("FAIL") {
            return Err(Error::Business {
                endpoint,
                code: ErrCode::parse(&fields.optional("err_code").unwrap_or_default()),
                description: fields.optional("err_code_des").unwrap_or_default(),
            });
        }
        fields.required("result_code")?;
        Ok(answer)
    }

    /// `unifiedorder`: creates the prepay order. See the module docs on why retrying it is
    /// safe.
    pub async fn unified_order(
        &self,
        request: &UnifiedOrderRequest,
    ) -> Result<UnifiedOrderResponse, Error> {
        let params = request.to_params()?;
        let spec = CallSpec {
            path: "/pay/unifiedorder",
            needs_identity: false,
            signed_response: true,
        };
        let raw = self.call(spec, params).await?;
        let f = Fields::new(&raw, spec.path);
        let trade_type: TradeType = f.parsed("trade_type")?;
        let expected = request.kind.trade_type();
        if trade_type != expected {
            return Err(Error::Malformed {
                context: spec.path,
                reason: format!("trade_type is {trade_type}, requested {expected}"),
            });
        }
        let code_url = f.optional("code_url");
        let mweb_url = f.optional("mweb_url");
        match trade_type {
            TradeType::Native if code_url.is_none() => {
                f.required("code_url")?;
            }
            TradeType::Mweb if mweb_url.is_none() => {
                f.required("mweb_url")?;
            }
            _ => {}
        }
        Ok(UnifiedOrderResponse {
            trade_type,
            prepay_id: f.required("prepay_id")?,
            code_url,
            mweb_url,
            raw,
        })
    }

    /// `orderquery`: the state of an order.
    pub async fn order_query(&self, order: &OrderRef) -> Result<OrderQueryResponse, Error> {
        let mut params = Params::new();
        order.insert_into(&mut params)?;
        let spec = CallSpec {
            path: "/pay/orderquery",
            needs_identity: false,
            signed_response: true,
        };
        let raw = self.call(spec, params).await?;
        let f = Fields::new(&raw, spec.path);
        let trade_state: TradeState = f.parsed("trade_state")?;
        Ok(OrderQueryResponse {
            trade_state,
            trade_state_desc: f.optional("trade_state_desc"),
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: if trade_state.is_paid() {
                Some(f.required("transaction_id")?)
            } else {
                f.optional("transaction_id")
            },
            total_fee: if trade_state.is_paid() {
                Some(f.fen("total_fee")?)
            } else {
                f.optional_fen("total_fee")?
            },
            cash_fee: f.optional_fen("cash_fee")?,
            openid: f.optional("openid"),
            trade_type: f.optional_parsed("trade_type")?,
            time_end: f.optional("time_end"),
            attach: f.optional("attach"),
            raw,
        })
    }

    /// `closeorder`: closes an unpaid order. Query first: a paid order answers `ORDERPAID`.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<Params, Error> {
        let mut params = Params::new();
        check_merchant_no("out_trade_no", out_trade_no, 32)?;
        params.insert("out_trade_no".into(), out_trade_no.into());
        let spec = CallSpec {
            path: "/pay/closeorder",
            needs_identity: false,
            signed_response: true,
        };
        self.call(spec, params).await
    }

    /// `refund` (`/secapi/pay/refund`, with the merchant certificate).
    pub async fn refund(&self, request: &RefundRequest) -> Result<RefundResponse, Error> {
        let mut params = Params::new();
        request.order.insert_into(&mut params)?;
        check_merchant_no("out_refund_no", &request.out_refund_no, 64)?;
        let total_fee = positive("total_fee", request.total_fee)?;
        let refund_fee = positive("refund_fee", request.refund_fee)?;
        if refund_fee > total_fee {
            return Err(invalid(
                "refund_fee",
                format!("{refund_fee} yuan is more than total_fee {total_fee} yuan"),
            ));
        }
        params.insert("out_refund_no".into(), request.out_refund_no.clone());
        params.insert("total_fee".into(), total_fee.to_fen_string());
        params.insert("refund_fee".into(), refund_fee.to_fen_string());
        insert_opt(&mut params, "refund_desc", &request.refund_desc);
        insert_opt(&mut params, "notify_url", &request.notify_url);
        let spec = CallSpec {
            path: "/secapi/pay/refund",
            needs_identity: !self.inner.config.sandbox,
            signed_response: true,
        };
        let raw = self.call(spec, params).await?;
        let f = Fields::new(&raw, spec.path);
        Ok(RefundResponse {
            refund_id: f.required("refund_id")?,
            out_refund_no: f.required("out_refund_no")?,
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: f.required("transaction_id")?,
            refund_fee: f.fen("refund_fee")?,
            total_fee: f.fen("total_fee")?,
            raw,
        })
    }

    /// `refundquery`.
    pub async fn refund_query(&self, refund: &RefundRef) -> Result<RefundQueryResponse, Error> {
        let mut params = Params::new();
        let (key, value) = match refund {
            RefundRef::RefundId(v) => ("refund_id", v),
            RefundRef::OutRefundNo(v) => ("out_refund_no", v),
            RefundRef::TransactionId(v) => ("transaction_id", v),
            RefundRef::OutTradeNo(v) => ("out_trade_no", v),
        };
        require_non_empty(key, value)?;
        params.insert(key.into(), value.clone());
        let spec = CallSpec {
            path: "/pay/refundquery",
            needs_identity: false,
            signed_response: true,
        };
        let raw = self.call(spec, params).await?;
        let f = Fields::new(&raw, spec.path);
        let count: usize = f.parsed("refund_count")?;
        if count > 100 {
            return Err(Error::Malformed {
                context: spec.path,
                reason: format!("refund_count {count} is beyond what WeChat returns"),
            });
        }
        let mut refunds = Vec::with_capacity(count);
        for n in 0..count {
            refunds.push(RefundRecord {
                out_refund_no: f.required(&format!("out_refund_no_{n}"))?,
                refund_id: f.required(&format!("refund_id_{n}"))?,
                refund_fee: f.fen(&format!("refund_fee_{n}"))?,
                refund_status: f.parsed(&format!("refund_status_{n}"))?,
                refund_success_time: f.optional(&format!("refund_success_time_{n}")),
                refund_recv_account: f.optional(&format!("refund_recv_accout_{n}")),
            });
        }
        Ok(RefundQueryResponse {
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: f.required("transaction_id")?,
            total_fee: f.fen("total_fee")?,
            refunds,
            raw,
        })
    }

    /// `downloadbill`: the daily bill as text (CSV-like, backquote-prefixed values).
    /// `bill_date` is `yyyyMMdd`. An XML answer is an error (e.g. no bill that day).
    pub async fn download_bill(
        &self,
        bill_date: &str,
        bill_type: BillType,
    ) -> Result<String, Error> {
        const PATH: &str = "/pay/downloadbill";
        if bill_date.len() != 8 || !bill_date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("bill_date", "must be yyyyMMdd"));
        }
        let key = self.signing_key().await?;
        let config = &self.inner.config;
        let mut request = Params::new();
        request.insert("appid".into(), config.app_id.clone());
        request.insert("mch_id".into(), config.mch_id.clone());
        request.insert("nonce_str".into(), nonce_str());
        request.insert("bill_date".into(), bill_date.into());
        request.insert("bill_type".into(), bill_type.as_str().into());
        crate::sign_params(&mut request, config.sign_type, &key);
        let body = xml::encode(&request);
        let url = self.url(PATH);
        self.with_retries(|| async {
            let bytes = self.post_once(&url, &body, false).await?;
            let trimmed = bytes.trim_ascii_start();
            if trimmed.starts_with(b"<xml>") || trimmed.starts_with(b"<?xml") {
                let answer = xml::decode(&bytes).map_err(|source| Error::Xml {
                    context: PATH,
                    source,
                })?;
                let f = Fields::new(&answer, PATH);
                let return_code = f.optional("return_code").unwrap_or_default();
                let message = f.optional("return_msg").unwrap_or_default();
                if return_code == "FAIL" {
                    // downloadbill puts business errors in return_msg/error_code.
                    return Err(match f.optional("error_code").or(f.optional("err_code")) {
                        Some(code) => Error::Business {
                            endpoint: PATH,
                            code: ErrCode::parse(&code),
                            description: message,
                        },
                        None => Error::Protocol {
                            endpoint: PATH,
                            return_msg: message,
                            err_code: None,
                        },
                    });
                }
                return Err(Error::Malformed {
                    context: PATH,
                    reason: "an XML answer instead of the bill".into(),
                });
            }
            String::from_utf8(bytes).map_err(|_| Error::Malformed {
                context: PATH,
                reason: "the bill is not UTF-8".into(),
            })
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
            &unix_seconds(),
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
            &unix_seconds(),
            &nonce_str(),
        ))
    }
}
