//! The payer's checkout page: `GET /pay/{org}/{app}/{orderId}` and its live status.
//!
//! This module owns the checkout routes ([`CHECKOUT_ROUTE`], [`CHECKOUT_STATUS_ROUTE`],
//! [`checkout_url`]) and what a payer may see of an order. The link carries no token: whoever
//! has it sees the order's subject, amount and status, and nothing else of it (no element,
//! no transaction id, no times but the expiry), nor anything of another order. An unknown
//! order, a malformed id and another app's path answer the same 404 page, after at most one
//! lookup by primary key, so the answer does not help guess ids.
//!
//! What the page shows for a waiting order follows its trade type (the prepay order at
//! WeChat, `pays_wechat_record.trade_type`):
//! - NATIVE, or no prepay yet: the QR code of the `code_url`, rendered here as inline SVG.
//!   An order without a prepay gets one the way `getPayUrl` NATIVE makes it (reused while it
//!   is valid, so a reload asks WeChat nothing): the link a shop sends is enough to pay.
//! - MWEB: a redirect to the `mweb_url` (a new prepay, when the old one lapsed, is made for
//!   the requesting IP, as WeChat's H5 payment requires).
//! - JSAPI: the signed parameters a page in WeChat's browser hands to
//!   `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`. WeChat needs the payer's openid for
//!   those, which a link cannot carry safely, so the shop calls `getPayUrl` JSAPI with the
//!   openid first; until then, and for APP orders, the page says the order is not ready.
//!
//! The status is live: the page's script asks [`CHECKOUT_STATUS_ROUTE`] with the status it
//! shows, and the answer waits (a long poll, at most [`LONG_POLL`]) until the committed
//! state differs. It wakes on the outbox's written signal (every transition commits an event,
//! [`jit_pays::db::Outbox::watch_written`]) and re-reads the store at least every second (a
//! transition committed by another instance), and at the order's expiry.
//!
//! With the built-in simulator as the gateway the page also links to the simulator's payer
//! page (on the simulator's own loopback listener), so a demo can be paid from the browser.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use jit_pays::db::entity::pay_log;
use jit_pays::{Pay, PayError, PayStatus, PayStore, PayType, Payer, PaysSettings};
use jit_runtime::log_safe;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::json;
use wechatpay_v2::Fen;

use super::{HtmlPage, Nonce, set_page_headers};
use crate::server::state::ServerState;

/// The payer's page of one order.
pub(crate) const CHECKOUT_ROUTE: &str = "/pay/{org}/{app}/{order_id}";

/// The order's payer status as JSON (`{"status": "waiting"}`), long-polled by the page.
pub(crate) const CHECKOUT_STATUS_ROUTE: &str = "/pay/{org}/{app}/{order_id}/status";

/// The longest a status request waits for a change before answering the same status.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(10);

/// How often a waiting status request re-reads the store when no signal came.
const STORE_POLL: Duration = Duration::from_secs(1);

/// The checkout page of order `order_id` of app `org/app`:
/// `{public_base_url}/pay/{org}/{app}/{orderId}`. The path characters WeChat allows in an
/// order id are URL-safe except `|`, which is escaped.
pub fn checkout_url(public_base_url: &str, org: &str, app: &str, order_id: &str) -> String {
    format!(
        "{}/pay/{org}/{app}/{}",
        public_base_url.trim_end_matches('/'),
        order_id.replace('|', "%7C")
    )
}

/// The checkout routes, merged into the server's router.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route(CHECKOUT_ROUTE, get(page))
        .route(CHECKOUT_STATUS_ROUTE, get(status))
}

/// What a payer is told of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PayerStatus {
    Waiting,
    Paid,
    Closed,
    Expired,
}

