//! A strict WeChat Pay V2 (XML) merchant API client.
//!
//! This crate owns the WeChat Pay V2 protocol: money in fen, MD5/HMAC-SHA256 signatures,
//! the flat XML documents, the typed API calls, client-side pay parameters and notifies.
//! It knows nothing of elements, HTTP servers or databases: callers hand it keys, requests
//! and received bodies, and get typed results back.
//!
//! # API in brief
//! - Money: [`Fen`] (i64 fen; [`Fen::from_yuan_str`], [`Fen::from_yuan_json`],
//!   [`Fen::from_fen_str`]; `Display` as yuan `"99.99"`; serde as integer fen), [`AmountError`].
//! - Parameters: [`Params`] = `IndexMap<String, String>`, ordered as received.
//! - Signatures: [`SignType`] (`Md5`/`HmacSha256`, parsed from `"MD5"`/`"HMAC-SHA256"`),
//!   [`ApiKey`] (masked in `Debug`/`Display`), [`sign()`], [`sign_params`], [`verify()`]
//!   (algorithm from `sign_type`, else from the signature length; constant-time),
//!   [`detect_sign_type`], [`VerifyError`].
//! - XML: [`xml::encode`], [`xml::encode_with_root`], [`xml::decode`],
//!   [`xml::decode_with_limit`] (refuses DOCTYPE, entities, PIs, nesting, duplicates,
//!   oversize, non-UTF-8, trailing content, each as its own [`XmlError`] variant).
//! - Client: [`Client::new`]`(`[`ClientConfig`]` { base_url, app_id, mch_id, api_key,
//!   sign_type, ..Default::default() })`; [`Client::unified_order`] ([`UnifiedOrderRequest`]
//!   with a [`TradeKind`]: JSAPI/NATIVE/MWEB/APP), [`Client::order_query`] ([`OrderRef`] →
//!   [`OrderQueryResponse`] with [`TradeState`]), [`Client::close_order`] (→
//!   [`CloseOrderResponse`]), [`Client::refund`] (needs [`ClientIdentity`]),
//!   [`Client::refund_query`], [`Client::download_bill`] / [`Client::download_bill_gzip`] /
//!   [`Client::bill`], [`Client::sandbox_sign_key`],
//!   [`Client::jsapi_pay_params`], [`Client::app_pay_params`]. Every response keeps all
//!   received fields in `raw` and is read from them with `TryFrom<Params>` ([`calls`]: one
//!   module per call, request and response together).
//! - Notifies: [`parse_payment_notify`], or [`UnverifiedNotify::parse`] then
//!   [`UnverifiedNotify::verify`] with the key of the `mch_id` it names → [`PaymentNotify`];
//!   [`success_reply`], [`fail_reply`]; [`parse_refund_notify`], [`decrypt_req_info`],
//!   [`encrypt_req_info`].
//! - Errors: [`Error`] (Transport / Protocol / Business / InvalidSignature / Malformed / ...)
//!   with [`Error::is_retryable`], [`ErrCode`] with the reference's retry table.
//! - Beijing time ([`time`], the one owner of UTC+8 and WeChat's formats): [`beijing_time`]
//!   formats `yyyyMMddHHmmss` (`time_start`/`time_expire`), [`parse_beijing_time`] parses it
//!   back (refusing what is not a real time, [`TimeError`]), plus dates (`yyyyMMdd`) and
//!   `yyyy-MM-dd HH:mm:ss`.
//! - Bills ([`bill`], the one owner of the daily bill's format): [`bill::parse`] → [`Bill`]
//!   (typed [`BillRow`]s in [`BillLine`]s with their raw text, the [`BillSummary`] checked
//!   against them, [`ServiceFee`] and [`FeeRate`] exact), [`bill::render`], [`BillError`]
//!   naming the line and field.
//! - Helpers: [`nonce_str`], and the deterministic [`jsapi_pay_params`] / [`app_pay_params`]
//!   ([`pay_params`]).
//!
//! Retries re-send the byte-identical body, which keeps even `unifiedorder` and `refund` safe
//! (see the [`client`] module); docs/wechatpay-client.md tells the whole story.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bill;
pub mod calls;
pub mod checks;
pub mod client;
pub mod error;
mod fields;
pub mod http;
pub mod money;
pub mod notify;
pub mod pay_params;
pub mod sign;
pub mod time;
pub mod types;
pub mod xml;

pub use bill::{
    Bill, BillError, BillLine, BillRefund, BillRow, BillSummary, BillTotals, FeeRate, ServiceFee,
};
pub use calls::{
    CloseOrderResponse, OrderQueryResponse, OrderRef, RefundQueryResponse, RefundRecord, RefundRef,
    RefundRequest, RefundResponse, TradeKind, UnifiedOrderRequest, UnifiedOrderResponse,
};
pub use client::{
    Client, ClientConfig, ClientIdentity, PRODUCTION_BASE_URL, RetryPolicy, base_url_uses_tls,
};
pub use notify::{
    NOTIFY_SUCCESS_REPLY, PaymentNotify, RefundNotify, UnverifiedNotify, decrypt_req_info,
    encrypt_req_info, fail_reply, parse_payment_notify, parse_refund_notify, success_reply,
};
pub use pay_params::{AppPayParams, JsapiPayParams, app_pay_params, jsapi_pay_params};
pub use time::{TimeError, beijing_time, parse_beijing_time};
pub use types::{BillType, RefundStatus, TradeState, TradeType, UnknownValue};

pub use error::{ErrCode, Error, RetryAdvice, TransportError};
pub use indexmap::IndexMap;
pub use money::{AmountError, Fen};
pub use sign::{
    ApiKey, SignType, UnknownSignType, VerifyError, detect_sign_type, sign, sign_params, verify,
};
pub use xml::{DEFAULT_MAX_XML_BYTES, XmlError};

/// A document's parameters in the order they were received or inserted.
pub type Params = IndexMap<String, String>;

/// A random 32-character alphanumeric `nonce_str`.
pub fn nonce_str() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}
