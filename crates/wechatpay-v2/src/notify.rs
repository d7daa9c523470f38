//! Notifies WeChat Pay sends to the merchant: payment results and refund results.
//!
//! A payment notify is parsed into a map first, so the signature covers every field received
//! (coupon and settlement fields included), and only then into [`PaymentNotify`], which keeps
//! the whole map in [`PaymentNotify::raw`]. The key can be chosen after parsing, from the
//! notify's `mch_id`/`appid` ([`UnverifiedNotify`]), for services with several merchants.
//!
//! What this module does not do: check the amount against the stored order, check that the
//! `appid`/`mch_id` are the expected ones for that order, or deduplicate. Those need the
//! merchant's records and belong to the caller.

use aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ecb::cipher::block_padding::Pkcs7;
use ecb::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit};
use md5::{Digest, Md5};

use crate::fields::{Fields, decode_document};
use crate::types::{RefundStatus, TradeType};
use crate::{ApiKey, Error, Fen, Params, SignType, verify, xml};

const PAYMENT_NOTIFY: &str = "payment notify";
const REFUND_NOTIFY: &str = "refund notify";

/// The exact reply that stops WeChat from re-sending a notify.
pub const NOTIFY_SUCCESS_REPLY: &str = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

/// The reply acknowledging a notify: [`NOTIFY_SUCCESS_REPLY`].
pub fn success_reply() -> &'static str {
    NOTIFY_SUCCESS_REPLY
}

/// A FAIL reply: WeChat will send the notify again later. Any message is safe: it is written
/// in CDATA with `]]>` split across sections, and characters XML cannot carry at all (control
/// characters other than tab and line breaks, U+FFFE, U+FFFF) become U+FFFD, so the reply is
/// always well-formed XML in the same shape as [`success_reply`]. `message` is shown to nobody
/// but WeChat's logs; do not put secrets in it.
pub fn fail_reply(message: &str) -> String {
    notify_reply("FAIL", &xml_text(message))
}

/// `<xml><return_code>…</return_code><return_msg>…</return_msg></xml>`, both in CDATA as
/// WeChat writes its own replies.
fn notify_reply(return_code: &str, return_msg: &str) -> String {
    let mut out = String::with_capacity(return_msg.len() + 110);
    out.push_str("<xml><return_code>");
    xml::push_cdata(&mut out, return_code);
    out.push_str("</return_code><return_msg>");
    xml::push_cdata(&mut out, return_msg);
    out.push_str("</return_msg></xml>");
    out
}

/// `text` with every character XML 1.0 cannot carry, even in CDATA, replaced by U+FFFD.
fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(allowed) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if allowed(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect::<String>()
        .into()
}

/// A payment notify whose XML is well-formed but whose signature is not checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedNotify {
    params: Params,
}

impl UnverifiedNotify {
    /// Parses the body (64 KiB cap, strict XML).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let params = decode_document(body, PAYMENT_NOTIFY)?;
        Ok(UnverifiedNotify { params })
    }

    /// The merchant id the notify claims, to choose the key with. Not yet authenticated.
    pub fn mch_id(&self) -> Option<&str> {
        self.params.get("mch_id").map(String::as_str)
    }

    /// The appid the notify claims. Not yet authenticated.
    pub fn appid(&self) -> Option<&str> {
        self.params.get("appid").map(String::as_str)
    }

    /// The fields as received. Not yet authenticated.
    pub fn unverified_params(&self) -> &Params {
        &self.params
    }

    /// Verifies the signature with `api_key` and reads the typed notify.
    pub fn verify(self, api_key: &ApiKey) -> Result<PaymentNotify, Error> {
        let fields = Fields::new(&self.params, PAYMENT_NOTIFY);
        fields.ensure_return_success()?;
        let sign_type =
            verify(&self.params, api_key).map_err(|source| Error::InvalidSignature {
                context: PAYMENT_NOTIFY,
                source,
            })?;
        PaymentNotify::from_verified(self.params, sign_type)
    }
}

/// A verified payment result notify. Every field received is in [`raw`](Self::raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotify {
    /// `result_code`: `SUCCESS` when the buyer paid.
    pub result_code: String,
    /// `err_code` when the payment failed.
    pub err_code: Option<String>,
    /// `err_code_des` when the payment failed.
    pub err_code_des: Option<String>,
    /// The appid the order was made for.
    pub appid: String,
    /// The merchant id.
    pub mch_id: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id (present when paid).
    pub transaction_id: Option<String>,
    /// The order amount.
    pub total_fee: Fen,
    /// What the buyer paid in cash (total minus coupons).
    pub cash_fee: Option<Fen>,
    /// Amount due after non-cash coupons (`settlement_total_fee`), when present.
    pub settlement_total_fee: Option<Fen>,
    /// Currency, `CNY` when absent.
    pub fee_type: Option<String>,
    /// The buyer's openid.
    pub openid: Option<String>,
    /// How the buyer paid.
    pub trade_type: Option<TradeType>,
    /// The bank or balance used.
    pub bank_type: Option<String>,
    /// The merchant's `attach`, echoed.
    pub attach: Option<String>,
    /// Payment time, `yyyyMMddHHmmss` Beijing time.
    pub time_end: Option<String>,
    /// The algorithm the notify was signed with.
    pub sign_type: SignType,
    /// Every field received, in order, `sign` included.
    pub raw: Params,
}

