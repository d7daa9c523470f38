//! AEAD_AES_256_GCM, the encryption of notify resources and platform certificates.
//!
//! Key: the 32-byte [`ApiV3Key`] (not the V2 API key, not the merchant private key). Nonce:
//! the resource's `nonce`, a 12-character string used as its 12 bytes. Associated data: the
//! resource's `associated_data` as bytes (may be empty). Ciphertext: base64 of the encrypted
//! bytes followed by the 16-byte tag. A wrong key and a changed ciphertext, tag, nonce or
//! associated data all fail the tag check, which is [`AeadError::Authentication`]; nothing
//! of the plaintext is returned then.
//!
//! Encryption is here for the simulator and for tests; WeChat is the only one that encrypts
//! in production.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::keys::ApiV3Key;

/// The only algorithm of API v3 resources.
pub const AEAD_AES_256_GCM: &str = "AEAD_AES_256_GCM";

/// The length of a resource's nonce, in bytes.
pub const NONCE_LEN: usize = 12;

/// The length of the GCM tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

/// Why a resource could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// An `algorithm` other than AEAD_AES_256_GCM.
    #[error("unsupported resource algorithm `{0}` (expected AEAD_AES_256_GCM)")]
    UnsupportedAlgorithm(String),
    /// A nonce that is not 12 bytes.
    #[error("the resource nonce is {0} bytes; AEAD_AES_256_GCM needs 12")]
    NonceLength(usize),
    /// The ciphertext is not base64.
    #[error("the resource ciphertext is not base64")]
    NotBase64,
    /// The ciphertext is shorter than its tag.
    #[error("the resource ciphertext is {0} bytes, shorter than the 16-byte tag")]
    TooShort(usize),
    /// The tag does not match: a wrong APIv3 key, or a changed ciphertext, nonce or
    /// associated data.
    #[error(
        "the resource does not decrypt: wrong APIv3 key, or tampered ciphertext, nonce or associated data"
    )]
    Authentication,
}

fn cipher(key: &ApiV3Key) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.bytes()).expect("an ApiV3Key is 32 bytes")
}

fn nonce(nonce: &str) -> Result<Nonce<aes_gcm::aead::consts::U12>, AeadError> {
    Nonce::try_from(nonce.as_bytes()).map_err(|_| AeadError::NonceLength(nonce.len()))
}

/// Decrypts a base64 ciphertext (tag at its end).
pub fn decrypt(
    key: &ApiV3Key,
    nonce_text: &str,
    associated_data: &str,
    ciphertext_base64: &str,
) -> Result<Vec<u8>, AeadError> {
    let nonce = nonce(nonce_text)?;
    let sealed = BASE64
        .decode(ciphertext_base64)
        .map_err(|_| AeadError::NotBase64)?;
    if sealed.len() < TAG_LEN {
        return Err(AeadError::TooShort(sealed.len()));
    }
    cipher(key)
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| AeadError::Authentication)
}

/// Encrypts `plaintext`; returns base64 of ciphertext and tag.
pub fn encrypt(
    key: &ApiV3Key,
    nonce_text: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError> {
    let nonce = nonce(nonce_text)?;
    let sealed = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        // Only lengths beyond 64 GiB fail; report them as the cipher refusing.
        .map_err(|_| AeadError::Authentication)?;
    Ok(BASE64.encode(sealed))
}

/// A fresh 12-character alphanumeric nonce, as WeChat writes them.
pub fn resource_nonce() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(NONCE_LEN)
        .map(char::from)
        .collect()
}

/// An encrypted resource as it appears in notifies (`resource`) and in the certificate list
/// (`encrypt_certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64 of the ciphertext and its tag.
    pub ciphertext: String,
    /// The associated data; WeChat may send it empty or leave it out.
    #[serde(default)]
    pub associated_data: String,
    /// What the plaintext is (`transaction`, `refund`, `certificate`); absent in the
    /// certificate list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
    /// The 12-character nonce.
    pub nonce: String,
}

impl EncryptedResource {
    /// Decrypts the resource after checking its algorithm.
    pub fn decrypt(&self, key: &ApiV3Key) -> Result<Vec<u8>, AeadError> {
        if self.algorithm != AEAD_AES_256_GCM {
            return Err(AeadError::UnsupportedAlgorithm(self.algorithm.clone()));
        }
        decrypt(key, &self.nonce, &self.associated_data, &self.ciphertext)
    }

    /// Encrypts `plaintext` under a fresh nonce (for the simulator and tests).
    pub fn encrypt(
        key: &ApiV3Key,
        original_type: Option<&str>,
        associated_data: &str,
        plaintext: &[u8],
    ) -> EncryptedResource {
        let nonce = resource_nonce();
        let ciphertext = encrypt(key, &nonce, associated_data, plaintext)
            .expect("a fresh nonce is 12 bytes and a resource is far below GCM's limit");
        EncryptedResource {
            algorithm: AEAD_AES_256_GCM.to_owned(),
            ciphertext,
            associated_data: associated_data.to_owned(),
            original_type: original_type.map(str::to_owned),
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiV3Key {
        ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn round_trips_and_refuses_every_change() {
        let plaintext = r#"{"out_trade_no":"T1","amount":{"total":100}}"#.as_bytes();
        let resource =
            EncryptedResource::encrypt(&key(), Some("transaction"), "transaction", plaintext);
        assert_eq!(resource.nonce.len(), NONCE_LEN);
        assert_eq!(resource.decrypt(&key()).unwrap(), plaintext);

        let other_key = ApiV3Key::new("0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(resource.decrypt(&other_key), Err(AeadError::Authentication));

        let mut tampered = resource.clone();
        tampered.associated_data = "certificate".into();
        assert_eq!(tampered.decrypt(&key()), Err(AeadError::Authentication));

        let mut tampered = resource.clone();
        tampered.nonce = "000000000000".into();
        assert_eq!(tampered.decrypt(&key()), Err(AeadError::Authentication));

        let mut sealed = BASE64.decode(&resource.ciphertext).unwrap();
        sealed[0] ^= 1;
        let mut tampered = resource.clone();
        tampered.ciphertext = BASE64.encode(&sealed);
        assert_eq!(tampered.decrypt(&key()), Err(AeadError::Authentication));
    }

    #[test]
    fn malformed_resources_have_their_own_errors() {
        let resource = EncryptedResource::encrypt(&key(), None, "", b"x");
        let mut bad = resource.clone();
        bad.algorithm = "AEAD_SM4_GCM".into();
        assert_eq!(
            bad.decrypt(&key()),
            Err(AeadError::UnsupportedAlgorithm("AEAD_SM4_GCM".into()))
        );
        let mut bad = resource.clone();
        bad.nonce = "short".into();
        assert_eq!(bad.decrypt(&key()), Err(AeadError::NonceLength(5)));
        let mut bad = resource.clone();
        bad.ciphertext = "not base64!".into();
        assert_eq!(bad.decrypt(&key()), Err(AeadError::NotBase64));
        let mut bad = resource;
        bad.ciphertext = BASE64.encode([0u8; 15]);
        assert_eq!(bad.decrypt(&key()), Err(AeadError::TooShort(15)));
    }

    #[test]
    fn reads_the_wire_shape() {
        let json = r#"{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"","nonce":"fdasflkja484"}"#;
        let resource: EncryptedResource = serde_json::from_str(json).unwrap();
        assert_eq!(resource.associated_data, "");
        assert_eq!(resource.original_type.as_deref(), Some("transaction"));
    }
}
