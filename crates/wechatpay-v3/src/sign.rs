//! The signed messages of API v3 and the `Authorization` header.
//!
//! Every signature of API v3 is RSA-SHA256 (PKCS#1 v1.5, base64) over lines each ended by
//! `\n`:
//!
//! | who signs | message | with |
//! |---|---|---|
//! | the merchant, a request | `METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n` ([`request_message`]) | the merchant private key |
//! | WeChat, a response or notify | `TIMESTAMP\nNONCE\nBODY\n` ([`response_message`]) | the platform certificate's key or the WeChat Pay public key's |
//! | the merchant, JSAPI pay parameters | `appId\ntimeStamp\nnonceStr\npackage\n` | the merchant private key |
//! | the merchant, APP pay parameters | `appid\ntimestamp\nnoncestr\nprepayid\n` | the merchant private key |
//!
//! The body is signed as the raw bytes sent or received (an empty body still ends with
//! `\n`); nothing is re-serialised before signing or verifying. The URL is the path with its
//! query exactly as sent, without scheme or host.
//!
//! The request's signature travels in [`Authorization`] (`WECHATPAY2-SHA256-RSA2048
//! mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`), which this module
//! builds for the client and parses and checks for a gateway (the simulator, test servers).

use crate::keys::{KeyError, MerchantPrivateKey, MerchantPublicKey, SignatureMismatch};

/// The authorization scheme, and the value of `Wechatpay-Signature-Type`.
pub const SIGNATURE_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// Lines joined with `\n`, each ended by `\n`: the shape of every signed message.
pub fn signed_lines(lines: &[&[u8]]) -> Vec<u8> {
    let mut message = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        message.extend_from_slice(line);
        message.push(b'\n');
    }
    message
}

/// The message a request's signature covers: `METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
/// `path_with_query` is the URL without scheme and host (`/v3/pay/transactions/id/42?mchid=1`).
pub fn request_message(
    method: &str,
    path_with_query: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    signed_lines(&[
        method.as_bytes(),
        path_with_query.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ])
}

/// The message a response's or notify's signature covers: `TIMESTAMP\nNONCE\nBODY\n`.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    signed_lines(&[timestamp.as_bytes(), nonce.as_bytes(), body])
}

/// An `Authorization` header that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// Not the `WECHATPAY2-SHA256-RSA2048` scheme.
    #[error("the Authorization scheme is not WECHATPAY2-SHA256-RSA2048")]
    Scheme,
    /// A parameter that is not `name="value"`.
    #[error("Authorization parameter {0} is not name=\"value\"")]
    Syntax(usize),
    /// A parameter given twice.
    #[error("Authorization parameter `{0}` appears twice")]
    Duplicate(String),
    /// A required parameter is missing.
    #[error("Authorization parameter `{0}` is missing")]
    Missing(&'static str),
    /// A value that may not appear in a header parameter.
    #[error("Authorization parameter `{0}` has a character that cannot be sent")]
    BadValue(&'static str),
}

/// The parameters of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The merchant id.
    pub mchid: String,
    /// The request's nonce.
    pub nonce_str: String,
    /// Unix seconds, as signed.
    pub timestamp: String,
    /// The merchant certificate's serial number.
    pub serial_no: String,
    /// The signature of [`request_message`], base64.
    pub signature: String,
}

