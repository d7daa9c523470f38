//! The WeChat Pay API v3 endpoints beside V2: the same merchants, order book, state machine,
//! faults and inspection log, spoken in JSON with RSA signatures.
//!
//! Every request's `Authorization` is checked (merchant, certificate serial, timestamp
//! window, signature over the canonical message) with the `wechatpay-v3` crate, which owns
//! the protocol; refusals answer WeChat's V3 error document (`{"code", "message"}`) with
//! its HTTP status. Every answer, errors included, carries `Wechatpay-*` signature headers
//! made by the key the current [`V3Mode`] picks. This module also builds the V3 notifies
//! (an `AEAD_AES_256_GCM` resource under the merchant's APIv3 key).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};
use wechatpay_v2::{Fen, RefundStatus, time};
use wechatpay_v3::notify::NotifyEnvelope;
use wechatpay_v3::time::rfc3339_beijing;
use wechatpay_v3::{Authorization, CertificateList, EncryptedResource, EventType};

use crate::config::V3Mode;
use crate::fault::{Endpoint, RequestFaults};
use crate::inspect::RequestRecord;
use crate::notify::{NotifyJob, NotifyKind, NotifyWire};
use crate::store::{
    ApiVersion, BizError, Created, Env, NewOrder, Order, OrderRef, PayTarget, Refund, RefundRef,
    RefundRequest,
};
use crate::tls::Peer;
use crate::{MerchantEntry, Shared};

/// How far a request's timestamp may be from the simulator's clock: the window the
/// `wechatpay-v3` crate keeps for WeChat's signatures, five minutes both ways.
const TIMESTAMP_WINDOW: std::time::Duration = wechatpay_v3::verify::DEFAULT_TIMESTAMP_WINDOW;

/// The V3 routes: one handler reads the method and the path itself, as the paths carry
/// merchant numbers in any position.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v3/{*rest}", any(handle))
        // As for V2: the JSON bodies are small; this stops a client streaming megabytes.
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(shared)
}

/// A V3 refusal: HTTP status, WeChat's code and a message.
#[derive(Debug)]
struct V3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl V3Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        V3Error {
            status,
            code,
            message: message.into(),
        }
    }

    fn param(message: impl Into<String>) -> Self {
        V3Error::new(StatusCode::BAD_REQUEST, "PARAM_ERROR", message)
    }

    fn sign(message: impl Into<String>) -> Self {
        V3Error::new(StatusCode::UNAUTHORIZED, "SIGN_ERROR", message)
    }

    fn system() -> Self {
        V3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统错误，请稍后重试",
        )
    }
}

/// The V3 status and code of each refusal the order book gives.
impl From<BizError> for V3Error {
    fn from(error: BizError) -> Self {
        let (status, code) = match &error {
            BizError::OrderPaid => (StatusCode::BAD_REQUEST, "ORDERPAID"),
            BizError::OrderClosed => (StatusCode::BAD_REQUEST, "ORDER_CLOSED"),
            BizError::OrderNotExist => (StatusCode::NOT_FOUND, "ORDER_NOT_EXIST"),
            BizError::OutTradeNoUsed => (StatusCode::FORBIDDEN, "OUT_TRADE_NO_USED"),
            BizError::RefundNotExist => (StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS"),
            BizError::NotEnough => (StatusCode::FORBIDDEN, "NOT_ENOUGH"),
            BizError::TradeStateError | BizError::RefundFeeMismatch => {
                (StatusCode::BAD_REQUEST, "INVALID_REQUEST")
            }
            BizError::ParamError(_) => (StatusCode::BAD_REQUEST, "PARAM_ERROR"),
        };
        V3Error::new(status, code, error.description())
    }
}

/// An answer before it is signed: a status and a JSON body (none for 204).
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    /// Signed by the platform certificate whatever the mode (the certificate list).
    by_certificate: bool,
}

impl Answer {
    fn json(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            by_certificate: false,
        }
    }

    fn no_content() -> Self {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
            by_certificate: false,
        }
    }
}

impl From<V3Error> for Answer {
    fn from(error: V3Error) -> Self {
        Answer {
            status: error.status,
            body: Some(json!({"code": error.code, "message": error.message})),
            by_certificate: false,
        }
    }
}

