//! The API v3 keys: each merchant's side the simulator checks requests with, and WeChat
//! Pay's side it signs answers and notifies with.
//!
//! Keys not configured are generated once per simulator, on first V3 use (RSA 2048 takes a
//! moment, which V2-only runs never pay). The merchant's private key exists here only when
//! the simulator generated it: a configured merchant hands over its public half.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use wechatpay_v3::{
    ApiV3Key, KeyError, MerchantCertificate, MerchantPrivateKey, MerchantPublicKey,
    PlatformCertificate, PlatformPrivateKey, PlatformSigner,
};

use crate::config::{MerchantV3Config, SimV3Config, V3Mode};
use crate::ids;

/// What is wrong with configured V3 material: the field (relative to its section) and why.
pub(crate) type MaterialError = (&'static str, String);

fn new_rsa() -> rsa::PrivateKey {
    rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
        .expect("the operating system's random numbers make an RSA key")
}

/// One merchant's V3 side as the gateway holds it.
pub(crate) struct MerchantV3 {
    pub api_v3_key: ApiV3Key,
    /// The same key as text, for [`V3Material`] (the merchant's own secret).
    api_v3_key_text: String,
    /// Upper-case hexadecimal.
    pub serial_no: String,
    pub public_key: MerchantPublicKey,
    /// PKCS#8 PEM, only when the simulator generated the pair.
    pub generated_private_pem: Option<String>,
}

impl MerchantV3 {
    /// Reads configured material, naming the field at fault.
    pub fn from_config(config: &MerchantV3Config) -> Result<MerchantV3, MaterialError> {
        let api_v3_key = ApiV3Key::new(&config.api_v3_key)
            .map_err(|_| ("api_v3_key", "must be exactly 32 bytes".to_owned()))?;
        let serial_no = wechatpay_v3::keys::normalize_serial(
            "merchant certificate serial",
            &config.merchant_serial_no,
        )
        .map_err(|error| ("merchant_serial_no", error.to_string()))?;
        let pem = &config.merchant_public_key_pem;
        let public_key = if pem.contains("-----BEGIN CERTIFICATE-----") {
            let certificate = MerchantCertificate::from_pem(pem)
                .map_err(|error| ("merchant_public_key_pem", error.to_string()))?;
            if certificate.serial_no() != serial_no {
                return Err((
                    "merchant_serial_no",
                    format!(
                        "`{serial_no}` is not the certificate's serial `{}`",
                        certificate.serial_no()
                    ),
                ));
            }
            certificate.public_key().clone()
        } else {
            MerchantPublicKey::from_pem(pem)
                .map_err(|error| ("merchant_public_key_pem", error.to_string()))?
        };
        Ok(MerchantV3 {
            api_v3_key,
            api_v3_key_text: config.api_v3_key.clone(),
            serial_no,
            public_key,
            generated_private_pem: None,
        })
    }

    /// A new APIv3 key, key pair and serial.
    pub fn generate() -> MerchantV3 {
        let key = MerchantPrivateKey::from_rsa(new_rsa()).expect("a 2048-bit key is accepted");
        let api_v3_key_text = ids::alphanumeric(32);
        MerchantV3 {
            api_v3_key: ApiV3Key::new(&api_v3_key_text).expect("32 ASCII bytes"),
            api_v3_key_text,
            serial_no: ids::upper_hex(40),
            public_key: key.public_key(),
            generated_private_pem: Some(
                key.to_pkcs8_pem()
                    .expect("a key in memory encodes as PKCS#8"),
            ),
        }
    }
}

/// WeChat Pay's side: the public key pair with its id, and a platform certificate.
#[derive(Debug)]
pub(crate) struct Platform {
    pub public_key_signer: PlatformSigner,
    pub public_key_pem: String,
    pub certificate: PlatformCertificate,
    pub certificate_signer: PlatformSigner,
}

impl Platform {
    /// Reads what is configured (checked by [`check_platform`]) and generates the rest.
    pub fn new(config: &SimV3Config) -> Result<Platform, MaterialError> {
        let public_key_id = match &config.public_key_id {
            Some(id) => id.clone(),
            None => format!("PUB_KEY_ID_01{}", ids::digits(30)),
        };
        if !wechatpay_v3::keys::is_public_key_id(&public_key_id) {
            return Err((
                "public_key_id",
                "must be PUB_KEY_ID_ followed by letters or digits".to_owned(),
            ));
        }
        let public_key_private = match &config.public_key_private_pem {
            Some(pem) => PlatformPrivateKey::from_pem(pem)
                .map_err(|error| ("public_key_private_pem", error.to_string()))?,
            None => PlatformPrivateKey::from_rsa(new_rsa()).expect("a 2048-bit key"),
        };
        let public_key_pem = public_key_private
            .public_key_pem()
            .map_err(|error| ("public_key_private_pem", error.to_string()))?;
        let (certificate, certificate_key) = match (
            &config.platform_certificate_pem,
            &config.platform_private_key_pem,
        ) {
            (Some(certificate), Some(key)) => (
                PlatformCertificate::from_pem(certificate)
                    .map_err(|error| ("platform_certificate_pem", error.to_string()))?,
                PlatformPrivateKey::from_pem(key)
                    .map_err(|error| ("platform_private_key_pem", error.to_string()))?,
            ),
            (None, None) => generate_certificate().map_err(|error| ("platform", error))?,
            (Some(_), None) => {
                return Err((
                    "platform_private_key_pem",
                    "is needed with platform_certificate_pem".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "platform_certificate_pem",
                    "is needed with platform_private_key_pem".to_owned(),
                ));
            }
        };
        Ok(Platform {
            public_key_signer: PlatformSigner::new(public_key_id, public_key_private),
            public_key_pem,
            certificate_signer: PlatformSigner::new(certificate.serial_no(), certificate_key),
            certificate,
        })
    }

    /// The signer for one answer or notify delivery under `mode`.
    pub fn signer(&self, mode: V3Mode) -> &PlatformSigner {
        let public_key = match mode {
            V3Mode::PublicKey => true,
            V3Mode::PlatformCertificate => false,
            V3Mode::Switchover { public_key_percent } => {
                rand::random_range(0..100u8) < public_key_percent
            }
        };
        if public_key {
            &self.public_key_signer
        } else {
            &self.certificate_signer
        }
    }
}

/// Checks the configured platform keys without generating anything.
pub(crate) fn check_platform(config: &SimV3Config) -> Result<(), MaterialError> {
    if let Some(id) = &config.public_key_id
        && !wechatpay_v3::keys::is_public_key_id(id)
    {
        return Err((
            "public_key_id",
            "must be PUB_KEY_ID_ followed by letters or digits".to_owned(),
        ));
    }
    if let Some(pem) = &config.public_key_private_pem {
        PlatformPrivateKey::from_pem(pem)
            .map_err(|error| ("public_key_private_pem", error.to_string()))?;
    }
    match (
        &config.platform_certificate_pem,
        &config.platform_private_key_pem,
    ) {
        (Some(certificate), Some(key)) => {
            PlatformCertificate::from_pem(certificate)
                .map_err(|error| ("platform_certificate_pem", error.to_string()))?;
            PlatformPrivateKey::from_pem(key)
                .map_err(|error| ("platform_private_key_pem", error.to_string()))?;
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(_), None) => Err((
            "platform_private_key_pem",
            "is needed with platform_certificate_pem".to_owned(),
        )),
        (None, Some(_)) => Err((
            "platform_certificate_pem",
            "is needed with platform_private_key_pem".to_owned(),
        )),
    }
}

/// A self-signed RSA platform certificate valid from an hour ago for a year, and its key.
fn generate_certificate() -> Result<(PlatformCertificate, PlatformPrivateKey), String> {
    let private = new_rsa();
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|error| format!("cannot encode the platform key: {error}"))?;
    let key_pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|error| format!("cannot use the platform key: {error}"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|error| format!("certificate parameters: {error}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tenpay.com Root CA (simulated)");
    let serial = hex::decode(ids::upper_hex(40)).expect("hexadecimal digits decode");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = chrono::Utc::now().timestamp();
    let at = |offset: i64| epoch + Duration::from_secs((now + offset).max(0) as u64);
    params.not_before = at(-3600);
    params.not_after = at(365 * 86_400);
    let certificate_pem = params
        .self_signed(&key_pair)
        .map_err(|error| format!("cannot sign the platform certificate: {error}"))?
        .pem();
    let certificate = PlatformCertificate::from_pem(&certificate_pem)
        .map_err(|error| format!("the generated certificate does not read back: {error}"))?;
    let key = PlatformPrivateKey::from_rsa(private).map_err(|error: KeyError| error.to_string())?;
    Ok((certificate, key))
}

/// A merchant's V3 material as a test or a host reads it ([`SimHandle::v3_material`]):
/// what the merchant needs to call the simulator and to verify its answers. The
/// merchant's private key is there only when the simulator generated it.
///
/// [`SimHandle::v3_material`]: crate::SimHandle::v3_material
#[derive(Clone, Serialize, Deserialize)]
pub struct V3Material {
    /// The merchant.
    pub mch_id: String,
    /// The APIv3 key (32 bytes).
    pub api_v3_key: String,
    /// The merchant certificate serial the requests name.
    pub merchant_serial_no: String,
    /// The merchant private key (PKCS#8 PEM) when the simulator generated the pair.
    pub merchant_private_key_pem: Option<String>,
    /// The WeChat Pay public key id (`PUB_KEY_ID_...`).
    pub wechatpay_public_key_id: String,
    /// The WeChat Pay public key, PEM (`PUBLIC KEY`).
    pub wechatpay_public_key_pem: String,
    /// The platform certificate's serial.
    pub platform_certificate_serial: String,
    /// The platform certificate, PEM.
    pub platform_certificate_pem: String,
}

impl fmt::Debug for V3Material {
    // Secrets are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V3Material")
            .field("mch_id", &self.mch_id)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .field("wechatpay_public_key_id", &self.wechatpay_public_key_id)
            .field(
                "platform_certificate_serial",
                &self.platform_certificate_serial,
            )
            .finish_non_exhaustive()
    }
}

impl V3Material {
    pub(crate) fn new(mch_id: &str, merchant: &MerchantV3, platform: &Arc<Platform>) -> Self {
        V3Material {
            mch_id: mch_id.to_owned(),
            api_v3_key: merchant.api_v3_key_text.clone(),
            merchant_serial_no: merchant.serial_no.clone(),
            merchant_private_key_pem: merchant.generated_private_pem.clone(),
            wechatpay_public_key_id: platform.public_key_signer.serial().to_owned(),
            wechatpay_public_key_pem: platform.public_key_pem.clone(),
            platform_certificate_serial: platform.certificate.serial_no().to_owned(),
            platform_certificate_pem: platform.certificate.pem().to_owned(),
        }
    }
}
