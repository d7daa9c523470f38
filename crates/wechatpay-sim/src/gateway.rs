//! The WeChat Pay V2 endpoints: parse, check, act on the store, answer as WeChat does.
//!
//! Two layers of failure, as WeChat has them: protocol errors (malformed XML, unknown
//! merchant, missing or malformed parameters, bad signature) answer `return_code=FAIL`,
//! unsigned; business errors answer `return_code=SUCCESS`, `result_code=FAIL` with
//! `err_code`, signed. Protocol errors also carry `err_code`/`err_code_des` so a client
//! can tell `SIGNERROR` from `LACK_PARAMS` without parsing the Chinese `return_msg`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use wechatpay_v2::time;
use wechatpay_v2::{ApiKey, BillType, Fen, Params, SignType, XmlError};

use crate::bill;
use crate::fault::{Endpoint, RequestFaults};
use crate::inspect::RequestRecord;
use crate::notify;
use crate::store::{
    ApiVersion, BizError, Created, Env, NewOrder, Order, OrderRef, PayTarget, RefundRef,
    RefundRequest,
};
use crate::tls::Peer;
use crate::{MerchantEntry, Shared};

/// A protocol-level refusal (`return_code=FAIL`).
#[derive(Debug)]
struct ProtocolError {
    code: &'static str,
    message: String,
}

impl ProtocolError {
    fn lack(field: &str) -> Self {
        ProtocolError {
            code: "LACK_PARAMS",
            message: format!("缺少参数{field}"),
        }
    }

    fn param(message: impl Into<String>) -> Self {
        ProtocolError {
            code: "PARAM_ERROR",
            message: message.into(),
        }
    }
}

/// What a call was refused for after it passed the protocol checks.
enum Refusal {
    Protocol(ProtocolError),
    Business(BizError),
}

impl From<ProtocolError> for Refusal {
    fn from(error: ProtocolError) -> Self {
        Refusal::Protocol(error)
    }
}

impl From<BizError> for Refusal {
    fn from(error: BizError) -> Self {
        Refusal::Business(error)
    }
}

/// A verified call: its parameters and who signs the answer.
struct Call {
    env: Env,
    params: Params,
    merchant: Arc<MerchantEntry>,
    key: ApiKey,
    sign_type: SignType,
}

impl Call {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn require(&self, name: &str) -> Result<&str, ProtocolError> {
        self.get(name).ok_or_else(|| ProtocolError::lack(name))
    }

    fn amount(&self, name: &str) -> Result<Fen, ProtocolError> {
        let text = self.require(name)?;
        Fen::from_fen_str(text)
            .ok()
            .filter(|fen| fen.is_positive())
            .ok_or_else(|| {
                ProtocolError::param(format!(
                    "{name}参数格式错误：`{text}`不是正整数（单位为分）"
                ))
            })
    }

    fn order_ref(&self) -> Result<OrderRef, ProtocolError> {
        if let Some(transaction_id) = self.get("transaction_id") {
            Ok(OrderRef::TransactionId(transaction_id.to_string()))
        } else if let Some(out_trade_no) = self.get("out_trade_no") {
            Ok(OrderRef::OutTradeNo(out_trade_no.to_string()))
        } else {
            Err(ProtocolError {
                code: "LACK_PARAMS",
                message: "缺少参数transaction_id或out_trade_no".into(),
            })
        }
    }

    /// A signed answer: the common head, `fields`, and `result_code`/`err_code`.
    fn answer(&self, result: Result<Params, &BizError>) -> String {
        let mut params = Params::new();
        let mut put = |name: &str, value: &str| {
            params.insert(name.to_string(), value.to_string());
        };
        put("return_code", "SUCCESS");
        put("return_msg", "OK");
        put(
            "appid",
            self.get("appid").unwrap_or(&self.merchant.config.appid),
        );
        put("mch_id", &self.merchant.config.mch_id);
        if let Some(device_info) = self.get("device_info") {
            put("device_info", device_info);
        }
        put("nonce_str", &wechatpay_v2::nonce_str());
        match result {
            Ok(fields) => {
                put("result_code", "SUCCESS");
                params.extend(fields);
            }
            Err(error) => {
                put("result_code", "FAIL");
                put("err_code", error.code());
                put("err_code_des", error.description());
            }
        }
        wechatpay_v2::sign_params(&mut params, self.sign_type, &self.key);
        wechatpay_v2::xml::encode(&params)
    }
}