/// What a V3 path stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Prepay(&'static str),
    QueryByOutTradeNo(String),
    QueryById(String),
    Close(String),
    Refund,
    RefundQuery(String),
    Certificates,
    TradeBill,
    FundFlowBill,
    BillDownload,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get = *method == Method::GET;
        let post = *method == Method::POST;
        Some(match segments.as_slice() {
            ["v3", "pay", "transactions", kind] if post => Route::Prepay(match *kind {
                "jsapi" => "JSAPI",
                "app" => "APP",
                "h5" => "MWEB",
                "native" => "NATIVE",
                _ => return None,
            }),
            ["v3", "pay", "transactions", "out-trade-no", no] if get => {
                Route::QueryByOutTradeNo((*no).to_owned())
            }
            ["v3", "pay", "transactions", "id", id] if get => Route::QueryById((*id).to_owned()),
            ["v3", "pay", "transactions", "out-trade-no", no, "close"] if post => {
                Route::Close((*no).to_owned())
            }
            ["v3", "refund", "domestic", "refunds"] if post => Route::Refund,
            ["v3", "refund", "domestic", "refunds", no] if get => {
                Route::RefundQuery((*no).to_owned())
            }
            ["v3", "certificates"] if get => Route::Certificates,
            ["v3", "bill", "tradebill"] if get => Route::TradeBill,
            ["v3", "bill", "fundflowbill"] if get => Route::FundFlowBill,
            ["v3", "billdownload", "file"] if get => Route::BillDownload,
            _ => return None,
        })
    }

    /// The V2 endpoint it shares fault rules with (`None`: the certificate download,
    /// which no fault strikes).
    fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Route::Prepay(_) => Some(Endpoint::UnifiedOrder),
            Route::QueryByOutTradeNo(_) | Route::QueryById(_) => Some(Endpoint::OrderQuery),
            Route::Close(_) => Some(Endpoint::CloseOrder),
            Route::Refund => Some(Endpoint::Refund),
            Route::RefundQuery(_) => Some(Endpoint::RefundQuery),
            Route::TradeBill | Route::FundFlowBill | Route::BillDownload => {
                Some(Endpoint::DownloadBill)
            }
            Route::Certificates => None,
        }
    }

    /// How the inspection log names the call.
    fn name(&self) -> &'static str {
        match self {
            Route::Prepay(_) => "v3_prepay",
            Route::QueryByOutTradeNo(_) | Route::QueryById(_) => "v3_query",
            Route::Close(_) => "v3_close",
            Route::Refund => "v3_refund",
            Route::RefundQuery(_) => "v3_refund_query",
            Route::Certificates => "v3_certificates",
            Route::TradeBill => "v3_tradebill",
            Route::FundFlowBill => "v3_fundflowbill",
            Route::BillDownload => "v3_billdownload",
        }
    }
}

/// `%XX` escapes decoded (a `|` in an out_trade_no arrives as `%7C`); anything malformed
/// stays as it came.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = bytes.get(index + 1..index + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// The value of `name` in a query string.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (t_ms, at) = shared.log.now();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(Authorization::parse);
    let mch_id = authorization
        .as_ref()
        .and_then(|parsed| parsed.as_ref().ok())
        .map(|parsed| parsed.mchid.clone());
    let route = Route::parse(&method, uri.path());
    let faults = match route.as_ref().and_then(Route::endpoint) {
        Some(endpoint) => shared.faults.for_request(mch_id.as_deref(), endpoint),
        None => RequestFaults::default(),
    };
    let mut record = RequestRecord {
        seq: 0,
        at,
        t_ms,
        path: uri.path().to_owned(),
        endpoint: route.as_ref().map_or("v3_unknown", Route::name).to_owned(),
        mch_id,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status: None,
        response_body: None,
        err_code: None,
        faults: faults.applied.clone(),
        elapsed_ms: 0.0,
    };
    let call = Call {
        shared: &shared,
        host: headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default(),
        tls: peer.tls,
        method: &method,
        path_and_query: &path_and_query,
        query: uri.query(),
        authorization,
        body: &body,
        t_ms,
    };
    let response = match respond(call, route, &faults).await {
        Some(Outgoing::Answer(answer)) => {
            let (response, body_text, code) = sign_answer(&shared, answer);
            record.status = Some(response.status().as_u16());
            record.response_body = Some(body_text);
            record.err_code = code;
            response
        }
        Some(Outgoing::Page(status)) => {
            record.status = Some(status.as_u16());
            (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                format!("<html><body><center><h1>{status}</h1></center><hr><center>nginx</center></body></html>"),
            )
                .into_response()
        }
        Some(Outgoing::File { bytes, gzip }) => {
            record.status = Some(200);
            record.response_body = Some(if gzip {
                format!("<{} bytes of GZIP>", bytes.len())
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            });
            let content_type = if gzip {
                "application/x-gzip"
            } else {
                "text/plain; charset=utf-8"
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response()
        }
        None => StatusCode::GATEWAY_TIMEOUT.into_response(),
    };
    record.elapsed_ms = shared.log.millis_since(t_ms);
    shared.log.record_request(record);
    response
}

/// What goes back: a V3 answer, or a failing front end's HTML page.
enum Outgoing {
    Answer(Answer),
    Page(StatusCode),
    /// A bill file: not signed (its SHA1 was announced, signed, with its URL).
    File {
        bytes: Vec<u8>,
        gzip: bool,
    },
}

