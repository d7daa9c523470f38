//! The values the pay API takes and returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wechatpay_v2::Fen;

use crate::db::entity::{
    ApiVersion, OrderRefundStatus, PayStatus, RefundStatus, pay_log, refund, wechat_record,
};

/// An order as hosted code and clients see it (a `PayLogModel` row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayLog {
    /// Merchant order number.
    pub order_id: String,
    /// Title.
    pub subject: String,
    /// Amount (serialised as integer fen).
    #[serde(rename = "amountFen")]
    pub amount: Fen,
    /// The amount in yuan, exact decimal text (`"99.99"`), for display.
    pub amount_yuan: String,
    /// State.
    pub status: PayStatus,
    /// fullName of the pay element that owns it.
    pub element: String,
    /// Trade type of the prepay order, once getPayUrl ran.
    pub pay_type: Option<String>,
    /// WeChat's transaction id, once paid.
    pub transaction_id: Option<String>,
    /// Paid although it had been closed or timed out locally: the money moved and needs a
    /// decision (deliver or refund).
    pub paid_after_close: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Paid.
    pub pay_time: Option<DateTime<Utc>>,
    /// Closed or timed out.
    pub closed_at: Option<DateTime<Utc>>,
    /// Unpaid after this instant it times out.
    pub expires_at: DateTime<Utc>,
    /// The money refunded so far, in fen (the order's `success` refunds).
    #[serde(default)]
    pub refunded_fen: Fen,
    /// `none`, `partial` or `full`, from `refundedFen`; `status` stays `success`.
    #[serde(default = "no_refund")]
    pub refund_status: OrderRefundStatus,
}

fn no_refund() -> OrderRefundStatus {
    OrderRefundStatus::None
}

impl From<pay_log::Model> for PayLog {
    fn from(row: pay_log::Model) -> Self {
        let amount = Fen::new(row.amount_fen);
        PayLog {
            order_id: row.order_id,
            subject: row.subject,
            amount,
            amount_yuan: amount.to_string(),
            status: row.status,
            element: row.element,
            pay_type: row.pay_type,
            transaction_id: row.transaction_id,
            paid_after_close: row.paid_after_close,
            created_at: row.created_at,
            updated_at: row.updated_at,
            pay_time: row.paid_at,
            closed_at: row.closed_at,
            expires_at: row.expires_at,
            refunded_fen: Fen::new(row.refunded_fen),
            refund_status: OrderRefundStatus::of(row.amount_fen, row.refunded_fen),
        }
    }
}

/// A refund as hosted code and clients see it (a `pays_refund` row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// The merchant's refund number (WeChat's `out_refund_no`).
    pub refund_id: String,
    /// The refunded order.
    pub order_id: String,
    /// fullName of the pay element that owns the order.
    pub element: String,
    /// Amount (serialised as integer fen).
    #[serde(rename = "amountFen")]
    pub amount: Fen,
    /// The amount in yuan, exact decimal text, for display.
    pub amount_yuan: String,
    /// The reason shown to the buyer.
    pub reason: Option<String>,
    /// State.
    pub status: RefundStatus,
    /// WeChat's refund id, once WeChat accepted the request.
    pub wechat_refund_id: Option<String>,
    /// Where the money went.
    pub account: Option<String>,
    /// Why it is `closed` or `change`.
    pub failure: Option<String>,
    /// Asked for.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Succeeded.
    pub succeeded_at: Option<DateTime<Utc>>,
}

impl From<refund::Model> for Refund {
    fn from(row: refund::Model) -> Self {
        let amount = Fen::new(row.amount_fen);
        Refund {
            refund_id: row.refund_id,
            order_id: row.order_id,
            element: row.element,
            amount,
            amount_yuan: amount.to_string(),
            reason: row.reason,
            status: row.status,
            wechat_refund_id: row.wechat_refund_id,
            account: row.account,
            failure: row.failure,
            created_at: row.created_at,
            updated_at: row.updated_at,
            succeeded_at: row.succeeded_at,
        }
    }
}