/// The answer to one call, and what it sets in motion once written.
pub(crate) struct Reply {
    status: StatusCode,
    body: String,
    content_type: &'static str,
    err_code: Option<String>,
    /// Whether the body goes out GZIP-compressed (a bill asked for with `tar_type=GZIP`);
    /// the request log keeps the text.
    gzip: bool,
}

impl Reply {
    fn xml(body: String, err_code: Option<&str>) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            content_type: "text/plain; charset=utf-8",
            err_code: err_code.map(str::to_string),
            gzip: false,
        }
    }

    fn protocol(error: &ProtocolError) -> Self {
        let mut params = Params::new();
        params.insert("return_code".into(), "FAIL".into());
        params.insert("return_msg".into(), error.message.clone());
        params.insert("err_code".into(), error.code.into());
        params.insert("err_code_des".into(), error.message.clone());
        Reply::xml(wechatpay_v2::xml::encode(&params), Some(error.code))
    }

    fn into_response(self) -> Response {
        let body = if self.gzip {
            gzip(self.body.as_bytes())
        } else {
            self.body.into_bytes()
        };
        (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            body,
        )
            .into_response()
    }
}

/// `bytes` GZIP-compressed, as WeChat sends a bill asked for with `tar_type=GZIP`.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .expect("compressing into memory cannot fail")
}

/// The HTML a failing front end answers instead of XML.
fn http_error_page(status: StatusCode) -> String {
    nginx_page(&format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    ))
}

/// nginx's error page with `line` as its title and heading.
fn nginx_page(line: &str) -> String {
    format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// Entry point of every API route.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    env: Env,
    endpoint: Endpoint,
    path: String,
    peer: Peer,
    body: Bytes,
) -> Response {
    let (t_ms, at) = shared.log.now();
    let decoded = wechatpay_v2::xml::decode(&body);
    let mch_id = decoded
        .as_ref()
        .ok()
        .and_then(|params| params.get("mch_id").cloned());
    let faults = shared.faults.for_request(mch_id.as_deref(), endpoint);
    let mut record = RequestRecord {
        seq: 0,
        at,
        t_ms,
        path,
        endpoint: endpoint.name().to_string(),
        mch_id,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status: None,
        response_body: None,
        err_code: None,
        faults: faults.applied.clone(),
        elapsed_ms: 0.0,
    };

    let reply = respond(&shared, env, endpoint, &peer, decoded, &faults, t_ms).await;
    let response = match reply {
        Some(reply) => {
            record.status = Some(reply.status.as_u16());
            record.response_body = Some(reply.body.clone());
            record.err_code = reply.err_code.clone();
            reply.into_response()
        }
        // The hang ran out (or the simulator is stopping): give up on the client.
        None => StatusCode::GATEWAY_TIMEOUT.into_response(),
    };
    record.elapsed_ms = shared.log.millis_since(t_ms);
    shared.log.record_request(record);
    response
}

