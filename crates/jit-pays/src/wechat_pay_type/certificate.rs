//! The merchant API certificate (`apiclient_cert`) a WeChat Pay instance presents on
//! `/secapi/pay/refund`: reading the files its settings name, checking that they are the
//! merchant's certificate, and handing them to the protocol client as a
//! [`ClientIdentity`].
//!
//! Where the settings are looked up and which combinations are allowed is `config`'s
//! (one lookup for every merchant setting); this module owns what a usable certificate is:
//!
//! - the files exist, are files, are readable and no larger than a certificate can be;
//! - a PKCS#12 bundle opens with its password (the mchId unless `certP12Password` says
//!   otherwise, as in the bundles WeChat issues) and holds a private key with its
//!   certificate; a PEM pair holds a certificate and a private key;
//! - the private key belongs to the certificate (rustls compares the public keys);
//! - the certificate is valid today, and its subject CN is the instance's mchId (WeChat
//!   issues `apiclient_cert` with CN = mchId, so another CN is another merchant's).
//!
//! Every problem names the config file and JSON path of the setting and says what is wrong
//! with which file; none contains key material or the password (parser messages about a
//! private key or a bundle are not passed on, as they may quote the file).

use std::fmt;

use jit_runtime::{LoadError, LoadErrors, Secret, log_safe};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wechatpay_v2::ClientIdentity;

use super::WechatPay;
use crate::error::PayError;
use crate::merchant_settings::{SettingFile, SettingSource, config_problem, read_setting_file};

/// One file a certificate setting names (`certP12Path`, `certPath`, `keyPath`).
pub type CertificateFile = SettingFile;

/// An instance's merchant certificate settings, resolved (not yet read): the PKCS#12
/// bundle WeChat issues, or the PEM pair.
#[derive(Clone)]
pub enum MerchantCertificate {
    /// `certP12Path`, and `certP12Password` when the bundle's password is not the mchId.
    Pkcs12 {
        /// The bundle (`apiclient_cert.p12`).
        bundle: CertificateFile,
        /// The configured password and where it is; `None`: the mchId.
        password: Option<(Secret<String>, SettingSource)>,
    },
    /// `certPath` and `keyPath`.
    Pem {
        /// The certificate (`apiclient_cert.pem`).
        cert: CertificateFile,
        /// Its private key (`apiclient_key.pem`).
        key: CertificateFile,
    },
}

impl fmt::Debug for MerchantCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerchantCertificate::Pkcs12 { bundle, password } => f
                .debug_struct("Pkcs12")
                .field("bundle", &bundle.path)
                .field(
                    "password",
                    &password
                        .as_ref()
                        .map_or("(the mchId)", |_| jit_runtime::MASK),
                )
                .finish(),
            MerchantCertificate::Pem { cert, key } => f
                .debug_struct("Pem")
                .field("cert", &cert.path)
                .field("key", &key.path)
                .finish(),
        }
    }
}

impl MerchantCertificate {
    /// The files named, each with its setting.
    pub fn files(&self) -> Vec<&CertificateFile> {
        match self {
            MerchantCertificate::Pkcs12 { bundle, .. } => vec![bundle],
            MerchantCertificate::Pem { cert, key } => vec![cert, key],
        }
    }

    /// Reads and checks the files (module docs) for the merchant `mch_id`: the identity
    /// the protocol client presents, or every problem found.
    pub fn load(&self, mch_id: &str) -> Result<ClientIdentity, LoadErrors> {
        match self {
            MerchantCertificate::Pkcs12 { bundle, password } => {
                load_pkcs12(bundle, password.as_ref(), mch_id).map_err(|e| LoadErrors(vec![e]))
            }
            MerchantCertificate::Pem { cert, key } => load_pem(cert, key, mch_id),
        }
    }
}

/// A problem with `file`'s setting.
fn problem(file: &CertificateFile, message: String) -> LoadError {
    config_problem(&file.source, message)
}