/// A row of the WeChat Pay record table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WechatRecord {
    /// Merchant order number.
    pub order_id: String,
    /// appid.
    pub appid: String,
    /// mch_id.
    pub mch_id: String,
    /// trade_type.
    pub trade_type: Option<String>,
    /// prepay_id.
    pub prepay_id: Option<String>,
    /// code_url (NATIVE).
    pub code_url: Option<String>,
    /// mweb_url (MWEB).
    pub mweb_url: Option<String>,
    /// Prepay order valid until.
    pub prepay_expires_at: Option<DateTime<Utc>>,
    /// Last trade_state seen.
    pub trade_state: Option<String>,
    /// Transaction id.
    pub transaction_id: Option<String>,
    /// total_fee in fen.
    pub total_fee: i64,
    /// The last raw notify.
    pub last_notify: Option<String>,
    /// The last raw orderquery response.
    pub last_query: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The API the record's calls and notifies were made in (`v2`, `v3`).
    pub api_version: ApiVersion,
}

impl From<wechat_record::Model> for WechatRecord {
    fn from(row: wechat_record::Model) -> Self {
        WechatRecord {
            order_id: row.order_id,
            appid: row.appid,
            mch_id: row.mch_id,
            trade_type: row.trade_type,
            prepay_id: row.prepay_id,
            code_url: row.code_url,
            mweb_url: row.mweb_url,
            prepay_expires_at: row.prepay_expires_at,
            trade_state: row.trade_state,
            transaction_id: row.transaction_id,
            total_fee: row.total_fee,
            last_notify: row.last_notify,
            last_query: row.last_query,
            created_at: row.created_at,
            updated_at: row.updated_at,
            api_version: row.api_version,
        }
    }
}

/// How the payer pays: WeChat's trade types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum PayType {
    /// QR code shown to the payer (`code_url`). The default.
    #[default]
    #[serde(rename = "NATIVE")]
    Native,
    /// H5 payment in a mobile browser (`mweb_url`); needs the payer's IP and scene_info.
    #[serde(rename = "MWEB")]
    Mweb,
    /// In WeChat (official account / mini program); needs the payer's openid.
    #[serde(rename = "JSAPI")]
    Jsapi,
    /// In a mobile app through the WeChat SDK.
    #[serde(rename = "APP")]
    App,
}

impl PayType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PayType::Native => "NATIVE",
            PayType::Mweb => "MWEB",
            PayType::Jsapi => "JSAPI",
            PayType::App => "APP",
        }
    }

    /// Parses a wire name (exact, upper case).
    pub fn parse(text: &str) -> Option<PayType> {
        match text {
            "NATIVE" => Some(PayType::Native),
            "MWEB" => Some(PayType::Mweb),
            "JSAPI" => Some(PayType::Jsapi),
            "APP" => Some(PayType::App),
            _ => None,
        }
    }
}

impl std::fmt::Display for PayType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What getPayUrl may need to know about the payer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payer {
    /// The payer's openid under the appid (JSAPI: required).
    pub openid: Option<String>,
    /// The payer's IP (`spbill_create_ip`; MWEB: required to be the real one).
    pub client_ip: Option<String>,
    /// MWEB `scene_info` JSON text; a generic WAP scene is used when absent.
    pub scene_info: Option<String>,
}

/// getPayUrl's answer: `{payUrl, form}` as in the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayUrl {
    /// NATIVE: the `weixin://` code URL; MWEB: the H5 URL; JSAPI/APP: `prepay_id=…`.
    pub pay_url: String,
    /// JSAPI/APP: the signed client parameters as JSON text; empty otherwise.
    pub form: String,
}

/// What `refund` is asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundArgs {
    /// The paid order.
    pub order_id: String,
    /// How much; `None` refunds all that is left.
    pub amount: Option<Fen>,
    /// The reason shown to the buyer.
    pub reason: Option<String>,
    /// The merchant's refund number; a retry with the same one is the same refund.
    /// `None` generates one.
    pub refund_id: Option<String>,
}

/// What cancel did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResult {
    /// Whether the order is closed (by this call or before).
    pub closed: bool,
    /// The order's state after the call (`success` when it turned out paid: ORDERPAID).
    pub order: PayLog,
    /// Human-readable explanation.
    pub message: String,
}

/// What cancelThird (closeorder at WeChat) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloseAtWechat {
    /// WeChat closed it (or it was already closed there).
    Closed,
    /// WeChat never created it (no getPayUrl yet): nothing to close there.
    NotCreated,
    /// ORDERPAID: the payer paid.
    Paid,
}

