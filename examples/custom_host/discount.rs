//! `pays.MyWechatPayType`: WeChat Pay with a percentage discount and a minimum order age
//! before cancelling. Everything it does not override is the official Type's behaviour.

use std::sync::Arc;

use chrono::Utc;
use jit_pays::{CancelResult, Pay, PayElement, PayError, PayExtension, PayLog, pay_of};
use jit_runtime::{Element, ElementError, LoadContext, Loader};
use serde_json::Value;
use wechatpay_v2::Fen;

/// The Type's fullName, as its folder `elements/pays/MyWechatPayType/` says.
pub const MY_WECHAT_PAY_TYPE: &str = "pays.MyWechatPayType";

/// Builds instances of `pays.MyWechatPayType`.
pub struct DiscountPayLoader;

#[jit_runtime::async_trait]
impl Loader for DiscountPayLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        // The official Type builds the element first (its config, store, client) ...
        let parent = pay_of(cx.load_with_parent().await?)
            .ok_or_else(|| ElementError::msg("the parent Type did not build a pay element"))?;
        // ... then this Type's own settings, read along the instance's chain.
        let percent = setting_i64(&cx, "discountPercent", 0)?;
        if !(0..100).contains(&percent) {
            return Err(ElementError::InvalidSetting {
                key: "discountPercent".into(),
                message: format!("{percent} is not between 0 and 99"),
            });
        }
        let min_cancel_age = setting_i64(&cx, "minCancelAgeSeconds", 0)?;
        let pay = DiscountPay {
            parent,
            percent,
            min_cancel_age: chrono::Duration::seconds(min_cancel_age),
        };
        // PayElement serves the functionList through the same dispatch as the official
        // Type, and hands out `dyn Pay` (PaySvc and notifies reach this Type through it).
        Ok(Arc::new(PayElement::new(cx.def().clone(), Arc::new(pay))))
    }
}

fn setting_i64(cx: &LoadContext, key: &str, default: i64) -> Result<i64, ElementError> {
    match cx.chain().setting(key) {
        None => Ok(default),
        Some(Value::Number(number)) => {
            number.as_i64().ok_or_else(|| ElementError::InvalidSetting {
                key: key.into(),
                message: "must be an integer".into(),
            })
        }
        Some(_) => Err(ElementError::InvalidSetting {
            key: key.into(),
            message: "must be an integer".into(),
        }),
    }
}

struct DiscountPay {
    parent: Arc<dyn Pay>,
    percent: i64,
    min_cancel_age: chrono::Duration,
}

impl DiscountPay {
    /// The discounted amount in whole fen, rounded down in the buyer's favour, never zero.
    fn discounted(&self, amount: Fen) -> Fen {
        let fen = amount.get() * (100 - self.percent) / 100;
        Fen::new(fen.max(1))
    }
}

/// Only what changes: `create` and `cancel`. Every other function is the official
/// Type's, through `PayExtension`'s defaults.
#[jit_runtime::async_trait]
impl PayExtension for DiscountPay {
    fn parent(&self) -> &Arc<dyn Pay> {
        &self.parent
    }

    /// Override: the order is stored (and charged) at the discounted amount.
    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        self.parent
            .create(subject, self.discounted(amount), order_id)
            .await
    }

    /// Override: an extra rule first, then the official cancel.
    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        let order = self.parent.get_order(order_id).await?;
        let age = Utc::now() - order.created_at;
        if age < self.min_cancel_age {
            return Err(PayError::Invalid {
                field: "orderId",
                message: format!(
                    "order {order_id} is {}s old; this shop cancels orders only after {}s (the payer may be paying)",
                    age.num_seconds(),
                    self.min_cancel_age.num_seconds()
                ),
            });
        }
        self.parent.cancel(order_id).await
    }
}