async fn respond(
    shared: &Arc<Shared>,
    env: Env,
    endpoint: Endpoint,
    peer: &Peer,
    decoded: Result<Params, XmlError>,
    faults: &RequestFaults,
    arrived_ms: f64,
) -> Option<Reply> {
    if let Some(status) = shared.transport_faults(faults).await? {
        return Some(Reply {
            status,
            body: http_error_page(status),
            content_type: "text/html",
            err_code: None,
            gzip: false,
        });
    }
    // Over TLS, a live refund needs the merchant's certificate, as at WeChat: its front end
    // refuses a call without one before reading it.
    let needs_certificate = peer.tls && env == Env::Live && endpoint == Endpoint::Refund;
    if needs_certificate && peer.merchant.is_none() {
        return Some(Reply {
            status: StatusCode::BAD_REQUEST,
            body: nginx_page("400 No required SSL certificate was sent"),
            content_type: "text/html",
            err_code: None,
            gzip: false,
        });
    }
    let call = match verify(shared, env, endpoint, decoded) {
        Ok(Verified::Call(call)) => call,
        Ok(Verified::SandboxKey(reply)) => return Some(reply),
        Err(error) => return Some(Reply::protocol(&error)),
    };
    if needs_certificate && peer.merchant.as_deref() != Some(call.merchant.config.mch_id.as_str()) {
        return Some(Reply::protocol(&ProtocolError {
            code: "CA_ERROR",
            message: "商户号与API证书不匹配".into(),
        }));
    }
    if faults.system_error {
        return Some(system_error(&call));
    }
    let outcome = match endpoint {
        Endpoint::UnifiedOrder => unified_order(shared, &call, faults.notify_before_reply).await,
        Endpoint::OrderQuery => order_query(shared, &call, arrived_ms),
        Endpoint::CloseOrder => close_order(shared, &call),
        Endpoint::Refund => refund(shared, &call),
        Endpoint::RefundQuery => refund_query(shared, &call),
        Endpoint::DownloadBill => return Some(download_bill(shared, &call)),
        Endpoint::GetSignKey | Endpoint::PayNotify | Endpoint::RefundNotify => {
            Err(ProtocolError::param("unsupported endpoint").into())
        }
    };
    if faults.system_error_after_commit {
        return Some(system_error(&call));
    }
    Some(match outcome {
        Ok(fields) => Reply::xml(call.answer(Ok(fields)), None),
        Err(Refusal::Business(error)) => Reply::xml(call.answer(Err(&error)), Some(error.code())),
        Err(Refusal::Protocol(error)) => Reply::protocol(&error),
    })
}

fn system_error(call: &Call) -> Reply {
    let mut params = Params::new();
    params.insert("return_code".into(), "SUCCESS".into());
    params.insert("return_msg".into(), "OK".into());
    params.insert("appid".into(), call.merchant.config.appid.clone());
    params.insert("mch_id".into(), call.merchant.config.mch_id.clone());
    params.insert("nonce_str".into(), wechatpay_v2::nonce_str());
    params.insert("result_code".into(), "FAIL".into());
    params.insert("err_code".into(), "SYSTEMERROR".into());
    params.insert("err_code_des".into(), "系统繁忙，请稍后再试".into());
    wechatpay_v2::sign_params(&mut params, call.sign_type, &call.key);
    Reply::xml(wechatpay_v2::xml::encode(&params), Some("SYSTEMERROR"))
}

enum Verified {
    Call(Call),
    /// `getsignkey` needs nothing more than the merchant's signature.
    SandboxKey(Reply),
}