/// What a notify did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum NotifyOutcome {
    /// A genuine payment moved the order `wait → success`.
    Paid {
        /// The order id.
        order_id: String,
    },
    /// A genuine payment for an order closed/timed out locally: recorded and flagged.
    PaidAfterClose {
        /// The order id.
        order_id: String,
    },
    /// A repeat of a payment already recorded.
    AlreadyPaid {
        /// The order id.
        order_id: String,
    },
    /// A genuine notify saying the payment did not succeed (`result_code=FAIL`); recorded.
    NotPaid {
        /// The order id.
        order_id: String,
    },
    /// A genuine payment for an order already paid under another transaction: kept as a
    /// payment conflict (the order keeps its first transaction), announced as
    /// [`crate::PayEventKind::PaymentConflict`], and acknowledged so WeChat stops
    /// re-sending it.
    PaymentConflict {
        /// The order id.
        order_id: String,
        /// The transaction id of this second payment.
        transaction_id: String,
    },
    /// A verified refund notify, applied (or found already applied): the refund is now
    /// `status`.
    Refund {
        /// The merchant's refund number.
        refund_id: String,
        /// Its state after the notify.
        status: RefundStatus,
    },
    /// Refused: nothing changed.
    Rejected {
        /// Why, without secrets.
        reason: String,
        /// Which kind of refusal, for counting ([`crate::metrics`]): a small fixed set,
        /// where `reason` is free text. An element answering without one (a plugin) is
        /// counted as [`RefusalReason::Other`].
        #[serde(default)]
        kind: RefusalReason,
    },
    /// Verified, but the state could not be committed (database down): WeChat must retry.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a notify was refused, as a small fixed set: what the refusal counter
/// (`jit_pays_notify_refusals_total`) is labelled with. The free-text reason goes to the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The body is no notify: not XML, not UTF-8, or a field it needs is missing.
    Malformed,
    /// It names an order (or refund) this database does not hold.
    UnknownOrder,
    /// Not authentic: the signature does not verify (a refund notify: its `req_info`
    /// does not decrypt with the merchant's key).
    BadSignature,
    /// It names an appid / mch_id that is not the merchant's.
    WrongMerchant,
    /// A signed payment notify whose `total_fee` is not the order's amount.
    AmountMismatch,
    /// It reached an element that does not own its order.
    Misrouted,
    /// A decrypted refund notify that contradicts the stored refund or its order.
    RefundMismatch,
    /// Anything else (an element that did not say which kind).
    #[default]
    Other,
}

impl RefusalReason {
    /// Every kind, in the order the docs list them.
    pub const ALL: [RefusalReason; 8] = [
        RefusalReason::Malformed,
        RefusalReason::UnknownOrder,
        RefusalReason::BadSignature,
        RefusalReason::WrongMerchant,
        RefusalReason::AmountMismatch,
        RefusalReason::Misrouted,
        RefusalReason::RefundMismatch,
        RefusalReason::Other,
    ];

    /// The label value (`bad_signature`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Malformed => "malformed",
            RefusalReason::UnknownOrder => "unknown_order",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::WrongMerchant => "wrong_merchant",
            RefusalReason::AmountMismatch => "amount_mismatch",
            RefusalReason::Misrouted => "misrouted",
            RefusalReason::RefundMismatch => "refund_mismatch",
            RefusalReason::Other => "other",
        }
    }
}

impl NotifyOutcome {
    /// Whether WeChat is told SUCCESS (it stops re-sending): the payment, or the news that
    /// it failed, is committed. A refusal and a failure to commit are not acknowledged.
    pub fn acknowledged(&self) -> bool {
        match self {
            NotifyOutcome::Paid { .. }
            | NotifyOutcome::PaidAfterClose { .. }
            | NotifyOutcome::AlreadyPaid { .. }
            | NotifyOutcome::NotPaid { .. }
            | NotifyOutcome::PaymentConflict { .. }
            | NotifyOutcome::Refund { .. } => true,
            NotifyOutcome::Rejected { .. } | NotifyOutcome::Failed { .. } => false,
        }
    }
}

/// What the sender of a refused notify is told. The same for every refusal, so the reply
/// tells a forger nothing (whether the order exists, which check failed); the reason is in
/// the outcome, for the log.
const REFUSED_REPLY_MESSAGE: &str = "notify refused";

/// What the sender of a notify that could not be handled now is told (it sends it
/// again). The reason, which may name the database, stays in the outcome, for the log.
const RETRY_REPLY_MESSAGE: &str = "temporarily unable to handle the notify";

/// The answer to WeChat's POST: what happened, and the XML that tells WeChat so.
///
/// The XML is derived from the outcome, never given: `SUCCESS` exactly when the outcome is
/// [acknowledged](NotifyOutcome::acknowledged) — which is only ever built after the state
/// is committed — and `FAIL` otherwise, so a refusal cannot be answered SUCCESS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyReply {
    outcome: NotifyOutcome,
}

