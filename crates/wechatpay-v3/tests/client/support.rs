//! What the HTTP tests share: keys and certificates made at test time, and a small WeChat
//! Pay v3 gateway on loopback.
//!
//! The gateway checks every request's `Authorization` with the merchant's public key using
//! the `rsa` crate directly (not this crate's verifier), records what it received, and
//! answers with bodies signed by a platform key: the WeChat Pay public key's, or a platform
//! certificate's. Tests queue [`Reply`]s to script answers; without one, each route answers
//! as WeChat would.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use rsa::sha2::{Digest, Sha256};
use serde_json::{Value, json};
use sha1::Sha1;
use wechatpay_v3::{
    ApiV3Key, CertificateList, Client, ClientConfig, MerchantPrivateKey, PlatformCertificate,
    PlatformPrivateKey, PlatformSigner, RetryPolicy, SignedHeaders, Verification,
    WechatPayPublicKey,
};

pub const APP_ID: &str = "wxd678efh567hg6787";
pub const MCH_ID: &str = "1230000109";
pub const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0112300001092025010100000000000000";
pub const API_V3_KEY: &str = "a12d3924fd499edac8a5efc5b8c9a7d2";

fn new_rsa() -> rsa::PrivateKey {
    rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA key generation")
}

/// The merchant's key pair, made once per test binary.
pub fn merchant_rsa() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(new_rsa)
}

pub fn merchant_key() -> MerchantPrivateKey {
    MerchantPrivateKey::from_rsa(merchant_rsa().clone()).unwrap()
}

/// The key behind the WeChat Pay public key, made once per test binary.
fn public_key_private() -> &'static PlatformPrivateKey {
    static KEY: OnceLock<PlatformPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PlatformPrivateKey::from_rsa(new_rsa()).unwrap())
}

/// Signs as WeChat does with the public key's private half.
pub fn public_key_signer() -> PlatformSigner {
    PlatformSigner::new(PUBLIC_KEY_ID, public_key_private().clone())
}

pub fn wechatpay_public_key() -> WechatPayPublicKey {
    public_key_private()
        .wechatpay_public_key(PUBLIC_KEY_ID)
        .unwrap()
}

pub fn api_v3_key() -> ApiV3Key {
    ApiV3Key::new(API_V3_KEY).unwrap()
}

/// A platform certificate and the key it certifies.
#[derive(Clone)]
pub struct PlatformIdentity {
    pub certificate: PlatformCertificate,
    pub key: PlatformPrivateKey,
    /// The key as PKCS#8 PEM.
    pub key_pem: String,
}

impl PlatformIdentity {
    pub fn signer(&self) -> PlatformSigner {
        PlatformSigner::new(self.certificate.serial_no(), self.key.clone())
    }
}

/// A self-signed platform certificate (RSA 2048) with this serial, valid from
/// `from_now_secs` to `until_now_secs` (seconds relative to now, may be negative).
pub fn platform_identity(
    serial: &[u8],
    from_now_secs: i64,
    until_now_secs: i64,
) -> PlatformIdentity {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let private = new_rsa();
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tenpay.com Platform Test");
    params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let at = |offset: i64| {
        let unix = Utc::now().timestamp() + offset;
        epoch + Duration::from_secs(unix.max(0) as u64)
    };
    params.not_before = at(from_now_secs);
    params.not_after = at(until_now_secs);
    let certificate_pem = params.self_signed(&key_pair).unwrap().pem();
    PlatformIdentity {
        certificate: PlatformCertificate::from_pem(&certificate_pem).unwrap(),
        key: PlatformPrivateKey::from_rsa(private).unwrap(),
        key_pem: pem.to_string(),
    }
}

/// The default platform certificate (valid a year), made once per test binary.
pub fn platform() -> &'static PlatformIdentity {
    static IDENTITY: OnceLock<PlatformIdentity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        platform_identity(
            &hex::decode("5157F09EFDC096DE15EBE81A47057A7232F1B8E1").unwrap(),
            -3600,
            365 * 86400,
        )
    })
}

/// How a scripted answer is signed.
#[derive(Clone)]
pub enum Signing {
    /// By the gateway's current signer.
    Current,
    /// Not at all.
    None,
    /// By this signer.
    By(PlatformSigner),
    /// With these headers, verbatim.
    Headers(SignedHeaders),
    /// By the current signer over this body; the reply carries another.
    OverOtherBody(Vec<u8>),
}

/// A scripted answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub signing: Signing,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: body.to_string().into_bytes(),
            signing: Signing::Current,
            delay: Duration::ZERO,
        }
    }

    pub fn error(status: u16, code: &str) -> Reply {
        Reply::json(
            status,
            json!({"code": code, "message": format!("{code} from the test gateway")}),
        )
        .signed(Signing::None)
    }

    pub fn raw(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            body: body.to_vec(),
            signing: Signing::None,
            delay: Duration::ZERO,
        }
    }

    pub fn signed(mut self, signing: Signing) -> Reply {
        self.signing = signing;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request as the gateway received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    /// The Authorization header's nonce and timestamp, when it verified.
    pub authorization: Result<(String, String), String>,
}

