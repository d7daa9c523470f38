//! WeChat's daily bills in the shop: downloading a day's bill for a pay element and
//! storing it (`pays_bill_day`, `pays_bill_line`), reconciling the shop's books against it
//! ([`reconcile`]), and the daily download `jit serve` schedules ([`schedule`]).
//!
//! A bill is a merchant's: it is downloaded with the merchant's own V2 client (the one its
//! pay element signs with, at the host's gateway) and stored under its `mch_id`, so two
//! instances of one merchant share one bill. The protocol crate parses it fully
//! ([`wechatpay_v2::bill`]): a line that does not parse fails the download, naming the line,
//! and nothing of that day is stored. WeChat's "No Bill Exist" (error code `20002`) is a
//! day on which nothing happened: it is stored as an empty day, so the day is known
//! downloaded.

pub mod reconcile;
pub mod schedule;

use chrono::NaiveDate;
use jit_runtime::{App, CallError, CallErrorKind};
use serde::Serialize;
use wechatpay_v2::{BillType, Client, Error as GatewayError};

use crate::db::PayStore;
use crate::db::bills::BillDayKey;
use crate::db::store::StoreError;
use crate::error::PayError;
use crate::meta::service;
use crate::settings::PaysSettings;
use crate::wechat_pay_type::{WechatPayConfig, gateway_client, merchant_settings};

pub use reconcile::{Mismatch, MismatchKind, ReconcileDay, Side, reconcile_day, reconcile_days};
pub use schedule::{BillSchedule, BillScheduleHandle, ScheduledDay, run_due, start_bill_schedule};

/// WeChat's error code for a day without a bill ("No Bill Exist").
pub const NO_BILL_EXIST: &str = "20002";

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
        source: GatewayError,
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

/// A pay element's merchant, as its bills are downloaded.
#[derive(Clone, Debug)]
pub struct BillMerchant {
    /// The element's fullName.
    pub element: String,
    /// Its merchant settings (the family's one resolver, [`merchant_settings`]).
    pub config: WechatPayConfig,
}

impl BillMerchant {
    /// The key of this merchant's `bill_type` bill of `date`.
    pub fn day(&self, bill_type: BillType, date: NaiveDate) -> BillDayKey {
        BillDayKey {
            mch_id: self.config.mch_id.clone(),
            bill_type,
            date,
        }
    }

    /// The merchant's V2 client at the app's gateway, without the merchant certificate:
    /// bills and queries need none.
    pub fn client(&self, settings: &PaysSettings) -> Result<Client, BillsError> {
        gateway_client(&self.element, &self.config, settings, None).map_err(|error| {
            BillsError::Pay(PayError::unavailable_because(
                format!("`{}`: the WeChat Pay client", self.element),
                error,
            ))
        })
    }
}

/// The app's WeChat Pay instances (every one, or only `element`), with their merchants.
pub fn bill_merchants(app: &App, element: Option<&str>) -> Result<Vec<BillMerchant>, BillsError> {
    let all = merchant_settings(app.definitions()).map_err(|errors| {
        PayError::unavailable_because("the merchant settings do not hold", errors)
    })?;
    let merchants: Vec<BillMerchant> = all
        .into_iter()
        .filter(|(name, _)| element.is_none_or(|wanted| wanted == name))
        .map(|(element, config)| BillMerchant { element, config })
        .collect();
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
    client: &Client,
    store: &PayStore,
    element: &str,
    key: &BillDayKey,
) -> Result<DownloadedDay, BillsError> {
    let date = wechatpay_v2::time::format_date(key.date);
    let bill = match crate::metrics::gateway_call("downloadbill", client.bill(&date, key.bill_type))
        .await
    {
        Ok(bill) => Some(bill),
        Err(GatewayError::Business { code, .. }) if code.as_str() == NO_BILL_EXIST => None,
        Err(source) => {
            return Err(BillsError::Download {
                element: element.to_owned(),
                date: key.date,
                bill_type: key.bill_type,
                source,
            });
        }
    };
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
        if done.iter().any(|day| day.mch_id == merchant.config.mch_id) {
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