impl NotifyReply {
    /// The reply for `outcome`.
    pub fn new(outcome: NotifyOutcome) -> Self {
        NotifyReply { outcome }
    }

    /// A refusal of kind `kind`: nothing changed, and WeChat hears the same `FAIL`
    /// whatever `reason` is.
    pub fn refused(kind: RefusalReason, reason: impl Into<String>) -> Self {
        Self::new(NotifyOutcome::Rejected {
            reason: reason.into(),
            kind,
        })
    }

    /// A verified notify whose state could not be committed (or handed on): WeChat hears
    /// `FAIL` and sends it again; `reason` is not sent.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::new(NotifyOutcome::Failed {
            reason: reason.into(),
        })
    }

    /// What happened.
    pub fn outcome(&self) -> &NotifyOutcome {
        &self.outcome
    }

    /// What happened, by value.
    pub fn into_outcome(self) -> NotifyOutcome {
        self.outcome
    }

    /// Whether WeChat is told SUCCESS (it stops re-sending).
    pub fn acknowledged(&self) -> bool {
        self.outcome.acknowledged()
    }

    /// The exact XML to send back: `SUCCESS` when [acknowledged](Self::acknowledged),
    /// else `FAIL` with a message that says nothing of the reason.
    pub fn xml(&self) -> String {
        match &self.outcome {
            outcome if outcome.acknowledged() => wechatpay_v2::success_reply().to_owned(),
            NotifyOutcome::Rejected { .. } => wechatpay_v2::fail_reply(REFUSED_REPLY_MESSAGE),
            _ => wechatpay_v2::fail_reply(RETRY_REPLY_MESSAGE),
        }
    }
}

/// The status of a V3 notify's answer when it is refused (nothing changed): a 4xx, so
/// WeChat sends it again and a forger learns nothing more.
pub const V3_REFUSED_STATUS: u16 = 400;

impl NotifyReply {
    /// The HTTP status of the answer to a V3 notify: 204 (no body) when
    /// [acknowledged](Self::acknowledged), 400 for a refusal, 500 when it could not be
    /// handled now; WeChat sends the notify again after anything but a 2xx.
    pub fn v3_status(&self) -> u16 {
        match &self.outcome {
            outcome if outcome.acknowledged() => wechatpay_v3::notify::SUCCESS_STATUS,
            NotifyOutcome::Rejected { .. } => V3_REFUSED_STATUS,
            _ => wechatpay_v3::notify::FAIL_STATUS,
        }
    }

    /// The body of the answer to a V3 notify: none when acknowledged, else
    /// `{"code": "FAIL", "message": …}` saying nothing of the reason (as [`Self::xml`]).
    pub fn v3_body(&self) -> Option<serde_json::Value> {
        let message = match &self.outcome {
            outcome if outcome.acknowledged() => return None,
            NotifyOutcome::Rejected { .. } => REFUSED_REPLY_MESSAGE,
            _ => RETRY_REPLY_MESSAGE,
        };
        Some(serde_json::json!({"code": "FAIL", "message": message}))
    }

    /// The answer to a V3 notify as the host's `http` body format takes it:
    /// `{"status", "body"}`.
    pub fn v3_http(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.v3_status(),
            "body": self.v3_body(),
        })
    }
}

/// A V3 notify as the host received it (its `http` body format): the request's headers,
/// names lower-case, and its raw body. Nothing in it is trusted yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyRequest {
    /// The headers (lower-case names); the host passes no credentials.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The raw body, exactly as received (the signature covers its bytes).
    pub body: String,
}

impl NotifyRequest {
    /// A request of `headers` (any case) and `body`.
    pub fn new<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: impl Into<String>,
    ) -> Self {
        NotifyRequest {
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                .collect(),
            body: body.into(),
        }
    }

    /// The header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The signature headers WeChat sends, or the one missing.
    pub fn signed_headers(&self) -> Result<wechatpay_v3::SignedHeaders, wechatpay_v3::VerifyError> {
        use wechatpay_v3::verify::{
            HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_SIGNATURE_TYPE, HEADER_TIMESTAMP,
        };
        let get = |name: &'static str| {
            self.header(&name.to_ascii_lowercase())
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let required =
            |name: &'static str| get(name).ok_or(wechatpay_v3::VerifyError::MissingHeader(name));
        Ok(wechatpay_v3::SignedHeaders {
            timestamp: required(HEADER_TIMESTAMP)?,
            nonce: required(HEADER_NONCE)?,
            signature: required(HEADER_SIGNATURE)?,
            serial: required(HEADER_SERIAL)?,
            signature_type: get(HEADER_SIGNATURE_TYPE),
        })
    }
}

