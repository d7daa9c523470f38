//! How a call travels: the HTTP clients, the signed request body, retries, and the checks
//! every answer passes before a call module reads its fields.
//!
//! A request is the call's parameters behind `appid`, `mch_id` and a fresh `nonce_str`,
//! signed once; every retry re-sends those exact bytes (see [`crate::client`] on why that
//! makes retrying safe). An answer is checked in this order: HTTP status, size, strict XML,
//! `return_code`, the signature (with the key the request was signed with), `appid`/`mch_id`
//! equal to the client's, `result_code`.

use crate::calls::{Endpoint, SANDBOX_SIGN_KEY_PATH, sandbox_sign_key};
use crate::error::{RetryAdvice, TransportError};
use crate::fields::{Fields, decode_document};
use crate::http::{self, BodyError};
use crate::{ApiKey, ErrCode, Error, Params, nonce_str, verify, xml};

use super::{Client, ClientConfig, ClientIdentity};

/// The cap on a response body (daily bills can be large; XML answers never are).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// The HTTP clients a [`Client`] sends with: the plain one, and one presenting the merchant
/// certificate when the configuration has it.
pub(super) struct HttpClients {
    pub plain: reqwest::Client,
    pub with_identity: Option<reqwest::Client>,
}

impl HttpClients {
    /// Builds both clients with the configured timeouts and extra trusted roots. Fails when
    /// the roots or the certificate are unusable.
    pub fn new(config: &ClientConfig) -> Result<HttpClients, Error> {
        let trusted_roots =
            http::trusted_roots(config.trusted_roots_pem.as_deref()).map_err(Error::Config)?;
        let builder = || {
            trusted_roots.iter().cloned().fold(
                reqwest::Client::builder()
                    .connect_timeout(config.connect_timeout)
                    .timeout(config.request_timeout)
                    .user_agent(concat!("wechatpay-v2/", env!("CARGO_PKG_VERSION"))),
                reqwest::ClientBuilder::add_root_certificate,
            )
        };
        let plain = builder()
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let with_identity = config
            .identity
            .as_ref()
            .map(|identity: &ClientIdentity| {
                let identity = reqwest::Identity::from_pem(&identity.pem).map_err(|e| {
                    Error::Config(format!("merchant certificate is not usable PEM: {e}"))
                })?;
                builder()
                    .identity(identity)
                    .build()
                    .map_err(|e| Error::Config(format!("HTTP client with certificate: {e}")))
            })
            .transpose()?;
        Ok(HttpClients {
            plain,
            with_identity,
        })
    }
}

fn transport(url: &str, error: reqwest::Error) -> Error {
    Error::Transport(TransportError::from_reqwest(url.to_owned(), error))
}

impl Client {
    /// The URL `endpoint` is sent to: in the sandbox or not, as configured.
    fn url(&self, endpoint: Endpoint) -> String {
        let path = endpoint.path_in(self.inner.config.sandbox);
        format!("{}{path}", self.inner.base_url)
    }

    /// The key requests are signed with: the API key, or in sandbox mode the sandbox key.
    pub(super) async fn signing_key(&self) -> Result<ApiKey, Error> {
        if self.inner.config.sandbox {
            self.sandbox_sign_key().await
        } else {
            Ok(self.inner.config.api_key.clone())
        }
    }

    /// Asks the sandbox for its signing key (uncached; see [`Client::sandbox_sign_key`]).
    pub(super) async fn fetch_sandbox_key(&self) -> Result<ApiKey, Error> {
        let config = &self.inner.config;
        let body = xml::encode(&sandbox_sign_key::request(&config.mch_id, &config.api_key));
        let url = format!("{}{SANDBOX_SIGN_KEY_PATH}", self.inner.base_url);
        let bytes = self
            .with_retries(|| self.post_once(&url, &body, false))
            .await?;
        let answer = decode_document(&bytes, SANDBOX_SIGN_KEY_PATH)?;
        sandbox_sign_key::read_answer(&answer)
    }

