//! Delivering an event to a merchant's endpoint: one signed POST of the event's stored
//! envelope (`Jit-Signature`, the scheme of the `jit-webhooks` crate), a 2xx answer takes
//! it.

use std::time::{Duration, Instant};

use jit_runtime::log_safe;
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};

use crate::db::outbox::{AttemptResult, ClaimedDelivery, ConsumerRoute};
use crate::db::redact_url;
use crate::db::store::now;
use crate::error::PayError;
use crate::events::PayEventKind;

/// One merchant endpoint (`[[webhooks]]` in app.toml).
#[derive(Clone)]
pub struct WebhookEndpoint {
    /// Where events are POSTed; also the endpoint's name in `pays_event_delivery`.
    pub url: String,
    /// The shared secret the signature is made with.
    pub secret: String,
    /// The kinds it takes; `None`: all.
    pub kinds: Option<Vec<PayEventKind>>,
    /// One attempt's time limit (connecting, sending and the answer).
    pub timeout: Duration,
    /// A delivery still failing this long after its event is dead.
    pub retry_for: Duration,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("url", &self.shown_url())
            .field("secret", &jit_runtime::MASK)
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .field("retry_for", &self.retry_for)
            .finish()
    }
}

impl WebhookEndpoint {
    /// The URL as logs show it (credentials and secret-looking query values hidden).
    pub fn shown_url(&self) -> String {
        log_safe(&redact_url(&self.url)).to_string()
    }

    /// Its route for new events.
    pub(crate) fn route(&self) -> ConsumerRoute {
        ConsumerRoute {
            name: self.url.clone(),
            kinds: self.kinds.clone(),
            retry_for: self.retry_for,
        }
    }
}

/// The HTTP client of every endpoint: no redirects followed (an endpoint that moved must
/// be reconfigured, not followed with the signed body), each request's own timeout.
pub(super) fn client() -> Result<reqwest::Client, PayError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| PayError::unavailable(format!("the webhook HTTP client: {error}")))
}

/// One attempt: POSTs the stored envelope, signed, and says how it went. The error text
/// names the status or the transport failure, never the URL's secrets or the body.
pub(super) async fn send(
    client: &reqwest::Client,
    endpoint: &WebhookEndpoint,
    claimed: ClaimedDelivery,
) -> AttemptResult {
    let started_at = now();
    let clock = Instant::now();
    let signature = jit_webhooks::sign(
        endpoint.secret.as_bytes(),
        chrono::Utc::now().timestamp(),
        claimed.payload.as_bytes(),
    );
    let answer = client
        .post(&endpoint.url)
        .timeout(endpoint.timeout)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static("jit-webhooks/1"))
        .header(jit_webhooks::EVENT_ID_HEADER, &claimed.event.id)
        .header(jit_webhooks::EVENT_TYPE_HEADER, claimed.event.kind.name())
        .header(jit_webhooks::SIGNATURE_HEADER, signature)
        .body(claimed.payload)
        .send()
        .await;
    let (status_code, error) = match answer {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => {
            let status = response.status();
            (
                Some(status.as_u16()),
                Some(format!("the endpoint answered HTTP {status}")),
            )
        }
        Err(error) => (None, Some(describe(&error))),
    };
    AttemptResult {
        delivery: claimed.delivery,
        started_at,
        latency_ms: clock.elapsed().as_millis() as i64,
        status_code,
        error,
        record: true,
    }
}

/// A transport failure in words, without the URL (which may carry a token).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "answered with a redirect"
    } else if error.is_body() || error.is_request() {
        "failed while sending"
    } else {
        "failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        format!("the request {what}")
    } else {
        format!("the request {what}: {}", log_safe(&detail))
    }
}
