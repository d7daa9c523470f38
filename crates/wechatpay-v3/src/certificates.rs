//! WeChat Pay platform certificates: reading them, and the store that keeps them by serial.
//!
//! Merchants that joined before late 2024 verify WeChat's signatures with platform
//! certificates, downloaded (encrypted with the APIv3 key) from `/v3/certificates` and
//! rotated by WeChat before they expire. Their authenticity rests on that encryption: only
//! WeChat and the merchant know the APIv3 key. A certificate is used only inside its
//! validity; [`PlatformCertificates`] keeps several at once, by serial, so signatures made
//! with the old and the new certificate both verify during a rotation.
//!
//! Serials are compared as numbers written in hexadecimal: case and leading zeros do not
//! matter (`0A1B` is `a1b`), as Java's and Python's SDKs compare them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use rsa::PublicKey;
use rsa::pkcs8::DecodePublicKey;
use x509_parser::prelude::FromDer;

use crate::keys::{KeyError, MIN_RSA_BITS};

/// The fields read from an X.509 certificate.
pub(crate) struct ParsedCertificate {
    pub serial_no: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub public_key: PublicKey,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        what,
        reason: reason.into(),
    }
}

fn timestamp(what: &'static str, seconds: i64) -> Result<DateTime<Utc>, KeyError> {
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| invalid(what, "validity out of range"))
}

/// Reads the one certificate of a PEM text: serial, validity, RSA public key.
pub(crate) fn parse_certificate_pem(
    what: &'static str,
    pem: &str,
) -> Result<ParsedCertificate, KeyError> {
    let (rest, block) = x509_parser::pem::parse_x509_pem(crate::keys::trim_pem(pem).as_bytes())
        .map_err(|_| KeyError::NotPem { what })?;
    if block.label != "CERTIFICATE" {
        return Err(KeyError::WrongPemLabel {
            what,
            label: block.label,
            expected: "`CERTIFICATE`",
        });
    }
    if !rest.trim_ascii().is_empty() {
        return Err(invalid(what, "more than one PEM block"));
    }
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(&block.contents)
        .map_err(|e| invalid(what, format!("not an X.509 certificate: {e}")))?;
    let serial = certificate.tbs_certificate.raw_serial();
    let significant = serial
        .iter()
        .position(|&b| b != 0)
        .map_or(&serial[serial.len().saturating_sub(1)..], |first| {
            &serial[first..]
        });
    let validity = certificate.validity();
    let public_key = PublicKey::from_public_key_der(certificate.public_key().raw)
        .map_err(|e| invalid(what, format!("the certificate's key is not RSA: {e}")))?;
    let bits = rsa::traits::PublicKeyParts::size(&public_key) * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::TooShort { what, bits });
    }
    Ok(ParsedCertificate {
        serial_no: hex::encode_upper(significant),
        not_before: timestamp(what, validity.not_before.timestamp())?,
        not_after: timestamp(what, validity.not_after.timestamp())?,
        public_key,
    })
}

/// The comparable form of a serial: upper-case hexadecimal without leading zeros.
pub(crate) fn serial_key(serial: &str) -> String {
    let trimmed = serial.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_ascii_uppercase()
    }
}

/// A WeChat Pay platform certificate.
#[derive(Clone)]
pub struct PlatformCertificate {
    serial_no: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    public_key: PublicKey,
    pem: String,
}

impl PlatformCertificate {
    /// Reads a certificate (`-----BEGIN CERTIFICATE-----`) with an RSA key of at least 2048
    /// bits: a downloaded one, or one saved earlier.
    pub fn from_pem(pem: &str) -> Result<PlatformCertificate, KeyError> {
        let parsed = parse_certificate_pem("platform certificate", pem)?;
        Ok(PlatformCertificate {
            serial_no: parsed.serial_no,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            public_key: parsed.public_key,
            pem: crate::keys::trim_pem(pem).to_owned(),
        })
    }

    /// The serial number, upper-case hexadecimal: the `Wechatpay-Serial` of what it signs.
    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    /// Valid from.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// Valid until.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// `true` when `now` lies inside the validity.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The certificate as PEM, for saving.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub(crate) fn rsa(&self) -> &PublicKey {
        &self.public_key
    }
}

impl std::fmt::Debug for PlatformCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformCertificate")
            .field("serial_no", &self.serial_no)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Platform certificates by serial, shared by a client and its clones.
#[derive(Debug, Default)]
pub struct PlatformCertificates {
    by_serial: RwLock<BTreeMap<String, PlatformCertificate>>,
}

impl PlatformCertificates {
    /// An empty store.
    pub fn new() -> PlatformCertificates {
        PlatformCertificates::default()
    }

    /// A store holding `certificates`.
    pub fn with(
        certificates: impl IntoIterator<Item = PlatformCertificate>,
    ) -> PlatformCertificates {
        let store = PlatformCertificates::new();
        store.insert_all(certificates);
        store
    }

    /// Adds or replaces certificates (by serial).
    pub fn insert_all(&self, certificates: impl IntoIterator<Item = PlatformCertificate>) {
        let mut map = self.by_serial.write();
        for certificate in certificates {
            map.insert(serial_key(&certificate.serial_no), certificate);
        }
    }

    /// Drops the certificates that expired before `now`.
    pub fn remove_expired(&self, now: DateTime<Utc>) {
        self.by_serial.write().retain(|_, c| c.not_after >= now);
    }

    /// The certificate of a serial, whatever its validity.
    pub fn get(&self, serial: &str) -> Option<PlatformCertificate> {
        self.by_serial.read().get(&serial_key(serial)).cloned()
    }

    /// Every certificate, by serial.
    pub fn all(&self) -> Vec<PlatformCertificate> {
        self.by_serial.read().values().cloned().collect()
    }

    /// `true` when no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.by_serial.read().is_empty()
    }

    /// The latest end of validity among the certificates valid at `now`: how long the store
    /// can still verify anything without a download.
    pub fn valid_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.by_serial
            .read()
            .values()
            .filter(|c| c.is_valid_at(now))
            .map(|c| c.not_after)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_hexadecimal_numbers() {
        assert_eq!(serial_key("00a1B"), "A1B");
        assert_eq!(serial_key("A1B"), serial_key("0a1b"));
        assert_eq!(serial_key("000"), "0");
    }

    #[test]
    fn what_is_not_a_certificate_is_refused() {
        assert!(matches!(
            PlatformCertificate::from_pem("hello"),
            Err(KeyError::NotPem { .. })
        ));
        let key = "-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PlatformCertificate::from_pem(key),
            Err(KeyError::WrongPemLabel { .. })
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            PlatformCertificate::from_pem(garbage),
            Err(KeyError::Invalid { .. })
        ));
    }
}