/// One request as received.
struct Call<'a> {
    shared: &'a Arc<Shared>,
    /// The `Host` the merchant called, where bill download URLs point.
    host: &'a str,
    tls: bool,
    method: &'a Method,
    path_and_query: &'a str,
    query: Option<&'a str>,
    authorization: Option<Result<Authorization, wechatpay_v3::AuthorizationError>>,
    body: &'a [u8],
    t_ms: f64,
}

async fn respond(call: Call<'_>, route: Option<Route>, faults: &RequestFaults) -> Option<Outgoing> {
    let shared = call.shared;
    if let Some(status) = shared.transport_faults(faults).await? {
        return Some(Outgoing::Page(status));
    }
    let Some(route) = route else {
        return Some(Outgoing::Answer(
            V3Error::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_EXISTS",
                "no such API v3 resource",
            )
            .into(),
        ));
    };
    let merchant = match authenticate(&call) {
        Ok(merchant) => merchant,
        Err(error) => return Some(Outgoing::Answer(error.into())),
    };
    if faults.system_error {
        return Some(Outgoing::Answer(V3Error::system().into()));
    }
    let outcome = match &route {
        Route::Prepay(trade_type) => {
            prepay(&call, &merchant, trade_type, faults.notify_before_reply).await
        }
        Route::QueryByOutTradeNo(no) => query(&call, &merchant, OrderRef::OutTradeNo(no.clone())),
        Route::QueryById(id) => query(&call, &merchant, OrderRef::TransactionId(id.clone())),
        Route::Close(no) => close(&call, &merchant, no),
        Route::Refund => refund(&call, &merchant),
        Route::RefundQuery(no) => refund_query(&call, &merchant, no),
        Route::Certificates => certificates(&call, &merchant),
        Route::TradeBill => trade_bill(&call, &merchant),
        Route::FundFlowBill => fund_flow_bill(&call, &merchant),
        Route::BillDownload => match bill_download(&call, &merchant) {
            Ok(file) if !faults.system_error_after_commit => {
                return Some(Outgoing::File {
                    bytes: file.bytes,
                    gzip: file.gzip,
                });
            }
            // Found, then "failed": the SYSTEM_ERROR below answers instead of the file.
            Ok(_) => Ok(Answer::no_content()),
            Err(error) => Err(error),
        },
    };
    if faults.system_error_after_commit {
        return Some(Outgoing::Answer(V3Error::system().into()));
    }
    Some(Outgoing::Answer(match outcome {
        Ok(answer) => answer,
        Err(error) => error.into(),
    }))
}

/// Checks the `Authorization` header: the merchant, its certificate serial, the timestamp
/// window and the signature over the request as received.
fn authenticate(call: &Call<'_>) -> Result<Arc<MerchantEntry>, V3Error> {
    let authorization = match &call.authorization {
        None => return Err(V3Error::sign("缺少Authorization请求头")),
        Some(Err(error)) => {
            return Err(V3Error::sign(format!("Authorization格式错误：{error}")));
        }
        Some(Ok(authorization)) => authorization,
    };
    let merchant = call
        .shared
        .merchant(&authorization.mchid)
        .ok_or_else(|| V3Error::new(StatusCode::BAD_REQUEST, "MCH_NOT_EXISTS", "商户号不存在"))?;
    let v3 = merchant.v3();
    if !authorization.serial_no.eq_ignore_ascii_case(&v3.serial_no) {
        return Err(V3Error::sign(
            "商户证书序列号有误：serial_no不是该商户的API证书序列号",
        ));
    }
    let fresh = authorization.timestamp.parse::<i64>().is_ok_and(|seconds| {
        seconds
            .saturating_sub(Utc::now().timestamp())
            .unsigned_abs()
            <= TIMESTAMP_WINDOW.as_secs()
    });
    if !fresh {
        return Err(V3Error::sign("请求时间戳与当前时间相差超过5分钟"));
    }
    authorization
        .verify(
            &v3.public_key,
            call.method.as_str(),
            call.path_and_query,
            call.body,
        )
        .map_err(|_| V3Error::sign("签名错误，请检查签名串与签名"))?;
    Ok(merchant)
}

/// Signs an answer per the current mode: the response, the body as logged, its error code.
fn sign_answer(shared: &Shared, answer: Answer) -> (Response, String, Option<String>) {
    let body = answer
        .body
        .as_ref()
        .map(|value| value.to_string().into_bytes())
        .unwrap_or_default();
    let code = answer
        .body
        .as_ref()
        .filter(|_| !answer.status.is_success())
        .and_then(|value| value["code"].as_str())
        .map(str::to_owned);
    let signed = shared.platform().and_then(|platform| {
        let signer = if answer.by_certificate {
            &platform.certificate_signer
        } else {
            platform.signer(shared.v3_mode())
        };
        signer.sign(&body).map_err(|error| error.to_string())
    });
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut response = (answer.status, body).into_response();
    let headers = response.headers_mut();
    if answer.body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    match signed {
        Ok(signed) => {
            if let Err(error) = signed.insert_into(headers) {
                tracing::error!(%error, "a V3 answer's signature headers cannot be written");
            }
        }
        Err(error) => tracing::error!(%error, "a V3 answer cannot be signed; sent unsigned"),
    }
    (response, text, code)
}

