//! Stopping the outbox (a shutdown) does not wait for an endpoint that never answers: the
//! attempt is dropped after a short grace, and its claim makes the delivery happen again.

use std::time::{Duration, Instant};

use jit_pays::outbox::STOP_GRACE;
use jit_pays::{OutboxSettings, PayStatus, PayType, Payer, WebhookEndpoint};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::support;
use crate::support::shop::{self, ShopOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_does_not_wait_for_an_endpoint_that_never_answers() {
    let db = support::sqlite().await;
    // An endpoint that reads the request and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (held, mut holding) = mpsc::channel::<()>(8);
    tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = held.send(()).await;
            sockets.push(socket);
        }
    });
    let shop = shop::start(db, ShopOptions::default()).await;
    let outbox = jit_pays::start_outbox(
        &shop.app,
        OutboxSettings {
            poll_interval: Duration::from_millis(20),
            webhooks: vec![WebhookEndpoint {
                url: url.clone(),
                secret: "whsec_stop_0123456789abcdef0123456789abcdef".into(),
                kinds: None,
                timeout: Duration::from_secs(60),
                retry_for: Duration::from_secs(3600),
            }],
            ..OutboxSettings::new("stopping")
        },
    )
    .await
    .unwrap();
    let order = shop
        .pay
        .create("Stop", wechatpay_v2::Fen::new(100), None)
        .await
        .unwrap();
    let pay_url = shop
        .pay
        .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    shop.sim.pay(pay_url.pay_url.as_str()).unwrap();
    assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);
    tokio::time::timeout(Duration::from_secs(10), holding.recv())
        .await
        .expect("the endpoint got the POST")
        .unwrap();
    let started = Instant::now();
    outbox.stop().await;
    let took = started.elapsed();
    assert!(
        took < STOP_GRACE + Duration::from_secs(2),
        "stop took {took:?}, the endpoint's timeout is 60 s"
    );
    // The delivery is still owed: pending, claimed by this instance until it restarts.
    let pending = jit_pays::outbox::pending_deliveries(shop.db.store.connection())
        .await
        .unwrap();
    assert_eq!(pending.get(&url).copied(), Some(1), "{pending:?}");
}