impl PayerStatus {
    /// `wait` past its expiry can no longer be paid (the prepay order expires with it), so
    /// it is `expired` before the reconciler records the timeout.
    fn of(order: &pay_log::Model, now: DateTime<Utc>) -> Self {
        match order.status {
            PayStatus::Success => PayerStatus::Paid,
            PayStatus::Close => PayerStatus::Closed,
            PayStatus::Timeout => PayerStatus::Expired,
            PayStatus::Wait if order.expires_at <= now => PayerStatus::Expired,
            PayStatus::Wait => PayerStatus::Waiting,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            PayerStatus::Waiting => "waiting",
            PayerStatus::Paid => "paid",
            PayerStatus::Closed => "closed",
            PayerStatus::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            PayerStatus::Waiting,
            PayerStatus::Paid,
            PayerStatus::Closed,
            PayerStatus::Expired,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// What the page says.
    fn label(self) -> &'static str {
        match self {
            PayerStatus::Waiting => "Waiting for payment",
            PayerStatus::Paid => "Paid",
            PayerStatus::Closed => "Closed",
            PayerStatus::Expired => "Expired",
        }
    }
}

/// Why no order is shown. Every case answers the same 404.
struct NotFound;

/// The order a checkout path names, or [`NotFound`]: another app's path, an id WeChat would
/// not accept, an unknown id. A store error is `Err(Some(message))`.
async fn lookup(
    state: &ServerState,
    org: &str,
    app: &str,
    order_id: &str,
) -> Result<(PayStore, pay_log::Model), Result<NotFound, String>> {
    if org != state.org
        || app != state.app_name
        || jit_pays::order_id::validate_order_id(order_id).is_err()
    {
        return Err(Ok(NotFound));
    }
    // A host without the pays family has no orders.
    let store = state.app.service::<PayStore>().ok_or(Ok(NotFound))?;
    match store.find_order(order_id).await {
        Ok(Some(order)) => Ok(((*store).clone(), order)),
        Ok(None) => Err(Ok(NotFound)),
        Err(error) => Err(Err(error.to_string())),
    }
}

type CheckoutPath = Result<Path<(String, String, String)>, PathRejection>;

/// `GET /pay/{org}/{app}/{orderId}`.
async fn page(
    State(state): State<Arc<ServerState>>,
    path: CheckoutPath,
    request: Request,
) -> Response {
    // A path axum cannot decode (bad percent-encoding) is one more id that is not there.
    let Ok(Path((org, app, order_id))) = path else {
        return not_found_page();
    };
    let order = match lookup(&state, &org, &app, &order_id).await {
        Ok((_, order)) => order,
        Err(Ok(NotFound)) => return not_found_page(),
        Err(Err(error)) => {
            tracing::error!(order_id = %log_safe(&order_id), error = %log_safe(&error), "checkout: the store did not answer");
            return unavailable_page();
        }
    };
    let status = PayerStatus::of(&order, Utc::now());
    if status != PayerStatus::Waiting {
        return order_page(&state, &org, &app, &order, status, WaitingView::None);
    }
    // The accept loop records every connection's peer; MWEB's prepay names the payer's IP.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string());
    match waiting_view(&state, &order, peer).await {
        Ok(WaitingView::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(view) => order_page(&state, &org, &app, &order, status, view),
        // The order moved on while the page was made (paid, closed): show what it is now.
        Err(ViewError::Moved) => match lookup(&state, &org, &app, &order_id).await {
            Ok((_, order)) => {
                let status = PayerStatus::of(&order, Utc::now());
                order_page(&state, &org, &app, &order, status, WaitingView::None)
            }
            Err(_) => unavailable_page(),
        },
        Err(ViewError::Unavailable(error)) => {
            tracing::warn!(order_id = %log_safe(&order_id), error = %log_safe(&error), "checkout: no payment parameters for a waiting order");
            unavailable_page()
        }
    }
}

/// What a waiting order's page offers the payer.
enum WaitingView {
    /// Nothing to pay with (the order is not waiting).
    None,
    /// NATIVE: the QR code of this `code_url`.
    QrCode(String),
    /// MWEB: go to WeChat's H5 page.
    Redirect(String),
    /// JSAPI: the signed parameters, JSON text.
    Jsapi(String),
    /// Not payable from this page (yet): what to tell the payer.
    NotReady(&'static str),
}

enum ViewError {
    /// The order is no longer waiting.
    Moved,
    /// WeChat or the store could not be asked.
    Unavailable(String),
}

async fn waiting_view(
    state: &ServerState,
    order: &pay_log::Model,
    peer: Option<String>,
) -> Result<WaitingView, ViewError> {
    let store = state
        .app
        .service::<PayStore>()
        .ok_or_else(|| ViewError::Unavailable("no pays store".into()))?;
    let trade_type = store
        .find_record(&order.order_id)
        .await
        .map_err(|error| ViewError::Unavailable(error.to_string()))?
        .and_then(|record| record.trade_type);
    // No prepay yet: the page makes the NATIVE one, as getPayUrl NATIVE would.
    let pay_type = match trade_type.as_deref() {
        None => PayType::Native,
        Some(text) => match PayType::parse(text) {
            Some(PayType::App) => {
                return Ok(WaitingView::NotReady(
                    "This order is paid in the shop's app.",
                ));
            }
            Some(pay_type) => pay_type,
            None => return Err(ViewError::Unavailable(format!("trade type {text}"))),
        },
    };
    let pay: Arc<dyn Pay> = state
        .app()
        .get::<dyn Pay>(&order.element)
        .await
        .map_err(|error| ViewError::Unavailable(error.to_string()))?;
    let payer = Payer {
        client_ip: peer,
        ..Payer::default()
    };
    match pay.get_pay_url(&order.order_id, pay_type, &payer).await {
        Ok(url) => Ok(match pay_type {
            PayType::Native => WaitingView::QrCode(url.pay_url),
            PayType::Mweb => WaitingView::Redirect(url.pay_url),
            PayType::Jsapi | PayType::App => WaitingView::Jsapi(url.form),
        }),
        Err(PayError::OrderPaid { .. } | PayError::OrderClosed { .. }) => Err(ViewError::Moved),
        // JSAPI whose prepay lapsed: a new one needs the payer's openid, which only the
        // shop knows.
        Err(PayError::Invalid {
            field: "openid", ..
        }) => Ok(WaitingView::NotReady(
            "This payment is not ready yet: open it again from the shop's page in WeChat.",
        )),
        Err(error) => Err(ViewError::Unavailable(error.to_string())),
    }
}

/// Page-specific style.
const CHECKOUT_STYLE: &str = "\
.amount{font-size:2rem;font-weight:600;margin:.25rem 0 1rem}\
#status{display:inline-block;padding:.2rem .7rem;border-radius:1rem;font-weight:600;background:#fff4d6;color:#7a5600}\
#status[data-status=paid]{background:#dcf5e3;color:#116b2f}\
#status[data-status=closed],#status[data-status=expired]{background:#eceef1;color:#4a505a}\
.qr{margin:1.25rem 0 .5rem;text-align:center}\
.qr svg{width:256px;height:256px;max-width:100%}\
main:not([data-status=waiting]) .payable{display:none}\
.demo{margin-top:1.25rem;padding:.75rem;border:1px dashed #c9ced6;border-radius:.5rem}\
";

/// The page's script: the countdown, and the long poll that updates the status in place.
const CHECKOUT_SCRIPT: &str = r#"(function () {
  var status = document.getElementById('status');
  var labels = JSON.parse(status.getAttribute('data-labels'));
  function show(value) {
    status.setAttribute('data-status', value);
    document.getElementById('checkout').setAttribute('data-status', value);
    status.textContent = labels[value] || value;
  }
  var countdown = document.getElementById('countdown');
  if (countdown) {
    var end = Number(countdown.getAttribute('data-expires-at'));
    var tick = function () {
      var left = Math.max(0, Math.floor((end - Date.now()) / 1000));
      var minutes = Math.floor(left / 60), seconds = left % 60;
      countdown.textContent = minutes + ':' + (seconds < 10 ? '0' : '') + seconds;
      if (left > 0) { setTimeout(tick, 1000); }
    };
    tick();
  }
  var url = status.getAttribute('data-status-url');
  function poll() {
    var shown = status.getAttribute('data-status');
    if (shown !== 'waiting') { return; }
    fetch(url + '?after=' + shown, { cache: 'no-store', credentials: 'omit' })
      .then(function (response) {
        if (response.status === 404) { return null; }
        if (!response.ok) { throw new Error('status ' + response.status); }
        return response.json();
      })
      .then(function (answer) { if (answer) { show(answer.status); poll(); } })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
  var params = document.getElementById('jsapi-params');
  if (params && window.WeixinJSBridge) {
    window.WeixinJSBridge.invoke('getBrandWCPayRequest', JSON.parse(params.textContent), function () {});
  }
})();"#;

fn order_page(
    state: &ServerState,
    org: &str,
    app: &str,
    order: &pay_log::Model,
    status: PayerStatus,
    view: WaitingView,
) -> Response {
    let nonce = Nonce::new();
    let status_url = checkout_url("", org, app, &order.order_id) + "/status";
    let labels = json!({
        "waiting": PayerStatus::Waiting.label(),
        "paid": PayerStatus::Paid.label(),
        "closed": PayerStatus::Closed.label(),
        "expired": PayerStatus::Expired.label(),
    })
    .to_string();
    let waiting = status == PayerStatus::Waiting;
    let simulator_page = simulator_payer_page(state, order).filter(|_| waiting);
    let body = html! {
        // `data-status` on main drives the style: what lets the payer pay hides once the
        // order is no longer waiting.
        main #checkout data-status=(status.as_str()) {
            h1 { (order.subject) }
            p.amount { "¥" (Fen::new(order.amount_fen)) }
            p {
                span #status data-status=(status.as_str()) data-status-url=(status_url)
                    data-labels=(labels) role="status" aria-live="polite" { (status.label()) }
            }
            @if waiting {
                (payable_part(&view, order.expires_at))
            }
            @if let Some(url) = simulator_page {
                div.demo.payable {
                    p.muted { "Demo mode: payments go to the built-in WeChat Pay simulator; no money moves." }
                    a #simulator-pay href=(url) target="_blank" rel="noopener" { "Pay in the simulator" }
                }
            }
        }
        script nonce=(nonce.as_str()) { (PreEscaped(CHECKOUT_SCRIPT)) }
    };
    HtmlPage {
        status: StatusCode::OK,
        title: format!("Pay: {}", order.subject),
        nonce,
        style: CHECKOUT_STYLE,
        body,
    }
    .into_response()
}

/// The part of a waiting order's page that lets the payer pay, and its countdown.
fn payable_part(view: &WaitingView, expires_at: DateTime<Utc>) -> Markup {
    html! {
        div.payable {
            @match view {
                WaitingView::QrCode(code_url) => {
                    figure.qr #qr {
                        (PreEscaped(qr_svg(code_url)))
                        figcaption.muted { "Scan with WeChat to pay" }
                    }
                }
                WaitingView::Jsapi(params) => {
                    p { "Open this page in WeChat to pay. The payment parameters for "
                        code { "WeixinJSBridge.invoke('getBrandWCPayRequest', …)" } ":" }
                    pre #jsapi-params { (params) }
                }
                WaitingView::NotReady(message) => { p #not-ready { (message) } }
                WaitingView::None | WaitingView::Redirect(_) => {}
            }
            p.muted {
                "Expires in " span #countdown data-expires-at=(expires_at.timestamp_millis()) { "…" }
            }
        }
    }
}

/// `code_url` as an inline SVG QR code (medium error correction, a 4-module quiet zone).
///
/// The text only decides which modules are dark: nothing of it reaches the markup.
fn qr_svg(code_url: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(code_url, qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .quiet_zone(true)
                .min_dimensions(256, 256)
                .build();
            // The XML declaration means nothing inside HTML.
            match svg.find("<svg") {
                Some(start) => svg[start..].to_owned(),
                None => svg,
            }
        }
        // A code URL longer than a QR code holds (WeChat's are ~40 characters).
        Err(_) => "<p>This payment code cannot be shown.</p>".to_owned(),
    }
}