/// The request body as a JSON object.
fn json_body(call: &Call<'_>) -> Result<Map<String, Value>, V3Error> {
    match serde_json::from_slice::<Value>(call.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(V3Error::param("请求体应为JSON对象")),
        Err(error) => Err(V3Error::param(format!("请求体不是合法的JSON：{error}"))),
    }
}

/// A non-empty string at a JSON pointer (`/payer/openid`), or PARAM_ERROR naming it.
fn required_str<'a>(body: &'a Value, pointer: &str) -> Result<&'a str, V3Error> {
    match body.pointer(pointer) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(_) => Err(V3Error::param(format!(
            "{}应为非空字符串",
            pointer_name(pointer)
        ))),
        None => Err(V3Error::param(format!("缺少参数{}", pointer_name(pointer)))),
    }
}

fn optional_str<'a>(body: &'a Value, pointer: &str) -> Result<Option<&'a str>, V3Error> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_str(body, pointer).map(Some),
    }
}

/// A positive integer amount in fen at a JSON pointer.
fn required_fen(body: &Value, pointer: &str) -> Result<Fen, V3Error> {
    let value = body
        .pointer(pointer)
        .ok_or_else(|| V3Error::param(format!("缺少参数{}", pointer_name(pointer))))?;
    value
        .as_i64()
        .map(Fen::new)
        .filter(|fen| fen.is_positive())
        .ok_or_else(|| V3Error::param(format!("{}应为正整数（单位为分）", pointer_name(pointer))))
}

/// `/amount/total` → `amount.total`, as WeChat names fields in its messages.
fn pointer_name(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn check_currency(body: &Value) -> Result<(), V3Error> {
    match optional_str(body, "/amount/currency")? {
        None | Some("CNY") => Ok(()),
        Some(_) => Err(V3Error::param("amount.currency仅支持CNY")),
    }
}

fn is_merchant_no(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// The request's fields as sorted `(path, value)` pairs: the same order again must repeat
/// them exactly, whatever their order in the JSON text.
fn fingerprint(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    walk(&format!("{prefix}/{key}"), inner, out);
                }
            }
            Value::Array(items) => {
                for (index, inner) in items.iter().enumerate() {
                    walk(&format!("{prefix}/{index}"), inner, out);
                }
            }
            Value::String(text) => out.push((prefix.to_owned(), text.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out.sort();
    out
}

fn new_order(
    call: &Call<'_>,
    merchant: &MerchantEntry,
    trade_type: &str,
) -> Result<NewOrder, V3Error> {
    let body = Value::Object(json_body(call)?);
    let mchid = required_str(&body, "/mchid")?;
    if mchid != merchant.config.mch_id {
        return Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "mchid与Authorization中的商户号不一致",
        ));
    }
    let appid = required_str(&body, "/appid")?;
    if !merchant.config.owns_appid(appid) {
        return Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        ));
    }
    let description = required_str(&body, "/description")?;
    if description.len() > 127 {
        return Err(V3Error::param("description长度有误：至多127个字节"));
    }
    let out_trade_no = required_str(&body, "/out_trade_no")?;
    if !is_merchant_no(out_trade_no, 32, b"_-|*") || out_trade_no.len() < 6 {
        return Err(V3Error::param(
            "out_trade_no格式错误：6至32个字符，只能是数字、大小写字母和_-|*",
        ));
    }
    let notify_url = required_str(&body, "/notify_url")?;
    if !notify_url.starts_with("https://") && !notify_url.starts_with("http://") {
        return Err(V3Error::param(
            "notify_url格式错误：应为http或https开头的URL",
        ));
    }
    let total = required_fen(&body, "/amount/total")?;
    check_currency(&body)?;
    let time_expire = optional_str(&body, "/time_expire")?
        .map(|text| {
            wechatpay_v3::time::parse_rfc3339(text)
                .map(|instant| time::beijing_time(instant.with_timezone(&beijing())))
                .map_err(|_| V3Error::param("time_expire格式错误：应为RFC 3339时间"))
        })
        .transpose()?;
    let attach = optional_str(&body, "/attach")?;
    let openid = match trade_type {
        "JSAPI" => Some(required_str(&body, "/payer/openid")?.to_owned()),
        "MWEB" => {
            let ip = required_str(&body, "/scene_info/payer_client_ip")?;
            if ip.parse::<IpAddr>().is_err() {
                return Err(V3Error::param("scene_info.payer_client_ip格式错误"));
            }
            required_str(&body, "/scene_info/h5_info/type")?;
            None
        }
        _ => None,
    };
    Ok(NewOrder {
        env: Env::Live,
        api_version: ApiVersion::V3,
        appid: appid.to_owned(),
        mch_id: merchant.config.mch_id.clone(),
        out_trade_no: out_trade_no.to_owned(),
        body: description.to_owned(),
        attach: attach.map(str::to_owned),
        device_info: None,
        total_fee: total,
        fee_type: "CNY".to_owned(),
        trade_type: trade_type.to_owned(),
        openid,
        notify_url: notify_url.to_owned(),
        sign_type: None,
        time_expire,
        fingerprint: fingerprint(&body),
    })
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

