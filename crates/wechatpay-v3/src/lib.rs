//! A strict WeChat Pay API v3 (JSON, RSA) merchant client.
//!
//! This crate owns the WeChat Pay API v3 protocol: RSA-SHA256 request signing, verifying
//! WeChat's signatures with platform certificates or the WeChat Pay public key (both during
//! a switchover), AEAD_AES_256_GCM resources, the typed calls, client-side pay parameters and
//! notifies. Money is [`Fen`] and Beijing time is `wechatpay_v2::time`, shared with the V2
//! crate. It knows nothing of elements, HTTP servers or databases: callers hand it keys,
//! requests and received bodies, and get typed results back.
//!
//! # API in brief
//! - Keys ([`keys`]): [`ApiV3Key`] (32 bytes), [`MerchantPrivateKey`] (PEM, PKCS#8 or
//!   PKCS#1), [`MerchantPublicKey`], [`MerchantCertificate`] (`apiclient_cert.pem`: serial, key check), [`WechatPayPublicKey`] (`PUB_KEY_ID_…`),
//!   [`PlatformCertificate`]; none prints its secret. [`KeyError`].
//! - Signing ([`sign`]): [`request_message`], [`response_message`], [`Authorization`]
//!   (build, parse, verify the `WECHATPAY2-SHA256-RSA2048` header).
//! - Verifying ([`verify`]): [`SignedHeaders`], [`Verifier`] (public key, platform
//!   certificates, or both; replay window; `WECHATPAY/SIGNTEST/` probes refused as
//!   [`VerifyError::SignTestProbe`]), [`PlatformSigner`] (WeChat's side, for simulators and
//!   tests), [`PlatformCertificates`] (the store by serial).
//! - Resources ([`aead`]): [`EncryptedResource`], [`aead::decrypt`], [`aead::encrypt`],
//!   [`AeadError`].
//! - Client ([`client`]): [`Client::new`]`(`[`ClientConfig::new`]`(…, `[`Verification`]`))`;
//!   [`Client::prepay`] ([`PrepayRequest`], [`PrepayKind`]: JSAPI, APP, H5, NATIVE),
//!   [`Client::query_order`] ([`OrderRef`] → [`Transaction`]), [`Client::close_order`],
//!   [`Client::refund`] ([`RefundRequest`] → [`Refund`]), [`Client::query_refund`],
//!   [`Client::trade_bill`], [`Client::fund_flow_bill`], [`Client::download_bill`] (or
//!   [`Client::download_trade_bill`], [`Client::download_fund_flow_bill`] in one step),
//!   [`Client::download_platform_certificates`], [`Client::jsapi_pay_params`],
//!   [`Client::app_pay_params`]; notifies with [`Client::parse_payment_notify`] and
//!   [`Client::parse_refund_notify`]. Each call's request and answer live in [`calls`].
//! - Notifies ([`notify`]): [`open_notify`], [`parse_payment_notify`],
//!   [`parse_refund_notify`] → [`PaymentNotify`], [`RefundNotify`]; [`fail_reply`];
//!   [`seal_notify`] (WeChat's side).
//! - Pay parameters ([`pay_params`]): [`jsapi_pay_params`], [`app_pay_params`].
//! - Errors: [`Error`] with [`Error::is_retryable`], [`ErrorCode`] with the retry table.
//!
//! docs/wechatpay-v3-client.md tells the whole story.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aead;
pub mod calls;
pub mod certificates;
pub mod client;
pub mod error;
mod json;
pub mod keys;
pub mod notify;
pub mod pay_params;
pub mod sign;
pub mod time;
pub mod types;
pub mod verify;

pub use aead::{AeadError, EncryptedResource};
pub use calls::{
    BillDownload, CertificateList, FundFlowBillRequest, H5Scene, OrderRef, Payer, PrepayKind,
    PrepayRequest, PrepayResponse, Refund, RefundAmount, RefundRequest, TradeBillRequest,
    Transaction, TransactionAmount,
};
pub use certificates::{PlatformCertificate, PlatformCertificates};
pub use client::{
    CertificateRefresh, Client, ClientConfig, PRODUCTION_BASE_URL, RetryPolicy, Verification,
};
pub use error::{Error, ErrorCode, RetryAdvice, TransportError};
pub use keys::{
    ApiV3Key, KeyError, MerchantCertificate, MerchantPrivateKey, MerchantPublicKey,
    PlatformPrivateKey, SignatureMismatch, WechatPayPublicKey,
};
pub use notify::{
    Notify, PaymentNotify, RefundNotice, RefundNotify, fail_reply, open_notify,
    parse_payment_notify, parse_refund_notify, seal_notify,
};
pub use pay_params::{AppPayParams, JsapiPayParams, app_pay_params, jsapi_pay_params};
pub use sign::{Authorization, AuthorizationError, request_message, response_message};
pub use types::{AccountType, BillType, EventType, RefundStatus, TradeState, TradeType};
pub use verify::{PlatformSigner, SignedHeaders, VerifiedBy, Verifier, VerifyError};
pub use wechatpay_v2::Fen;
