//! Notifies: WeChat's signed, encrypted callbacks for payments and refunds, and the replies.
//!
//! A notify body is `{"id", "create_time", "event_type", "resource_type": "encrypt-resource",
//! "resource": {AEAD_AES_256_GCM…}, "summary"}` with the signature headers of any WeChat
//! answer. [`open_notify`] verifies the signature over the raw body first (nothing is
//! parsed before), then reads the envelope and decrypts the resource with the APIv3 key;
//! [`Notify::into_payment`] and [`Notify::into_refund`] read the plaintext as a
//! [`Transaction`] or a [`RefundNotice`] and check that it fits the event. What stays the
//! caller's: compare `mchid`, `appid`, amount and `out_trade_no` with the stored order, handle
//! each notify idempotently, and reply [`SUCCESS_STATUS`] only once the result is stored.
//!
//! Replies: success is HTTP 200 or 204 with no body; anything else asks WeChat to send the
//! notify again, conventionally 500 with [`fail_reply`]'s `{"code": "FAIL", "message": …}`.
//!
//! [`seal_notify`] builds a notify as WeChat does, for the simulator and tests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aead::EncryptedResource;
use crate::calls::Transaction;
use crate::json::{malformed, opt_string, opt_time, parse_object, read};
use crate::keys::{ApiV3Key, KeyError};
use crate::time::{parse_rfc3339, rfc3339_beijing};
use crate::types::{EventType, RefundStatus, TradeState};
use crate::verify::{PlatformSigner, SignedHeaders, VerifiedBy, Verifier};
use crate::{Error, Fen};

/// The context of errors about a notify before its kind is known.
pub const NOTIFY: &str = "notify";
/// The context of errors about a payment notify.
pub const PAYMENT_NOTIFY: &str = "payment notify";
/// The context of errors about a refund notify.
pub const REFUND_NOTIFY: &str = "refund notify";

/// The status of a success reply (with no body).
pub const SUCCESS_STATUS: u16 = 204;
/// The status of a failure reply, which makes WeChat send the notify again.
pub const FAIL_STATUS: u16 = 500;

/// The body of a failure reply: `{"code":"FAIL","message":…}`, JSON-escaped whatever the
/// message holds.
pub fn fail_reply(message: &str) -> String {
    json!({"code": "FAIL", "message": message}).to_string()
}

/// A notify's envelope as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEnvelope {
    /// The notify id.
    pub id: String,
    /// When WeChat made it (RFC 3339).
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    /// The encrypted payload.
    pub resource: EncryptedResource,
    /// WeChat's summary (`支付成功`).
    #[serde(default)]
    pub summary: String,
}

/// A verified and decrypted notify, its payload still bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// The notify id.
    pub id: String,
    /// When WeChat made it.
    pub create_time: DateTime<Utc>,
    /// The event, verbatim.
    pub event_type: String,
    /// WeChat's summary.
    pub summary: String,
    /// `resource.original_type`, when sent.
    pub original_type: Option<String>,
    /// The decrypted resource (JSON).
    pub plaintext: Vec<u8>,
    /// The key that verified it.
    pub verified_by: VerifiedBy,
}

/// Verifies, reads and decrypts a notify (see the module docs for the order).
pub fn open_notify(
    verifier: &Verifier,
    key: &ApiV3Key,
    headers: &SignedHeaders,
    body: &[u8],
) -> Result<Notify, Error> {
    let verified_by = verifier
        .verify(headers, body)
        .map_err(|source| Error::InvalidSignature {
            context: NOTIFY,
            source,
        })?;
    read_verified_notify(key, body, verified_by)
}

