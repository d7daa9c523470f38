//! How a call travels: the HTTP client, the signed request, retries, and the checks every
//! answer passes before a call module reads it.
//!
//! A request's body is fixed once; each attempt signs `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`
//! afresh over exactly the URL and bytes it sends (the URL as reqwest will send it, so what
//! is signed is what arrives). An answer is checked in this order: HTTP status (an error
//! status with a V3 body is [`Error::Api`], without one [`TransportError::Status`]), size,
//! then, for 2xx answers that must be signed, WeChat's signature over the raw body.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use wechatpay_v2::http::{self, BodyError};

use super::{Client, ClientConfig};
use crate::calls::Call;
use crate::error::TransportError;
use crate::sign::Authorization;
use crate::verify::{HEADER_SERIAL, VerifiedBy, VerifyError};
use crate::{Error, ErrorCode};

/// The cap on a JSON answer.
const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;

/// A received answer.
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The HTTP client: timeouts, extra trusted roots, no redirects (a redirected request would
/// carry a signature for another URL, or lose it).
pub(super) fn http_client(config: &ClientConfig) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "wechatpay-v3/",
            env!("CARGO_PKG_VERSION"),
            " (jit)"
        ));
    for root in http::trusted_roots(config.trusted_roots_pem.as_deref()).map_err(Error::Config)? {
        builder = builder.add_root_certificate(root);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

fn transport(url: &reqwest::Url, error: reqwest::Error) -> Error {
    // The URL without its query: a download token is not for logs or messages.
    let mut shown = url.clone();
    shown.set_query(None);
    Error::Transport(TransportError::from_reqwest(shown.to_string(), error))
}

/// The path with its query, as signed: exactly what the request line carries.
fn path_with_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

impl Client {
    /// The URL of a call under the API root.
    pub(super) fn url_of(&self, call: &Call) -> Result<reqwest::Url, Error> {
        let base = self.inner.base.as_str().trim_end_matches('/');
        reqwest::Url::parse(&format!("{base}{}", call.path_and_query))
            .map_err(|e| Error::Config(format!("cannot build the URL of {}: {e}", call.endpoint)))
    }

    /// Sends a call and verifies WeChat's signature on its answer, retrying what may be
    /// retried; every attempt re-sends the call's body unchanged.
    pub(super) async fn execute(&self, call: &Call) -> Result<Answer, Error> {
        let url = self.url_of(call)?;
        self.with_retries(call.endpoint, || async {
            let answer = self
                .send_once(
                    call.endpoint,
                    &call.method,
                    &url,
                    call.body.as_deref(),
                    MAX_JSON_BYTES,
                )
                .await?;
            self.verify_signed(call.endpoint, &answer.headers, &answer.body)
                .await?;
            Ok(answer)
        })
        .await
    }

    /// Sends a GET whose answer is not signed (a bill file, checked by its SHA1; the
    /// certificate list, verified by the refresh with the certificates it carries), with
    /// retries.
    pub(super) async fn execute_unsigned(
        &self,
        endpoint: &'static str,
        url: reqwest::Url,
        limit: usize,
    ) -> Result<Answer, Error> {
        self.with_retries(endpoint, || {
            self.send_once(endpoint, &reqwest::Method::GET, &url, None, limit)
        })
        .await
    }

    async fn send_once(
        &self,
        endpoint: &'static str,
        method: &reqwest::Method,
        url: &reqwest::Url,
        body: Option<&[u8]>,
        limit: usize,
    ) -> Result<Answer, Error> {
        let config = &self.inner.config;
        let authorization = Authorization::sign(
            &config.merchant_key,
            &config.mch_id,
            &config.merchant_serial_no,
            method.as_str(),
            &path_with_query(url),
            &wechatpay_v2::time::unix_seconds_now(),
            &wechatpay_v2::nonce_str(),
            body.unwrap_or_default(),
        )?
        .to_header_value()
        .map_err(|e| Error::Config(format!("cannot write the Authorization header: {e}")))?;
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = config.verification.public_key() {
            // Tells WeChat to sign the answer with the public key's private half.
            request = request.header(HEADER_SERIAL, key.id());
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_vec());
        }
        let mut response = request.send().await.map_err(|e| transport(url, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = http::read_body(&mut response, limit)
            .await
            .map_err(|error| match error {
                BodyError::Read(e) => transport(url, e),
                BodyError::TooLarge => Error::Malformed {
                    context: endpoint,
                    reason: format!("the answer is larger than {limit} bytes"),
                },
            })?;
        if !(200..300).contains(&status) {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(error) if !error.code.is_empty() => Error::Api {
                    endpoint,
                    status,
                    code: ErrorCode::parse(&error.code),
                    message: error.message,
                    detail: error.detail.map(Box::new),
                },
                _ => {
                    let mut shown = url.clone();
                    shown.set_query(None);
                    Error::Transport(TransportError::Status {
                        url: shown.to_string(),
                        status,
                    })
                }
            });
        }
        Ok(Answer {
            status,
            headers,
            body: bytes,
        })
    }

    async fn with_retries<T, F, Fut>(&self, endpoint: &'static str, attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        http::with_retries(
            self.inner.config.retry,
            attempt,
            Error::is_retryable,
            Error::retry_delay_hint,
            |error, attempt, pause| {
                tracing::warn!(
                    endpoint,
                    attempt,
                    error = %error.log_label(),
                    ?pause,
                    "retrying WeChat Pay v3 call with the same body"
                );
            },
        )
        .await
    }

    /// Verifies a signed body, downloading platform certificates first when they are due,
    /// and once more (rate-limited) when the serial is not held or no longer valid.
    pub(super) async fn verify_signed(
        &self,
        context: &'static str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedBy, Error> {
        let signed = Client::signed_headers(context, headers)?;
        let verifier = &self.inner.verifier;
        let invalid = |source| Error::InvalidSignature { context, source };
        if verifier.certificates().is_none() {
            return verifier.verify(&signed, body).map_err(invalid);
        }
        self.refresh_certificates_if_due().await;
        match verifier.verify(&signed, body) {
            Err(VerifyError::UnknownSerial(serial)) if !crate::keys::is_public_key_id(&serial) => {
                self.refresh_certificates_for_serial().await?;
                verifier.verify(&signed, body).map_err(invalid)
            }
            Err(VerifyError::CertificateNotValid { .. }) => {
                self.refresh_certificates_for_serial().await?;
                verifier.verify(&signed, body).map_err(invalid)
            }
            other => other.map_err(invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_the_request_line() {
        let url = reqwest::Url::parse(
            "http://127.0.0.1:9/v3/pay/transactions/out-trade-no/T%7C1?mchid=1",
        )
        .unwrap();
        assert_eq!(
            path_with_query(&url),
            "/v3/pay/transactions/out-trade-no/T%7C1?mchid=1"
        );
        let url = reqwest::Url::parse("https://api.mch.weixin.qq.com/v3/certificates").unwrap();
        assert_eq!(path_with_query(&url), "/v3/certificates");
        // reqwest keeps what the calls encoded, and encodes nothing more.
        let url = reqwest::Url::parse("http://h/v3/x/A*B_-~.?a=2026-01-01&b=ALL").unwrap();
        assert_eq!(path_with_query(&url), "/v3/x/A*B_-~.?a=2026-01-01&b=ALL");
    }
}
