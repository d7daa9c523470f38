//! WeChat's daily bills in the shop: downloading a day's bill for a pay element and
//! storing it (`pays_bill_day`, `pays_bill_line`), reconciling the shop's books against it
//! ([`reconcile`]), and the daily download `jit serve` schedules ([`schedule`]).
//!
//! A bill is a merchant's: it is downloaded with the merchant's own client (the one its pay
//! element signs with, at the host's gateway: V2's `downloadbill`, or V3's trade bill, a
//! signed download checked against its SHA1) and stored under its `mch_id`, so two
//! instances of one merchant share one bill, whichever API each speaks. Both APIs' trade
//! bills are the same text, which the V2 crate parses fully ([`wechatpay_v2::bill`]): a line
//! that does not parse fails the download, naming the line, and nothing of that day is
//! stored. WeChat's "No Bill Exist" (V2 error code `20002`, V3 `NO_STATEMENT_EXIST`) is a
//! day on which nothing happened: it is stored as an empty day, so the day is known
//! downloaded.

pub mod reconcile;
pub mod schedule;

use async_trait::async_trait;
use chrono::NaiveDate;
use jit_runtime::{App, CallError, CallErrorKind};
use serde::Serialize;
use wechatpay_v2::bill::Bill;
use wechatpay_v2::{BillType, RefundRef};

use crate::db::PayStore;
use crate::db::bills::BillDayKey;
use crate::db::entity::RefundStatus;
use crate::db::store::StoreError;
use crate::error::PayError;
use crate::meta::service;
use crate::settings::PaysSettings;
use crate::wechat_pay_type::{WechatPayConfig, gateway_client, merchant_settings};
use crate::wechat_pay_v3_type::{WechatPayV3Config, v3_merchant_settings};

pub use reconcile::{Mismatch, MismatchKind, ReconcileDay, Side, reconcile_day, reconcile_days};
pub use schedule::{BillSchedule, BillScheduleHandle, ScheduledDay, run_due, start_bill_schedule};

/// WeChat's V2 error code for a day without a bill ("No Bill Exist").
pub const NO_BILL_EXIST: &str = "20002";

/// WeChat's V3 error code for a day without a bill.
pub const NO_STATEMENT_EXIST: &str = "NO_STATEMENT_EXIST";

/// Why a bill could not be had from WeChat, by the client that asked.
#[derive(Debug, thiserror::Error)]
pub enum BillDownloadError {
    /// The V2 client's error (also: a bill, of either API, whose text does not parse).
    #[error(transparent)]
    V2(#[from] wechatpay_v2::Error),
    /// The V3 client's error (boxed: it is large).
    #[error(transparent)]
    V3(Box<wechatpay_v3::Error>),
}

/// Why a bill could not be downloaded or reconciled.
#[derive(Debug, thiserror::Error)]
pub enum BillsError {
    /// An argument is unusable (an unknown element, a date WeChat has no bill for yet).
    #[error("argument `{field}`: {message}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// WeChat refused or failed, or sent a bill that does not parse (the error names the
    /// line and field). Nothing of the day was stored.
    #[error("`{element}`: downloading the {bill_type} bill of {date}: {source}")]
    Download {
        /// The pay element.
        element: String,
        /// The Beijing date.
        date: NaiveDate,
        /// ALL, SUCCESS or REFUND.
        bill_type: BillType,
        /// The client's error.
        source: BillDownloadError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A pay element failed (building it, a live query).
    #[error(transparent)]
    Pay(#[from] PayError),
}

impl From<BillsError> for CallError {
    fn from(error: BillsError) -> Self {
        match error {
            BillsError::Pay(error) => error.into(),
            BillsError::Store(error) => PayError::from(error).into(),
            BillsError::Invalid { .. } => {
                CallError::new(CallErrorKind::BadArguments, error.to_string())
            }
            BillsError::Download { .. } => {
                // The gateway's message is WeChat's (or the bill's line and field): no
                // secret, worth showing to the merchant.
                CallError::new(CallErrorKind::Upstream, error.to_string())
            }
        }
    }
}

/// What downloading one day's bill stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadedDay {
    /// The pay element whose client downloaded it.
    pub element: String,
    /// The merchant.
    pub mch_id: String,
    /// The Beijing date.
    pub date: NaiveDate,
    /// ALL, SUCCESS or REFUND.
    pub bill_type: String,
    /// The data lines stored (0 for a day without a bill).
    pub lines: usize,
    /// WeChat said "No Bill Exist": nothing happened that day.
    pub no_bill: bool,
}

/// What a merchant's bills and refunds are asked of: its client, of either API.
#[async_trait]
pub trait BillSource: Send + Sync {
    /// The merchant's `bill_type` bill of `date`, parsed; `None` when WeChat has none (a
    /// day on which nothing happened).
    async fn bill(
        &self,
        date: NaiveDate,
        bill_type: BillType,
    ) -> Result<Option<Bill>, BillDownloadError>;