impl Authorization {
    /// Signs a request: `body` is the exact bytes sent (empty for GET).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &MerchantPrivateKey,
        mchid: &str,
        serial_no: &str,
        method: &str,
        path_with_query: &str,
        timestamp: &str,
        nonce_str: &str,
        body: &[u8],
    ) -> Result<Authorization, KeyError> {
        let message = request_message(method, path_with_query, timestamp, nonce_str, body);
        Ok(Authorization {
            mchid: mchid.to_owned(),
            nonce_str: nonce_str.to_owned(),
            timestamp: timestamp.to_owned(),
            serial_no: serial_no.to_owned(),
            signature: key.sign(&message)?,
        })
    }

    /// The header value. Refuses values that would break the header's quoting.
    pub fn to_header_value(&self) -> Result<String, AuthorizationError> {
        for (name, value) in [
            ("mchid", &self.mchid),
            ("nonce_str", &self.nonce_str),
            ("signature", &self.signature),
            ("timestamp", &self.timestamp),
            ("serial_no", &self.serial_no),
        ] {
            if value
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
            {
                return Err(AuthorizationError::BadValue(name));
            }
        }
        Ok(format!(
            "{SIGNATURE_SCHEME} mchid=\"{}\",nonce_str=\"{}\",signature=\"{}\",timestamp=\"{}\",serial_no=\"{}\"",
            self.mchid, self.nonce_str, self.signature, self.timestamp, self.serial_no
        ))
    }

    /// Reads a header value. Parameters may come in any order with spaces after the commas;
    /// each must be `name="value"`, none twice; unknown parameters are ignored.
    pub fn parse(header: &str) -> Result<Authorization, AuthorizationError> {
        let rest = header
            .trim()
            .strip_prefix(SIGNATURE_SCHEME)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(AuthorizationError::Scheme)?;
        let mut fields: [(&'static str, Option<String>); 5] = [
            ("mchid", None),
            ("nonce_str", None),
            ("signature", None),
            ("timestamp", None),
            ("serial_no", None),
        ];
        let mut seen_unknown = Vec::new();
        for (index, part) in rest.split(',').enumerate() {
            let (name, quoted) = part
                .trim()
                .split_once('=')
                .ok_or(AuthorizationError::Syntax(index + 1))?;
            let value = quoted
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.contains('"'))
                .ok_or(AuthorizationError::Syntax(index + 1))?;
            match fields.iter_mut().find(|(known, _)| *known == name) {
                Some((_, slot @ None)) => *slot = Some(value.to_owned()),
                Some(_) => return Err(AuthorizationError::Duplicate(name.to_owned())),
                None if seen_unknown.contains(&name) => {
                    return Err(AuthorizationError::Duplicate(name.to_owned()));
                }
                None => seen_unknown.push(name),
            }
        }
        let [mchid, nonce_str, signature, timestamp, serial_no] =
            fields.map(|(name, value)| value.ok_or(AuthorizationError::Missing(name)));
        Ok(Authorization {
            mchid: mchid?,
            nonce_str: nonce_str?,
            signature: signature?,
            timestamp: timestamp?,
            serial_no: serial_no?,
        })
    }

    /// Checks the signature against the request as received (a gateway's side): the
    /// method, the path with its query as sent, and the raw body.
    pub fn verify(
        &self,
        key: &MerchantPublicKey,
        method: &str,
        path_with_query: &str,
        body: &[u8],
    ) -> Result<(), SignatureMismatch> {
        let message = request_message(
            method,
            path_with_query,
            &self.timestamp,
            &self.nonce_str,
            body,
        );
        key.verify(&message, &self.signature)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One 2048-bit key per test binary (generating takes a fraction of a second).
    pub(crate) fn merchant_key() -> &'static MerchantPrivateKey {
        static KEY: std::sync::OnceLock<MerchantPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            MerchantPrivateKey::from_rsa(
                rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("key generation"),
            )
            .unwrap()
        })
    }

    #[test]
    fn messages_end_every_line_with_a_newline() {
        assert_eq!(
            request_message("GET", "/v3/certificates", "1554208460", "593BEC0C", b""),
            b"GET\n/v3/certificates\n1554208460\n593BEC0C\n\n"
        );
        assert_eq!(
            response_message(
                "1554209980",
                "c5ac7061fccab6bf3e254dcf98995b8c",
                b"{\"a\":1}"
            ),
            b"1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{\"a\":1}\n"
        );
    }

    #[test]
    fn the_header_round_trips_and_verifies() {
        let key = merchant_key();
        let body =
            r#"{"mchid":"1900000001","description":"Image形象店-深圳腾大-QQ公仔"}"#.as_bytes();
        let auth = Authorization::sign(
            key,
            "1900000001",
            "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB",
            "POST",
            "/v3/pay/transactions/native",
            "1554208460",
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            body,
        )
        .unwrap();
        let header = auth.to_header_value().unwrap();
        assert!(header.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str="));
        let parsed = Authorization::parse(&header).unwrap();
        assert_eq!(parsed, auth);
        let public = key.public_key();
        parsed
            .verify(&public, "POST", "/v3/pay/transactions/native", body)
            .unwrap();
        // Every part of the message counts.
        for (method, path, body) in [
            ("GET", "/v3/pay/transactions/native", body),
            ("POST", "/v3/pay/transactions/jsapi", body),
            ("POST", "/v3/pay/transactions/native?x=1", body),
            (
                "POST",
                "/v3/pay/transactions/native",
                &body[..body.len() - 1],
            ),
        ] {
            assert_eq!(
                parsed.verify(&public, method, path, body),
                Err(SignatureMismatch::Mismatch)
            );
        }
    }

    #[test]
    fn parsing_takes_any_order_and_refuses_the_odd() {
        let reordered = r#"WECHATPAY2-SHA256-RSA2048 serial_no="AB", timestamp="1",signature="c2ln",nonce_str="n", mchid="1",extra="x""#;
        let parsed = Authorization::parse(reordered).unwrap();
        assert_eq!(parsed.serial_no, "AB");
        assert_eq!(parsed.signature, "c2ln");
        for (header, error) in [
            (
                r#"WECHATPAY2-SHA256-RSA2048X mchid="1""#,
                AuthorizationError::Scheme,
            ),
            (r#"Bearer mchid="1""#, AuthorizationError::Scheme),
            (
                r#"WECHATPAY2-SHA256-RSA2048 mchid=1"#,
                AuthorizationError::Syntax(1),
            ),
            (
                r#"WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",timestamp="1",serial_no="A""#,
                AuthorizationError::Duplicate("mchid".into()),
            ),
            (
                r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",serial_no="A""#,
                AuthorizationError::Missing("signature"),
            ),
        ] {
            assert_eq!(Authorization::parse(header), Err(error), "{header}");
        }
        let mut auth = Authorization::parse(reordered).unwrap();
        auth.mchid = "1\",serial_no=\"evil".into();
        assert_eq!(
            auth.to_header_value(),
            Err(AuthorizationError::BadValue("mchid"))
        );
    }
}