/// Protocol checks, in WeChat's order: XML, merchant, signature, app id.
fn verify(
    shared: &Shared,
    env: Env,
    endpoint: Endpoint,
    decoded: Result<Params, XmlError>,
) -> Result<Verified, ProtocolError> {
    let params = decoded.map_err(|error| match error {
        XmlError::NotUtf8 { .. } | XmlError::UnsupportedEncoding { .. } => ProtocolError {
            code: "NOT_UTF8",
            message: "编码格式错误，请使用UTF-8编码".into(),
        },
        other => ProtocolError {
            code: "XML_FORMAT_ERROR",
            message: format!("XML格式错误：{other}"),
        },
    })?;
    let mch_id = params
        .get("mch_id")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ProtocolError::lack("mch_id"))?;
    let merchant = shared.merchant(mch_id).ok_or_else(|| ProtocolError {
        code: "MCHID_NOT_EXIST",
        message: "商户号mch_id不存在".into(),
    })?;
    for field in ["nonce_str", "sign"] {
        if params.get(field).is_none_or(String::is_empty) {
            return Err(ProtocolError::lack(field));
        }
    }
    let declared: SignType = match params.get("sign_type").filter(|value| !value.is_empty()) {
        None => SignType::Md5,
        Some(name) => name
            .parse()
            .map_err(|_| ProtocolError::param("sign_type参数错误，仅支持MD5和HMAC-SHA256"))?,
    };
    // getsignkey is signed with the real key, though a sandbox call.
    let key = if env == Env::Sandbox && endpoint != Endpoint::GetSignKey {
        merchant.sandbox_key.clone()
    } else {
        merchant.key.clone()
    };
    let signature_ok = wechatpay_v2::verify(&params, &key)
        // Without sign_type WeChat checks MD5 only: a 64-character HMAC is no excuse.
        .is_ok_and(|used| used == declared);
    if !signature_ok {
        return Err(ProtocolError {
            code: "SIGNERROR",
            message: "签名错误".into(),
        });
    }
    if endpoint == Endpoint::GetSignKey {
        let mut answer = Params::new();
        answer.insert("return_code".into(), "SUCCESS".into());
        answer.insert("return_msg".into(), "ok".into());
        answer.insert("mch_id".into(), merchant.config.mch_id.clone());
        answer.insert(
            "sandbox_signkey".into(),
            merchant.sandbox_key.expose_secret().to_string(),
        );
        return Ok(Verified::SandboxKey(Reply::xml(
            wechatpay_v2::xml::encode(&answer),
            None,
        )));
    }
    let appid = params
        .get("appid")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ProtocolError::lack("appid"))?;
    if !merchant.config.owns_appid(appid) {
        return Err(ProtocolError {
            code: "APPID_MCHID_NOT_MATCH",
            message: "appid和mch_id不匹配".into(),
        });
    }
    Ok(Verified::Call(Call {
        env,
        params,
        merchant,
        key,
        sign_type: declared,
    }))
}

fn is_out_trade_no(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
}

