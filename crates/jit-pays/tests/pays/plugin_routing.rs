//! PaySvc and the reconciler with a pay element that offers no typed `dyn Pay` — as a
//! plugin's Type extending `pays.WechatPayType` does — and is reached only through
//! `Element::call`: a Rust fixture that delegates every function to a real
//! `pays.WechatPayType` element except `create` (10% off), and the real example plugin
//! (`crates/example-discount-plugin`) loaded by `jit-plugin-host`, which checks every
//! argument its parent receives against the parent's declaration. The override must stay
//! in force on every path.

use crate::support;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::support::shop::{API_KEY, APP_ID, MCH_ID, signed_notify};
use jit_pays::{
    NotifyOutcome, Pay, PayEventKind, PayEvents, PayStatus, PaySvc, PaysSettings,
    ReconcilerSettings, reconcile_due,
};
use jit_runtime::{
    CallContext, CallError, Element, ElementDef, ElementError, GetError, LoadContext, Loader,
    async_trait,
};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use wechatpay_sim::{SimConfig, Simulator};
use wechatpay_v2::NOTIFY_SUCCESS_REPLY;

/// Only `Element::call`: no `interface`, so `App::get::<dyn Pay>` refuses it.
struct CallOnly {
    def: Arc<ElementDef>,
    parent: Arc<dyn Element>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

#[async_trait]
impl Element for CallOnly {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        mut args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        *self.calls.lock().entry(function.to_owned()).or_default() += 1;
        if function == "create" {
            // 10% off, in integer fen, the amount arriving as yuan text or number.
            let fen = wechatpay_v2::Fen::from_yuan_json(&args["amount"]).unwrap();
            let discounted = wechatpay_v2::Fen::new(fen.get() - fen.get() / 10);
            args.insert("amount".into(), Value::String(discounted.to_string()));
        }
        self.parent.call(function, args, cx).await
    }
}

