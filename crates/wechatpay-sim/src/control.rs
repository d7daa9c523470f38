//! The `/sim/...` control surface: the payer's side, faults and inspection over HTTP (JSON),
//! for the command line and for tests written in other languages.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::Shared;
use crate::fault::{FaultId, FaultRule};
use crate::store::{Order, PayError, PayTarget};

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
