//! The `/sim/...` control surface: the payer's side, faults, refund outcomes, bill
//! alterations and inspection over HTTP (JSON), for the command line and for tests written
//! in other languages.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
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
        .with_state(shared)
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