struct CallOnlyLoader {
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

#[async_trait]
impl Loader for CallOnlyLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(CallOnly {
            def: cx.def().clone(),
            parent: cx.load_with_parent().await?,
            calls: self.calls.clone(),
        }))
    }
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_svc_and_the_reconciler_work_through_an_element_without_a_typed_pay() {
    for db in support::all().await {
        let label = db.label;
        // WeChat's notifies go nowhere: this test hands them to PaySvc itself.
        let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("app.toml"),
            "[app]\norg = \"demo\"\nname = \"shop\"\n",
        );
        write(
            &root.join("elements/pays/DiscountPayType/e.json"),
            r#"{"type": "pays.WechatPayType", "title": "Discounted WeChat Pay"}"#,
        );
        write(
            &root.join("elements/pays/myDiscountPay/e.json"),
            &format!(
                r#"{{"type": "pays.DiscountPayType", "title": "Shop", "appId": "{APP_ID}", "mchId": "{MCH_ID}", "apiKey": "{API_KEY}"}}"#
            ),
        );
        let calls = Arc::new(Mutex::new(HashMap::new()));
        let mut settings = PaysSettings::new(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/notify",
            sim.base_url(),
        );
        settings.order_expiry = Duration::from_secs(3600);
        settings.reconciler = ReconcilerSettings {
            first_check_after: Duration::ZERO,
            ..ReconcilerSettings::default()
        };
        let app = jit_pays::register(
            jit_runtime::AppBuilder::new(root),
            db.store.clone(),
            settings,
        )
        .loader(
            "pays.DiscountPayType",
            CallOnlyLoader {
                calls: calls.clone(),
            },
        )
        .build()
        .await
        .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        app.service::<PayEvents>()
            .unwrap()
            .subscribe(move |event| sink.lock().push((event.order_id.clone(), event.kind)));
        let _outbox = support::start_outbox(&app).await;
        // The premise: typed access is refused.
        assert!(matches!(
            app.get::<dyn Pay>("pays.myDiscountPay").await,
            Err(GetError::WrongKind { .. })
        ));
        let cx = CallContext::principal("t");
        let svc_call = |function: &'static str, args: Value| {
            let app = app.clone();
            let cx = cx.clone();
            async move { app.call("pays.services.PaySvc", function, args, &cx).await }
        };

        // create, named and by default (the only instance), with the override applied.
        let created = svc_call(
            "create",
            json!({"subject": "Sale", "amount": 10, "element": "pays.myDiscountPay"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(created["amountFen"], 900, "{label}");
        assert_eq!(created["element"], "pays.myDiscountPay", "{label}");
        let order_id = created["orderId"].as_str().unwrap().to_owned();
        let by_default = svc_call("create", json!({"subject": "Sale", "amount": 0.3}))
            .await
            .unwrap();
        assert_eq!(by_default["amountFen"], 27, "{label}");
        let lost_id = by_default["orderId"].as_str().unwrap().to_owned();

        // getPayUrl routed to the owner, through its functions.
        let url = svc_call("getPayUrl", json!({"orderId": order_id}))
            .await
            .unwrap();
        assert!(
            url["payUrl"].as_str().unwrap().starts_with("weixin://"),
            "{label}: {url}"
        );

        // wechatNotify: SUCCESS only once committed, one transition, one hook call.
        let svc = app.get::<PaySvc>("pays.services.PaySvc").await.unwrap();
        let body = signed_notify(APP_ID, MCH_ID, API_KEY, &order_id, 900, "T-plugin");
        let reply = svc.wechat_notify(body.as_bytes()).await;
        assert_eq!(
            reply.xml(),
            NOTIFY_SUCCESS_REPLY,
            "{label}: {:?}",
            reply.outcome()
        );
        assert_eq!(
            *reply.outcome(),
            NotifyOutcome::Paid {
                order_id: order_id.clone()
            },
            "{label}"
        );
        let again = svc_call("wechatNotify", json!({"xml": body}))
            .await
            .unwrap();
        assert_eq!(again, NOTIFY_SUCCESS_REPLY, "{label}");
        // A forged notify is refused the same way as for a typed element.
        let forged = signed_notify(APP_ID, MCH_ID, &"x".repeat(32), &lost_id, 27, "T-forged");
        let refused = svc.wechat_notify(forged.as_bytes()).await;
        assert!(
            matches!(refused.outcome(), NotifyOutcome::Rejected { .. }),
            "{label}: {:?}",
            refused.outcome()
        );
        let summary = svc_call("query", json!({"orderId": order_id}))
            .await
            .unwrap();
        assert_eq!(summary["status"], "success", "{label}");
        assert_eq!(summary["amount"], "9.00", "{label}");

        // check: paid at WeChat, its notify lost → orderquery finds it.
        svc_call("getPayUrl", json!({"orderId": lost_id}))
            .await
            .unwrap();
        sim.pay(lost_id.as_str()).unwrap();
        let checked = svc_call("check", json!({"orderId": lost_id}))
            .await
            .unwrap();
        assert_eq!(checked["status"], "success", "{label}: {checked}");

        // The reconciler reaches such elements too.
        let waiting = svc_call("create", json!({"subject": "Later", "amount": 1}))
            .await
            .unwrap();
        let waiting_id = waiting["orderId"].as_str().unwrap().to_owned();
        let report = reconcile_due(&app).await.unwrap();
        assert_eq!(report.failed, 0, "{label}: {report:?}");
        assert_eq!(
            db.store.get_order(&waiting_id).await.unwrap().status,
            PayStatus::Wait,
            "{label}"
        );

        // Refunds go through the element's own functions too.
        let refund = svc_call("refund", json!({"orderId": lost_id, "amount": 0.1}))
            .await
            .unwrap();
        assert_eq!(refund["amountFen"], 10, "{label}: {refund}");
        let refunds = svc_call("listRefunds", json!({"orderId": lost_id}))
            .await
            .unwrap();
        assert_eq!(refunds[0]["refundId"], refund["refundId"], "{label}");
        let queried = svc_call("queryRefund", json!({"refundId": refund["refundId"]}))
            .await
            .unwrap();
        assert_eq!(queried["status"], "success", "{label}: {queried}");

        // Errors keep their codes: an unknown order through the element's own check.
        let pay = svc.pay_named("pays.myDiscountPay").await.unwrap();
        let missing = pay.check("NOSUCHORDER").await.unwrap_err();
        assert_eq!(missing.code(), "ORDER_NOT_FOUND", "{label}: {missing}");
        assert_eq!(pay.mch_id(), MCH_ID);
        assert_eq!(pay.config()["apiKey"], jit_runtime::MASK);

        support::wait_outbox_idle(&db.store).await;
        assert_eq!(
            *events.lock(),
            [
                (order_id.clone(), PayEventKind::Paid),
                (lost_id.clone(), PayEventKind::Paid),
                (lost_id.clone(), PayEventKind::RefundRequested),
                // WeChat's notifies go nowhere here: queryRefund found it refunded.
                (lost_id.clone(), PayEventKind::RefundSucceeded),
            ],
            "{label}"
        );
        let calls = calls.lock();
        for function in [
            "create",
            "getPayUrl",
            "notify",
            "check",
            "refund",
            "listRefunds",
            "queryRefund",
        ] {
            assert!(
                calls.get(function).copied().unwrap_or(0) > 0,
                "{label}: `{function}` went through Element::call: {calls:?}"
            );
        }
        assert_eq!(calls["create"], 3, "{label}");
        assert_eq!(
            calls["notify"], 3,
            "{label}: notify, its repeat, the forged one"
        );
    }
}

/// The example discount plugin's library, built with cargo once per run of this binary.
fn discount_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        test_support::build_cdylibs(&["example-discount-plugin"], !cfg!(debug_assertions))
            .remove("example_discount_plugin")
            .expect("built")
    })
}

