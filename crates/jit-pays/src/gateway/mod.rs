//! A WeChat Pay element's dealings with WeChat, whatever the API it speaks.
//!
//! `pays.WechatPayType` speaks V2 (XML, the API key) and `pays.WechatPayV3Type` speaks V3
//! (JSON, RSA, the APIv3 key), but what they do with an order and a refund is the same:
//! the prepay order reused while it is valid, the query whose answer moves the order, the
//! close that may find the order paid, the refund whose money is held before WeChat is
//! asked. That is written once, here, over [`Gateway`]: the calls each API makes its own
//! way, in words both share. Each Type implements [`Gateway`] (its client, its wire
//! types) and builds its `Pay` on these flows:
//!
//! - [`orders`]: create, the owned order, check (query and apply), checkThird, cancel,
//!   and logging a recorded payment;
//! - [`pay_url`]: getPayUrl (the prepay order and what the payer needs from it);
//! - [`refunds`]: refund, its retries, queryRefund, listRefunds, and applying what a
//!   decrypted refund notify says.
//!
//! The notifies stay each Type's: verifying and decrypting them is the protocol.

pub(crate) mod notify;
pub(crate) mod orders;
pub(crate) mod pay_url;
pub(crate) mod refunds;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use wechatpay_v2::TradeState;

use crate::db::entity::{ApiVersion, RefundStatus, pay_log, refund};
use crate::db::store::PayStore;
use crate::error::PayError;
use crate::model::{CloseAtWechat, PayType, Payer};
use crate::settings::PaysSettings;

/// What the prepay call made (or found made): the identifiers each trade type pays with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prepay {
    /// `prepay_id` (V2: every trade type; V3: JSAPI and APP).
    pub prepay_id: Option<String>,
    /// The QR code's content (NATIVE).
    pub code_url: Option<String>,
    /// The H5 page (MWEB; V3's `h5_url`).
    pub mweb_url: Option<String>,
}

/// How the prepay call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrepayOutcome {
    /// The prepay order exists.
    Made(Prepay),
    /// WeChat says the order is paid already.
    OrderPaid,
    /// WeChat says the order is closed.
    OrderClosed,
}

/// What a query at WeChat said about an order (a signed answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueriedOrder {
    /// The order the answer is about.
    pub out_trade_no: String,
    /// Its state at WeChat.
    pub trade_state: TradeState,
    /// WeChat's transaction id, once paid.
    pub transaction_id: Option<String>,
    /// The order's total at WeChat, in fen, when the answer says.
    pub total_fen: Option<i64>,
    /// When it was paid, when the answer says (and it reads).
    pub paid_at: Option<DateTime<Utc>>,
    /// The answer as received, for the record table.
    pub raw: String,
}

/// WeChat's answer to a refund request, or to a query about a refund.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RefundAtWechat {
    /// The merchant's refund number it is about.
    pub out_refund_no: String,
    /// The order it refunds.
    pub out_trade_no: String,
    /// The refunded amount, in fen.
    pub refund_fen: i64,
    /// WeChat's refund id.
    pub wechat_refund_id: String,
    /// Its state, when the answer says (a V2 refund request's answer does not).
    pub status: Option<RefundStatus>,
    /// Where the money went.
    pub account: Option<String>,
    /// When it succeeded.
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// Why a refund request has no usable answer.
#[derive(Debug)]
pub(crate) enum RefundRequestFailed {
    /// WeChat refused it for good (or it was never sent): the refund is closed, and the
    /// error reported. `failure` is what the refund keeps as its reason.
    Refused {
        /// The error the caller is told.
        error: PayError,
        /// The refund's `failure` text.
        failure: String,
    },
    /// It may have reached WeChat: only a query can tell. The refund stays `processing`.
    Unknown(PayError),
}

impl RefundRequestFailed {
    /// A failed refund request whose client error reads `failure` and is reported as
    /// `error`: [`RefundRequestFailed::Refused`] when it `refused_for_good` (the client's
    /// verdict), else [`RefundRequestFailed::Unknown`].
    pub(crate) fn new(refused_for_good: bool, failure: String, error: PayError) -> Self {
        if refused_for_good {
            RefundRequestFailed::Refused { error, failure }
        } else {
            RefundRequestFailed::Unknown(error)
        }
    }
}

/// The calls a WeChat Pay element makes at WeChat, each API its own way, and what the
/// flows need to know of the element. Implemented by the V2 and the V3 Type.
#[async_trait]
pub(crate) trait Gateway: Send + Sync {
    /// The element's fullName.
    fn full_name(&self) -> &str;
    /// The merchant's appid.
    fn app_id(&self) -> &str;
    /// The merchant id.
    fn mch_id(&self) -> &str;
    /// The API the element speaks (written on the record rows it makes).
    fn api_version(&self) -> ApiVersion;
    /// The order store.
    fn store(&self) -> &PayStore;
    /// The host's settings.
    fn settings(&self) -> &PaysSettings;