/// The PKCS#12 form: open the bundle, then check its certificate and key.
fn load_pkcs12(
    bundle: &CertificateFile,
    password: Option<&(Secret<String>, SettingSource)>,
    mch_id: &str,
) -> Result<ClientIdentity, LoadError> {
    let der = read_setting_file(bundle)?;
    let shown = bundle.path.display();
    let (password_text, which_password) = match password {
        Some((secret, source)) => (
            secret.expose().as_str(),
            format!("the password in {source}"),
        ),
        None => (
            mch_id,
            "the mchId as password (WeChat's default; set `certP12Password` if it was changed)"
                .to_owned(),
        ),
    };
    let store = p12_keystore::KeyStore::from_pkcs12(
        &der,
        password_text,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|error| {
        // The library's messages are about the structure, never the password; they are
        // still not passed on, as this is where key material is decrypted.
        let why = match error {
            p12_keystore::error::Error::MacError(_) => {
                format!("does not open with {which_password}")
            }
            p12_keystore::error::Error::DerError(_)
            | p12_keystore::error::Error::InvalidVersion => {
                "is not a PKCS#12 bundle (apiclient_cert.p12)".to_owned()
            }
            _ => format!(
                "cannot be opened with {which_password} (a wrong password, or a damaged or \
                 unsupported bundle)"
            ),
        };
        problem(bundle, format!("`certP12Path` names {shown}, which {why}"))
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(problem(
            bundle,
            format!("`certP12Path` names {shown}, which holds no private key with its certificate"),
        ));
    };
    let Some(leaf) = chain.certs().first() else {
        return Err(problem(
            bundle,
            format!("`certP12Path` names {shown}, which holds a private key but no certificate"),
        ));
    };
    let leaf = CertificateDer::from(leaf.as_der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    check_certificate(bundle, &leaf, mch_id)?;
    check_pair(bundle, bundle, leaf, key)?;
    ClientIdentity::from_pkcs12(&der, password_text).map_err(|_| {
        problem(
            bundle,
            format!("`certP12Path` names {shown}, which the WeChat Pay client cannot use"),
        )
    })
}

/// The PEM form: read both files, then check the certificate and that the key is its.
fn load_pem(
    cert_file: &CertificateFile,
    key_file: &CertificateFile,
    mch_id: &str,
) -> Result<ClientIdentity, LoadErrors> {
    let mut problems = Vec::new();
    let cert = read_setting_file(cert_file).and_then(|pem| {
        let cert = first_certificate(cert_file, &pem)?;
        Ok((pem, cert))
    });
    let key = read_setting_file(key_file).and_then(|pem| {
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            problem(
                key_file,
                format!(
                    "`keyPath` names {}, which holds no PEM private key (`PRIVATE KEY`, `RSA \
                     PRIVATE KEY` or `EC PRIVATE KEY`; the content is not shown)",
                    key_file.path.display()
                ),
            )
        })?;
        Ok((pem, key))
    });
    let (cert, key) = match (cert, key) {
        (Ok(cert), Ok(key)) => (cert, key),
        (cert, key) => {
            problems.extend(cert.err());
            problems.extend(key.err());
            return Err(LoadErrors(problems));
        }
    };
    let ((cert_pem, leaf), (key_pem, key_der)) = (cert, key);
    check_certificate(cert_file, &leaf, mch_id).map_err(|e| LoadErrors(vec![e]))?;
    check_pair(cert_file, key_file, leaf, key_der).map_err(|e| LoadErrors(vec![e]))?;
    Ok(ClientIdentity::from_pem(&cert_pem, &key_pem))
}

