//! The `/sim/...` control surface: the payer's side, faults, refund outcomes, bill
//! alterations and inspection over HTTP (JSON), for the command line and for tests written
//! in other languages; and the payer's page ([`PAYER_PAGE_ROUTE`]), a small HTML page with
//! a "Pay" button for demos in a browser.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::Shared;
use crate::bill::{self, BillAlteration};
use crate::fault::{FaultId, FaultRule};
use crate::store::{
    Order, OutsidePayment, OutsidePaymentError, PayError, PayTarget, RefundControlError, RefundPlan,
};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/health", get(|| async { "ok" }))
        .route("/sim/pay", post(pay))
        .route(PAYER_PAGE_ROUTE, get(payer_page))
        .route("/sim/fail", post(fail))
        .route("/sim/paying", post(paying))
        .route("/sim/inspect", get(inspect).delete(clear_inspection))
        .route(
            "/sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sim/faults/{id}", delete(remove_fault))
        .route(
            "/sim/refund-plans",
            get(list_refund_plans)
                .post(add_refund_plan)
                .delete(clear_refund_plans),
        )
        .route("/sim/refunds/settle", post(settle_refund))
        .route("/sim/outside-payments", post(record_outside_payment))
        .route(
            "/sim/bill-alterations",
            get(list_bill_alterations)
                .post(alter_bill)
                .delete(clear_bill_alterations),
        )
        .route("/sim/v3/material/{mch_id}", get(v3_material))
        .route("/sim/v3/mode", get(v3_mode).put(set_v3_mode))
        .route("/sim/v3/signtest", post(signtest))
        .with_state(shared)
}

/// A merchant's V3 material (the merchant's private key only when the simulator made it).
async fn v3_material(State(shared): State<Arc<Shared>>, Path(mch_id): Path<String>) -> Response {
    match shared.v3_material(&mch_id) {
        Some(Ok(material)) => Json(material).into_response(),
        Some(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "ok": false, "error": error })),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "ok": false, "error": "no such merchant" })),
        )
            .into_response(),
    }
}

async fn v3_mode(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.v3_mode()).into_response()
}

async fn set_v3_mode(
    State(shared): State<Arc<Shared>>,
    Json(mode): Json<crate::V3Mode>,
) -> Response {
    match shared.set_v3_mode(mode) {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "ok": false, "error": error.to_string() })),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeTarget {
    out_trade_no: String,
}

async fn signtest(State(shared): State<Arc<Shared>>, Json(target): Json<ProbeTarget>) -> Response {
    match shared.send_signtest_probe(&target.out_trade_no) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "ok": true }))).into_response(),
        Err(error) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "ok": false, "error": error.to_string() })),
        )
            .into_response(),
    }
}

/// The payer's page of an order: what it is, and a "Pay" button that posts to `/sim/pay`.
pub const PAYER_PAGE_ROUTE: &str = "/sim/pay/{out_trade_no}";

/// The payer's page of order `out_trade_no` on the simulator at `base_url`
/// (`{base_url}/sim/pay/{out_trade_no}`; `|`, the one character of an order number that is
/// not URL-safe, escaped).
pub fn payer_page_url(base_url: &str, out_trade_no: &str) -> String {
    format!(
        "{}/sim/pay/{}",
        base_url.trim_end_matches('/'),
        out_trade_no.replace('%', "%25").replace('|', "%7C")
    )
}

/// The page's script: each button posts its order to `/sim/pay` and shows the answer.
const PAYER_PAGE_SCRIPT: &str = r#"document.querySelectorAll('button[data-out-trade-no]').forEach(function (button) {
  button.addEventListener('click', function () {
    var result = document.getElementById('result-' + button.getAttribute('data-index'));
    button.disabled = true;
    fetch('/sim/pay', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ out_trade_no: button.getAttribute('data-out-trade-no'), mch_id: button.getAttribute('data-mch-id') })
    }).then(function (response) { return response.json(); }).then(function (answer) {
      result.textContent = answer.ok ? 'Paid. The shop is being notified.' : answer.error;
      if (!answer.ok) { button.disabled = false; }
    }).catch(function (error) { result.textContent = String(error); button.disabled = false; });
  });
});"#;