async fn prepay(
    call: &Call<'_>,
    merchant: &MerchantEntry,
    trade_type: &str,
    notify_before_reply: bool,
) -> Result<Answer, V3Error> {
    let shared = call.shared;
    let new = new_order(call, merchant, trade_type)?;
    let order = match shared.store.create(new)? {
        Created::New(order) => {
            if notify_before_reply
                && let Ok(paid) = shared.store.pay(&PayTarget::prepay_id(&order.prepay_id))
            {
                shared.log.record_payer("auto_pay", &paid);
                if let Some(job) = payment_notify(shared, &paid, false) {
                    shared.notifier.deliver_first_now(job).await;
                }
            }
            order
        }
        Created::Again(order) => order,
    };
    Ok(Answer::json(match trade_type {
        "NATIVE" => json!({"code_url": order.code_url}),
        "MWEB" => json!({"h5_url": order.mweb_url}),
        _ => json!({"prepay_id": order.prepay_id}),
    }))
}

/// The query's `mchid` must name the signing merchant.
fn check_query_mchid(call: &Call<'_>, merchant: &MerchantEntry) -> Result<(), V3Error> {
    match query_param(call.query, "mchid") {
        None => Err(V3Error::param("缺少参数mchid")),
        Some(mchid) if mchid == merchant.config.mch_id => Ok(()),
        Some(_) => Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "mchid与Authorization中的商户号不一致",
        )),
    }
}

fn query(
    call: &Call<'_>,
    merchant: &MerchantEntry,
    order_ref: OrderRef,
) -> Result<Answer, V3Error> {
    check_query_mchid(call, merchant)?;
    let order = call
        .shared
        .store
        .query(Env::Live, &merchant.config.mch_id, &order_ref, call.t_ms)
        .ok_or(BizError::OrderNotExist)?;
    Ok(Answer::json(transaction_json(&order)))
}

fn close(call: &Call<'_>, merchant: &MerchantEntry, out_trade_no: &str) -> Result<Answer, V3Error> {
    let body = Value::Object(json_body(call)?);
    if required_str(&body, "/mchid")? != merchant.config.mch_id {
        return Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "mchid与Authorization中的商户号不一致",
        ));
    }
    call.shared
        .store
        .close(Env::Live, &merchant.config.mch_id, out_trade_no)?;
    Ok(Answer::no_content())
}

fn refund(call: &Call<'_>, merchant: &MerchantEntry) -> Result<Answer, V3Error> {
    let shared = call.shared;
    let body = Value::Object(json_body(call)?);
    let order_ref = if let Some(id) = optional_str(&body, "/transaction_id")? {
        OrderRef::TransactionId(id.to_owned())
    } else if let Some(no) = optional_str(&body, "/out_trade_no")? {
        OrderRef::OutTradeNo(no.to_owned())
    } else {
        return Err(V3Error::param("缺少参数transaction_id或out_trade_no"));
    };
    let out_refund_no = required_str(&body, "/out_refund_no")?;
    if !is_merchant_no(out_refund_no, 64, b"_-|*@") {
        return Err(V3Error::param(
            "out_refund_no格式错误：至多64个字符，只能是数字、大小写字母和_-|*@",
        ));
    }
    let refund_fee = required_fen(&body, "/amount/refund")?;
    let total_fee = required_fen(&body, "/amount/total")?;
    check_currency(&body)?;
    let notify_url = optional_str(&body, "/notify_url")?.map(str::to_owned);
    let outcome = shared.store.refund(
        Env::Live,
        &merchant.config.mch_id,
        &order_ref,
        RefundRequest {
            out_refund_no: out_refund_no.to_owned(),
            total_fee,
            refund_fee,
            notify_url,
            refund_desc: optional_str(&body, "/reason")?.map(str::to_owned),
            processing: shared.refund_processing,
        },
    )?;
    if outcome.is_new {
        shared.follow_refund(Env::Live, &outcome.order, &outcome.refund);
    }
    Ok(Answer::json(refund_json(
        &outcome.order,
        &outcome.refund,
        time::beijing_now(),
    )))
}

fn refund_query(
    call: &Call<'_>,
    merchant: &MerchantEntry,
    out_refund_no: &str,
) -> Result<Answer, V3Error> {
    let (order, refunds) = call.shared.store.refunds(
        Env::Live,
        &merchant.config.mch_id,
        &RefundRef::OutRefundNo(out_refund_no.to_owned()),
    )?;
    let refund = refunds
        .iter()
        .find(|refund| refund.out_refund_no == out_refund_no)
        .ok_or(BizError::RefundNotExist)?;
    Ok(Answer::json(refund_json(
        &order,
        refund,
        time::beijing_now(),
    )))
}