impl PaymentNotify {
    fn from_verified(raw: Params, sign_type: SignType) -> Result<Self, Error> {
        let f = Fields::new(&raw, PAYMENT_NOTIFY);
        let result_code = f.required("result_code")?;
        let paid = result_code == "SUCCESS";
        Ok(PaymentNotify {
            err_code: f.optional("err_code"),
            err_code_des: f.optional("err_code_des"),
            appid: f.required("appid")?,
            mch_id: f.required("mch_id")?,
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: if paid {
                Some(f.required("transaction_id")?)
            } else {
                f.optional("transaction_id")
            },
            total_fee: f.fen("total_fee")?,
            cash_fee: f.optional_fen("cash_fee")?,
            settlement_total_fee: f.optional_fen("settlement_total_fee")?,
            fee_type: f.optional("fee_type"),
            openid: f.optional("openid"),
            trade_type: f.optional_parsed("trade_type")?,
            bank_type: f.optional("bank_type"),
            attach: f.optional("attach"),
            time_end: f.optional("time_end"),
            sign_type,
            result_code,
            raw,
        })
    }

    /// `true` when the buyer paid (`result_code=SUCCESS`).
    pub fn is_paid(&self) -> bool {
        self.result_code == "SUCCESS"
    }
}

/// Parses and verifies a payment notify with one merchant's key.
pub fn parse_payment_notify(body: &[u8], api_key: &ApiKey) -> Result<PaymentNotify, Error> {
    UnverifiedNotify::parse(body)?.verify(api_key)
}

/// The AES key of refund notifies: the 32 ASCII bytes of the lower-case hex MD5 of the API key.
fn refund_aes_key(api_key: &ApiKey) -> [u8; 32] {
    let digest = Md5::digest(api_key.expose_secret().as_bytes());
    let mut key = [0u8; 32];
    hex::encode_to_slice(digest, &mut key).expect("16 bytes are 32 hex digits");
    key
}

/// Decrypts a refund notify's `req_info` (base64, AES-256-ECB, PKCS#7) into its fields.
pub fn decrypt_req_info(req_info: &str, api_key: &ApiKey) -> Result<Params, Error> {
    let malformed = |reason: &str| Error::Malformed {
        context: REFUND_NOTIFY,
        reason: reason.to_owned(),
    };
    let ciphertext = BASE64
        .decode(req_info.trim())
        .map_err(|_| malformed("req_info is not base64"))?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(malformed("req_info is not a whole number of AES blocks"));
    }
    let key = refund_aes_key(api_key);
    let plaintext = ecb::Decryptor::<Aes256>::new(&key.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        // A wrong key almost always shows up as bad padding.
        .map_err(|_| malformed("req_info does not decrypt with this merchant's key"))?;
    decode_document(&plaintext, REFUND_NOTIFY)
}

/// Encrypts refund fields the way WeChat does (`<root>` XML, AES-256-ECB, PKCS#7, base64).
/// Used by simulators and tests.
pub fn encrypt_req_info(fields: &Params, api_key: &ApiKey) -> String {
    let plaintext = xml::encode_with_root("root", fields);
    let key = refund_aes_key(api_key);
    let ciphertext = ecb::Encryptor::<Aes256>::new(&key.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    BASE64.encode(ciphertext)
}

/// A decrypted refund notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotify {
    /// The appid (outer, unencrypted field).
    pub appid: String,
    /// The merchant id (outer, unencrypted field).
    pub mch_id: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// The order amount.
    pub total_fee: Fen,
    /// The refund amount requested.
    pub refund_fee: Fen,
    /// The refund amount after non-cash coupons.
    pub settlement_refund_fee: Option<Fen>,
    /// Outcome of the refund.
    pub refund_status: RefundStatus,
    /// When it succeeded, `yyyy-MM-dd HH:mm:ss`.
    pub success_time: Option<String>,
    /// Where the money went (field spelled `refund_recv_accout` by WeChat).
    pub refund_recv_account: Option<String>,
    /// Which merchant account paid the refund.
    pub refund_account: Option<String>,
    /// Who asked for the refund (API, VENDOR_PLATFORM...).
    pub refund_request_source: Option<String>,
    /// The outer fields as received.
    pub outer: Params,
    /// The decrypted fields as received.
    pub info: Params,
}

/// Parses a refund notify and decrypts its `req_info` with one merchant's key.
///
/// Refund notifies carry no signature; decrypting with the merchant's key is what
/// authenticates them.
pub fn parse_refund_notify(body: &[u8], api_key: &ApiKey) -> Result<RefundNotify, Error> {
    let outer = decode_document(body, REFUND_NOTIFY)?;
    let o = Fields::new(&outer, REFUND_NOTIFY);
    o.ensure_return_success()?;
    let info = decrypt_req_info(&o.required("req_info")?, api_key)?;
    let i = Fields::new(&info, REFUND_NOTIFY);
    Ok(RefundNotify {
        appid: o.required("appid")?,
        mch_id: o.required("mch_id")?,
        transaction_id: i.required("transaction_id")?,
        out_trade_no: i.required("out_trade_no")?,
        refund_id: i.required("refund_id")?,
        out_refund_no: i.required("out_refund_no")?,
        total_fee: i.fen("total_fee")?,
        refund_fee: i.fen("refund_fee")?,
        settlement_refund_fee: i.optional_fen("settlement_refund_fee")?,
        refund_status: i.parsed("refund_status")?,
        success_time: i.optional("success_time"),
        refund_recv_account: i.optional("refund_recv_accout"),
        refund_account: i.optional("refund_account"),
        refund_request_source: i.optional("refund_request_source"),
        info,
        outer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_replies_have_one_shape() {
        assert_eq!(notify_reply("SUCCESS", "OK"), NOTIFY_SUCCESS_REPLY);
        assert_eq!(
            fail_reply("busy"),
            "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"
        );
    }
}
