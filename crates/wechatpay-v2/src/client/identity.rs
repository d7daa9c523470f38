//! The merchant certificate (`apiclient_cert`) that `refund` presents, from the PEM pair or
//! the PKCS#12 bundle WeChat issues. It never prints.

use crate::Error;

/// The merchant client certificate that `refund` requires.
#[derive(Clone)]
pub struct ClientIdentity {
    pub(super) pem: Vec<u8>,
}

impl ClientIdentity {
    /// From the PEM certificate (`apiclient_cert.pem`) and PEM private key
    /// (`apiclient_key.pem`) WeChat issues. For the `.p12` bundle see
    /// [`ClientIdentity::from_pkcs12`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Self {
        let mut pem = cert_pem.to_vec();
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(key_pem);
        ClientIdentity { pem }
    }

    /// From one PEM text holding both the certificate and the private key.
    pub fn from_pem_bundle(pem: &[u8]) -> Self {
        ClientIdentity { pem: pem.to_vec() }
    }

    /// From the PKCS#12 bundle WeChat issues (`apiclient_cert.p12`, password = the mch_id
    /// unless changed). reqwest reads PKCS#12 only with native-tls, so the bundle is opened
    /// with the `p12-keystore` crate (legacy RC2/3DES and modern AES bundles alike) and
    /// handed to rustls as PEM. The password is used once and not kept.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            Error::Config(format!(
                "merchant certificate: cannot open the PKCS#12 bundle (wrong password or not PKCS#12): {e}"
            ))
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            Error::Config("merchant certificate: the PKCS#12 bundle holds no private key with its certificate".into())
        })?;
        let mut pem = String::new();
        for cert in chain.certs() {
            push_pem(&mut pem, "CERTIFICATE", cert.as_der());
        }
        push_pem(&mut pem, "PRIVATE KEY", chain.key().as_der());
        Ok(ClientIdentity {
            pem: pem.into_bytes(),
        })
    }
}

fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(***)")
    }
}