/// The platform certificates, encrypted with the merchant's APIv3 key; served while the
/// simulator signs with a certificate (certificate or switchover mode).
fn certificates(call: &Call<'_>, merchant: &MerchantEntry) -> Result<Answer, V3Error> {
    if call.shared.v3_mode() == V3Mode::PublicKey {
        return Err(V3Error::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "该商户使用微信支付公钥验签，没有平台证书",
        ));
    }
    let platform = call.shared.platform().map_err(|error| {
        tracing::error!(%error, "the V3 platform keys cannot be made");
        V3Error::system()
    })?;
    let list = CertificateList::encrypt(
        std::slice::from_ref(&platform.certificate),
        &merchant.v3().api_v3_key,
    );
    Ok(Answer {
        by_certificate: true,
        ..Answer::json(list.to_json())
    })
}

/// Bill files announced by `/v3/bill/tradebill` and fetched by their token; the newest
/// [`BillFiles::KEPT`] are kept.
#[derive(Default)]
pub(crate) struct BillFiles {
    files: parking_lot::Mutex<std::collections::VecDeque<BillFile>>,
}

#[derive(Clone)]
struct BillFile {
    token: String,
    mch_id: String,
    bytes: Vec<u8>,
    gzip: bool,
}

impl BillFiles {
    const KEPT: usize = 64;

    fn keep(&self, file: BillFile) {
        let mut files = self.files.lock();
        if files.len() >= Self::KEPT {
            files.pop_front();
        }
        files.push_back(file);
    }

    fn get(&self, token: &str, mch_id: &str) -> Option<BillFile> {
        self.files
            .lock()
            .iter()
            .find(|file| file.token == token && file.mch_id == mch_id)
            .cloned()
    }
}

/// `GET /v3/bill/tradebill?bill_date=&bill_type=&tar_type=`: renders the day's trade bill
/// (the V2 bill's rows: V2 and V3 orders alike, bill alterations included), keeps it, and
/// answers its download URL and SHA1.
fn trade_bill(call: &Call<'_>, merchant: &MerchantEntry) -> Result<Answer, V3Error> {
    let date = bill_date(call)?;
    let bill_type = match query_param(call.query, "bill_type").as_deref() {
        None | Some("ALL") => wechatpay_v2::BillType::All,
        Some("SUCCESS") => wechatpay_v2::BillType::Success,
        Some("REFUND") => wechatpay_v2::BillType::Refund,
        Some(_) => return Err(V3Error::param("bill_type应为ALL、SUCCESS或REFUND")),
    };
    let gzip = tar_type(call)?;
    let orders = call
        .shared
        .store
        .orders_touched_on(Env::Live, &merchant.config.mch_id, date);
    let alterations = call.shared.bill_alterations.lock().clone();
    let text = crate::bill::render(&orders, date, bill_type, &alterations).map_err(|error| {
        tracing::error!(%error, "a V3 trade bill cannot be written");
        V3Error::system()
    })?;
    announce_bill(call, merchant, text, gzip)
}

/// `GET /v3/bill/fundflowbill?bill_date=&account_type=&tar_type=`: the basic account's
/// money movements of the day (see [`crate::bill::fund_flow`]); the operation and fees
/// accounts never move in the simulator.
fn fund_flow_bill(call: &Call<'_>, merchant: &MerchantEntry) -> Result<Answer, V3Error> {
    let date = bill_date(call)?;
    let basic = match query_param(call.query, "account_type").as_deref() {
        None | Some("BASIC") => true,
        Some("OPERATION" | "FEES") => false,
        Some(_) => {
            return Err(V3Error::param("account_type应为BASIC、OPERATION或FEES"));
        }
    };
    let gzip = tar_type(call)?;
    let text = if basic {
        let orders = call
            .shared
            .store
            .orders_touched_on(Env::Live, &merchant.config.mch_id, date);
        crate::bill::fund_flow(&orders, date)
    } else {
        None
    };
    announce_bill(call, merchant, text, gzip)
}

fn bill_date(call: &Call<'_>) -> Result<chrono::NaiveDate, V3Error> {
    let bill_date =
        query_param(call.query, "bill_date").ok_or_else(|| V3Error::param("缺少参数bill_date"))?;
    chrono::NaiveDate::parse_from_str(&bill_date, "%Y-%m-%d")
        .map_err(|_| V3Error::param("bill_date格式错误：应为yyyy-MM-dd"))
}

/// Whether `tar_type=GZIP` was asked for.
fn tar_type(call: &Call<'_>) -> Result<bool, V3Error> {
    match query_param(call.query, "tar_type").as_deref() {
        None => Ok(false),
        Some("GZIP") => Ok(true),
        Some(_) => Err(V3Error::param("tar_type仅支持GZIP")),
    }
}

