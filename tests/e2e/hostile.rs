//! Hostile notify bodies: each refused quickly, nothing changed, the server unharmed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::notify::wechatpy_notify;
use crate::util::{SHOP_KEY, ShopServer, is_fail_reply, is_success_reply};

#[tokio::test]
async fn hostile_bodies_are_refused_and_change_nothing() {
    let shop = ShopServer::start().await;
    let order_id = shop.create_order("1.00").await;
    let before = shop.pay_svc("query", json!({"orderId": order_id})).await;
    let events = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&events);
    shop.handle
        .app()
        .service::<jit_pays::PayEvents>()
        .expect("events")
        .subscribe(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });

    let genuine = wechatpy_notify(&order_id, 100, SHOP_KEY, false);
    let fields = genuine
        .trim_start_matches("<xml>")
        .trim_end_matches("</xml>")
        .to_owned();
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<xml>{}<attach>&xxe;</attach></xml>",
        fields
    );
    let laughs = {
        let mut doc =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
        for level in 1..10 {
            let previous = if level == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", level - 1)
            };
            doc.push_str(&format!(
                "<!ENTITY lol{level} \"{}\">\n",
                format!("&{previous};").repeat(10)
            ));
        }
        doc.push_str(&format!("]>\n<xml>{fields}<attach>&lol9;</attach></xml>"));
        doc
    };
    let deep = format!(
        "<xml>{}{}{}</xml>",
        "<a>".repeat(5_000),
        fields,
        "</a>".repeat(5_000)
    );
    let processing_instruction = format!("<?xml-stylesheet href=\"x\"?>{genuine}");
    let oversized = format!(
        "<xml>{fields}<attach><![CDATA[{}]]></attach></xml>",
        "A".repeat(200 * 1024)
    );
    let not_xml = "{\"out_trade_no\": \"x\"}".to_owned();
    let binary = vec![0xff_u8, 0xfe, 0x00, 0x3c, 0x78];

    let cases: Vec<(&str, reqwest::Body)> = vec![
        ("DOCTYPE with an external entity (XXE)", xxe.into()),
        ("billion laughs", laughs.into()),
        ("deep nesting", deep.into()),
        ("processing instruction", processing_instruction.into()),
        ("oversized body", oversized.into()),
        ("not XML", not_xml.into()),
        ("not UTF-8", binary.into()),
        ("empty", Vec::<u8>::new().into()),
    ];
    for (label, body) in cases {
        let started = Instant::now();
        let (status, reply) = shop.post_notify(body).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{label}: refused quickly ({:?})",
            started.elapsed()
        );
        assert!(!status.is_server_error(), "{label}: {status}");
        assert!(
            is_fail_reply(&reply),
            "{label} must be refused: {status} {reply}"
        );
        assert!(!reply.contains("root:"), "{label}: no file content leaks");
    }
    assert_eq!(
        shop.pay_svc("query", json!({"orderId": order_id})).await,
        before
    );
    shop.outbox_idle().await;
    assert_eq!(events.load(Ordering::SeqCst), 0, "no transition at all");

    // The server is unharmed: the genuine notify still works.
    let (_, reply) = shop.post_notify(genuine).await;
    assert!(is_success_reply(&reply), "{reply}");
    assert_eq!(shop.status(&order_id).await, "success");
    shop.outbox_idle().await;
    assert_eq!(events.load(Ordering::SeqCst), 1);
    shop.handle.shutdown().await.unwrap();
}