    /// What WeChat says of the refund `out_refund_no` now: its state, when the answer
    /// lists it, and the answer in words.
    async fn refund_state(&self, out_refund_no: &str) -> (Option<RefundStatus>, String);
}

#[async_trait]
impl BillSource for wechatpay_v2::Client {
    async fn bill(
        &self,
        date: NaiveDate,
        bill_type: BillType,
    ) -> Result<Option<Bill>, BillDownloadError> {
        let date = wechatpay_v2::time::format_date(date);
        match crate::metrics::gateway_call(
            "downloadbill",
            wechatpay_v2::Client::bill(self, &date, bill_type),
        )
        .await
        {
            Ok(bill) => Ok(Some(bill)),
            Err(wechatpay_v2::Error::Business { code, .. }) if code.as_str() == NO_BILL_EXIST => {
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn refund_state(&self, out_refund_no: &str) -> (Option<RefundStatus>, String) {
        let answer = crate::metrics::gateway_call(
            "refundquery",
            self.refund_query(&RefundRef::OutRefundNo(out_refund_no.to_owned())),
        )
        .await;
        match answer {
            Ok(answer) => match answer
                .refunds
                .iter()
                .find(|record| record.out_refund_no == out_refund_no)
            {
                Some(record) => (
                    Some(RefundStatus::of_wechat(record.refund_status)),
                    format!("refundquery: refund_status {}", record.refund_status),
                ),
                None => (
                    None,
                    "refundquery: the answer does not list the refund".to_owned(),
                ),
            },
            Err(error) => (None, format!("refundquery: {error}")),
        }
    }
}

#[async_trait]
impl BillSource for wechatpay_v3::Client {
    async fn bill(
        &self,
        date: NaiveDate,
        bill_type: BillType,
    ) -> Result<Option<Bill>, BillDownloadError> {
        let bill_type_v3 = match bill_type {
            BillType::Success => wechatpay_v3::BillType::Success,
            BillType::Refund => wechatpay_v3::BillType::Refund,
            _ => wechatpay_v3::BillType::All,
        };
        let request = wechatpay_v3::TradeBillRequest {
            bill_date: date,
            bill_type: bill_type_v3,
            gzip: true,
        };
        let text =
            match crate::metrics::gateway_call("v3_tradebill", self.download_trade_bill(&request))
                .await
            {
                Ok(text) => text,
                Err(error)
                    if error
                        .code()
                        .is_some_and(|code| code.as_str() == NO_STATEMENT_EXIST) =>
                {
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            };
        // V3's trade bill is V2's text: one parser for both.
        let bill = Bill::parse(&text).map_err(wechatpay_v2::Error::from)?;
        if bill.bill_type != bill_type {
            return Err(wechatpay_v3::Error::Malformed {
                context: "trade bill",
                reason: format!(
                    "a {bill_type} bill was asked for and a {} bill came",
                    bill.bill_type
                ),
            }
            .into());
        }
        Ok(Some(bill))
    }

    async fn refund_state(&self, out_refund_no: &str) -> (Option<RefundStatus>, String) {
        match crate::metrics::gateway_call("v3_refund_query", self.query_refund(out_refund_no))
            .await
        {
            Ok(refund) => (
                Some(RefundStatus::of_wechat_v3(refund.status)),
                format!("refund query: status {}", refund.status),
            ),
            Err(error) => (None, format!("refund query: {error}")),
        }
    }
}

impl From<wechatpay_v3::Error> for BillDownloadError {
    fn from(error: wechatpay_v3::Error) -> Self {
        BillDownloadError::V3(Box::new(error))
    }
}

/// A merchant's client as its bills are downloaded: V2's or V3's.
#[derive(Clone, Debug)]
pub enum BillClient {
    /// The V2 client.
    V2(wechatpay_v2::Client),
    /// The V3 client.
    V3(wechatpay_v3::Client),
}

#[async_trait]
impl BillSource for BillClient {
    async fn bill(
        &self,
        date: NaiveDate,
        bill_type: BillType,
    ) -> Result<Option<Bill>, BillDownloadError> {
        match self {
            BillClient::V2(client) => BillSource::bill(client, date, bill_type).await,
            BillClient::V3(client) => BillSource::bill(client, date, bill_type).await,
        }
    }

    async fn refund_state(&self, out_refund_no: &str) -> (Option<RefundStatus>, String) {
        match self {
            BillClient::V2(client) => client.refund_state(out_refund_no).await,
            BillClient::V3(client) => client.refund_state(out_refund_no).await,
        }
    }
}

/// A merchant's settings, of the API its element speaks.
#[derive(Clone, Debug)]
pub enum MerchantApi {
    /// A V2 instance's (boxed, as V3's: merchant settings are large).
    V2(Box<WechatPayConfig>),
    /// A V3 instance's.
    V3(Box<WechatPayV3Config>),
}

/// A pay element's merchant, as its bills are downloaded.
#[derive(Clone, Debug)]
pub struct BillMerchant {
    /// The element's fullName.
    pub element: String,
    /// The merchant.
    pub mch_id: String,
    /// The element's appid.
    pub app_id: String,
    /// Its settings (the family's resolvers: [`merchant_settings`],
    /// [`v3_merchant_settings`]).
    pub api: MerchantApi,
}

impl BillMerchant {
    /// The key of this merchant's `bill_type` bill of `date`.
    pub fn day(&self, bill_type: BillType, date: NaiveDate) -> BillDayKey {
        BillDayKey {
            mch_id: self.mch_id.clone(),
            bill_type,
            date,
        }
    }

    /// The merchant's client at the app's gateway (V2 without the merchant certificate:
    /// bills and queries need none).
    pub fn client(&self, settings: &PaysSettings) -> Result<BillClient, BillsError> {
        let client = match &self.api {
            MerchantApi::V2(config) => {
                gateway_client(&self.element, config, settings, None).map(BillClient::V2)
            }
            MerchantApi::V3(config) => {
                crate::wechat_pay_v3_type::gateway_client(&self.element, config, settings)
                    .map(BillClient::V3)
            }
        };
        client.map_err(|error| {
            BillsError::Pay(PayError::unavailable_because(
                format!("`{}`: the WeChat Pay client", self.element),
                error,
            ))
        })
    }
}

/// The app's pay instances (every one, or only `element`), of both APIs, with their
/// merchants, by fullName.
pub fn bill_merchants(app: &App, element: Option<&str>) -> Result<Vec<BillMerchant>, BillsError> {
    let unusable = |errors| {
        BillsError::Pay(PayError::unavailable_because(
            "the merchant settings do not hold",
            errors,
        ))
    };
    let v2 = merchant_settings(app.definitions()).map_err(unusable)?;
    let v3 = v3_merchant_settings(app.definitions()).map_err(unusable)?;
    let mut merchants: Vec<BillMerchant> = v2
        .into_iter()
        .map(|(element, config)| BillMerchant {
            element,
            mch_id: config.mch_id.clone(),
            app_id: config.app_id.clone(),
            api: MerchantApi::V2(Box::new(config)),
        })
        .chain(v3.into_iter().map(|(element, config)| BillMerchant {
            element,
            mch_id: config.mch_id.clone(),
            app_id: config.app_id.clone(),
            api: MerchantApi::V3(Box::new(config)),
        }))
        .filter(|merchant| element.is_none_or(|wanted| wanted == merchant.element))
        .collect();
    merchants.sort_by(|a, b| a.element.cmp(&b.element));
    match element {
        Some(wanted) if merchants.is_empty() => Err(BillsError::Invalid {
            field: "element",
            message: format!("`{wanted}` is not a WeChat Pay instance of this app"),
        }),
        None if merchants.is_empty() => Err(BillsError::Pay(PayError::unavailable(
            "the app has no WeChat Pay instance",
        ))),
        _ => Ok(merchants),
    }
}

/// Downloads `key`'s bill with `client` (the merchant's) and stores it for `element`,
/// replacing what the day had. "No Bill Exist" stores an empty day; any other failure,
/// including a line that does not parse, stores nothing.
pub async fn download_day(
    client: &(impl BillSource + ?Sized),
    store: &PayStore,
    element: &str,
    key: &BillDayKey,
) -> Result<DownloadedDay, BillsError> {
    let bill = client
        .bill(key.date, key.bill_type)
        .await
        .map_err(|source| BillsError::Download {
            element: element.to_owned(),
            date: key.date,
            bill_type: key.bill_type,
            source,
        })?;
    let stored = store.store_bill_day(key, element, bill.as_ref()).await?;
    Ok(DownloadedDay {
        element: element.to_owned(),
        mch_id: key.mch_id.clone(),
        date: key.date,
        bill_type: key.bill_type.as_str().to_owned(),
        lines: usize::try_from(stored.line_count).unwrap_or_default(),
        no_bill: stored.no_bill,
    })
}

/// Downloads and stores the `bill_type` bill of `date` for every WeChat Pay instance of
/// `app` (or only `element`), once per merchant: instances sharing a merchant share its
/// bill. A date in the future is refused.
pub async fn download_bills(
    app: &App,
    date: NaiveDate,
    bill_type: BillType,
    element: Option<&str>,
) -> Result<Vec<DownloadedDay>, BillsError> {
    check_bill_date(date)?;
    let store = service::<PayStore>(app, "PayStore")?;
    let settings = service::<PaysSettings>(app, "PaysSettings")?;
    let mut done: Vec<DownloadedDay> = Vec::new();
    for merchant in bill_merchants(app, element)? {
        if done.iter().any(|day| day.mch_id == merchant.mch_id) {
            continue;
        }
        let client = merchant.client(&settings)?;
        let key = merchant.day(bill_type, date);
        done.push(download_day(&client, &store, &merchant.element, &key).await?);
    }
    Ok(done)
}

/// A bill date must not be in the future (Beijing time). Today's date is passed on:
/// WeChat answers it with an error until the day's bill is made (the next morning), and
/// the simulator makes it at once.
pub fn check_bill_date(date: NaiveDate) -> Result<(), BillsError> {
    let today = wechatpay_v2::time::beijing_date(chrono::Utc::now());
    if date > today {
        return Err(BillsError::Invalid {
            field: "date",
            message: format!("{date} is in the future (today is {today} in Beijing)"),
        });
    }
    Ok(())
}

/// A `YYYY-MM-DD` date argument.
pub fn parse_bill_date(text: &str) -> Result<NaiveDate, BillsError> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        // Exactly the form dates are printed in, nothing chrono merely tolerates.
        .filter(|date| crate::db::bills::date_text(*date) == text)
        .ok_or_else(|| BillsError::Invalid {
            field: "date",
            message: format!("{text:?} is not a date: write YYYY-MM-DD (a Beijing date)"),
        })
}