/// Keeps a bill behind a fresh token and answers its `download_url` (on the host the
/// merchant called) and SHA1 (of the file as downloaded, GZIP or not).
fn announce_bill(
    call: &Call<'_>,
    merchant: &MerchantEntry,
    text: Option<String>,
    gzip: bool,
) -> Result<Answer, V3Error> {
    let text = text.ok_or_else(|| {
        V3Error::new(
            StatusCode::BAD_REQUEST,
            "NO_STATEMENT_EXIST",
            "账单文件不存在",
        )
    })?;
    let bytes = if gzip {
        crate::gateway::gzip(text.as_bytes())
    } else {
        text.into_bytes()
    };
    let token = crate::ids::alphanumeric(32);
    let scheme = if call.tls { "https" } else { "http" };
    let download_url = format!(
        "{scheme}://{}/v3/billdownload/file?token={token}",
        call.host
    );
    let answer = json!({
        "hash_type": "SHA1",
        "hash_value": hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&bytes)),
        "download_url": download_url,
    });
    call.shared.v3_bills.keep(BillFile {
        token,
        mch_id: merchant.config.mch_id.clone(),
        bytes,
        gzip,
    });
    Ok(Answer::json(answer))
}

/// `GET /v3/billdownload/file?token=`: the file announced to this merchant.
fn bill_download(call: &Call<'_>, merchant: &MerchantEntry) -> Result<BillFile, V3Error> {
    let token = query_param(call.query, "token").ok_or_else(|| V3Error::param("缺少参数token"))?;
    call.shared
        .v3_bills
        .get(&token, &merchant.config.mch_id)
        .ok_or_else(|| {
            V3Error::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_EXISTS",
                "账单文件不存在或下载链接已失效",
            )
        })
}

fn rfc3339(at: DateTime<FixedOffset>) -> String {
    rfc3339_beijing(at)
}

/// An order as V3 reports it (query answers, payment notifies).
fn transaction_json(order: &Order) -> Value {
    let mut transaction = json!({
        "appid": order.appid,
        "mchid": order.mch_id,
        "out_trade_no": order.out_trade_no,
        "trade_state": order.state.as_str(),
        "trade_state_desc": order.state.description(),
        "amount": {"total": order.total_fee.get(), "currency": "CNY", "payer_currency": "CNY"},
    });
    if let Some(attach) = &order.attach {
        transaction["attach"] = json!(attach);
    }
    if let (Some(transaction_id), Some(paid_at)) = (&order.transaction_id, order.paid_at) {
        transaction["transaction_id"] = json!(transaction_id);
        transaction["trade_type"] = json!(order.trade_type);
        transaction["bank_type"] = json!("OTHERS");
        transaction["success_time"] = json!(rfc3339(paid_at));
        transaction["amount"]["payer_total"] = json!(order.total_fee.get());
        if let Some(openid) = &order.openid {
            transaction["payer"] = json!({"openid": openid});
        }
    }
    transaction
}

/// V3's name for a V2 refund status.
fn v3_refund_status(status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Success => "SUCCESS",
        RefundStatus::Processing => "PROCESSING",
        RefundStatus::Change => "ABNORMAL",
        RefundStatus::RefundClose => "CLOSED",
    }
}

/// A refund as V3 reports it at `now` (refund and refund-query answers).
fn refund_json(order: &Order, refund: &Refund, now: DateTime<FixedOffset>) -> Value {
    let mut answer = json!({
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.transaction_id.as_deref().unwrap_or_default(),
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(refund.created_at),
        "status": v3_refund_status(refund.status_at(now)),
        "funds_account": "UNAVAILABLE",
        "amount": {
            "total": order.total_fee.get(),
            "refund": refund.refund_fee.get(),
            "payer_total": order.total_fee.get(),
            "payer_refund": refund.refund_fee.get(),
            "settlement_total": order.total_fee.get(),
            "settlement_refund": refund.refund_fee.get(),
            "discount_refund": 0,
            "currency": "CNY",
        },
    });
    if let Some(success_time) = refund.success_time(now) {
        answer["success_time"] = json!(rfc3339(success_time));
    }
    answer
}

