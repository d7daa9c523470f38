//! What callers may send: amounts WeChat Pay can take, text a payer can read as it is, and
//! pages a database can seek to. Each refusal is BAD_ARGUMENTS naming the argument, and
//! nothing is written.

use jit_pays::db::store::OrderFilter;
use jit_pays::{PayError, PayType, Payer};
use jit_runtime::{CallContext, CallErrorKind};
use serde_json::{Value, json};
use wechatpay_v2::Fen;

use crate::support;
use crate::support::shop::{self, Shop, ShopOptions};

async fn shop() -> Shop {
    shop::start(support::sqlite().await, ShopOptions::default()).await
}

async fn call(
    shop: &Shop,
    element: &str,
    function: &str,
    args: Value,
) -> Result<Value, jit_runtime::CallError> {
    shop.app
        .call(element, function, args, &CallContext::principal("test"))
        .await
}

async fn orders(shop: &Shop) -> u64 {
    shop.db
        .store
        .count_orders(&OrderFilter::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn amounts_above_wechats_total_fee_range_are_refused_before_anything_is_written() {
    let shop = shop().await;
    for (element, function) in [
        ("pays.services.PaySvc", "create"),
        ("pays.myWechatPay", "create"),
    ] {
        for amount in [json!(21474836.48), json!(2_147_483_648_i64), json!(1e10)] {
            let error = call(
                &shop,
                element,
                function,
                json!({"subject": "Too much", "amount": amount}),
            )
            .await
            .unwrap_err();
            assert_eq!(
                error.kind,
                CallErrorKind::BadArguments,
                "{element}: {error}"
            );
            assert!(error.message.contains("argument `amount`"), "{error}");
            assert!(
                error
                    .message
                    .contains("above WeChat Pay's limit of 21474836.47 yuan"),
                "{error}"
            );
        }
    }
    // Through the Rust API too.
    let error = shop
        .pay
        .create("Too much", Fen::new(2_147_483_648), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            PayError::Invalid {
                field: "amount",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(orders(&shop).await, 0, "nothing was written");

    // The limit itself is an amount like any other.
    let order = call(
        &shop,
        "pays.services.PaySvc",
        "create",
        json!({"subject": "The most", "amount": 21474836.47}),
    )
    .await
    .unwrap();
    assert_eq!(order["amountFen"], 2_147_483_647_i64, "{order}");
}

#[tokio::test]
async fn text_shown_to_payers_refuses_formatting_characters() {
    let shop = shop().await;
    for (subject, code) in [
        ("Invoice \u{202E}gnp.exe", "U+202E"),
        ("Zero\u{200B}width", "U+200B"),
        ("Tab\tcharacter", "U+0009"),
    ] {
        let error = call(
            &shop,
            "pays.services.PaySvc",
            "create",
            json!({"subject": subject, "amount": 1}),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind, CallErrorKind::BadArguments, "{error}");
        assert!(
            error.message.contains("argument `subject`") && error.message.contains(code),
            "{error}"
        );
    }
    assert_eq!(orders(&shop).await, 0, "nothing was written");

    // An H5 scene's names are shown to the payer as well.
    let order = shop.pay.create("Plain", Fen::new(100), None).await.unwrap();
    let payer = Payer {
        client_ip: Some("203.0.113.5".into()),
        scene_info: Some(
            json!({"h5_info": {"type": "Wap", "wap_url": "https://shop.example.com", "wap_name": "Sh\u{200D}op"}})
                .to_string(),
        ),
        ..Payer::default()
    };
    let error = shop
        .pay
        .get_pay_url(&order.order_id, PayType::Mweb, &payer)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            PayError::Invalid {
                field: "sceneInfo",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("U+200D"), "{error}");
    assert!(
        shop.db
            .store
            .find_record(&order.order_id)
            .await
            .unwrap()
            .is_none(),
        "nothing was sent to WeChat"
    );
}

#[tokio::test]
async fn pages_are_bounded_with_clear_errors() {
    let shop = shop().await;
    shop.pay.create("One", Fen::new(100), None).await.unwrap();
    let query = |args: Value| call(&shop, "pays.models.PayLogModel", "query", args);
    for (args, expected) in [
        (
            json!({"page": 1_u64 << 62}),
            "argument `page`: must be from 1 to 1000000, got 4611686018427387904",
        ),
        (
            json!({"page": 0}),
            "argument `page`: must be from 1 to 1000000, got 0",
        ),
        (
            json!({"page": -1}),
            "argument `page` must be a whole number from 1 to 1000000, got -1",
        ),
        (
            json!({"pageSize": 501}),
            "argument `pageSize`: must be from 1 to 500, got 501",
        ),
        (
            json!({"pageSize": 0}),
            "argument `pageSize`: must be from 1 to 500, got 0",
        ),
    ] {
        let error = query(args.clone()).await.unwrap_err();
        assert_eq!(error.kind, CallErrorKind::BadArguments, "{args}: {error}");
        assert!(error.message.contains(expected), "{args}: {error}");
    }
    let last = query(json!({"page": 1_000_000, "pageSize": 500}))
        .await
        .unwrap();
    assert_eq!(last["items"], json!([]), "{last}");
    assert_eq!(last["total"], 1, "{last}");

    let model = shop
        .app
        .get::<jit_pays::PayLogModel>("pays.models.PayLogModel")
        .await
        .unwrap();
    let error = model.queryset().page(u64::MAX, 20).await.unwrap_err();
    assert!(
        matches!(error, PayError::Invalid { field: "page", .. }),
        "{error}"
    );
    let error = model.queryset().page(1, 10_000).await.unwrap_err();
    assert!(
        matches!(
            error,
            PayError::Invalid {
                field: "pageSize",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(model.queryset().page(1, 500).await.unwrap().len(), 1);
}
