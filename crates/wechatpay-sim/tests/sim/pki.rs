//! Certificates for the TLS tests, made at test time with Python's `cryptography` (present
//! with wechatpy): a CA that issues the simulator's server certificate and merchant
//! certificates (CN = mch_id, as WeChat's are), and a merchant certificate from a CA the
//! simulator does not trust.

use std::path::PathBuf;

use serde_json::json;
use wechatpay_sim::{DEFAULT_MCH_ID, SimTls};
use wechatpay_v2::ClientIdentity;

/// A merchant's certificate and key, PEM, also written to files (for wechatpy).
pub struct MerchantCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl MerchantCert {
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// Everything the TLS tests need, in a temporary directory.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The CA's certificate, PEM: clients trust it for the server, the server for merchants.
    pub ca_pem: String,
    pub ca_file: PathBuf,
    /// The simulator's TLS settings (server certificate for 127.0.0.1, merchant CA).
    pub sim_tls: SimTls,
    /// [`DEFAULT_MCH_ID`]'s certificate.
    pub merchant: MerchantCert,
    /// Another merchant's certificate (CN 1900000109), issued by the same CA.
    pub other_merchant: MerchantCert,
    /// [`DEFAULT_MCH_ID`]'s name on a certificate from a CA the simulator does not trust.
    pub untrusted: MerchantCert,
}

const GENERATE: &str = r#"
import datetime, ipaddress
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

now = datetime.datetime.now(datetime.timezone.utc)

def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()

def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def authority(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert

def leaf(ca_key, ca_cert, cn, usage, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if san:
        builder = builder.add_extension(san, critical=False)
    return {'cert': cert_pem(builder.sign(ca_key, hashes.SHA256())), 'key': key_pem(key)}

ca_key, ca_cert = authority('jit test CA')
rogue_key, rogue_cert = authority('someone else')
server_usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
client_usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                                   x509.DNSName('localhost')])
result = {
    'ca': cert_pem(ca_cert),
    'server': leaf(ca_key, ca_cert, 'localhost', server_usage, san),
    'merchant': leaf(ca_key, ca_cert, data['mch_id'], client_usage),
    'other_merchant': leaf(ca_key, ca_cert, '1900000109', client_usage),
    'untrusted': leaf(rogue_key, rogue_cert, data['mch_id'], client_usage),
}
"#;

impl TestPki {
    pub async fn generate() -> TestPki {
        let made = tokio::task::spawn_blocking(|| {
            test_support::run_python(GENERATE, &json!({ "mch_id": DEFAULT_MCH_ID }))
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: &str| {
            let path = dir.path().join(file);
            std::fs::write(&path, text).unwrap();
            path
        };
        let text = |path: &[&str]| {
            let mut value = &made;
            for step in path {
                value = &value[*step];
            }
            value.as_str().unwrap().to_owned()
        };
        let merchant = |who: &str| {
            let cert_pem = text(&[who, "cert"]);
            let key_pem = text(&[who, "key"]);
            MerchantCert {
                cert_file: write(&format!("{who}_cert.pem"), &cert_pem),
                key_file: write(&format!("{who}_key.pem"), &key_pem),
                cert_pem,
                key_pem,
            }
        };
        let (merchant_cert, other_merchant, untrusted) = (
            merchant("merchant"),
            merchant("other_merchant"),
            merchant("untrusted"),
        );
        let ca_pem = text(&["ca"]);
        let ca_file = write("ca.pem", &ca_pem);
        let sim_tls = SimTls {
            cert_file: write("server_cert.pem", &text(&["server", "cert"])),
            key_file: write("server_key.pem", &text(&["server", "key"])),
            client_ca_file: ca_file.clone(),
        };
        TestPki {
            _dir: dir,
            ca_pem,
            ca_file,
            sim_tls,
            merchant: merchant_cert,
            other_merchant,
            untrusted,
        }
    }
}
