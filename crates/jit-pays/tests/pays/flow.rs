//! The whole family over real HTTP (simulator as WeChat, a real notify endpoint) and a
//! real database: every payType, check, cancel, notifies good and bad, the reconciler.
//! Each test runs on SQLite, and on PostgreSQL too when `JIT_TEST_POSTGRES_URL` is set.

use crate::support;
use std::sync::Arc;
use std::time::Duration;

use crate::support::shop::{
    self, API_KEY, APP_ID, MCH_ID, OTHER_API_KEY, OTHER_APP_ID, OTHER_MCH_ID, ShopOptions,
};
use jit_pays::{
    NotifyOutcome, PayError, PayEventKind, PayStatus, PayType, Payer, ReconcilerSettings,
};
use jit_runtime::{CallContext, CallErrorKind};
use serde_json::{Value, json};
use wechatpay_sim::{Fault, FaultRule, SimConfig};
use wechatpay_v2::{Fen, NOTIFY_SUCCESS_REPLY};

fn yuan(text: &str) -> Fen {
    Fen::from_yuan_str(text).unwrap()
}

async fn shops(options: impl Fn() -> ShopOptions) -> Vec<shop::Shop> {
    let mut shops = Vec::new();
    for db in support::all().await {
        shops.push(shop::start(db, options()).await);
    }
    shops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_flow_create_pay_notify_success_with_one_hook_call() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        let order = shop
            .pay
            .create(
                "Product Purchase",
                yuan("99.99"),
                Some("D20231120161615000001".into()),
            )
            .await
            .unwrap();
        assert_eq!(order.amount.get(), 9999);
        assert_eq!(order.amount_yuan, "99.99");
        assert_eq!(order.status, PayStatus::Wait);
        assert_eq!(order.element, "pays.myWechatPay");

        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        assert!(
            url.pay_url.starts_with("weixin://wxpay/bizpayurl"),
            "{label}: {url:?}"
        );
        assert_eq!(url.form, "");
        // The simulator saw our notify URL and amount.
        let sim_order = shop.sim.order(&order.order_id).unwrap();
        assert_eq!(sim_order.total_fee.get(), 9999);
        assert_eq!(
            sim_order.notify_url,
            format!(
                "{}/api/demo/shop/pays/services/PaySvc/wechatNotify",
                shop.public_base_url
            )
        );
        assert_eq!(sim_order.notify_url, shop.pay.get_notify_url());

        // A second call with the same payType reuses the prepay order.
        let again = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        assert_eq!(again, url);
        // Another payType is refused clearly.
        let err = shop
            .pay
            .get_pay_url(&order.order_id, PayType::App, &Payer::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PayError::PayTypeChanged { .. }),
            "{label}: {err}"
        );

        shop.sim.pay(url.pay_url.as_str()).unwrap();
        assert_eq!(
            shop.wait_settled(&order.order_id).await,
            PayStatus::Success,
            "{label}"
        );
        let paid = shop.pay.get_order(&order.order_id).await.unwrap();
        assert!(paid.transaction_id.is_some());
        assert!(paid.pay_time.is_some());
        assert!(!paid.paid_after_close);
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Paid],
            "{label}"
        );

        let record = shop
            .db
            .store
            .find_record(&order.order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"));
        assert_eq!(record.trade_type.as_deref(), Some("NATIVE"));
        assert_eq!(record.appid, APP_ID);
        assert_eq!(record.mch_id, MCH_ID);
        assert!(
            record
                .last_notify
                .as_deref()
                .unwrap()
                .contains(&order.order_id)
        );
        assert!(!record.last_notify.as_deref().unwrap().contains(API_KEY));

        // Paid orders cannot be paid or cancelled again.
        let err = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PayError::OrderPaid { .. }), "{err}");
        let err = shop.pay.cancel(&order.order_id).await.unwrap_err();
        assert!(matches!(err, PayError::OrderPaid { .. }), "{err}");

        // PaySvc query.
        let summary = shop
            .app
            .call(
                "pays.services.PaySvc",
                "query",
                json!({"orderId": order.order_id}),
                &CallContext::principal("test"),
            )
            .await
            .unwrap();
        assert_eq!(summary["status"], "success");
        assert_eq!(summary["amount"], "99.99");
        assert_eq!(summary["amountFen"], 9999);
        assert!(summary["payTime"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mweb_jsapi_and_app_flows() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        // MWEB needs the payer's IP.
        let order = shop
            .pay
            .create("H5 order", yuan("1.50"), None)
            .await
            .unwrap();
        let err = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Mweb, &Payer::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("clientIp"), "{err}");
        let payer = Payer {
            client_ip: Some("203.0.113.9".into()),
            ..Payer::default()
        };
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Mweb, &payer)
            .await
            .unwrap();
        assert!(url.pay_url.starts_with("http"), "{label}: {url:?}");
        shop.sim.pay(order.order_id.as_str()).unwrap();
        assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);

        // JSAPI needs the openid; form carries signed chooseWXPay parameters.
        let order = shop
            .pay
            .create("In-WeChat order", yuan("2"), None)
            .await
            .unwrap();
        let err = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Jsapi, &Payer::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("openid"), "{err}");
        let payer = Payer {
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            ..Payer::default()
        };
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Jsapi, &payer)
            .await
            .unwrap();
        assert!(url.pay_url.starts_with("prepay_id="), "{url:?}");
        let form: Value = serde_json::from_str(&url.form).unwrap();
        assert_eq!(form["appId"], APP_ID);
        assert_eq!(form["package"], url.pay_url);
        let mut params = wechatpay_v2::Params::new();
        for key in ["appId", "timeStamp", "nonceStr", "package", "signType"] {
            params.insert(key.into(), form[key].as_str().unwrap().into());
        }
        params.insert("paySign".into(), form["paySign"].as_str().unwrap().into());
        let expected = wechatpay_v2::sign(
            &params
                .iter()
                .filter(|(k, _)| *k != "paySign")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            wechatpay_v2::SignType::Md5,
            &wechatpay_v2::ApiKey::new(API_KEY),
        );
        assert_eq!(form["paySign"], expected, "{label}");
        shop.sim.pay(order.order_id.as_str()).unwrap();
        assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);

        // APP.
        let order = shop
            .pay
            .create("App order", yuan("3.3"), None)
            .await
            .unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::App, &Payer::default())
            .await
            .unwrap();
        let form: Value = serde_json::from_str(&url.form).unwrap();
        assert_eq!(form["partnerid"], MCH_ID);
        assert_eq!(form["package"], "Sign=WXPay");
        assert!(form["sign"].as_str().unwrap().len() == 32);
        shop.sim.pay(order.order_id.as_str()).unwrap();
        assert_eq!(shop.wait_settled(&order.order_id).await, PayStatus::Success);
        let paid_events = shop
            .delivered_events()
            .await
            .iter()
            .filter(|e| e.kind == PayEventKind::Paid)
            .count();
        assert_eq!(paid_events, 3, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_round_trip_exactly_through_json_and_wechat() {
    for shop in shops(ShopOptions::default).await {
        for (amount, fen) in [
            (json!(99.99), 9999),
            (json!(0.01), 1),
            (json!(0.29), 29),
            (json!(19.9), 1990),
            (json!("9.8"), 980),
        ] {
            let created = shop
                .app
                .call(
                    "pays.services.PaySvc",
                    "create",
                    json!({"subject": "Amount check", "amount": amount}),
                    &CallContext::principal("test"),
                )
                .await;
            // "9.8" as a string is a decimal string, which the declared Numeric type takes.
            let created = created.unwrap_or_else(|err| panic!("{amount}: {err}"));
            assert_eq!(created["amountFen"], fen, "{amount}");
            let order_id = created["orderId"].as_str().unwrap().to_owned();
            let url = shop
                .app
                .call(
                    "pays.services.PaySvc",
                    "getPayUrl",
                    json!({"orderId": order_id}),
                    &CallContext::principal("test"),
                )
                .await
                .unwrap();
            assert_eq!(shop.sim.order(&order_id).unwrap().total_fee.get(), fen);
            shop.sim.pay(url["payUrl"].as_str().unwrap()).unwrap();
            assert_eq!(
                shop.wait_settled(&order_id).await,
                PayStatus::Success,
                "{amount}"
            );
            let summary = shop.svc.query(&order_id).await.unwrap();
            assert_eq!(summary.amount_fen.get(), fen);
            assert_eq!(summary.amount, Fen::new(fen).to_string());
        }
        for bad in [json!(0), json!(-1), json!(0.001), json!(1e30)] {
            let err = shop
                .app
                .call(
                    "pays.services.PaySvc",
                    "create",
                    json!({"subject": "Bad", "amount": bad}),
                    &CallContext::principal("test"),
                )
                .await
                .unwrap_err();
            assert_eq!(err.code(), "BAD_ARGUMENTS", "{bad}: {err}");
            assert!(err.message.contains("amount"), "{err}");
        }
        assert_eq!(
            shop.db
                .store
                .count_orders(&Default::default())
                .await
                .unwrap(),
            5,
            "refused creates write nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_and_refuses_duplicates() {
    for shop in shops(ShopOptions::default).await {
        shop.pay
            .create("One", yuan("1"), Some("DUPLICATE-1".into()))
            .await
            .unwrap();
        let err = shop
            .pay
            .create("Two", yuan("2"), Some("DUPLICATE-1".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, PayError::DuplicateOrder { .. }), "{err}");
        assert_eq!(
            shop.pay.get_order("DUPLICATE-1").await.unwrap().subject,
            "One"
        );
        for (subject, order_id, field) in [
            ("", None, "subject"),
            (&*"x".repeat(129), None, "subject"),
            ("ok", Some("bad id"), "orderId"),
            ("ok", Some(&*"9".repeat(33)), "orderId"),
        ] {
            let err = shop
                .pay
                .create(subject, yuan("1"), order_id.map(str::to_owned))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        // Generated ids are unique under concurrency.
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let pay = shop.pay.clone();
            tasks.push(tokio::spawn(async move {
                pay.create("Concurrent", Fen::new(1), None)
                    .await
                    .unwrap()
                    .order_id
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for task in tasks {
            assert!(ids.insert(task.await.unwrap()));
        }
        // Orders of one instance are not reachable through another.
        let err = shop.other.get_order("DUPLICATE-1").await.unwrap_err();
        assert!(matches!(err, PayError::WrongElement { .. }), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_payment_whose_notify_was_lost_and_cancel_closes() {
    let options = || ShopOptions {
        sim: SimConfig::default()
            .with_time_scale(1000.0)
            .with_fault(FaultRule::new(Fault::DropNotify)),
        ..ShopOptions::default()
    };
    for shop in shops(options).await {
        let label = shop.db.label;
        // check before getPayUrl: WeChat does not know it, nothing changes.
        let order = shop
            .pay
            .create("Lost notify", yuan("5"), None)
            .await
            .unwrap();
        assert_eq!(
            shop.pay.check(&order.order_id).await.unwrap().status,
            PayStatus::Wait
        );
        assert_eq!(shop.pay.check_third(&order).await.unwrap(), None);

        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        // No notify is on its way: the simulator dropped it and holds none to deliver.
        shop.wait_no_pending_notifies().await;
        let outcomes: Vec<String> = shop
            .sim
            .inspect()
            .notifies_for(&order.order_id)
            .iter()
            .map(|notify| notify.outcome.clone())
            .collect();
        assert_eq!(outcomes, ["dropped"], "{label}");
        assert_eq!(
            shop.pay.get_order(&order.order_id).await.unwrap().status,
            PayStatus::Wait,
            "{label}: the notify is dropped"
        );
        let checked = shop.pay.check(&order.order_id).await.unwrap();
        assert_eq!(checked.status, PayStatus::Success, "{label}");
        assert!(checked.transaction_id.is_some());
        let record = shop.pay.check_third(&checked).await.unwrap().unwrap();
        assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"));
        assert!(record.last_query.is_some());
        assert_eq!(shop.events_for(&order.order_id).await, [PayEventKind::Paid]);

        // cancel: closed at WeChat and locally.
        let order = shop.pay.create("To cancel", yuan("6"), None).await.unwrap();
        shop.pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        let result = shop.pay.cancel(&order.order_id).await.unwrap();
        assert!(result.closed);
        assert_eq!(result.order.status, PayStatus::Close);
        assert_eq!(
            shop.sim.order(&order.order_id).unwrap().state,
            wechatpay_sim::TradeState::Closed,
            "closed at WeChat too"
        );
        assert!(shop.sim.pay(order.order_id.as_str()).is_err());
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Closed]
        );
        // Cancelling again is harmless.
        assert!(shop.pay.cancel(&order.order_id).await.unwrap().closed);
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Closed]
        );

        // cancel of an order never sent to WeChat.
        let order = shop
            .pay
            .create("Never sent", yuan("7"), None)
            .await
            .unwrap();
        assert_eq!(
            shop.pay.cancel(&order.order_id).await.unwrap().order.status,
            PayStatus::Close
        );

        // cancel of an order paid at WeChat (notify lost): ORDERPAID → checked → paid.
        let order = shop
            .pay
            .create("Paid meanwhile", yuan("8"), None)
            .await
            .unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        let err = shop.pay.cancel(&order.order_id).await.unwrap_err();
        assert!(matches!(err, PayError::OrderPaid { .. }), "{label}: {err}");
        assert_eq!(
            shop.pay.get_order(&order.order_id).await.unwrap().status,
            PayStatus::Success
        );
        assert_eq!(shop.events_for(&order.order_id).await, [PayEventKind::Paid]);
        // Over JSON the code is stable.
        let err = shop
            .app
            .call(
                "pays.myWechatPay",
                "cancel",
                json!({"orderId": order.order_id}),
                &CallContext::principal("test"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ORDER_PAID");
        assert_eq!(err.kind, CallErrorKind::Conflict);
    }
}

async fn post_notify(shop: &shop::Shop, body: &str) -> (NotifyOutcome, String) {
    let reply = shop.svc.wechat_notify(body.as_bytes()).await;
    (reply.outcome().clone(), reply.xml())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_mismatched_notifies_change_nothing() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        let order = shop.pay.create("Target", yuan("2000"), None).await.unwrap();
        let id = order.order_id.as_str();
        let cases = [
            (
                "wrong key",
                shop::signed_notify(APP_ID, MCH_ID, OTHER_API_KEY, id, 200000, "T1"),
            ),
            (
                "1-fen payment",
                shop::signed_notify(APP_ID, MCH_ID, API_KEY, id, 1, "T1"),
            ),
            (
                "wrong appid",
                shop::signed_notify(OTHER_APP_ID, MCH_ID, API_KEY, id, 200000, "T1"),
            ),
            (
                "wrong mch_id",
                shop::signed_notify(APP_ID, OTHER_MCH_ID, API_KEY, id, 200000, "T1"),
            ),
            (
                "other merchant's genuine notify",
                shop::signed_notify(OTHER_APP_ID, OTHER_MCH_ID, OTHER_API_KEY, id, 200000, "T1"),
            ),
            (
                "unknown order",
                shop::signed_notify(APP_ID, MCH_ID, API_KEY, "NOSUCHORDER", 200000, "T1"),
            ),
            (
                "tampered amount",
                shop::signed_notify(APP_ID, MCH_ID, API_KEY, id, 200000, "T1")
                    .replace("<total_fee>200000</total_fee>", "<total_fee>1</total_fee>")
                    .replace(
                        "<total_fee><![CDATA[200000]]></total_fee>",
                        "<total_fee><![CDATA[1]]></total_fee>",
                    ),
            ),
            ("not xml", "hello".to_owned()),
            (
                "doctype",
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><out_trade_no>{id}</out_trade_no><a>&e;</a></xml>"
                ),
            ),
            (
                "unsigned",
                format!(
                    "<xml><return_code>SUCCESS</return_code><out_trade_no>{id}</out_trade_no></xml>"
                ),
            ),
        ];
        for (case, body) in cases {
            let (outcome, xml) = post_notify(&shop, &body).await;
            assert!(
                matches!(outcome, NotifyOutcome::Rejected { .. }),
                "{label} {case}: {outcome:?}"
            );
            // One reply for every refusal: it tells a forger nothing.
            assert_eq!(xml, wechatpay_v2::fail_reply("notify refused"), "{case}");
        }
        let after = shop.pay.get_order(id).await.unwrap();
        assert_eq!(after.status, PayStatus::Wait, "{label}");
        assert!(shop.delivered_events().await.is_empty());
        assert!(
            shop.db.store.find_record(id).await.unwrap().is_none(),
            "{label}: nothing recorded"
        );

        // The genuine one works, through the instance that owns the order.
        let (outcome, xml) = post_notify(
            &shop,
            &shop::signed_notify(APP_ID, MCH_ID, API_KEY, id, 200000, "T1"),
        )
        .await;
        assert_eq!(
            outcome,
            NotifyOutcome::Paid {
                order_id: id.into()
            }
        );
        assert_eq!(xml, NOTIFY_SUCCESS_REPLY);

        // And the other merchant's orders verify with the other merchant's key.
        let other = shop.other.create("Other", yuan("1"), None).await.unwrap();
        let genuine = shop::signed_notify(
            OTHER_APP_ID,
            OTHER_MCH_ID,
            OTHER_API_KEY,
            &other.order_id,
            100,
            "T2",
        );
        assert_eq!(
            post_notify(&shop, &genuine).await.0,
            NotifyOutcome::Paid {
                order_id: other.order_id.clone()
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_notify_a_hundred_times_concurrently_is_one_transition() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        let order = shop
            .pay
            .create("Popular", yuan("19.9"), None)
            .await
            .unwrap();
        let body = shop::signed_notify(APP_ID, MCH_ID, API_KEY, &order.order_id, 1990, "T100");
        let svc = shop.svc.clone();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let svc = svc.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                svc.wechat_notify(body.as_bytes()).await
            }));
        }
        let mut paid = 0;
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!(
                reply.xml(),
                NOTIFY_SUCCESS_REPLY,
                "{label}: {:?}",
                reply.outcome()
            );
            match reply.outcome() {
                NotifyOutcome::Paid { .. } => paid += 1,
                NotifyOutcome::AlreadyPaid { .. } => {}
                other => panic!("{label}: {other:?}"),
            }
        }
        assert_eq!(paid, 1, "{label}");
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Paid],
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_that_arrives_before_get_pay_url_returns() {
    let options = || ShopOptions {
        sim: SimConfig::default()
            .with_time_scale(1000.0)
            .with_fault(FaultRule::new(Fault::NotifyBeforeReply).times(1)),
        ..ShopOptions::default()
    };
    for shop in shops(options).await {
        let label = shop.db.label;
        let order = shop
            .pay
            .create("Fast payer", yuan("0.29"), None)
            .await
            .unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        assert!(url.pay_url.starts_with("weixin://"));
        let order = shop.pay.get_order(&order.order_id).await.unwrap();
        assert_eq!(
            order.status,
            PayStatus::Success,
            "{label}: paid before the reply"
        );
        assert_eq!(order.pay_type.as_deref(), Some("NATIVE"));
        let record = shop
            .db
            .store
            .find_record(&order.order_id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            record.prepay_id.is_some() && record.last_notify.is_some(),
            "{label}"
        );
        assert_eq!(shop.events_for(&order.order_id).await, [PayEventKind::Paid]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_a_local_close_is_recorded_and_flagged() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        let order = shop.pay.create("Late", yuan("12.34"), None).await.unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        // Closed locally (e.g. the local expiry ran) while the payer was paying at WeChat.
        shop.db
            .store
            .close_order(&order.order_id, PayStatus::Timeout)
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        assert_eq!(
            shop.wait_settled_flagged(&order.order_id).await,
            PayStatus::Success,
            "{label}"
        );
        let paid = shop.pay.get_order(&order.order_id).await.unwrap();
        assert!(paid.paid_after_close, "{label}");
        assert!(paid.closed_at.is_some());
        // Both transitions have their event, in commit order.
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::TimedOut, PayEventKind::PaidAfterClose]
        );
        let flagged = shop
            .app
            .call(
                "pays.models.PayLogModel",
                "get",
                json!({"orderId": order.order_id}),
                &CallContext::principal("test"),
            )
            .await
            .unwrap();
        assert_eq!(flagged["paidAfterClose"], true);
        assert_eq!(flagged["status"], "success");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_finds_lost_payments_and_times_out_expired_orders() {
    let options = || ShopOptions {
        sim: SimConfig::default()
            .with_time_scale(1000.0)
            .with_fault(FaultRule::new(Fault::DropNotify)),
        order_expiry: Duration::from_secs(3),
        reconciler: ReconcilerSettings {
            first_check_after: Duration::from_millis(200),
            max_backoff: Duration::from_millis(400),
            scan_interval: Duration::from_millis(100),
            batch_size: 50,
            ..ReconcilerSettings::default()
        },
        ..ShopOptions::default()
    };
    for shop in shops(options).await {
        let label = shop.db.label;
        let handle = jit_pays::start_reconciler(&shop.app).unwrap();
        let paid = shop
            .pay
            .create("Paid, notify lost", yuan("4.2"), None)
            .await
            .unwrap();
        let url = shop
            .pay
            .get_pay_url(&paid.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        let unpaid = shop
            .pay
            .create("Never paid", yuan("4.3"), None)
            .await
            .unwrap();
        shop.pay
            .get_pay_url(&unpaid.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        let never_sent = shop
            .other
            .create("No prepay", yuan("4.4"), None)
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();

        assert_eq!(
            shop.wait_settled(&paid.order_id).await,
            PayStatus::Success,
            "{label}"
        );
        assert_eq!(
            shop.wait_settled(&unpaid.order_id).await,
            PayStatus::Timeout,
            "{label}"
        );
        assert_eq!(
            shop.wait_settled(&never_sent.order_id).await,
            PayStatus::Timeout,
            "{label}"
        );
        assert_eq!(
            shop.sim.order(&unpaid.order_id).unwrap().state,
            wechatpay_sim::TradeState::Closed,
            "{label}: closed at WeChat"
        );
        assert_eq!(shop.events_for(&paid.order_id).await, [PayEventKind::Paid]);
        assert_eq!(
            shop.events_for(&unpaid.order_id).await,
            [PayEventKind::TimedOut]
        );
        let waited = shop.db.store.get_order(&unpaid.order_id).await.unwrap();
        assert!(
            waited.check_attempts >= 1,
            "{label}: backed off between queries"
        );
        handle.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_log_model_and_element_functions() {
    for shop in shops(ShopOptions::default).await {
        let cx = CallContext::principal("test");
        for i in 0..5 {
            shop.pay
                .create(
                    &format!("Item {i}"),
                    Fen::new(100 + i),
                    Some(format!("PLM{i}")),
                )
                .await
                .unwrap();
        }
        shop.pay.cancel("PLM0").await.unwrap();
        let page = shop
            .app
            .call(
                "pays.models.PayLogModel",
                "query",
                json!({"status": "wait", "page": 1, "pageSize": 3}),
                &cx,
            )
            .await
            .unwrap();
        assert_eq!(page["total"], 4);
        assert_eq!(page["items"].as_array().unwrap().len(), 3);
        let count = shop
            .app
            .call(
                "pays.models.PayLogModel",
                "count",
                json!({"status": "close", "createdFrom": "2020-01-01 00:00:00"}),
                &cx,
            )
            .await
            .unwrap();
        assert_eq!(count, 1);
        let err = shop
            .app
            .call(
                "pays.models.PayLogModel",
                "query",
                json!({"status": "pending"}),
                &cx,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "BAD_ARGUMENTS");
        let err = shop
            .app
            .call(
                "pays.models.PayLogModel",
                "get",
                json!({"orderId": "NOPE"}),
                &cx,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ORDER_NOT_FOUND");
        assert_eq!(err.kind, CallErrorKind::NotFound);

        let model = shop
            .app
            .get::<jit_pays::PayLogModel>("pays.models.PayLogModel")
            .await
            .unwrap();
        assert_eq!(
            model.queryset().get("PLM3").await.unwrap().amount.get(),
            103
        );
        assert_eq!(
            model
                .queryset()
                .status(PayStatus::Wait)
                .count()
                .await
                .unwrap(),
            4
        );

        // The instance's functions, properties and masked config.
        let props = shop
            .app
            .call("pays.myWechatPay", "getProperties", Value::Null, &cx)
            .await
            .unwrap();
        assert_eq!(props["appId"], APP_ID);
        assert_eq!(props["mchId"], MCH_ID, "the config file wins over e.json");
        assert_eq!(props["apiKey"], "******");
        assert!(!props.to_string().contains(API_KEY));
        assert_eq!(shop.pay.api_key().expose(), API_KEY);
        assert!(!format!("{:?}", shop.pay.api_key()).contains(API_KEY));
        let id = shop
            .app
            .call("pays.myWechatPay", "generateOrderId", Value::Null, &cx)
            .await
            .unwrap();
        assert_eq!(id.as_str().unwrap().len(), 21);
        let notify = shop
            .app
            .call("pays.myWechatPay", "getNotifyUrl", Value::Null, &cx)
            .await
            .unwrap();
        assert!(
            notify
                .as_str()
                .unwrap()
                .ends_with("/api/demo/shop/pays/services/PaySvc/wechatNotify")
        );

        // wechatNotify is public, and answers XML text.
        let reply = shop
            .app
            .call(
                "pays.services.PaySvc",
                "wechatNotify",
                json!({"xml": shop::signed_notify(APP_ID, MCH_ID, API_KEY, "PLM1", 101, "TX")}),
                &CallContext::anonymous(),
            )
            .await
            .unwrap();
        assert_eq!(reply, NOTIFY_SUCCESS_REPLY);
        let decl = shop
            .app
            .chain("pays.services.PaySvc")
            .unwrap()
            .function("wechatNotify")
            .unwrap()
            .clone();
        assert!(!decl.login_required);
        assert_eq!(decl.body_format, jit_runtime::BodyFormat::Xml);
        // Others need a caller.
        let err = shop
            .app
            .call(
                "pays.services.PaySvc",
                "query",
                json!({"orderId": "PLM1"}),
                &CallContext::anonymous(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UNAUTHORIZED");
        let _ = Arc::clone(&shop.svc);
    }
}

/// notify, check, the reconciler's step and cancel all race on one paid order: one
/// transition, one announcement; every caller sees it paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_check_reconcile_and_cancel_racing_announce_once() {
    let options = || ShopOptions {
        sim: SimConfig::default()
            .with_time_scale(1000.0)
            .with_fault(FaultRule::new(Fault::DropNotify)),
        ..ShopOptions::default()
    };
    for shop in shops(options).await {
        let label = shop.db.label;
        let order = shop.pay.create("Raced", yuan("7.77"), None).await.unwrap();
        let url = shop
            .pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        shop.sim.pay(url.pay_url.as_str()).unwrap();
        let body = shop::signed_notify(APP_ID, MCH_ID, API_KEY, &order.order_id, 777, "TRACE");
        let mut tasks = Vec::new();
        for i in 0..60 {
            let pay = shop.pay.clone();
            let svc = shop.svc.clone();
            let body = body.clone();
            let id = order.order_id.clone();
            tasks.push(tokio::spawn(async move {
                match i % 4 {
                    0 => {
                        let reply = svc.wechat_notify(body.as_bytes()).await;
                        assert!(reply.acknowledged(), "{:?}", reply.outcome());
                    }
                    1 => assert_eq!(pay.check(&id).await.unwrap().status, PayStatus::Success),
                    2 => assert_eq!(pay.reconcile(&id).await.unwrap().status, PayStatus::Success),
                    _ => {
                        let err = pay.cancel(&id).await.unwrap_err();
                        assert!(matches!(err, PayError::OrderPaid { .. }), "{err}");
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Paid],
            "{label}"
        );

        // Concurrent cancels of an unpaid order: one close, one announcement.
        let order = shop
            .pay
            .create("Cancelled twice", yuan("1"), None)
            .await
            .unwrap();
        shop.pay
            .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pay = shop.pay.clone();
            let id = order.order_id.clone();
            tasks.push(tokio::spawn(async move { pay.cancel(&id).await.unwrap() }));
        }
        for task in tasks {
            assert!(task.await.unwrap().closed);
        }
        assert_eq!(
            shop.events_for(&order.order_id).await,
            [PayEventKind::Closed],
            "{label}"
        );
    }
}

/// Many distinct orders notified at once: every one commits (no "database is locked"
/// under SQLite's single writer), each announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notifies_for_distinct_orders_all_commit() {
    for shop in shops(ShopOptions::default).await {
        let label = shop.db.label;
        let mut bodies = Vec::new();
        for _ in 0..120 {
            let order = shop.pay.create("Bulk", yuan("0.5"), None).await.unwrap();
            bodies.push(shop::signed_notify(
                APP_ID,
                MCH_ID,
                API_KEY,
                &order.order_id,
                50,
                &format!("T{}", order.order_id),
            ));
        }
        let mut tasks = Vec::new();
        for body in bodies.iter().chain(bodies.iter()) {
            let svc = shop.svc.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                svc.wechat_notify(body.as_bytes()).await
            }));
        }
        let mut paid = 0;
        for task in tasks {
            let reply = task.await.unwrap();
            assert!(reply.acknowledged(), "{label}: {:?}", reply.outcome());
            if matches!(reply.outcome(), NotifyOutcome::Paid { .. }) {
                paid += 1;
            }
        }
        assert_eq!(paid, 120, "{label}");
        let announced = shop
            .delivered_events()
            .await
            .iter()
            .filter(|e| e.kind == PayEventKind::Paid)
            .count();
        assert_eq!(announced, 120, "{label}");
    }
}
