//! Shared test helpers: a signed raw client and a merchant notify receiver.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use wechatpay_sim::{DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID};
use wechatpay_v2::{ApiKey, Params, SignType};

/// Parameters from pairs.
pub fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The common head of a call of the default merchant.
pub fn default_head() -> Params {
    params(&[
        ("appid", DEFAULT_APPID),
        ("mch_id", DEFAULT_MCH_ID),
        ("nonce_str", &wechatpay_v2::nonce_str()),
    ])
}

/// A NATIVE unifiedorder of the default merchant.
pub fn native_order(out_trade_no: &str, total_fee: u32, notify_url: &str) -> Params {
    let mut p = default_head();
    p.extend(params(&[
        ("body", "simulated goods"),
        ("out_trade_no", out_trade_no),
        ("total_fee", &total_fee.to_string()),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", notify_url),
        ("trade_type", "NATIVE"),
        ("product_id", "p1"),
    ]));
    p
}

/// An answer: HTTP status, raw body, decoded params (when XML).
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub params: Params,
}

impl Answer {
    pub fn get(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// The err_code, or "" for success.
    pub fn err_code(&self) -> &str {
        self.get("err_code")
    }

    pub fn assert_success(&self) {
        assert_eq!(self.get("return_code"), "SUCCESS", "{}", self.body);
        assert_eq!(self.get("result_code"), "SUCCESS", "{}", self.body);
    }
}

/// Signs `params` with `key` and posts them to `{base}{path}`.
pub async fn call_with(
    base: &str,
    path: &str,
    mut params: Params,
    key: &str,
    sign_type: SignType,
) -> Answer {
    wechatpay_v2::sign_params(&mut params, sign_type, &ApiKey::new(key));
    post_raw(base, path, wechatpay_v2::xml::encode(&params)).await
}

/// Signs with the default key (MD5) and posts.
pub async fn call(base: &str, path: &str, params: Params) -> Answer {
    call_with(base, path, params, DEFAULT_API_KEY, SignType::Md5).await
}

/// Posts a body as is.
pub async fn post_raw(base: &str, path: &str, body: String) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body)
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a text body");
    let params = wechatpay_v2::xml::decode(body.as_bytes()).unwrap_or_default();
    Answer {
        status,
        body,
        params,
    }
}

/// One notify the merchant received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub body: String,
}

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    reject_first: AtomicUsize,
    delay: Mutex<Duration>,
}

/// A merchant's notify endpoint: records every delivery, rejects the first N.
#[derive(Clone)]
pub struct NotifyReceiver {
    state: Arc<ReceiverState>,
    pub url: String,
}

pub const ACK: &str = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

async fn receive(State(state): State<Arc<ReceiverState>>, body: Bytes) -> String {
    let delay = *state.delay.lock();
    state.received.lock().push(Received {
        at: Instant::now(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reject = state
        .reject_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if reject {
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"
            .to_string()
    } else {
        ACK.to_string()
    }
}

impl NotifyReceiver {
    pub async fn start(reject_first: usize) -> NotifyReceiver {
        let state = Arc::new(ReceiverState {
            received: Mutex::new(Vec::new()),
            reject_first: AtomicUsize::new(reject_first),
            delay: Mutex::new(Duration::ZERO),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/notify", post(receive))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        NotifyReceiver { state, url }
    }

    /// Each delivery is answered only after this long.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock() = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().clone()
    }

    /// Waits until at least `count` deliveries arrived (or panics after `within`).
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} notifies within {within:?}, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until the simulator has logged `count` deliveries for the order (it logs one once
/// it has read the merchant's answer, just after the merchant saw it).
pub async fn logged_notifies(
    sim: &wechatpay_sim::SimHandle,
    out_trade_no: &str,
    count: usize,
) -> Vec<wechatpay_sim::NotifyRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records: Vec<_> = sim
            .inspect()
            .notifies
            .into_iter()
            .filter(|record| record.out_trade_no == out_trade_no)
            .collect();
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} logged notifies for {out_trade_no}, got {}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the simulator has no notify left to deliver (each acknowledged, dropped or out
/// of retries) and returns the inspection taken then: from that moment nothing more arrives
/// until the next payment or refund, so a test can count what was delivered without sleeping.
pub async fn settled(sim: &wechatpay_sim::SimHandle) -> wechatpay_sim::Inspection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inspection = sim.inspect();
        if inspection.pending_notifies == 0 {
            return inspection;
        }
        assert!(
            Instant::now() < deadline,
            "{} notifies still pending",
            inspection.pending_notifies
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