/// The simulator's payer page for the order, when the simulator is the gateway.
fn simulator_payer_page(state: &ServerState, order: &pay_log::Model) -> Option<String> {
    if !state.simulated_payments {
        return None;
    }
    let settings = state.app.service::<PaysSettings>()?;
    Some(wechatpay_sim::payer_page_url(
        &settings.gateway_base_url,
        &order.order_id,
    ))
}

fn not_found_page() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "Payment not found",
        "There is no payment at this address. Check the link the shop gave you.",
    )
}

fn unavailable_page() -> Response {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Payment unavailable",
        "The payment service cannot be reached right now. Reload this page in a moment.",
    )
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    HtmlPage {
        status,
        title: title.to_owned(),
        nonce: Nonce::new(),
        style: "",
        body: html! { main { h1 { (title) } p { (message) } } },
    }
    .into_response()
}

#[derive(Deserialize)]
struct StatusQuery {
    /// The status the page shows: answer when the order's differs (or at the limit).
    after: Option<String>,
}

/// `GET /pay/{org}/{app}/{orderId}/status[?after=waiting]`: `{"status": …}`.
async fn status(
    State(state): State<Arc<ServerState>>,
    path: CheckoutPath,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Response {
    let Ok(Path((org, app, order_id))) = path else {
        return status_answer(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    };
    let after = query
        .ok()
        .and_then(|Query(query)| query.after)
        .and_then(|text| PayerStatus::parse(&text));
    let limit = LONG_POLL.min(
        state
            .config
            .request_timeout
            .saturating_sub(Duration::from_secs(2)),
    );
    let deadline = Instant::now() + limit;
    let mut signal: Option<tokio::sync::watch::Receiver<u64>> = None;
    loop {
        let (store, order) = match lookup(&state, &org, &app, &order_id).await {
            Ok(found) => found,
            Err(Ok(NotFound)) => {
                return status_answer(StatusCode::NOT_FOUND, json!({"error": "not found"}));
            }
            Err(Err(error)) => {
                tracing::error!(order_id = %log_safe(&order_id), error = %log_safe(&error), "checkout status: the store did not answer");
                return status_answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "unavailable"}),
                );
            }
        };
        let now = Utc::now();
        let current = PayerStatus::of(&order, now);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if Some(current) != after || current != PayerStatus::Waiting || remaining.is_zero() {
            return status_answer(StatusCode::OK, json!({"status": current.as_str()}));
        }
        // Subscribed before the next read, so a commit between the read and the wait
        // is not missed: the receiver has seen no value yet and `changed` returns at once
        // for any commit after the subscription.
        let receiver = signal.get_or_insert_with(|| store.outbox().watch_written());
        let until_expiry = (order.expires_at - now)
            .to_std()
            .unwrap_or_default()
            .saturating_add(Duration::from_millis(50));
        let pause = STORE_POLL.min(remaining).min(until_expiry);
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    // The store is going away: answer what is known.
                    return status_answer(StatusCode::OK, json!({"status": current.as_str()}));
                }
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
}

fn status_answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    set_page_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_urls_follow_the_route() {
        assert_eq!(
            checkout_url("https://shop.example.com/", "demo", "shop", "D1|2*x"),
            "https://shop.example.com/pay/demo/shop/D1%7C2*x"
        );
        assert!(CHECKOUT_ROUTE.starts_with("/pay/{org}/{app}/"));
        assert_eq!(
            CHECKOUT_STATUS_ROUTE,
            format!("{CHECKOUT_ROUTE}/status"),
            "the page's script appends /status"
        );
    }

    #[test]
    fn payer_statuses_round_trip() {
        for status in [
            PayerStatus::Waiting,
            PayerStatus::Paid,
            PayerStatus::Closed,
            PayerStatus::Expired,
        ] {
            assert_eq!(PayerStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PayerStatus::parse("wait"), None);
    }

    #[test]
    fn qr_codes_are_bare_svg() {
        let svg = qr_svg("weixin://wxpay/bizpayurl?pr=abc<script>");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            !svg.contains("script"),
            "the text is not in the markup: {svg}"
        );
    }
}