/// Seals a V3 notify of `order`'s merchant: `None` (logged) when the platform keys cannot
/// be made.
#[allow(clippy::too_many_arguments)]
fn seal(
    shared: &Shared,
    order: &Order,
    kind: NotifyKind,
    out_refund_no: Option<String>,
    url: &str,
    event_type: EventType,
    summary: &str,
    original_type: &str,
    plaintext: &Value,
    probe: bool,
) -> Option<NotifyJob> {
    let merchant = shared.merchant(&order.mch_id)?;
    let platform = match shared.platform() {
        Ok(platform) => platform,
        Err(error) => {
            tracing::error!(%error, "a V3 notify cannot be made: the platform keys are unusable");
            return None;
        }
    };
    let envelope = NotifyEnvelope {
        id: format!("EV-{}", crate::ids::digits(19)),
        create_time: rfc3339_beijing(Utc::now()),
        event_type: event_type.as_str().to_owned(),
        resource_type: "encrypt-resource".to_owned(),
        resource: EncryptedResource::encrypt(
            &merchant.v3().api_v3_key,
            Some(original_type),
            original_type,
            plaintext.to_string().as_bytes(),
        ),
        summary: summary.to_owned(),
    };
    Some(NotifyJob {
        kind,
        mch_id: order.mch_id.clone(),
        out_trade_no: order.out_trade_no.clone(),
        out_refund_no,
        url: url.to_owned(),
        body: serde_json::to_string(&envelope).expect("an envelope always serialises"),
        wire: NotifyWire::V3 {
            platform,
            mode: shared.v3_mode(),
            probe,
        },
    })
}

/// `TRANSACTION.SUCCESS` for a paid V3 order (`probe`: a `WECHATPAY/SIGNTEST/` probe of
/// it instead).
pub(crate) fn payment_notify(shared: &Shared, order: &Order, probe: bool) -> Option<NotifyJob> {
    seal(
        shared,
        order,
        NotifyKind::Pay,
        None,
        &order.notify_url,
        EventType::TransactionSuccess,
        "支付成功",
        "transaction",
        &transaction_json(order),
        probe,
    )
}

/// `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED` for a settled refund.
pub(crate) fn refund_notify(
    shared: &Shared,
    order: &Order,
    refund: &Refund,
    url: &str,
) -> Option<NotifyJob> {
    let (event_type, summary) = match refund.ends_as {
        RefundStatus::Success | RefundStatus::Processing => (EventType::RefundSuccess, "退款成功"),
        RefundStatus::Change => (EventType::RefundAbnormal, "退款异常"),
        RefundStatus::RefundClose => (EventType::RefundClosed, "退款关闭"),
    };
    let mut plaintext = json!({
        "mchid": order.mch_id,
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.transaction_id.as_deref().unwrap_or_default(),
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": v3_refund_status(refund.ends_as),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": order.total_fee.get(),
            "refund": refund.refund_fee.get(),
            "payer_total": order.total_fee.get(),
            "payer_refund": refund.refund_fee.get(),
        },
    });
    if refund.ends_as == RefundStatus::Success
        && let Some(settled_at) = refund.settles_at
    {
        plaintext["success_time"] = json!(rfc3339(settled_at));
    }
    seal(
        shared,
        order,
        NotifyKind::Refund,
        Some(refund.out_refund_no.clone()),
        url,
        event_type,
        summary,
        "refund",
        &plaintext,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_calls() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            Route::parse(&post, "/v3/pay/transactions/h5"),
            Some(Route::Prepay("MWEB"))
        );
        assert_eq!(Route::parse(&post, "/v3/pay/transactions/micropay"), None);
        assert_eq!(
            Route::parse(&get, "/v3/pay/transactions/out-trade-no/A%7CB"),
            Some(Route::QueryByOutTradeNo("A|B".into()))
        );
        assert_eq!(
            Route::parse(&post, "/v3/pay/transactions/out-trade-no/A1/close"),
            Some(Route::Close("A1".into()))
        );
        assert_eq!(
            Route::parse(&get, "/v3/refund/domestic/refunds/R%401"),
            Some(Route::RefundQuery("R@1".into()))
        );
        assert_eq!(Route::parse(&get, "/v3/refund/domestic/refunds"), None);
        assert_eq!(
            Route::parse(&get, "/v3/certificates"),
            Some(Route::Certificates)
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%7Cb%40c"), "a|b@c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn a_fingerprint_ignores_field_order() {
        let one = json!({"a": 1, "b": {"c": "x", "d": [1, 2]}});
        let two: Value = serde_json::from_str(r#"{"b": {"d": [1, 2], "c": "x"}, "a": 1}"#).unwrap();
        assert_eq!(fingerprint(&one), fingerprint(&two));
        assert_ne!(
            fingerprint(&one),
            fingerprint(&json!({"a": 2, "b": {"c": "x", "d": [1, 2]}}))
        );
    }

    #[test]
    fn order_book_refusals_have_v3_statuses() {
        let answer = |error: BizError| {
            let error = V3Error::from(error);
            (error.status.as_u16(), error.code)
        };
        assert_eq!(answer(BizError::OrderNotExist), (404, "ORDER_NOT_EXIST"));
        assert_eq!(answer(BizError::OrderClosed), (400, "ORDER_CLOSED"));
        assert_eq!(answer(BizError::OrderPaid), (400, "ORDERPAID"));
        assert_eq!(
            answer(BizError::RefundNotExist),
            (404, "RESOURCE_NOT_EXISTS")
        );
        assert_eq!(answer(BizError::OutTradeNoUsed), (403, "OUT_TRADE_NO_USED"));
    }
}