/// Reads and decrypts a notify whose signature has been verified.
pub(crate) fn read_verified_notify(
    key: &ApiV3Key,
    body: &[u8],
    verified_by: VerifiedBy,
) -> Result<Notify, Error> {
    let envelope: NotifyEnvelope = read(&parse_object(body, NOTIFY)?, NOTIFY)?;
    if envelope.resource_type != "encrypt-resource" {
        return Err(malformed(
            NOTIFY,
            format!(
                "`resource_type` is `{}`, not encrypt-resource",
                envelope.resource_type
            ),
        ));
    }
    let create_time = parse_rfc3339(&envelope.create_time)
        .map_err(|e| malformed(NOTIFY, format!("`create_time`: {e}")))?;
    let plaintext = envelope
        .resource
        .decrypt(key)
        .map_err(|source| Error::Decrypt {
            context: NOTIFY,
            source,
        })?;
    Ok(Notify {
        id: envelope.id,
        create_time,
        event_type: envelope.event_type,
        summary: envelope.summary,
        original_type: envelope.resource.original_type,
        plaintext,
        verified_by,
    })
}

/// A payment notify: a paid order.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentNotify {
    /// The notify id.
    pub id: String,
    /// When WeChat made it.
    pub create_time: DateTime<Utc>,
    /// WeChat's summary.
    pub summary: String,
    /// The paid order.
    pub transaction: Transaction,
}

/// `amount` of a refund notify.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundNoticeAmount {
    /// The order's total.
    pub total: Fen,
    /// The refunded amount.
    pub refund: Fen,
    /// What the buyer paid.
    #[serde(default)]
    pub payer_total: Option<Fen>,
    /// What the buyer gets back.
    #[serde(default)]
    pub payer_refund: Option<Fen>,
}

/// The plaintext of a refund notify.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundNotice {
    /// The merchant id.
    pub mchid: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// The outcome.
    pub refund_status: RefundStatus,
    /// When it succeeded.
    pub success_time: Option<DateTime<Utc>>,
    /// Where the money went.
    pub user_received_account: Option<String>,
    /// The amounts.
    pub amount: RefundNoticeAmount,
    /// The whole plaintext.
    pub raw: Value,
}

#[derive(Deserialize)]
struct RefundNoticeWire {
    mchid: String,
    out_trade_no: String,
    transaction_id: String,
    out_refund_no: String,
    refund_id: String,
    refund_status: RefundStatus,
    #[serde(default, deserialize_with = "opt_time")]
    success_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_string")]
    user_received_account: Option<String>,
    amount: RefundNoticeAmount,
}

