//! Verifying what WeChat signs: responses and notifies.
//!
//! WeChat signs `TIMESTAMP\nNONCE\nBODY\n` ([`response_message`]) and sends the parts in
//! four headers ([`SignedHeaders`]): `Wechatpay-Timestamp`, `Wechatpay-Nonce`,
//! `Wechatpay-Signature` and `Wechatpay-Serial`, the last naming the key: a platform
//! certificate's serial (hexadecimal) or the WeChat Pay public key's id (`PUB_KEY_ID_…`). A
//! [`Verifier`] holds the keys a merchant trusts, one kind or both at once during a
//! switchover, and picks the key by that header.
//!
//! The checks, in order, each its own [`VerifyError`]: the headers are present;
//! the signature is not a `WECHATPAY/SIGNTEST/` probe (WeChat sends these on purpose to see
//! that merchants refuse them: [`VerifyError::SignTestProbe`], refused without alarm); the
//! signature type, when sent, is `WECHATPAY2-SHA256-RSA2048`; the timestamp lies within the
//! window (five minutes by default) around now, against replays; the serial names a key held
//! (a certificate only while valid); and the signature verifies over the raw body bytes.
//!
//! [`PlatformSigner`] is the other side, for the simulator and tests: it signs a body as
//! WeChat does.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::certificates::PlatformCertificates;
use crate::keys::{
    KeyError, PlatformPrivateKey, SignatureMismatch, WechatPayPublicKey, rsa_sha256_verify,
};
use crate::sign::{SIGNATURE_SCHEME, response_message};

/// `Wechatpay-Timestamp`: unix seconds.
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
/// `Wechatpay-Nonce`.
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
/// `Wechatpay-Signature`: base64.
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
/// `Wechatpay-Serial`: the key's certificate serial or public key id.
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
/// `Wechatpay-Signature-Type`: `WECHATPAY2-SHA256-RSA2048` when sent.
pub const HEADER_SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";

/// What WeChat's deliberate probe signatures start with.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// The default replay window: a signature more than five minutes from now is refused.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);