    async fn post_once(
        &self,
        url: &str,
        body: &str,
        with_identity: bool,
    ) -> Result<Vec<u8>, Error> {
        let http = if with_identity {
            self.inner.http.with_identity.as_ref().ok_or_else(|| {
                Error::Config(
                    "this call needs the merchant certificate (ClientConfig::identity)".into(),
                )
            })?
        } else {
            &self.inner.http.plain
        };
        let mut response = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Transport(TransportError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }));
        }
        http::read_body(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| match error {
                BodyError::Read(e) => transport(url, e),
                BodyError::TooLarge => Error::Malformed {
                    context: "response",
                    reason: format!("{url} answered more than {MAX_RESPONSE_BYTES} bytes"),
                },
            })
    }

    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        http::with_retries(
            self.inner.config.retry,
            attempt,
            // USERPAYING calls for querying later, on the caller's schedule: not retried here.
            |error: &Error| {
                error.is_retryable()
                    && !error
                        .err_code()
                        .is_some_and(|code| code.retry_advice() == RetryAdvice::Poll)
            },
            Error::retry_delay_hint,
            |error, attempt, pause| {
                tracing::warn!(attempt, error = %error, ?pause, "retrying WeChat Pay call");
            },
        )
        .await
    }

    /// Sends `params` to `endpoint` behind appid, mch_id and a nonce, signed, and reads each
    /// answer with `read` (given the key the request was signed with), retrying what may be
    /// retried with the identical body.
    pub(super) async fn send<T>(
        &self,
        endpoint: Endpoint,
        mut params: Params,
        read: impl Fn(Vec<u8>, &ApiKey) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let key = self.signing_key().await?;
        let config = &self.inner.config;
        let mut request = Params::new();
        request.insert("appid".into(), config.app_id.clone());
        request.insert("mch_id".into(), config.mch_id.clone());
        request.insert("nonce_str".into(), nonce_str());
        request.append(&mut params);
        crate::sign_params(&mut request, config.sign_type, &key);
        let body = xml::encode(&request);
        let url = self.url(endpoint);
        // The sandbox takes refunds without the merchant certificate; and over plain HTTP
        // (a simulator on loopback: WeChat itself is HTTPS only) there is no TLS to present
        // one in. Over HTTPS a call that needs it is refused without it.
        let with_identity = endpoint.needs_merchant_certificate
            && !config.sandbox
            && super::base_url_uses_tls(&self.inner.base_url);
        self.with_retries(|| async {
            let bytes = self.post_once(&url, &body, with_identity).await?;
            read(bytes, &key)
        })
        .await
    }

    /// Sends a call and returns the answer's fields once every check has passed.
    pub(super) async fn call(&self, endpoint: Endpoint, params: Params) -> Result<Params, Error> {
        self.send(endpoint, params, |bytes, key| {
            self.check_answer(endpoint.path, &bytes, key)
        })
        .await
    }

    fn check_answer(
        &self,
        endpoint: &'static str,
        bytes: &[u8],
        key: &ApiKey,
    ) -> Result<Params, Error> {
        let answer = decode_document(bytes, endpoint)?;
        let fields = Fields::new(&answer, endpoint);
        fields.ensure_return_success()?;
        verify(&answer, key).map_err(|source| Error::InvalidSignature {
            context: endpoint,
            source,
        })?;
        let config = &self.inner.config;
        for (field, expected) in [("appid", &config.app_id), ("mch_id", &config.mch_id)] {
            if let Some(got) = fields.optional(field)
                && &got != expected
            {
                return Err(Error::Malformed {
                    context: endpoint,
                    reason: format!("response `{field}` is `{got}`, expected `{expected}`"),
                });
            }
        }
        if fields.optional("result_code").as_deref() == Some("FAIL") {
            return Err(Error::Business {
                endpoint,
                code: ErrCode::parse(&fields.optional("err_code").unwrap_or_default()),
                description: fields.optional("err_code_des").unwrap_or_default(),
            });
        }
        fields.required("result_code")?;
        Ok(answer)
    }
}
