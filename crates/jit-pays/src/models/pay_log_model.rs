//! `pays.models.PayLogModel`: the pay log as an element, queried in the spirit of the
//! seed's `PayLogModel.queryset.get(orderId=…)`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use jit_runtime::{CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader};
use serde_json::{Map, Value, json};

use crate::args::{arg_opt_str, arg_str, no_such_function, to_json};
use crate::db::PayStore;
use crate::db::entity::PayStatus;
use crate::db::store::OrderFilter;
use crate::error::PayError;
use crate::model::PayLog;

/// The fullName of the element.
pub const PAY_LOG_MODEL: &str = "pays.models.PayLogModel";

/// The largest page `query` returns.
pub const MAX_PAGE_SIZE: u64 = 500;

/// The last page `query` reads: a million pages of [`MAX_PAGE_SIZE`] orders, far past any
/// real table, and an offset every database takes.
pub const MAX_PAGE: u64 = 1_000_000;

/// The pay log model element.
pub struct PayLogModel {
    def: Arc<ElementDef>,
    store: Arc<PayStore>,
}

impl PayLogModel {
    /// The model over `store`.
    pub fn new(def: Arc<ElementDef>, store: Arc<PayStore>) -> Self {
        PayLogModel { def, store }
    }

    /// A query over every order (`PayLogModel.queryset`).
    pub fn queryset(&self) -> PayLogQuery {
        PayLogQuery {
            store: self.store.clone(),
            filter: OrderFilter::default(),
        }
    }
}

/// A filter over the pay log, narrowed step by step.
#[derive(Clone, Debug)]
pub struct PayLogQuery {
    store: Arc<PayStore>,
    filter: OrderFilter,
}

impl PayLogQuery {
    /// The order `order_id` (`queryset.get(orderId=…)`); absent → `UnknownOrder`.
    pub async fn get(&self, order_id: &str) -> Result<PayLog, PayError> {
        Ok(self.store.get_order(order_id).await?.into())
    }

    /// Only orders in `status`.
    pub fn status(mut self, status: PayStatus) -> Self {
        self.filter.status = Some(status);
        self
    }

    /// Only orders of the pay element `full_name`.
    pub fn element(mut self, full_name: impl Into<String>) -> Self {
        self.filter.element = Some(full_name.into());
        self
    }

    /// Only orders created in `[from, to)` (either end open when `None`).
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Self {
        self.filter.created_from = from;
        self.filter.created_to = to;
        self
    }

    /// Page `page` (1 to [`MAX_PAGE`]) of `page_size` orders (1 to [`MAX_PAGE_SIZE`]),
    /// newest first.
    pub async fn page(&self, page: u64, page_size: u64) -> Result<Vec<PayLog>, PayError> {
        let page = check_range("page", page, MAX_PAGE)?;
        let size = check_range("pageSize", page_size, MAX_PAGE_SIZE)?;
        // At most (10⁶ − 1) × 500: no overflow, and an offset both databases take.
        let offset = (page - 1) * size;
        Ok(self
            .store
            .list_orders(&self.filter, offset, size)
            .await?
            .into_iter()
            .map(PayLog::from)
            .collect())
    }

    /// How many orders match.
    pub async fn count(&self) -> Result<u64, PayError> {
        Ok(self.store.count_orders(&self.filter).await?)
    }
}

/// Reads a time argument: RFC 3339 (`2026-11-27T10:00:00Z`), or a plain
/// `yyyy-MM-dd HH:mm:ss` / `yyyy-MM-dd` taken as Beijing time like WeChat's own times.
pub fn parse_time_arg(name: &'static str, text: &str) -> Result<DateTime<Utc>, PayError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        })
        .map_err(|_| PayError::Invalid {
            field: name,
            message: format!(
                "{text:?} is not a time (RFC 3339, or yyyy-MM-dd[ HH:mm:ss] in Beijing time)"
            ),
        })?;
    Ok(wechatpay_v2::time::from_beijing_local(local))
}

fn query_from_args(
    model: &PayLogModel,
    args: &Map<String, Value>,
) -> Result<PayLogQuery, CallError> {
    let mut query = model.queryset();
    if let Some(status) = arg_opt_str(args, "status")? {
        let status = PayStatus::parse(status).ok_or_else(|| {
            CallError::bad_arguments(format!(
                "argument `status`: {status:?} is not one of wait, success, close, timeout"
            ))
        })?;
        query = query.status(status);
    }
    if let Some(element) = arg_opt_str(args, "element")? {
        query = query.element(element);
    }
    let from = arg_opt_str(args, "createdFrom")?
        .map(|t| parse_time_arg("createdFrom", t))
        .transpose()?;
    let to = arg_opt_str(args, "createdTo")?
        .map(|t| parse_time_arg("createdTo", t))
        .transpose()?;
    Ok(query.created_between(from, to))
}

/// `value` when it is from 1 to `max`, else which argument and what range.
fn check_range(name: &'static str, value: u64, max: u64) -> Result<u64, PayError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(PayError::Invalid {
            field: name,
            message: format!("must be from 1 to {max}, got {value}"),
        })
    }
}

/// Reads an optional whole-number argument from 1 to `max` (absent or null: `default`).
fn arg_bounded(
    args: &Map<String, Value>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, CallError> {
    let value = match args.get(name) {
        None | Some(Value::Null) => return Ok(default),
        Some(value) => value,
    };
    match value.as_u64() {
        Some(number) => Ok(check_range(name, number, max)?),
        None => Err(CallError::bad_arguments(format!(
            "argument `{name}` must be a whole number from 1 to {max}, got {value}"
        ))),
    }
}

#[async_trait]
impl Element for PayLogModel {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, CallError> {
        match function {
            "get" => {
                let order_id = arg_str(&args, "orderId")?;
                to_json(&self.queryset().get(order_id).await?)
            }
            "query" => {
                let query = query_from_args(self, &args)?;
                let page = arg_bounded(&args, "page", 1, MAX_PAGE)?;
                let page_size = arg_bounded(&args, "pageSize", 20, MAX_PAGE_SIZE)?;
                let items = query.page(page, page_size).await?;
                let total = query.count().await?;
                Ok(json!({
                    "items": to_json(&items)?,
                    "total": total,
                    "page": page,
                    "pageSize": page_size,
                }))
            }
            "count" => {
                let query = query_from_args(self, &args)?;
                Ok(json!(query.count().await?))
            }
            other => Err(no_such_function(PAY_LOG_MODEL, other)),
        }
    }
}

/// The loader registered for `pays.models.PayLogModel`.
#[derive(Debug, Default)]
pub struct PayLogModelLoader;

#[async_trait]
impl Loader for PayLogModelLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(PayLogModel::new(
            cx.def().clone(),
            cx.service::<PayStore>()?,
        )))
    }
}