pub struct GatewayState {
    pub signer: Mutex<PlatformSigner>,
    /// What `/v3/certificates` serves, and who signs that list.
    pub certificates: Mutex<Vec<PlatformCertificate>>,
    pub certificate_list_signer: Mutex<PlatformSigner>,
    pub certificate_list_key: Mutex<ApiV3Key>,
    pub script: Mutex<VecDeque<Reply>>,
    pub received: Mutex<Vec<Received>>,
    pub url: Mutex<String>,
}

/// The gateway: a loopback axum server that lives as long as this value.
pub struct Gateway {
    pub url: String,
    pub state: Arc<GatewayState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    /// Starts a gateway whose answers are signed by `signer`.
    pub async fn start(signer: PlatformSigner) -> Gateway {
        let state = Arc::new(GatewayState {
            signer: Mutex::new(signer),
            certificates: Mutex::new(vec![platform().certificate.clone()]),
            certificate_list_signer: Mutex::new(platform().signer()),
            certificate_list_key: Mutex::new(api_v3_key()),
            script: Mutex::new(VecDeque::new()),
            received: Mutex::new(Vec::new()),
            url: Mutex::new(String::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *state.url.lock().unwrap() = url.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gateway { url, state, task }
    }

    /// A gateway signing with the WeChat Pay public key.
    pub async fn public_key() -> Gateway {
        Gateway::start(public_key_signer()).await
    }

    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub fn set_signer(&self, signer: PlatformSigner) {
        *self.state.signer.lock().unwrap() = signer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests other than certificate downloads.
    pub fn calls(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path_and_query != "/v3/certificates")
            .collect()
    }

    pub fn certificate_downloads(&self) -> usize {
        self.received()
            .iter()
            .filter(|r| r.path_and_query == "/v3/certificates")
            .count()
    }

    /// A client for this gateway with fast retries.
    pub fn client(&self, verification: Verification) -> Client {
        Client::new(self.config(verification)).unwrap()
    }

    pub fn config(&self, verification: Verification) -> ClientConfig {
        let mut config = ClientConfig::new(
            APP_ID,
            MCH_ID,
            MERCHANT_SERIAL,
            merchant_key(),
            api_v3_key(),
            verification,
        );
        config.base_url = self.url.clone();
        config.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        };
        config
    }
}

/// Checks an Authorization header with the merchant's public key, independently of the
/// crate: parses the five parameters and verifies RSA-SHA256 PKCS#1 v1.5 with `rsa`.
fn check_authorization(
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(String, String), String> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let params = header
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
        .ok_or("wrong scheme")?;
    let mut fields = std::collections::HashMap::new();
    for part in params.split(',') {
        let (name, value) = part.split_once('=').ok_or("not name=value")?;
        fields.insert(name.trim(), value.trim_matches('"'));
    }
    let get = |name: &str| fields.get(name).copied().ok_or(format!("no {name}"));
    if get("mchid")? != MCH_ID {
        return Err("wrong mchid".into());
    }
    if get("serial_no")? != MERCHANT_SERIAL {
        return Err("wrong serial_no".into());
    }
    let timestamp = get("timestamp")?;
    let seconds: i64 = timestamp.parse().map_err(|_| "timestamp")?;
    if (seconds - Utc::now().timestamp()).abs() > 300 {
        return Err("stale timestamp".into());
    }
    let nonce = get("nonce_str")?;
    let mut message = format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    let signature = BASE64
        .decode(get("signature")?)
        .map_err(|_| "signature base64")?;
    merchant_rsa()
        .as_public_key()
        .verify(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&message),
            &signature,
        )
        .map_err(|_| "signature mismatch".to_string())?;
    Ok((nonce.to_owned(), timestamp.to_owned()))
}

async fn handle(
    State(state): State<Arc<GatewayState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let authorization = check_authorization(&headers, method.as_str(), &path_and_query, &body);
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path_and_query: path_and_query.clone(),
        body: body.to_vec(),
        headers: headers.clone(),
        authorization: authorization.clone(),
    });
    if authorization.is_err() {
        return respond(&state, Reply::error(401, "SIGN_ERROR")).await;
    }
    if uri.path() == "/v3/certificates" {
        let list = CertificateList::encrypt(
            &state.certificates.lock().unwrap(),
            &state.certificate_list_key.lock().unwrap(),
        );
        let signer = state.certificate_list_signer.lock().unwrap().clone();
        return respond(
            &state,
            Reply::json(200, list.to_json()).signed(Signing::By(signer)),
        )
        .await;
    }
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = match scripted {
        Some(reply) => reply,
        None => default_reply(&state, method.as_str(), uri.path(), uri.query(), &body),
    };
    respond(&state, reply).await
}

