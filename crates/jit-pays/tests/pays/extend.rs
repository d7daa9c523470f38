//! A Type extending `pays.WechatPayType` in Rust: wraps the parent's `dyn Pay`, overrides
//! `create` (a discount) and `cancel` (a rule), delegates the rest.

use crate::support;
use std::sync::Arc;

use jit_pays::{
    CancelResult, Pay, PayElement, PayError, PayExtension, PayLog, PaysSettings, pay_of,
};
use jit_runtime::{CallContext, Element, ElementError, LoadContext, Loader, async_trait};
use serde_json::{Value, json};
use wechatpay_v2::Fen;

struct Discounted {
    parent: Arc<dyn Pay>,
}

/// Only `create` and `cancel` change; the rest is the parent's (PayExtension's defaults).
#[async_trait]
impl PayExtension for Discounted {
    fn parent(&self) -> &Arc<dyn Pay> {
        &self.parent
    }
    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        // 10% off, in integer fen.
        let discounted = Fen::new(amount.get() - amount.get() / 10);
        self.parent.create(subject, discounted, order_id).await
    }
    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        if order_id.starts_with("KEEP") {
            return Err(PayError::Invalid {
                field: "orderId",
                message: "KEEP orders cannot be cancelled".into(),
            });
        }
        self.parent.cancel(order_id).await
    }
}

struct DiscountLoader;

#[async_trait]
impl Loader for DiscountLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let parent = cx.load_with_parent().await?;
        let parent = pay_of(parent).ok_or_else(|| ElementError::msg("parent is not a pay"))?;
        Ok(Arc::new(PayElement::new(
            cx.def().clone(),
            Arc::new(Discounted { parent }),
        )))
    }
}

/// An app with a Type `pays.MyWechatPayType` extending `pays.WechatPayType` and its
/// instance `pays.shopPay`.
fn write_app(root: &std::path::Path) {
    std::fs::write(
        root.join("app.toml"),
        "[app]\norg = \"demo\"\nname = \"shop\"\n",
    )
    .unwrap();
    let ty = root.join("elements/pays/MyWechatPayType");
    std::fs::create_dir_all(&ty).unwrap();
    std::fs::write(
        ty.join("e.json"),
        r#"{"type": "pays.WechatPayType", "title": "Discounted WeChat Pay", "mchId": "1900000109"}"#,
    )
    .unwrap();
    let instance = root.join("elements/pays/shopPay");
    std::fs::create_dir_all(&instance).unwrap();
    std::fs::write(
        instance.join("e.json"),
        r#"{"type": "pays.MyWechatPayType", "title": "Shop"}"#,
    )
    .unwrap();
    std::fs::write(
        instance.join("shopPay.json"),
        r#"{"config": {"appId": "wx0123456789abcdef", "apiKey": "abcdef1234567890abcdef1234567890"}}"#,
    )
    .unwrap();
}

#[tokio::test]
async fn an_extending_type_overrides_some_methods_and_delegates_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_app(root);
    let db = support::sqlite().await;
    let settings = PaysSettings::new(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/notify",
        "http://127.0.0.1:9",
    );
    let app = jit_pays::register(
        jit_runtime::AppBuilder::new(root),
        db.store.clone(),
        settings,
    )
    .loader("pays.MyWechatPayType", DiscountLoader)
    .build()
    .await
    .unwrap();
    let pay = app.get::<dyn Pay>("pays.shopPay").await.unwrap();
    assert_eq!(
        pay.mch_id(),
        "1900000109",
        "mchId from the extending Type's e.json"
    );
    let order = pay
        .create("Sale", Fen::new(1000), Some("KEEP1".into()))
        .await
        .unwrap();
    assert_eq!(order.amount.get(), 900);
    assert!(pay.cancel("KEEP1").await.is_err());
    // Through the JSON functions too, and PaySvc picks it as the default instance.
    let created = app
        .call(
            "pays.services.PaySvc",
            "create",
            json!({"subject": "Sale", "amount": 20}),
            &CallContext::principal("t"),
        )
        .await
        .unwrap();
    assert_eq!(created["amountFen"], 1800);
    assert_eq!(created["element"], "pays.shopPay");
    let cancelled = app
        .call(
            "pays.shopPay",
            "cancel",
            json!({"orderId": "KEEP1"}),
            &CallContext::principal("t"),
        )
        .await
        .unwrap_err();
    assert_eq!(cancelled.code(), "BAD_ARGUMENTS");
    // What it does not override is the parent's: the stored order, the refund rules.
    assert_eq!(pay.get_order("KEEP1").await.unwrap().amount.get(), 900);
    assert_eq!(pay.get_notify_url(), "http://127.0.0.1:1/notify");
    let unpaid = pay
        .refund(jit_pays::RefundArgs {
            order_id: "KEEP1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unpaid.code(), "ORDER_NOT_PAID");
    assert!(pay.list_refunds("KEEP1").await.unwrap().is_empty());
}

/// A pay element offering no typed `Pay` whose `notify` function answers a refusal paired
/// with WeChat's SUCCESS reply.
struct Contradicting {
    def: Arc<jit_runtime::ElementDef>,
}

#[async_trait]
impl Element for Contradicting {
    fn def(&self) -> &Arc<jit_runtime::ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        _args: serde_json::Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, jit_runtime::CallError> {
        match function {
            "notify" => Ok(json!({
                "outcome": {"outcome": "rejected", "reason": "the element refused it"},
                "reply": wechatpay_v2::NOTIFY_SUCCESS_REPLY,
            })),
            other => Err(jit_runtime::CallError::bad_arguments(format!(
                "no function {other}"
            ))),
        }
    }
}

struct ContradictingLoader;

#[async_trait]
impl Loader for ContradictingLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(Contradicting {
            def: cx.def().clone(),
        }))
    }
}

/// WeChat hears what the outcome says, not what an element reached through its functions
/// writes beside it: a refusal is FAIL even when the element's `reply` says SUCCESS.
#[tokio::test]
async fn an_element_cannot_answer_a_refused_notify_with_success() {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path());
    let db = support::sqlite().await;
    let settings = PaysSettings::new(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/notify",
        "http://127.0.0.1:9",
    );
    let app = jit_pays::register(
        jit_runtime::AppBuilder::new(dir.path()),
        db.store.clone(),
        settings,
    )
    .loader("pays.MyWechatPayType", ContradictingLoader)
    .build()
    .await
    .unwrap();
    let now = chrono::Utc::now();
    db.store
        .insert_order(jit_pays::db::store::NewOrder {
            order_id: "C1".into(),
            subject: "s".into(),
            amount_fen: 100,
            element: "pays.shopPay".into(),
            expires_at: now + chrono::Duration::hours(2),
            first_check_at: now + chrono::Duration::minutes(1),
        })
        .await
        .unwrap();
    let svc = app
        .get::<jit_pays::PaySvc>("pays.services.PaySvc")
        .await
        .unwrap();
    let body = support::shop::signed_notify(
        "wx0123456789abcdef",
        "1900000109",
        "abcdef1234567890abcdef1234567890",
        "C1",
        100,
        "T1",
    );
    let reply = svc.wechat_notify(body.as_bytes()).await;
    assert!(
        matches!(reply.outcome(), jit_pays::NotifyOutcome::Rejected { .. }),
        "{reply:?}"
    );
    assert!(!reply.acknowledged());
    assert_eq!(reply.xml(), wechatpay_v2::fail_reply("notify refused"));
}