/// `GET /sim/pay/{out_trade_no}`: every merchant's order with that number, each with a
/// "Pay" button while it can be paid.
async fn payer_page(
    State(shared): State<Arc<Shared>>,
    Path(out_trade_no): Path<String>,
) -> Response {
    let orders: Vec<Order> = shared
        .store
        .all_orders()
        .into_iter()
        .filter(|order| order.out_trade_no == out_trade_no)
        .collect();
    let nonce = format!("{:032x}", rand::random::<u128>());
    let status = if orders.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "WeChat Pay simulator: pay " (out_trade_no) }
                style nonce=(nonce) {
                    "body{font-family:system-ui,sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem}"
                    "section{border:1px solid #d0d4da;border-radius:.5rem;padding:1rem;margin:1rem 0}"
                    "button{font-size:1.1rem;padding:.5rem 1.5rem;background:#07c160;color:#fff;border:0;border-radius:.4rem}"
                    "button:disabled{background:#9bd8b5}"
                }
            }
            body {
                h1 { "WeChat Pay simulator" }
                p { "No money moves: this pays the simulated order as a payer would." }
                @if orders.is_empty() {
                    p #none { "The simulator has no order " code { (out_trade_no) } ". Ask the shop for its payment code first." }
                }
                @for (index, order) in orders.iter().enumerate() {
                    section {
                        h2 { (order.body) }
                        p { "¥" (order.total_fee) " · order " code { (order.out_trade_no) } " · merchant " (order.mch_id) " · " (order.trade_type) }
                        p { "State: " strong #{"state-" (index)} { (order.state.as_str()) } " (" (order.state.description()) ")" }
                        @if matches!(order.state, crate::store::TradeState::NotPay | crate::store::TradeState::UserPaying | crate::store::TradeState::PayError) {
                            button type="button" data-index=(index) data-out-trade-no=(order.out_trade_no) data-mch-id=(order.mch_id) { "Pay" }
                        }
                        p #{"result-" (index)} role="status" {}
                    }
                }
                script nonce=(nonce) { (maud::PreEscaped(PAYER_PAGE_SCRIPT)) }
            }
        }
    };
    let mut response = (status, page.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let policy = format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; base-uri 'none'; frame-ancestors 'none'"
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&policy).expect("ASCII"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn payer_reply(result: Result<Order, PayError>) -> Response {
    match result {
        Ok(order) => Json(json!({ "ok": true, "order": order })).into_response(),
        Err(error) => {
            let status = match error {
                PayError::NoTarget | PayError::Ambiguous(_) => StatusCode::BAD_REQUEST,
                PayError::NotFound(_) => StatusCode::NOT_FOUND,
                PayError::WrongState { .. } | PayError::Expired(_) => StatusCode::CONFLICT,
            };
            (
                status,
                Json(json!({ "ok": false, "error": error.to_string() })),
            )
                .into_response()
        }
    }
}

async fn pay(State(shared): State<Arc<Shared>>, Json(target): Json<PayTarget>) -> Response {
    payer_reply(shared.pay(&target))
}

async fn fail(State(shared): State<Arc<Shared>>, Json(target): Json<PayTarget>) -> Response {
    payer_reply(shared.fail_payment(&target))
}

async fn paying(State(shared): State<Arc<Shared>>, Json(target): Json<PayTarget>) -> Response {
    payer_reply(shared.start_paying(&target))
}

async fn inspect(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.inspection()).into_response()
}

async fn clear_inspection(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.clear_inspection();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.list()).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(rule): Json<FaultRule>) -> Response {
    match shared.faults.add(rule) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> StatusCode {
    if shared.faults.remove(FaultId(id)) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// A refusal: `status` with `{"ok": false, "error": ...}`.
fn refused(status: StatusCode, error: &impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "ok": false, "error": error.to_string() })),
    )
        .into_response()
}

fn refund_control_status(error: &RefundControlError) -> StatusCode {
    match error {
        RefundControlError::NoTarget | RefundControlError::NotFinal => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RefundControlError::Ambiguous(_) => StatusCode::BAD_REQUEST,
        RefundControlError::NotFound(_) => StatusCode::NOT_FOUND,
        RefundControlError::AlreadyRequested(_) | RefundControlError::AlreadySettled { .. } => {
            StatusCode::CONFLICT
        }
    }
}

async fn list_refund_plans(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.store.refund_plans()).into_response()
}

async fn add_refund_plan(
    State(shared): State<Arc<Shared>>,
    Json(plan): Json<RefundPlan>,
) -> Response {
    match shared.store.plan_refund(plan) {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "ok": true }))).into_response(),
        Err(error) => refused(refund_control_status(&error), &error),
    }
}

async fn clear_refund_plans(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.store.clear_refund_plans();
    StatusCode::NO_CONTENT
}

/// `POST /sim/refunds/settle`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settlement {
    out_refund_no: String,
    status: wechatpay_v2::RefundStatus,
}

async fn settle_refund(
    State(shared): State<Arc<Shared>>,
    Json(settlement): Json<Settlement>,
) -> Response {
    match shared.settle_refund(&settlement.out_refund_no, settlement.status) {
        Ok(refund) => Json(json!({ "ok": true, "refund": refund })).into_response(),
        Err(error) => refused(refund_control_status(&error), &error),
    }
}

async fn record_outside_payment(
    State(shared): State<Arc<Shared>>,
    Json(payment): Json<OutsidePayment>,
) -> Response {
    match shared.record_outside_payment(&payment) {
        Ok(order) => (
            StatusCode::CREATED,
            Json(json!({ "ok": true, "order": order })),
        )
            .into_response(),
        Err(error) => {
            let status = match error {
                OutsidePaymentError::Amount | OutsidePaymentError::WhichMerchant => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                OutsidePaymentError::UnknownMerchant(_) => StatusCode::NOT_FOUND,
                OutsidePaymentError::Exists(_) => StatusCode::CONFLICT,
            };
            refused(status, &error)
        }
    }
}

async fn list_bill_alterations(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.bill_alterations.lock().clone()).into_response()
}

async fn alter_bill(
    State(shared): State<Arc<Shared>>,
    Json(alteration): Json<BillAlteration>,
) -> Response {
    match bill::alter(&shared.bill_alterations, alteration) {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "ok": true }))).into_response(),
        Err(error) => refused(StatusCode::UNPROCESSABLE_ENTITY, &error),
    }
}

async fn clear_bill_alterations(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.bill_alterations.lock().clear();
    StatusCode::NO_CONTENT
}