/// Why a response or notify is not accepted as WeChat's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A signature header is missing.
    #[error("header `{0}` is missing")]
    MissingHeader(&'static str),
    /// A signature header that is not visible ASCII.
    #[error("header `{0}` is not text")]
    HeaderNotText(&'static str),
    /// A `WECHATPAY/SIGNTEST/` probe: WeChat checking that forged signatures are refused.
    #[error("a WECHATPAY/SIGNTEST/ probe signature, refused as it should be")]
    SignTestProbe,
    /// A `Wechatpay-Signature-Type` other than `WECHATPAY2-SHA256-RSA2048`.
    #[error("unsupported Wechatpay-Signature-Type `{0}`")]
    UnsupportedSignatureType(String),
    /// A timestamp that is not unix seconds.
    #[error("Wechatpay-Timestamp `{0}` is not unix seconds")]
    BadTimestamp(String),
    /// A timestamp outside the window: a replay, or a clock far off.
    #[error("Wechatpay-Timestamp {timestamp} is {skew} s from now, outside the {window} s window")]
    StaleTimestamp {
        /// The timestamp received.
        timestamp: i64,
        /// Its distance from now, in seconds.
        skew: i64,
        /// The window, in seconds.
        window: u64,
    },
    /// A serial naming no key held.
    #[error("Wechatpay-Serial `{0}` names no certificate or public key held")]
    UnknownSerial(String),
    /// A platform certificate used outside its validity.
    #[error("platform certificate `{serial}` is not valid now (valid until {not_after})")]
    CertificateNotValid {
        /// The certificate's serial.
        serial: String,
        /// Its end of validity.
        not_after: DateTime<Utc>,
    },
    /// The signature does not verify.
    #[error("Wechatpay-Signature: {0}")]
    Signature(#[from] SignatureMismatch),
}

impl VerifyError {
    /// `true` for WeChat's probe: refuse it, log it quietly, page nobody.
    pub fn is_probe(&self) -> bool {
        matches!(self, VerifyError::SignTestProbe)
    }
}

/// The four (or five) signature headers of a response or notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Wechatpay-Timestamp`.
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature`.
    pub signature: String,
    /// `Wechatpay-Serial`.
    pub serial: String,
    /// `Wechatpay-Signature-Type`, when sent.
    pub signature_type: Option<String>,
}

fn header(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, VerifyError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|_| VerifyError::HeaderNotText(name)),
    }
}

fn required(headers: &HeaderMap, name: &'static str) -> Result<String, VerifyError> {
    header(headers, name)?
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

impl SignedHeaders {
    /// Reads the headers (names are case-insensitive).
    pub fn from_headers(headers: &HeaderMap) -> Result<SignedHeaders, VerifyError> {
        Ok(SignedHeaders {
            timestamp: required(headers, HEADER_TIMESTAMP)?,
            nonce: required(headers, HEADER_NONCE)?,
            signature: required(headers, HEADER_SIGNATURE)?,
            serial: required(headers, HEADER_SERIAL)?,
            signature_type: header(headers, HEADER_SIGNATURE_TYPE)?,
        })
    }

    /// The headers as name/value pairs, for a response or notify being sent.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (HEADER_TIMESTAMP, self.timestamp.clone()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
            (HEADER_SERIAL, self.serial.clone()),
        ];
        if let Some(kind) = &self.signature_type {
            pairs.push((HEADER_SIGNATURE_TYPE, kind.clone()));
        }
        pairs
    }

    /// Adds the headers to a header map. A value that cannot be a header value (a nonce
    /// with a line break) is refused, naming the header.
    pub fn insert_into(&self, headers: &mut HeaderMap) -> Result<(), VerifyError> {
        for (name, value) in self.to_pairs() {
            let value =
                HeaderValue::from_str(&value).map_err(|_| VerifyError::HeaderNotText(name))?;
            let name =
                HeaderName::from_bytes(name.as_bytes()).expect("the names are valid header names");
            headers.insert(name, value);
        }
        Ok(())
    }
}

/// Which key verified a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedBy {
    /// The WeChat Pay public key of this id.
    PublicKey(String),
    /// The platform certificate of this serial.
    PlatformCertificate(String),
}

/// The keys a merchant verifies WeChat with: the WeChat Pay public key, platform
/// certificates, or both during a switchover.
#[derive(Debug, Clone)]
pub struct Verifier {
    public_key: Option<WechatPayPublicKey>,
    certificates: Option<Arc<PlatformCertificates>>,
    window: Duration,
}

impl Verifier {
    /// Verifies with the WeChat Pay public key only.
    pub fn public_key(key: WechatPayPublicKey) -> Verifier {
        Verifier {
            public_key: Some(key),
            certificates: None,
            window: DEFAULT_TIMESTAMP_WINDOW,
        }
    }

    /// Verifies with platform certificates only.
    pub fn platform_certificates(certificates: Arc<PlatformCertificates>) -> Verifier {
        Verifier {
            public_key: None,
            certificates: Some(certificates),
            window: DEFAULT_TIMESTAMP_WINDOW,
        }
    }

    /// Verifies with both (a switchover): the serial picks which.
    pub fn both(key: WechatPayPublicKey, certificates: Arc<PlatformCertificates>) -> Verifier {
        Verifier {
            public_key: Some(key),
            certificates: Some(certificates),
            window: DEFAULT_TIMESTAMP_WINDOW,
        }
    }

    /// Another replay window.
    pub fn with_window(mut self, window: Duration) -> Verifier {
        self.window = window;
        self
    }

    /// The public key, when this verifier has one.
    pub fn wechatpay_public_key(&self) -> Option<&WechatPayPublicKey> {
        self.public_key.as_ref()
    }

    /// The certificate store, when this verifier uses platform certificates.
    pub fn certificates(&self) -> Option<&Arc<PlatformCertificates>> {
        self.certificates.as_ref()
    }

    /// Checks a signed body received now.
    pub fn verify(&self, headers: &SignedHeaders, body: &[u8]) -> Result<VerifiedBy, VerifyError> {
        self.verify_at(headers, body, Utc::now())
    }

    /// Checks a signed body as of `now` (see the module docs for the order of the checks).
    pub fn verify_at(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedBy, VerifyError> {
        if headers.signature.starts_with(SIGNTEST_PREFIX) {
            return Err(VerifyError::SignTestProbe);
        }
        if let Some(kind) = &headers.signature_type
            && kind != SIGNATURE_SCHEME
        {
            return Err(VerifyError::UnsupportedSignatureType(kind.clone()));
        }
        self.check_timestamp(&headers.timestamp, now)?;
        let (key, verified_by) = self.key_for(&headers.serial, now)?;
        let message = response_message(&headers.timestamp, &headers.nonce, body);
        rsa_sha256_verify(&key, &message, &headers.signature)?;
        Ok(verified_by)
    }

    fn check_timestamp(&self, timestamp: &str, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let seconds: i64 = timestamp
            .parse()
            .ok()
            .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| VerifyError::BadTimestamp(timestamp.to_owned()))?;
        let skew = seconds.saturating_sub(now.timestamp());
        let window = self.window.as_secs();
        if skew.unsigned_abs() > window {
            return Err(VerifyError::StaleTimestamp {
                timestamp: seconds,
                skew,
                window,
            });
        }
        Ok(())
    }

    /// The key a serial names: the public key of that id, or the platform certificate of
    /// that serial while it is valid.
    fn key_for(
        &self,
        serial: &str,
        now: DateTime<Utc>,
    ) -> Result<(rsa::PublicKey, VerifiedBy), VerifyError> {
        if let Some(key) = &self.public_key
            && key.id() == serial
        {
            return Ok((
                key.rsa().clone(),
                VerifiedBy::PublicKey(key.id().to_owned()),
            ));
        }
        let certificate = self
            .certificates
            .as_ref()
            .filter(|_| !crate::keys::is_public_key_id(serial))
            .and_then(|store| store.get(serial))
            .ok_or_else(|| VerifyError::UnknownSerial(serial.to_owned()))?;
        if !certificate.is_valid_at(now) {
            return Err(VerifyError::CertificateNotValid {
                serial: certificate.serial_no().to_owned(),
                not_after: certificate.not_after(),
            });
        }
        Ok((
            certificate.rsa().clone(),
            VerifiedBy::PlatformCertificate(certificate.serial_no().to_owned()),
        ))
    }

    /// `true` when a serial names a key this verifier holds now (a download of platform
    /// certificates may help when it does not).
    pub fn knows(&self, serial: &str) -> bool {
        self.key_for(serial, Utc::now()).is_ok()
    }
}

/// Signs bodies as WeChat Pay does: for the simulator and tests.
#[derive(Debug, Clone)]
pub struct PlatformSigner {
    serial: String,
    key: PlatformPrivateKey,
}

impl PlatformSigner {
    /// A signer whose `Wechatpay-Serial` is `serial`: a certificate serial or a public key id.
    pub fn new(serial: impl Into<String>, key: PlatformPrivateKey) -> PlatformSigner {
        PlatformSigner {
            serial: serial.into(),
            key,
        }
    }

    /// The serial it signs under.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Signs `body` now, with a fresh nonce.
    pub fn sign(&self, body: &[u8]) -> Result<SignedHeaders, KeyError> {
        self.sign_at(
            body,
            &wechatpay_v2::time::unix_seconds_now(),
            &wechatpay_v2::nonce_str(),
        )
    }

    /// Signs `body` with a given timestamp and nonce.
    pub fn sign_at(
        &self,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
    ) -> Result<SignedHeaders, KeyError> {
        Ok(SignedHeaders {
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            signature: self.key.sign(&response_message(timestamp, nonce, body))?,
            serial: self.serial.clone(),
            signature_type: Some(SIGNATURE_SCHEME.to_owned()),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One RSA-2048 platform key per test binary (generating one is slow), for every test
    /// module that needs WeChat's side.
    pub(crate) fn platform_key() -> PlatformPrivateKey {
        static KEY: std::sync::OnceLock<PlatformPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            PlatformPrivateKey::from_rsa(
                rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap(),
            )
            .unwrap()
        })
        .clone()
    }

    const KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";

    fn verifier() -> Verifier {
        Verifier::public_key(platform_key().wechatpay_public_key(KEY_ID).unwrap())
    }

    fn signed(body: &[u8]) -> SignedHeaders {
        PlatformSigner::new(KEY_ID, platform_key())
            .sign(body)
            .unwrap()
    }

    #[test]
    fn a_signed_body_verifies_and_nothing_else_does() {
        let body = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}"#;
        let headers = signed(body);
        assert_eq!(
            verifier().verify(&headers, body),
            Ok(VerifiedBy::PublicKey(KEY_ID.into()))
        );
        assert_eq!(
            verifier().verify(&headers, &body[1..]),
            Err(VerifyError::Signature(SignatureMismatch::Mismatch))
        );
        let mut other_nonce = headers.clone();
        other_nonce.nonce.push('x');
        assert!(matches!(
            verifier().verify(&other_nonce, body),
            Err(VerifyError::Signature(_))
        ));
    }

    #[test]
    fn probes_are_refused_before_anything_else() {
        let mut probe = signed(b"{}");
        probe.signature = "WECHATPAY/SIGNTEST/Zm9yZ2Vk".into();
        probe.timestamp = "1".into();
        probe.serial = "UNKNOWN".into();
        let error = verifier().verify(&probe, b"{}").unwrap_err();
        assert_eq!(error, VerifyError::SignTestProbe);
        assert!(error.is_probe());
    }

    #[test]
    fn the_timestamp_window_stops_replays() {
        let body = b"{}";
        let now = Utc::now();
        for (offset, ok) in [(-301, false), (-299, true), (299, true), (301, false)] {
            let headers = PlatformSigner::new(KEY_ID, platform_key())
                .sign_at(body, &(now.timestamp() + offset).to_string(), "n")
                .unwrap();
            let result = verifier().verify_at(&headers, body, now);
            assert_eq!(result.is_ok(), ok, "{offset}: {result:?}");
            if !ok {
                assert!(matches!(result, Err(VerifyError::StaleTimestamp { .. })));
            }
        }
        let mut headers = signed(body);
        headers.timestamp = "-5".into();
        assert_eq!(
            verifier().verify(&headers, body),
            Err(VerifyError::BadTimestamp("-5".into()))
        );
    }

    #[test]
    fn unknown_serials_and_signature_types_are_refused() {
        let mut headers = signed(b"{}");
        headers.serial = "PUB_KEY_ID_0999".into();
        assert_eq!(
            verifier().verify(&headers, b"{}"),
            Err(VerifyError::UnknownSerial("PUB_KEY_ID_0999".into()))
        );
        let mut headers = signed(b"{}");
        headers.signature_type = Some("WECHATPAY2-SM2-WITH-SM3".into());
        assert!(matches!(
            verifier().verify(&headers, b"{}"),
            Err(VerifyError::UnsupportedSignatureType(_))
        ));
        // Platform-certificate mode does not take a public key id.
        let store = Arc::new(PlatformCertificates::new());
        assert!(matches!(
            Verifier::platform_certificates(store).verify(&signed(b"{}"), b"{}"),
            Err(VerifyError::UnknownSerial(_))
        ));
    }

    #[test]
    fn headers_round_trip_through_a_header_map() {
        let headers = signed(b"{}");
        let mut map = HeaderMap::new();
        headers.insert_into(&mut map).unwrap();
        assert_eq!(SignedHeaders::from_headers(&map), Ok(headers.clone()));
        let mut broken = headers;
        broken.nonce = "a\nb".into();
        assert_eq!(
            broken.insert_into(&mut HeaderMap::new()),
            Err(VerifyError::HeaderNotText(HEADER_NONCE))
        );
        map.remove("wechatpay-nonce");
        assert_eq!(
            SignedHeaders::from_headers(&map),
            Err(VerifyError::MissingHeader(HEADER_NONCE))
        );
    }
}