    /// Makes the prepay order of `order` for `pay_type` (the call carries the element's
    /// notify URL and the order's own times, so a repeat is the same request).
    async fn prepay(
        &self,
        order: &pay_log::Model,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PrepayOutcome, PayError>;

    /// The signed client-side parameters of the JSAPI or APP prepay order `prepay_id` of
    /// `order_id`, as JSON text.
    async fn client_pay_params(
        &self,
        order_id: &str,
        pay_type: PayType,
        prepay_id: &str,
    ) -> Result<String, PayError>;

    /// Queries the order; `None` when WeChat has no such order (no prepay yet).
    async fn query_order(&self, order_id: &str) -> Result<Option<QueriedOrder>, PayError>;

    /// Closes the order at WeChat.
    async fn close_order(&self, order_id: &str) -> Result<CloseAtWechat, PayError>;

    /// Whether the element can ask for refunds now (V2 needs its merchant certificate).
    fn refund_ready(&self) -> Result<(), PayError> {
        Ok(())
    }

    /// Asks for `refund` of an order of `total_fen` (the refund's own number, so a repeat
    /// is the same refund).
    async fn request_refund(
        &self,
        refund: &refund::Model,
        total_fen: i64,
    ) -> Result<RefundAtWechat, RefundRequestFailed>;

    /// Queries a refund by its number; `None` when WeChat has no such refund.
    async fn query_refund(
        &self,
        refund: &refund::Model,
    ) -> Result<Option<RefundAtWechat>, PayError>;
}

/// `impl Pay for $ty` of a WeChat Pay Type that implements [`Gateway`]: the Type's own
/// methods (given in braces: its properties, its notifies) and, written once for both
/// Types, every method the shared flows answer (create, getPayUrl, getOrder, check,
/// checkThird, cancel, cancelThird, the reconciler's step, refund, queryRefund,
/// listRefunds).
macro_rules! impl_pay_through_gateway {
    ($ty:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::pay::Pay for $ty {
            $($own)*

            fn full_name(&self) -> &str {
                $crate::gateway::Gateway::full_name(self)
            }

            fn app_id(&self) -> &str {
                $crate::gateway::Gateway::app_id(self)
            }

            fn mch_id(&self) -> &str {
                $crate::gateway::Gateway::mch_id(self)
            }

            fn api_version(&self) -> $crate::db::entity::ApiVersion {
                $crate::gateway::Gateway::api_version(self)
            }

            async fn create(
                &self,
                subject: &str,
                amount: wechatpay_v2::Fen,
                order_id: Option<String>,
            ) -> Result<$crate::model::PayLog, $crate::error::PayError> {
                $crate::gateway::orders::create_order(self, subject, amount, order_id).await
            }

            async fn get_pay_url(
                &self,
                order_id: &str,
                pay_type: $crate::model::PayType,
                payer: &$crate::model::Payer,
            ) -> Result<$crate::model::PayUrl, $crate::error::PayError> {
                $crate::gateway::pay_url::pay_url(self, order_id, pay_type, payer).await
            }

            async fn get_order(
                &self,
                order_id: &str,
            ) -> Result<$crate::model::PayLog, $crate::error::PayError> {
                Ok($crate::gateway::orders::owned_order(self, order_id).await?.into())
            }

            async fn check(
                &self,
                order_id: &str,
            ) -> Result<$crate::model::PayLog, $crate::error::PayError> {
                $crate::gateway::orders::check_order(self, order_id).await
            }

            async fn check_third(
                &self,
                pay_log: &$crate::model::PayLog,
            ) -> Result<Option<$crate::model::WechatRecord>, $crate::error::PayError> {
                $crate::gateway::orders::check_at_wechat(self, pay_log).await
            }

            async fn cancel(
                &self,
                order_id: &str,
            ) -> Result<$crate::model::CancelResult, $crate::error::PayError> {
                $crate::gateway::orders::cancel_order(self, order_id).await
            }

            async fn cancel_third(
                &self,
                order_id: &str,
            ) -> Result<$crate::model::CloseAtWechat, $crate::error::PayError> {
                $crate::gateway::orders::close_at_wechat(self, order_id).await
            }

            async fn reconcile(
                &self,
                order_id: &str,
            ) -> Result<$crate::model::PayLog, $crate::error::PayError> {
                let store = $crate::gateway::Gateway::store(self);
                $crate::reconciler::reconcile_order(self, store, order_id).await
            }

            async fn refund(
                &self,
                request: $crate::model::RefundArgs,
            ) -> Result<$crate::model::Refund, $crate::error::PayError> {
                $crate::gateway::refunds::refund_order(self, request).await
            }

            async fn query_refund(
                &self,
                refund_id: &str,
            ) -> Result<$crate::model::Refund, $crate::error::PayError> {
                $crate::gateway::refunds::query_refund(self, refund_id).await
            }

            async fn list_refunds(
                &self,
                order_id: &str,
            ) -> Result<Vec<$crate::model::Refund>, $crate::error::PayError> {
                $crate::gateway::refunds::refunds_of(self, order_id).await
            }
        }
    };
}
pub(crate) use impl_pay_through_gateway;