/// The unifiedorder checks WeChat makes before looking at its orders.
fn new_order(call: &Call) -> Result<NewOrder, ProtocolError> {
    for field in [
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ] {
        call.require(field)?;
    }
    let out_trade_no = call.require("out_trade_no")?;
    if !is_out_trade_no(out_trade_no) {
        return Err(ProtocolError::param(
            "out_trade_no参数格式错误：至多32个字符，只能是数字、大小写字母和_-|*",
        ));
    }
    let body = call.require("body")?;
    if body.chars().count() > 128 {
        return Err(ProtocolError::param("body参数长度有误：至多128个字符"));
    }
    let total_fee = call.amount("total_fee")?;
    let notify_url = call.require("notify_url")?;
    if !(notify_url.starts_with("http://") || notify_url.starts_with("https://"))
        || notify_url.contains('?')
    {
        return Err(ProtocolError::param(
            "notify_url参数格式错误：必须是http或https开头且不能携带参数的URL",
        ));
    }
    let spbill_create_ip = call.require("spbill_create_ip")?;
    if spbill_create_ip.parse::<IpAddr>().is_err() {
        return Err(ProtocolError::param("spbill_create_ip参数格式错误"));
    }
    let fee_type = call.get("fee_type").unwrap_or("CNY");
    if fee_type != "CNY" {
        return Err(ProtocolError::param("fee_type参数错误：境内商户仅支持CNY"));
    }
    for field in ["time_start", "time_expire"] {
        if let Some(text) = call.get(field)
            && time::parse_beijing_time(text).is_err()
        {
            return Err(ProtocolError::param(format!(
                "{field}参数格式错误：应为yyyyMMddHHmmss"
            )));
        }
    }
    let trade_type = call.require("trade_type")?;
    match trade_type {
        "JSAPI" => {
            if call.get("openid").is_none() {
                return Err(ProtocolError {
                    code: "LACK_PARAMS",
                    message: "trade_type=JSAPI时，openid为必填参数".into(),
                });
            }
        }
        "NATIVE" => {
            if call.get("product_id").is_none() {
                return Err(ProtocolError {
                    code: "LACK_PARAMS",
                    message: "trade_type=NATIVE时，product_id为必填参数".into(),
                });
            }
        }
        "MWEB" => {
            let scene_info = call.get("scene_info").ok_or_else(|| ProtocolError {
                code: "LACK_PARAMS",
                message: "trade_type=MWEB时，scene_info为必填参数".into(),
            })?;
            if !serde_json::from_str::<serde_json::Value>(scene_info)
                .is_ok_and(|value| value.is_object())
            {
                return Err(ProtocolError::param("scene_info参数格式错误：应为JSON对象"));
            }
        }
        "APP" => {}
        other => {
            return Err(ProtocolError::param(format!(
                "trade_type参数错误：`{other}`不是JSAPI、NATIVE、APP或MWEB"
            )));
        }
    }
    let fingerprint = call
        .params
        .iter()
        .filter(|(name, value)| {
            !value.is_empty() && !matches!(name.as_str(), "nonce_str" | "sign" | "sign_type")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    Ok(NewOrder {
        env: call.env,
        api_version: ApiVersion::V2,
        appid: call.require("appid")?.to_string(),
        mch_id: call.merchant.config.mch_id.clone(),
        out_trade_no: out_trade_no.to_string(),
        body: body.to_string(),
        attach: call.get("attach").map(str::to_string),
        device_info: call.get("device_info").map(str::to_string),
        total_fee,
        fee_type: fee_type.to_string(),
        trade_type: trade_type.to_string(),
        openid: call.get("openid").map(str::to_string),
        notify_url: notify_url.to_string(),
        sign_type: call.get("sign_type").map(str::to_string),
        time_expire: call.get("time_expire").map(str::to_string),
        fingerprint,
    })
}

async fn unified_order(
    shared: &Arc<Shared>,
    call: &Call,
    notify_before_reply: bool,
) -> Result<Params, Refusal> {
    let new = new_order(call)?;
    let order = match shared.store.create(new)? {
        Created::New(order) => {
            if notify_before_reply {
                // The payer is faster than the network: the order is paid and the notify
                // answered before the merchant learns its prepay_id.
                if let Ok(paid) = shared.store.pay(&PayTarget::prepay_id(&order.prepay_id)) {
                    shared.log.record_payer("auto_pay", &paid);
                    let job = notify::payment_notify(&paid, &call.key);
                    shared.notifier.deliver_first_now(job).await;
                }
            }
            order
        }
        Created::Again(order) => order,
    };
    let mut fields = Params::new();
    fields.insert("trade_type".into(), order.trade_type.clone());
    fields.insert("prepay_id".into(), order.prepay_id.clone());
    if let Some(code_url) = &order.code_url {
        fields.insert("code_url".into(), code_url.clone());
    }
    if let Some(mweb_url) = &order.mweb_url {
        fields.insert("mweb_url".into(), mweb_url.clone());
    }
    Ok(fields)
}

fn order_fields(order: &Order) -> Params {
    let mut fields = Params::new();
    let mut put = |name: &str, value: &str| {
        fields.insert(name.to_string(), value.to_string());
    };
    put("out_trade_no", &order.out_trade_no);
    if let Some(attach) = &order.attach {
        put("attach", attach);
    }
    put("trade_type", &order.trade_type);
    put("total_fee", &order.total_fee.to_fen_string());
    put("fee_type", &order.fee_type);
    if let (Some(transaction_id), Some(time_end)) = (&order.transaction_id, &order.time_end) {
        put("openid", order.openid.as_deref().unwrap_or_default());
        put("is_subscribe", "N");
        put("bank_type", "OTHERS");
        put("cash_fee", &order.total_fee.to_fen_string());
        put("cash_fee_type", "CNY");
        put("transaction_id", transaction_id);
        put("time_end", time_end);
    }
    put("trade_state", order.state.as_str());
    put("trade_state_desc", order.state.description());
    fields
}

/// `arrived_ms`: when the call arrived, which the order's query count records.
fn order_query(shared: &Shared, call: &Call, arrived_ms: f64) -> Result<Params, Refusal> {
    let order_ref = call.order_ref()?;
    let order = shared
        .store
        .query(
            call.env,
            &call.merchant.config.mch_id,
            &order_ref,
            arrived_ms,
        )
        .ok_or(BizError::OrderNotExist)?;
    Ok(order_fields(&order))
}

fn close_order(shared: &Shared, call: &Call) -> Result<Params, Refusal> {
    let out_trade_no = call.require("out_trade_no")?;
    shared
        .store
        .close(call.env, &call.merchant.config.mch_id, out_trade_no)?;
    let mut fields = Params::new();
    fields.insert("result_msg".into(), "OK".into());
    Ok(fields)
}

fn refund(shared: &Arc<Shared>, call: &Call) -> Result<Params, Refusal> {
    let order_ref = call.order_ref()?;
    let out_refund_no = call.require("out_refund_no")?;
    if out_refund_no.len() > 64 {
        return Err(ProtocolError::param("out_refund_no参数长度有误：至多64个字符").into());
    }
    let total_fee = call.amount("total_fee")?;
    let refund_fee = call.amount("refund_fee")?;
    let notify_url = call.get("notify_url").map(str::to_string);
    let outcome = shared.store.refund(
        call.env,
        &call.merchant.config.mch_id,
        &order_ref,
        RefundRequest {
            out_refund_no: out_refund_no.to_string(),
            total_fee,
            refund_fee,
            notify_url: notify_url.clone(),
            refund_desc: call.get("refund_desc").map(str::to_string),
            processing: shared.refund_processing,
        },
    )?;
    if outcome.is_new {
        shared.follow_refund(call.env, &outcome.order, &outcome.refund);
    }
    let order = &outcome.order;
    let refund = &outcome.refund;
    let mut fields = Params::new();
    let mut put = |name: &str, value: &str| {
        fields.insert(name.to_string(), value.to_string());
    };
    put(
        "transaction_id",
        order.transaction_id.as_deref().unwrap_or_default(),
    );
    put("out_trade_no", &order.out_trade_no);
    put("out_refund_no", &refund.out_refund_no);
    put("refund_id", &refund.refund_id);
    put("refund_fee", &refund.refund_fee.to_fen_string());
    put("coupon_refund_fee", "0");
    put("total_fee", &order.total_fee.to_fen_string());
    put("cash_fee", &order.total_fee.to_fen_string());
    put("coupon_refund_count", "0");
    put("cash_refund_fee", &refund.refund_fee.to_fen_string());
    Ok(fields)
}

fn refund_query(shared: &Shared, call: &Call) -> Result<Params, Refusal> {
    let refund_ref = if let Some(refund_id) = call.get("refund_id") {
        RefundRef::RefundId(refund_id.to_string())
    } else if let Some(out_refund_no) = call.get("out_refund_no") {
        RefundRef::OutRefundNo(out_refund_no.to_string())
    } else if let Some(transaction_id) = call.get("transaction_id") {
        RefundRef::Order(OrderRef::TransactionId(transaction_id.to_string()))
    } else if let Some(out_trade_no) = call.get("out_trade_no") {
        RefundRef::Order(OrderRef::OutTradeNo(out_trade_no.to_string()))
    } else {
        return Err(ProtocolError {
            code: "LACK_PARAMS",
            message: "缺少参数refund_id、out_refund_no、transaction_id或out_trade_no".into(),
        }
        .into());
    };
    let (order, refunds) =
        shared
            .store
            .refunds(call.env, &call.merchant.config.mch_id, &refund_ref)?;
    let mut fields = Params::new();
    let mut put = |name: String, value: &str| {
        fields.insert(name, value.to_string());
    };
    put(
        "transaction_id".into(),
        order.transaction_id.as_deref().unwrap_or_default(),
    );
    put("out_trade_no".into(), &order.out_trade_no);
    put("total_fee".into(), &order.total_fee.to_fen_string());
    put("fee_type".into(), &order.fee_type);
    put("cash_fee".into(), &order.total_fee.to_fen_string());
    put("refund_count".into(), &refunds.len().to_string());
    put(
        "total_refund_count".into(),
        &order.refunds.len().to_string(),
    );
    let now = time::beijing_now();
    for (n, refund) in refunds.iter().enumerate() {
        put(format!("out_refund_no_{n}"), &refund.out_refund_no);
        put(format!("refund_id_{n}"), &refund.refund_id);
        put(format!("refund_channel_{n}"), "ORIGINAL");
        put(
            format!("refund_fee_{n}"),
            &refund.refund_fee.to_fen_string(),
        );
        put(
            format!("settlement_refund_fee_{n}"),
            &refund.refund_fee.to_fen_string(),
        );
        put(format!("refund_status_{n}"), refund.status_at(now).as_str());
        put(
            format!("refund_account_{n}"),
            "REFUND_SOURCE_UNSETTLED_FUNDS",
        );
        put(format!("refund_recv_accout_{n}"), "支付用户的零钱");
        if let Some(success_time) = refund.success_time(now) {
            put(
                format!("refund_success_time_{n}"),
                &time::beijing_readable_time(success_time),
            );
        }
    }
    Ok(fields)
}

/// The bill's error document: WeChat answers bill errors with `error_code`, not `err_code`.
fn bill_error(message: &str, error_code: &str) -> Reply {
    let mut params = Params::new();
    params.insert("return_code".into(), "FAIL".into());
    params.insert("return_msg".into(), message.into());
    params.insert("error_code".into(), error_code.into());
    Reply::xml(wechatpay_v2::xml::encode(&params), Some(message))
}

fn download_bill(shared: &Shared, call: &Call) -> Reply {
    let Some(bill_date) = call.get("bill_date") else {
        return Reply::protocol(&ProtocolError::lack("bill_date"));
    };
    let Ok(date) = time::parse_date(bill_date) else {
        return bill_error("invalid bill_date", "20001");
    };
    let bill_type = match call.get("bill_type").unwrap_or("ALL") {
        "ALL" => BillType::All,
        "SUCCESS" => BillType::Success,
        "REFUND" => BillType::Refund,
        _ => return bill_error("invalid bill_type", "20001"),
    };
    let gzip = match call.get("tar_type") {
        None => false,
        Some("GZIP") => true,
        Some(_) => return bill_error("invalid tar_type", "20001"),
    };
    let orders = shared
        .store
        .orders_touched_on(call.env, &call.merchant.config.mch_id, date);
    let alterations = shared.bill_alterations.lock().clone();
    match bill::render(&orders, date, bill_type, &alterations) {
        Ok(Some(text)) => Reply {
            status: StatusCode::OK,
            body: text,
            content_type: if gzip {
                "application/x-gzip"
            } else {
                "text/plain; charset=utf-8"
            },
            err_code: None,
            gzip,
        },
        Ok(None) => bill_error("No Bill Exist", "20002"),
        Err(error) => bill_error(&format!("the bill cannot be written: {error}"), "20007"),
    }
}

impl Shared {
    /// Sleeps unless the simulator stops first; `false` when it stopped.
    pub(crate) async fn sleep(&self, duration: Duration) -> bool {
        crate::sleep_unless_stopped(&self.shutdown, duration).await
    }

    /// The faults that strike a request before the gateway reads it, the same for V2 and
    /// V3: the latency is slept; `None` when the connection gets no answer (a hang, or the
    /// simulator stopped while sleeping); `Some(Some(status))` when the answer is a bare
    /// HTTP error page; `Some(None)` when the request goes on.
    pub(crate) async fn transport_faults(
        &self,
        faults: &RequestFaults,
    ) -> Option<Option<StatusCode>> {
        if !faults.latency.is_zero() && !self.sleep(faults.latency).await {
            return None;
        }
        if faults.hang {
            self.sleep(self.hang).await;
            return None;
        }
        Some(
            faults.http_status.map(|status| {
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }),
        )
    }
}