/// A refund notify: a refund reached a final state.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundNotify {
    /// The notify id.
    pub id: String,
    /// When WeChat made it.
    pub create_time: DateTime<Utc>,
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED`.
    pub event_type: EventType,
    /// WeChat's summary.
    pub summary: String,
    /// The refund.
    pub refund: RefundNotice,
}

impl Notify {
    fn event(&self, context: &'static str) -> Result<EventType, Error> {
        self.event_type
            .parse()
            .map_err(|e| malformed(context, format!("`event_type`: {e}")))
    }

    fn check_original_type(&self, context: &'static str, expected: &str) -> Result<(), Error> {
        match &self.original_type {
            Some(kind) if kind != expected => Err(malformed(
                context,
                format!("`resource.original_type` is `{kind}`, expected `{expected}`"),
            )),
            _ => Ok(()),
        }
    }

    /// Reads a payment notify: `TRANSACTION.SUCCESS` carrying a paid transaction.
    pub fn into_payment(self) -> Result<PaymentNotify, Error> {
        let context = PAYMENT_NOTIFY;
        if self.event(context)? != EventType::TransactionSuccess {
            return Err(malformed(
                context,
                format!(
                    "`event_type` is `{}`, not TRANSACTION.SUCCESS",
                    self.event_type
                ),
            ));
        }
        self.check_original_type(context, "transaction")?;
        let transaction = Transaction::read(parse_object(&self.plaintext, context)?, context)?;
        if transaction.trade_state != TradeState::Success {
            return Err(malformed(
                context,
                format!(
                    "`trade_state` is `{}`, not SUCCESS",
                    transaction.trade_state
                ),
            ));
        }
        Ok(PaymentNotify {
            id: self.id,
            create_time: self.create_time,
            summary: self.summary,
            transaction,
        })
    }

    /// Reads a refund notify: a `REFUND.*` event whose `refund_status` agrees with it.
    pub fn into_refund(self) -> Result<RefundNotify, Error> {
        let context = REFUND_NOTIFY;
        let event_type = self.event(context)?;
        let expected_status = match event_type {
            EventType::RefundSuccess => RefundStatus::Success,
            EventType::RefundAbnormal => RefundStatus::Abnormal,
            EventType::RefundClosed => RefundStatus::Closed,
            EventType::TransactionSuccess => {
                return Err(malformed(
                    context,
                    "`event_type` is TRANSACTION.SUCCESS, not a refund",
                ));
            }
        };
        self.check_original_type(context, "refund")?;
        let raw = parse_object(&self.plaintext, context)?;
        let w: RefundNoticeWire = read(&raw, context)?;
        if w.refund_status != expected_status {
            return Err(malformed(
                context,
                format!(
                    "`refund_status` {} does not match event {event_type}",
                    w.refund_status
                ),
            ));
        }
        if !w.amount.refund.is_positive() || w.amount.refund > w.amount.total {
            return Err(malformed(
                context,
                "`amount.refund` is not positive or exceeds `amount.total`",
            ));
        }
        Ok(RefundNotify {
            id: self.id,
            create_time: self.create_time,
            event_type,
            summary: self.summary,
            refund: RefundNotice {
                mchid: w.mchid,
                out_trade_no: w.out_trade_no,
                transaction_id: w.transaction_id,
                out_refund_no: w.out_refund_no,
                refund_id: w.refund_id,
                refund_status: w.refund_status,
                success_time: w.success_time,
                user_received_account: w.user_received_account,
                amount: w.amount,
                raw,
            },
        })
    }
}

/// Verifies and reads a payment notify.
pub fn parse_payment_notify(
    verifier: &Verifier,
    key: &ApiV3Key,
    headers: &SignedHeaders,
    body: &[u8],
) -> Result<PaymentNotify, Error> {
    open_notify(verifier, key, headers, body)?.into_payment()
}

/// Verifies and reads a refund notify.
pub fn parse_refund_notify(
    verifier: &Verifier,
    key: &ApiV3Key,
    headers: &SignedHeaders,
    body: &[u8],
) -> Result<RefundNotify, Error> {
    open_notify(verifier, key, headers, body)?.into_refund()
}

/// Builds a notify as WeChat sends it: the plaintext encrypted with the APIv3 key under a
/// fresh nonce (associated data = `original_type`), the envelope, and its signature headers.
/// For the simulator and tests.
pub fn seal_notify(
    signer: &PlatformSigner,
    key: &ApiV3Key,
    id: &str,
    event_type: EventType,
    summary: &str,
    original_type: &str,
    plaintext: &[u8],
) -> Result<(SignedHeaders, Vec<u8>), KeyError> {
    let envelope = NotifyEnvelope {
        id: id.to_owned(),
        create_time: rfc3339_beijing(Utc::now()),
        event_type: event_type.as_str().to_owned(),
        resource_type: "encrypt-resource".to_owned(),
        resource: EncryptedResource::encrypt(key, Some(original_type), original_type, plaintext),
        summary: summary.to_owned(),
    };
    let body = serde_json::to_vec(&envelope).expect("an envelope always serialises");
    Ok((signer.sign(&body)?, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PlatformPrivateKey;
    use crate::verify::tests::platform_key;

    const KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";

    fn key() -> ApiV3Key {
        ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    /// A verifier holding another key under the same id: a forger's.
    fn other_verifier() -> Verifier {
        Verifier::public_key(
            PlatformPrivateKey::from_rsa(
                rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap(),
            )
            .unwrap()
            .wechatpay_public_key(KEY_ID)
            .unwrap(),
        )
    }

    fn paid() -> Value {
        json!({
            "appid": "wx1", "mchid": "1900000001", "out_trade_no": "T2026000001",
            "transaction_id": "4200000891202103228088184743", "trade_type": "NATIVE",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2026-01-01T12:00:00+08:00",
            "payer": {"openid": "o1"}, "amount": {"total": 9999, "payer_total": 9999, "currency": "CNY", "payer_currency": "CNY"}
        })
    }

    fn own_verifier() -> Verifier {
        Verifier::public_key(platform_key().wechatpay_public_key(KEY_ID).unwrap())
    }

    fn sealed(
        event: EventType,
        original_type: &str,
        plaintext: &Value,
    ) -> (SignedHeaders, Vec<u8>) {
        seal_notify(
            &PlatformSigner::new(KEY_ID, platform_key()),
            &key(),
            "EV-2018022511223320873",
            event,
            "支付成功",
            original_type,
            plaintext.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_payment_notify_opens() {
        let (headers, body) = sealed(EventType::TransactionSuccess, "transaction", &paid());
        let notify = parse_payment_notify(&own_verifier(), &key(), &headers, &body).unwrap();
        assert_eq!(notify.transaction.out_trade_no, "T2026000001");
        assert_eq!(notify.transaction.amount.total, Fen::new(9999));
        assert_eq!(notify.id, "EV-2018022511223320873");
        // Another key pair does not verify it; a refund reading refuses it.
        assert!(matches!(
            parse_payment_notify(&other_verifier(), &key(), &headers, &body),
            Err(Error::InvalidSignature { .. })
        ));
        assert!(matches!(
            parse_refund_notify(&own_verifier(), &key(), &headers, &body),
            Err(Error::Malformed {
                context: REFUND_NOTIFY,
                ..
            })
        ));
    }

    #[test]
    fn a_wrong_api_v3_key_is_a_decryption_error() {
        let (headers, body) = sealed(EventType::TransactionSuccess, "transaction", &paid());
        let other = ApiV3Key::new("0123456789abcdef0123456789abcdeX").unwrap();
        assert!(matches!(
            open_notify(&own_verifier(), &other, &headers, &body),
            Err(Error::Decrypt { .. })
        ));
    }

    #[test]
    fn an_unpaid_or_mislabelled_payment_is_refused() {
        let mut unpaid = paid();
        unpaid["trade_state"] = json!("NOTPAY");
        let (headers, body) = sealed(EventType::TransactionSuccess, "transaction", &unpaid);
        let error = parse_payment_notify(&own_verifier(), &key(), &headers, &body).unwrap_err();
        assert!(error.to_string().contains("trade_state"), "{error}");
        let (headers, body) = sealed(EventType::TransactionSuccess, "refund", &paid());
        let error = parse_payment_notify(&own_verifier(), &key(), &headers, &body).unwrap_err();
        assert!(error.to_string().contains("original_type"), "{error}");
    }

    #[test]
    fn refund_notifies_match_their_event() {
        let refund = json!({
            "mchid": "1900000001", "out_trade_no": "T2026000001",
            "transaction_id": "4200000891202103228088184743", "out_refund_no": "R1",
            "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
            "success_time": "2026-01-02T12:00:00+08:00", "user_received_account": "支付用户零钱",
            "amount": {"total": 9999, "refund": 100, "payer_total": 9999, "payer_refund": 100}
        });
        let (headers, body) = sealed(EventType::RefundSuccess, "refund", &refund);
        let notify = parse_refund_notify(&own_verifier(), &key(), &headers, &body).unwrap();
        assert_eq!(notify.event_type, EventType::RefundSuccess);
        assert_eq!(notify.refund.amount.refund, Fen::new(100));
        let (headers, body) = sealed(EventType::RefundClosed, "refund", &refund);
        let error = parse_refund_notify(&own_verifier(), &key(), &headers, &body).unwrap_err();
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn fail_replies_are_json_whatever_the_message() {
        assert_eq!(
            fail_reply("库存不足"),
            r#"{"code":"FAIL","message":"库存不足"}"#
        );
        let hostile = "\"},{\"code\":\"SUCCESS\n\u{0}";
        let parsed: Value = serde_json::from_str(&fail_reply(hostile)).unwrap();
        assert_eq!(parsed["code"], "FAIL");
        assert_eq!(parsed["message"], hostile);
    }
}