/// Every PaySvc function through an instance of the example plugin's Type (10% off, as
/// `discountPercent` says): create (named and by default), getPayUrl, query, check and
/// wechatNotify, each as the HTTP host calls it (`App::call`), plus the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pay_svc_function_works_through_the_example_plugin() {
    let library = tokio::task::spawn_blocking(discount_plugin)
        .await
        .expect("building the example plugin");
    let file_name = test_support::library_file_name("example_discount_plugin");
    for db in support::all().await {
        let label = db.label;
        // WeChat's notifies go nowhere: this test hands them to PaySvc itself.
        let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("app.toml"),
            "[app]\norg = \"demo\"\nname = \"shop\"\n",
        );
        let type_dir = root.join("elements/pays/DiscountPayType");
        write(
            &type_dir.join("e.json"),
            &json!({
                "type": "pays.WechatPayType",
                "title": "WeChat Pay with a discount",
                "backendBundleEntry": file_name,
                "discountPercent": 10
            })
            .to_string(),
        );
        std::fs::copy(library, type_dir.join(&file_name)).unwrap();
        write(
            &root.join("elements/pays/myDiscountPay/e.json"),
            &format!(
                r#"{{"type": "pays.DiscountPayType", "title": "Shop", "appId": "{APP_ID}", "mchId": "{MCH_ID}", "apiKey": "{API_KEY}"}}"#
            ),
        );
        let definitions = jit_pays::register_loaders(jit_runtime::AppBuilder::new(root))
            .load_definitions()
            .unwrap();
        let mut settings = PaysSettings::new(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/notify",
            sim.base_url(),
        );
        settings.reconciler = ReconcilerSettings {
            first_check_after: Duration::ZERO,
            ..ReconcilerSettings::default()
        };
        let builder = jit_pays::register(
            jit_runtime::AppBuilder::new(root),
            db.store.clone(),
            settings,
        );
        let app = jit_plugin_host::register_plugins(builder, &definitions)
            .unwrap_or_else(|e| panic!("{label}: {e}"))
            .build()
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        app.service::<PayEvents>()
            .unwrap()
            .subscribe(move |event| sink.lock().push((event.order_id.clone(), event.kind)));
        let _outbox = support::start_outbox(&app).await;
        // The premise: a plugin's element offers no typed pay.
        assert!(matches!(
            app.get::<dyn Pay>("pays.myDiscountPay").await,
            Err(GetError::WrongKind { .. })
        ));
        let cx = CallContext::principal("t");
        let svc_call = |function: &'static str, args: Value| {
            let app = app.clone();
            let cx = cx.clone();
            async move {
                app.call("pays.services.PaySvc", function, args, &cx)
                    .await
                    .unwrap_or_else(|e| panic!("{label}: PaySvc.{function}: {e}"))
            }
        };

        // create, named and by default, with the plugin's discount in force.
        let named = svc_call(
            "create",
            json!({"subject": "Coffee", "amount": 99.99, "element": "pays.myDiscountPay"}),
        )
        .await;
        assert_eq!(named["amountFen"], 8999, "{label}: {named}");
        assert_eq!(named["element"], "pays.myDiscountPay", "{label}");
        let order_id = named["orderId"].as_str().unwrap().to_owned();
        let by_default = svc_call("create", json!({"subject": "Tea", "amount": 0.29})).await;
        assert_eq!(by_default["amountFen"], 26, "{label}: {by_default}");
        let lost_id = by_default["orderId"].as_str().unwrap().to_owned();

        // getPayUrl, routed to the plugin's element.
        let url = svc_call("getPayUrl", json!({"orderId": order_id})).await;
        assert!(
            url["payUrl"].as_str().unwrap().starts_with("weixin://"),
            "{label}: {url}"
        );
        let queried = svc_call("query", json!({"orderId": order_id})).await;
        assert_eq!(queried["status"], "wait", "{label}: {queried}");
        assert_eq!(queried["amount"], "89.99", "{label}: {queried}");

        // wechatNotify: the plugin's parent verifies and records it, once.
        let body = signed_notify(APP_ID, MCH_ID, API_KEY, &order_id, 8999, "T-example-plugin");
        let reply = svc_call("wechatNotify", json!({"xml": body})).await;
        assert_eq!(reply, NOTIFY_SUCCESS_REPLY, "{label}");
        let queried = svc_call("query", json!({"orderId": order_id})).await;
        assert_eq!(queried["status"], "success", "{label}: {queried}");

        // check: paid at WeChat, its notify lost → orderquery finds it.
        svc_call("getPayUrl", json!({"orderId": lost_id})).await;
        sim.pay(lost_id.as_str()).unwrap();
        let checked = svc_call("check", json!({"orderId": lost_id})).await;
        assert_eq!(checked["status"], "success", "{label}: {checked}");
        assert_eq!(checked["amountFen"], 26, "{label}: {checked}");

        // The reconciler reaches the plugin's orders too.
        let waiting = svc_call("create", json!({"subject": "Later", "amount": 1})).await;
        let report = reconcile_due(&app).await.unwrap();
        assert_eq!(report.failed, 0, "{label}: {report:?}");
        assert_eq!(
            db.store
                .get_order(waiting["orderId"].as_str().unwrap())
                .await
                .unwrap()
                .status,
            PayStatus::Wait,
            "{label}"
        );
        support::wait_outbox_idle(&db.store).await;
        assert_eq!(
            *events.lock(),
            [
                (order_id.clone(), PayEventKind::Paid),
                (lost_id.clone(), PayEventKind::Paid)
            ],
            "{label}"
        );
    }
}