fn default_reply(
    state: &GatewayState,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v3", "pay", "transactions", kind]) => Reply::json(
            200,
            match *kind {
                "native" => json!({"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}),
                "h5" => {
                    json!({"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2916263004719461949c84457c735b0000&package=2150917749"})
                }
                _ => json!({"prepay_id": "wx201410272009395522657a690389285100"}),
            },
        ),
        ("GET", ["v3", "pay", "transactions", "out-trade-no", no]) => {
            Reply::json(200, transaction(&percent_decode(no), "NOTPAY"))
        }
        ("GET", ["v3", "pay", "transactions", "id", id]) => {
            let mut paid = transaction("T2026000001", "SUCCESS");
            paid["transaction_id"] = json!(id);
            Reply::json(200, paid)
        }
        ("POST", ["v3", "pay", "transactions", "out-trade-no", _, "close"]) => Reply {
            status: 204,
            body: Vec::new(),
            signing: Signing::Current,
            delay: Duration::ZERO,
        },
        ("POST", ["v3", "refund", "domestic", "refunds"]) => Reply::json(
            200,
            refund(
                request["out_refund_no"].as_str().unwrap_or("R1"),
                "PROCESSING",
            ),
        ),
        ("GET", ["v3", "refund", "domestic", "refunds", no]) => {
            Reply::json(200, refund(&percent_decode(no), "SUCCESS"))
        }
        ("GET", ["v3", "bill", kind]) => {
            let gzip = query.unwrap_or_default().contains("tar_type=GZIP");
            let file = bill_file(gzip);
            let base = state.url.lock().unwrap().clone();
            Reply::json(
                200,
                json!({
                    "hash_type": "SHA1",
                    "hash_value": hex::encode(Sha1::digest(&file)),
                    "download_url": format!("{base}/v3/billdownload/file?token={kind}-{}", if gzip { "gz" } else { "plain" }),
                }),
            )
        }
        ("GET", ["v3", "billdownload", "file"]) => {
            let gzip = query.unwrap_or_default().ends_with("-gz");
            Reply::raw(200, &bill_file(gzip))
        }
        _ => Reply::error(404, "RESOURCE_NOT_EXISTS"),
    }
}

fn percent_decode(text: &str) -> String {
    text.replace("%7C", "|").replace("%40", "@")
}

/// The bill the gateway serves.
pub const BILL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号\n`2026-01-01 12:00:00,`wxd678efh567hg6787,`1230000109,`0,`,`4200000891202103228088184743,`T2026000001\n";

pub fn bill_file(gzip: bool) -> Vec<u8> {
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(BILL.as_bytes()).unwrap();
        encoder.finish().unwrap()
    } else {
        BILL.as_bytes().to_vec()
    }
}

pub fn transaction(out_trade_no: &str, state: &str) -> Value {
    let mut t = json!({
        "appid": APP_ID, "mchid": MCH_ID, "out_trade_no": out_trade_no,
        "trade_state": state, "trade_state_desc": "",
        "amount": {"total": 9999, "currency": "CNY", "payer_currency": "CNY"}
    });
    if state == "SUCCESS" {
        t["transaction_id"] = json!("4200000891202103228088184743");
        t["trade_type"] = json!("NATIVE");
        t["success_time"] = json!("2026-01-01T12:00:00+08:00");
        t["amount"]["payer_total"] = json!(9999);
        t["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
    }
    t
}

pub fn refund(out_refund_no: &str, status: &str) -> Value {
    let mut r = json!({
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": out_refund_no,
        "transaction_id": "4200000891202103228088184743",
        "out_trade_no": "T2026000001",
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": "2026-01-02T12:00:00+08:00",
        "status": status,
        "amount": {"total": 9999, "refund": 100, "payer_total": 9999, "payer_refund": 100, "currency": "CNY"}
    });
    if status == "SUCCESS" {
        r["success_time"] = json!("2026-01-02T12:00:05+08:00");
    }
    r
}

async fn respond(state: &GatewayState, reply: Reply) -> Response {
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let headers = match &reply.signing {
        Signing::Current => Some(state.signer.lock().unwrap().sign(&reply.body).unwrap()),
        Signing::None => None,
        Signing::By(signer) => Some(signer.sign(&reply.body).unwrap()),
        Signing::Headers(headers) => Some(headers.clone()),
        Signing::OverOtherBody(other) => Some(state.signer.lock().unwrap().sign(other).unwrap()),
    };
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    let map = response.headers_mut();
    if reply.status != 204 {
        map.insert("content-type", "application/json".parse().unwrap());
    }
    if let Some(headers) = headers {
        headers.insert_into(map).unwrap();
    }
    response
}
