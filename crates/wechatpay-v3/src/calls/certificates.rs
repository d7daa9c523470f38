//! The platform certificate list (`GET /v3/certificates`): every certificate WeChat may sign
//! with now, each encrypted with the APIv3 key like a notify resource.
//!
//! The answer is signed by one of the certificates it carries, which the client cannot know
//! before decrypting them: it decrypts first (the APIv3 key authenticates the content), then
//! verifies the answer's signature with the certificates it holds and the ones just
//! decrypted (see [`crate::client`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Call;
use crate::Error;
use crate::aead::EncryptedResource;
use crate::certificates::{PlatformCertificate, serial_key};
use crate::json::{malformed, read};
use crate::keys::ApiV3Key;
use crate::time::rfc3339_beijing;

/// The path.
pub const ENDPOINT: &str = "/v3/certificates";

pub(crate) fn call() -> Call {
    Call::get(ENDPOINT, ENDPOINT.to_owned())
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedCertificate {
    /// The certificate's serial.
    pub serial_no: String,
    /// Valid from (RFC 3339).
    pub effective_time: String,
    /// Valid until (RFC 3339).
    pub expire_time: String,
    /// The PEM certificate, encrypted.
    pub encrypt_certificate: EncryptedResource,
}

/// The answer of `/v3/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateList {
    /// The certificates.
    pub data: Vec<EncryptedCertificate>,
}

/// Reads the list (still encrypted).
impl TryFrom<Value> for CertificateList {
    type Error = Error;

    fn try_from(raw: Value) -> Result<Self, Error> {
        read(&raw, ENDPOINT)
    }
}

impl CertificateList {
    /// Decrypts every certificate and checks that each is the one its entry names. One bad
    /// entry fails the whole list: a list that does not decrypt was not made with this
    /// merchant's APIv3 key.
    pub fn decrypt(&self, key: &ApiV3Key) -> Result<Vec<PlatformCertificate>, Error> {
        self.data
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let pem =
                    entry
                        .encrypt_certificate
                        .decrypt(key)
                        .map_err(|source| Error::Decrypt {
                            context: ENDPOINT,
                            source,
                        })?;
                let pem = String::from_utf8(pem)
                    .map_err(|_| malformed(ENDPOINT, format!("`data[{index}]` is not PEM text")))?;
                let certificate = PlatformCertificate::from_pem(&pem).map_err(|e| {
                    malformed(
                        ENDPOINT,
                        format!("`data[{index}].encrypt_certificate`: {e}"),
                    )
                })?;
                if serial_key(certificate.serial_no()) != serial_key(&entry.serial_no) {
                    return Err(malformed(
                        ENDPOINT,
                        format!(
                            "`data[{index}].serial_no` is {} but the certificate's is {}",
                            entry.serial_no,
                            certificate.serial_no()
                        ),
                    ));
                }
                Ok(certificate)
            })
            .collect()
    }

    /// Builds the list WeChat would send for `certificates` (for the simulator and tests).
    pub fn encrypt(certificates: &[PlatformCertificate], key: &ApiV3Key) -> CertificateList {
        CertificateList {
            data: certificates
                .iter()
                .map(|certificate| EncryptedCertificate {
                    serial_no: certificate.serial_no().to_owned(),
                    effective_time: rfc3339_beijing(certificate.not_before()),
                    expire_time: rfc3339_beijing(certificate.not_after()),
                    encrypt_certificate: EncryptedResource::encrypt(
                        key,
                        None,
                        "certificate",
                        certificate.pem().as_bytes(),
                    ),
                })
                .collect(),
        }
    }

    /// The list as the JSON body of the answer.
    pub fn to_json(&self) -> Value {
        json!(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wire_shape_and_refuses_a_wrong_key() {
        let key = ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap();
        let list = CertificateList::try_from(json!({"data": [{
            "serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "effective_time": "2018-06-08T10:34:56+08:00",
            "expire_time": "2018-12-08T10:34:56+08:00",
            "encrypt_certificate": EncryptedResource::encrypt(&key, None, "certificate", b"not a certificate")
        }]}))
        .unwrap();
        let other = ApiV3Key::new("0123456789abcdef0123456789abcdeX").unwrap();
        assert!(matches!(list.decrypt(&other), Err(Error::Decrypt { .. })));
        match list.decrypt(&key) {
            Err(Error::Malformed { reason, .. }) => assert!(reason.contains("data[0]"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(CertificateList::try_from(json!({"data": [{"serial_no": "1"}]})).is_err());
    }
}