/// What a V3 notify says once verified and decrypted.
#[derive(Clone, Debug, PartialEq)]
pub enum OpenedEvent {
    /// `TRANSACTION.SUCCESS`: a paid order.
    Payment(wechatpay_v3::PaymentNotify),
    /// `REFUND.*`: a refund reached a final state.
    Refund(wechatpay_v3::RefundNotify),
}

/// A V3 notify verified with the keys of the element that opened it and decrypted with its
/// APIv3 key. Only this crate makes one, so holding one means exactly that; an element
/// handed one that another element opened opens the request again with its own keys.
#[derive(Clone, Debug)]
pub struct OpenedNotify {
    opened_by: String,
    event: OpenedEvent,
    request: NotifyRequest,
}

impl OpenedNotify {
    /// The notify `element` opened from `request`.
    pub(crate) fn new(element: &str, event: OpenedEvent, request: NotifyRequest) -> Self {
        OpenedNotify {
            opened_by: element.to_owned(),
            event,
            request,
        }
    }

    /// The element whose keys verified and decrypted it.
    pub fn opened_by(&self) -> &str {
        &self.opened_by
    }

    /// What it says.
    pub fn event(&self) -> &OpenedEvent {
        &self.event
    }

    /// The request it came in.
    pub fn request(&self) -> &NotifyRequest {
        &self.request
    }

    /// The merchant's order number it is about (a refund's order for a refund).
    pub fn out_trade_no(&self) -> &str {
        match &self.event {
            OpenedEvent::Payment(payment) => &payment.transaction.out_trade_no,
            OpenedEvent::Refund(refund) => &refund.refund.out_trade_no,
        }
    }
}

impl From<NotifyOutcome> for NotifyReply {
    fn from(outcome: NotifyOutcome) -> Self {
        NotifyReply::new(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wechatpay_v2::{NOTIFY_SUCCESS_REPLY, fail_reply};

    fn every_outcome() -> Vec<NotifyOutcome> {
        let order_id = || "D1".to_owned();
        vec![
            NotifyOutcome::Paid {
                order_id: order_id(),
            },
            NotifyOutcome::PaidAfterClose {
                order_id: order_id(),
            },
            NotifyOutcome::AlreadyPaid {
                order_id: order_id(),
            },
            NotifyOutcome::NotPaid {
                order_id: order_id(),
            },
            NotifyOutcome::PaymentConflict {
                order_id: order_id(),
                transaction_id: "T2".into(),
            },
            NotifyOutcome::Rejected {
                reason: "bad signature".into(),
                kind: RefusalReason::BadSignature,
            },
            NotifyOutcome::Failed {
                reason: "database error while committing: disk full at /var/db".into(),
            },
        ]
    }

    #[test]
    fn the_reply_is_success_exactly_when_the_outcome_is_acknowledged() {
        for outcome in every_outcome() {
            let reply = NotifyReply::from(outcome.clone());
            let success = reply.xml() == NOTIFY_SUCCESS_REPLY;
            assert_eq!(success, outcome.acknowledged(), "{outcome:?}");
            assert_eq!(reply.acknowledged(), outcome.acknowledged(), "{outcome:?}");
            if !success {
                assert!(reply.xml().contains("<![CDATA[FAIL]]>"), "{}", reply.xml());
            }
        }
    }

    /// A refusal can never carry SUCCESS: there is no way to give a reply its XML. (Before,
    /// the XML was a public field set beside the outcome, and a pay element answering
    /// through its functions could pair `rejected` with SUCCESS.)
    #[test]
    fn a_refused_outcome_never_carries_success_xml() {
        for reply in [
            NotifyReply::refused(RefusalReason::BadSignature, "forged"),
            NotifyReply::new(NotifyOutcome::Rejected {
                reason: "SUCCESS".into(),
                kind: RefusalReason::Other,
            }),
        ] {
            assert!(!reply.acknowledged());
            assert_ne!(reply.xml(), NOTIFY_SUCCESS_REPLY);
            assert_eq!(reply.xml(), fail_reply("notify refused"));
        }
    }

    #[test]
    fn a_failure_is_answered_without_its_reason() {
        let reply = NotifyReply::failed("database error while committing: disk full at /var/db");
        assert_eq!(
            reply.xml(),
            fail_reply("temporarily unable to handle the notify")
        );
        assert!(!reply.xml().contains("/var/db"));
    }
}