/// The first certificate of a PEM certificate file.
fn first_certificate(
    file: &CertificateFile,
    pem: &[u8],
) -> Result<CertificateDer<'static>, LoadError> {
    let shown = file.path.display();
    match CertificateDer::pem_slice_iter(pem).next() {
        Some(Ok(cert)) => Ok(cert),
        Some(Err(_)) => Err(problem(
            file,
            format!("`certPath` names {shown}, whose PEM certificate is damaged"),
        )),
        None if PrivateKeyDer::from_pem_slice(pem).is_ok() => Err(problem(
            file,
            format!(
                "`certPath` names {shown}, which holds a private key, not a certificate \
                 (are `certPath` and `keyPath` swapped?)"
            ),
        )),
        None => Err(problem(
            file,
            format!(
                "`certPath` names {shown}, which holds no PEM certificate (`-----BEGIN \
                 CERTIFICATE-----`)"
            ),
        )),
    }
}

/// The certificate is an X.509 certificate, valid today, of merchant `mch_id`.
fn check_certificate(
    file: &CertificateFile,
    leaf: &CertificateDer<'_>,
    mch_id: &str,
) -> Result<(), LoadError> {
    let CertificateFile { key, path, .. } = file;
    let shown = path.display();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        problem(
            file,
            format!("`{key}` names {shown}, whose certificate is not X.509: {e}"),
        )
    })?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok());
    match common_name {
        Some(name) if name == mch_id => {}
        Some(name) => {
            return Err(problem(
                file,
                format!(
                    "`{key}` names {shown}, whose certificate's subject CN is \"{}\", not the \
                     mchId {mch_id}: it is not this merchant's API certificate (WeChat issues \
                     it with CN = mchId)",
                    log_safe(name)
                ),
            ));
        }
        None => {
            return Err(problem(
                file,
                format!(
                    "`{key}` names {shown}, whose certificate has no subject CN: it is not a \
                     WeChat Pay merchant API certificate (CN = the mchId {mch_id})"
                ),
            ));
        }
    }
    let validity = cert.validity();
    if !validity.is_valid() {
        return Err(problem(
            file,
            format!(
                "`{key}` names {shown}, whose certificate is valid from {} to {}, not today: \
                 download a current one from the merchant platform",
                validity.not_before, validity.not_after
            ),
        ));
    }
    Ok(())
}

/// The private key is one rustls can sign with, and it belongs to the certificate.
fn check_pair(
    cert_file: &CertificateFile,
    key_file: &CertificateFile,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<(), LoadError> {
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(vec![leaf], key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(problem(
            key_file,
            if cert_file == key_file {
                format!(
                    "`{}` names {}, whose private key does not belong to its certificate",
                    key_file.key,
                    key_file.path.display()
                )
            } else {
                format!(
                    "`keyPath` names {}, whose private key does not belong to the certificate \
                     in {} (`certPath`)",
                    key_file.path.display(),
                    cert_file.path.display()
                )
            },
        )),
        // The error may describe the key; only its kind is said.
        Err(_) => Err(problem(
            key_file,
            format!(
                "`{}` names {}, whose private key is not one a TLS client can use (RSA of at \
                 least 2048 bits, ECDSA P-256/P-384 or Ed25519)",
                key_file.key,
                key_file.path.display()
            ),
        )),
    }
}

impl WechatPay {
    /// Whether this instance has a merchant certificate configured (`certP12Path`, or
    /// `certPath` and `keyPath`); when it has, the client presents it on `/secapi/` calls.
    pub fn has_merchant_certificate(&self) -> bool {
        self.config.certificate.is_some()
    }

    /// What a refund checks before calling WeChat: `Ok` when the certificate is
    /// configured, or when the gateway is plain HTTP (the in-process simulator), which
    /// asks for none; otherwise [`PayError::Unavailable`] naming the instance and the
    /// settings to add (an operator's problem: a caller is told no more than that).
    pub fn require_merchant_certificate(&self) -> Result<(), PayError> {
        if self.has_merchant_certificate()
            || !wechatpay_v2::base_url_uses_tls(&self.settings.gateway_base_url)
        {
            return Ok(());
        }
        Err(PayError::unavailable(format!(
            "`{}` has no merchant API certificate, which WeChat requires for refunds: set \
             `certP12Path` (apiclient_cert.p12), or `certPath` and `keyPath` (PEM), under \
             \"config\" in its config file",
            self.full_name
        )))
    }
}
