//! Reconciliation: one pay element's books for one Beijing day against WeChat's ALL bill
//! of that day, and — for what disagrees — against a live query.
//!
//! Three sources:
//! 1. the shop: the element's orders paid that day and its refunds asked for that day
//!    (WeChat's bill lists a refund on the day it was asked for);
//! 2. the bill: the merchant's stored ALL bill of the day (downloaded first if the day was
//!    never downloaded);
//! 3. a live query for each disagreement: `orderquery` through the element's own `check`
//!    (which records a payment the shop missed) or `checkThird`; `refundquery` with the
//!    merchant's client, and — when WeChat's live state is not the shop's — the element's
//!    own `queryRefund`, which applies it.
//!
//! A disagreement the live query settles (a lost notify: the bill says paid, the shop said
//! waiting, `check` finds the payment and records it; a refund whose state the shop now
//! holds as WeChat reports it live) is reported as fixed by query; every
//! other one remains a [`Mismatch`] and raises one `reconcile.mismatch` event — once per
//! (date, element, kind, order, refund), however often the day is reconciled.
//!
//! Whose line is it: a bill line is this element's when the shop's order of that
//! `out_trade_no` is this element's, or — for an order the shop does not have — when the
//! line's appid is the element's. Lines of other elements of the same merchant are left to
//! their own reconciliation.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jit_runtime::{App, log_safe};
use serde::{Deserialize, Serialize};
use wechatpay_v2::{BillType, Fen};

use super::{BillClient, BillMerchant, BillSource, BillsError, bill_merchants, download_day};
use crate::db::PayStore;
use crate::db::bills::{DAY_STORED, beijing_day};
use crate::db::entity::{PayStatus, RefundStatus, bill_line, pay_log, refund};
use crate::element_pay::pay_of_element;
use crate::meta::service;
use crate::model::PayLog;
use crate::pay::Pay;
use crate::settings::PaysSettings;

/// How the shop and the bill disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The bill lists a payment or refund the shop does not have.
    MissingLocally,
    /// The shop has a payment or refund of the day the bill does not list.
    MissingInBill,
    /// Both have it, for different amounts.
    AmountMismatch,
    /// Both have it, in different states (the bill says paid, the shop does not; a refund
    /// the bill says succeeded the shop has as failed...).
    StatusMismatch,
}

impl MismatchKind {
    /// The stored and shown name: `missing_locally`, `missing_in_bill`,
    /// `amount_mismatch`, `status_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::MissingLocally => "missing_locally",
            MismatchKind::MissingInBill => "missing_in_bill",
            MismatchKind::AmountMismatch => "amount_mismatch",
            MismatchKind::StatusMismatch => "status_mismatch",
        }
    }
}

impl std::fmt::Display for MismatchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one side says about a payment or refund: its amount and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// The amount, in fen (a payment's total, a refund's amount asked for).
    pub amount_fen: Fen,
    /// The state as that side spells it: the shop's (`success`, `wait`, `processing`...)
    /// or the bill's (`SUCCESS`, `REFUND`, `PROCESSING`...).
    pub status: String,
    /// For the bill: the line number (the header is line 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<i32>,
}

/// One disagreement between the shop's books and WeChat's bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// How they disagree.
    pub kind: MismatchKind,
    /// The Beijing date reconciled.
    pub date: NaiveDate,
    /// The pay element reconciled.
    pub element: String,
    /// The order (the bill's `out_trade_no`).
    pub order_id: String,
    /// The refund (`out_refund_no`) for a disagreement about a refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// What the shop has; absent when it has nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Side>,
    /// What the bill says; absent when it lists nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill: Option<Side>,
    /// What the live query said, or why none was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// One element's reconciliation of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileDay {
    /// The Beijing date.
    pub date: NaiveDate,
    /// The pay element.
    pub element: String,
    /// Its merchant.
    pub mch_id: String,
    /// WeChat had no bill for the day ("No Bill Exist").
    pub no_bill: bool,
    /// The bill's lines that are this element's.
    pub bill_lines: usize,
    /// The shop's payments of the day.
    pub local_payments: usize,
    /// The shop's refunds of the day.
    pub local_refunds: usize,
    /// Payments and refunds on which all agree.
    pub matched: usize,
    /// Disagreements a live query settled.
    pub fixed_by_query: Vec<Mismatch>,
    /// Disagreements that remain.
    pub mismatches: Vec<Mismatch>,
    /// `reconcile.mismatch` events raised by this run (a mismatch raised by an earlier run
    /// of the same day raises none).
    pub events_raised: usize,
}

impl ReconcileDay {
    /// Whether the books agree with the bill (nothing remains).
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Reconciles `date` for every WeChat Pay instance of `app` (or only `element`).
pub async fn reconcile_days(
    app: &App,
    date: NaiveDate,
    element: Option<&str>,
) -> Result<Vec<ReconcileDay>, BillsError> {
    super::check_bill_date(date)?;
    let mut days = Vec::new();
    for merchant in bill_merchants(app, element)? {
        days.push(reconcile_day(app, &merchant, date).await?);
    }
    Ok(days)
}

/// Reconciles one element's `date` (see the module's documentation), downloading the
/// merchant's ALL bill of the day first if it was never stored.
pub async fn reconcile_day(
    app: &App,
    merchant: &BillMerchant,
    date: NaiveDate,
) -> Result<ReconcileDay, BillsError> {
    let store = service::<PayStore>(app, "PayStore")?;
    let settings = service::<PaysSettings>(app, "PaysSettings")?;
    let client = merchant.client(&settings)?;
    let pay = pay_of_element(app, &merchant.element).await?;
    let key = merchant.day(BillType::All, date);
    let day = match store.bill_day(&key).await? {
        Some(day) if day.status == DAY_STORED => day.no_bill,
        _ => {
            download_day(&client, &store, &merchant.element, &key)
                .await?
                .no_bill
        }
    };
    let lines = store.bill_lines(&key).await?;
    let (from, to) = beijing_day(date);
    let paid = store
        .orders_paid_between(&merchant.element, from, to)
        .await?;
    let refunds = store
        .refunds_created_between(&merchant.element, from, to)
        .await?;
    let mut run = Run {
        store: &store,
        pay: pay.as_ref(),
        client: &client,
        merchant,
        report: ReconcileDay {
            date,
            element: merchant.element.clone(),
            mch_id: merchant.mch_id.clone(),
            no_bill: day,
            bill_lines: 0,
            local_payments: paid.len(),
            local_refunds: refunds.len(),
            matched: 0,
            fixed_by_query: Vec::new(),
            mismatches: Vec::new(),
            events_raised: 0,
        },
    };
    let mut paid: BTreeMap<String, pay_log::Model> = paid
        .into_iter()
        .map(|order| (order.order_id.clone(), order))
        .collect();
    let mut refunds: BTreeMap<String, refund::Model> = refunds
        .into_iter()
        .map(|refund| (refund.refund_id.clone(), refund))
        .collect();
    for line in &lines {
        match &line.out_refund_no {
            None => run.payment_line(line, &mut paid).await?,
            Some(out_refund_no) => run.refund_line(line, out_refund_no, &mut refunds).await?,
        }
    }
    for order in paid.into_values() {
        run.payment_missing_in_bill(order).await;
    }
    for refund in refunds.into_values() {
        run.refund_missing_in_bill(refund).await;
    }
    let mut report = run.report;
    for mismatch in &report.mismatches {
        if store.raise_mismatch(mismatch).await?.is_some() {
            report.events_raised += 1;
        }
    }
    if !report.mismatches.is_empty() {
        tracing::warn!(
            element = %report.element,
            date = %date,
            mismatches = report.mismatches.len(),
            fixed_by_query = report.fixed_by_query.len(),
            "reconciliation found the shop's books and WeChat's bill disagreeing"
        );
    }
    Ok(report)
}

/// One reconciliation in progress.
struct Run<'a> {
    store: &'a PayStore,
    pay: &'a dyn Pay,
    client: &'a BillClient,
    merchant: &'a BillMerchant,
    report: ReconcileDay,
}

fn local_side(amount_fen: i64, status: &str) -> Option<Side> {
    Some(Side {
        amount_fen: Fen::new(amount_fen),
        status: status.to_owned(),
        line: None,
    })
}

fn bill_side(amount_fen: i64, status: &str, line: &bill_line::Model) -> Option<Side> {
    Some(Side {
        amount_fen: Fen::new(amount_fen),
        status: status.to_owned(),
        line: Some(line.line_number),
    })
}

impl Run<'_> {
    fn mismatch(&self, kind: MismatchKind, order_id: &str, refund_id: Option<&str>) -> Mismatch {
        Mismatch {
            kind,
            date: self.report.date,
            element: self.merchant.element.clone(),
            order_id: order_id.to_owned(),
            refund_id: refund_id.map(str::to_owned),
            local: None,
            bill: None,
            query: None,
        }
    }

    /// Whether a line about `order_id` is this element's: the shop's order of that id is,
    /// or (for an id the shop does not have) the line's appid is the element's.
    async fn owns(
        &self,
        line: &bill_line::Model,
    ) -> Result<(bool, Option<pay_log::Model>), BillsError> {
        let order = self.store.find_order(&line.out_trade_no).await?;
        let ours = match &order {
            Some(order) => order.element == self.merchant.element,
            None => line.appid == self.merchant.app_id,
        };
        Ok((ours, order))
    }

    async fn payment_line(
        &mut self,
        line: &bill_line::Model,
        paid: &mut BTreeMap<String, pay_log::Model>,
    ) -> Result<(), BillsError> {
        let order = match paid.remove(&line.out_trade_no) {
            Some(order) => Some(order),
            None => {
                let (ours, order) = self.owns(line).await?;
                if !ours {
                    return Ok(());
                }
                order
            }
        };
        self.report.bill_lines += 1;
        let bill = bill_side(line.total_fee, &line.trade_state, line);
        let Some(order) = order else {
            let mut mismatch =
                self.mismatch(MismatchKind::MissingLocally, &line.out_trade_no, None);
            mismatch.bill = bill;
            mismatch.query = Some("not queried: the shop has no such order".to_owned());
            self.report.mismatches.push(mismatch);
            return Ok(());
        };
        if order.amount_fen != line.total_fee {
            let mut mismatch = self.mismatch(MismatchKind::AmountMismatch, &order.order_id, None);
            mismatch.local = local_side(order.amount_fen, order.status.as_str());
            mismatch.bill = bill.clone();
            mismatch.query = Some(self.order_at_wechat(&order).await);
            self.report.mismatches.push(mismatch);
        }
        if order.status == PayStatus::Success {
            if order.amount_fen == line.total_fee {
                self.report.matched += 1;
            }
            return Ok(());
        }
        // The bill says paid, the shop does not: a lost notify, most likely. `check` asks
        // WeChat and records the payment if it is there.
        let mut mismatch = self.mismatch(MismatchKind::StatusMismatch, &order.order_id, None);
        mismatch.local = local_side(order.amount_fen, order.status.as_str());
        mismatch.bill = bill;
        match self.pay.check(&order.order_id).await {
            Ok(now) if now.status == PayStatus::Success => {
                mismatch.query = Some(format!(
                    "orderquery: paid; the shop has recorded the payment (was {})",
                    order.status
                ));
                self.report.fixed_by_query.push(mismatch);
            }
            Ok(now) => {
                mismatch.query = Some(format!("orderquery: the order is still {}", now.status));
                self.report.mismatches.push(mismatch);
            }
            Err(error) => {
                mismatch.query = Some(format!("orderquery failed: {error}"));
                self.report.mismatches.push(mismatch);
            }
        }
        Ok(())
    }

    async fn refund_line(
        &mut self,
        line: &bill_line::Model,
        out_refund_no: &str,
        refunds: &mut BTreeMap<String, refund::Model>,
    ) -> Result<(), BillsError> {
        let local = match refunds.remove(out_refund_no) {
            Some(refund) => Some(refund),
            None => match self.store.find_refund(out_refund_no).await? {
                Some(refund) if refund.element != self.merchant.element => return Ok(()),
                Some(refund) => Some(refund),
                None => {
                    if !self.owns(line).await?.0 {
                        return Ok(());
                    }
                    None
                }
            },
        };
        self.report.bill_lines += 1;
        let bill_status = line.refund_status.clone().unwrap_or_default();
        let bill = bill_side(line.refund_fee.unwrap_or_default(), &bill_status, line);
        let Some(refund) = local else {
            let mut mismatch = self.mismatch(
                MismatchKind::MissingLocally,
                &line.out_trade_no,
                Some(out_refund_no),
            );
            mismatch.bill = bill;
            mismatch.query = Some(self.refund_at_wechat(out_refund_no).await.1);
            self.report.mismatches.push(mismatch);
            return Ok(());
        };
        let mut agrees = true;
        if Some(refund.amount_fen) != line.refund_fee {
            agrees = false;
            let mut mismatch = self.mismatch(
                MismatchKind::AmountMismatch,
                &refund.order_id,
                Some(&refund.refund_id),
            );
            mismatch.local = local_side(refund.amount_fen, refund.status.as_str());
            mismatch.bill = bill.clone();
            mismatch.query = Some(self.refund_at_wechat(&refund.refund_id).await.1);
            self.report.mismatches.push(mismatch);
        }
        let bill_state = bill_status
            .parse::<wechatpay_v2::RefundStatus>()
            .ok()
            .map(RefundStatus::of_wechat);
        if bill_state != Some(refund.status) {
            agrees = false;
            let mut mismatch = self.mismatch(
                MismatchKind::StatusMismatch,
                &refund.order_id,
                Some(&refund.refund_id),
            );
            mismatch.local = local_side(refund.amount_fen, refund.status.as_str());
            mismatch.bill = bill;
            // The bill is a snapshot taken when it was made: a refund it shows processing
            // may have settled since, or the shop may have missed the outcome. The live
            // state settles it when the shop holds it, or comes to hold it through the
            // element's own `queryRefund` (which applies what WeChat says).
            let (live, said) = self.refund_at_wechat(&refund.refund_id).await;
            let mut held = refund.status;
            let mut query = said;
            if live.is_some() && live != Some(held) {
                match self.pay.query_refund(&refund.refund_id).await {
                    Ok(now) => {
                        held = now.status;
                        query.push_str(&format!("; queryRefund: the shop's refund is {held}"));
                    }
                    Err(error) => query.push_str(&format!("; queryRefund failed: {error}")),
                }
            }
            mismatch.query = Some(query);
            if live.is_some() && live == Some(held) {
                self.report.fixed_by_query.push(mismatch);
            } else {
                self.report.mismatches.push(mismatch);
            }
        }
        if agrees {
            self.report.matched += 1;
        }
        Ok(())
    }

    async fn payment_missing_in_bill(&mut self, order: pay_log::Model) {
        let mut mismatch = self.mismatch(MismatchKind::MissingInBill, &order.order_id, None);
        mismatch.local = local_side(order.amount_fen, order.status.as_str());
        mismatch.query = Some(self.order_at_wechat(&order).await);
        self.report.mismatches.push(mismatch);
    }

    async fn refund_missing_in_bill(&mut self, refund: refund::Model) {
        let mut mismatch = self.mismatch(
            MismatchKind::MissingInBill,
            &refund.order_id,
            Some(&refund.refund_id),
        );
        mismatch.local = local_side(refund.amount_fen, refund.status.as_str());
        mismatch.query = Some(self.refund_at_wechat(&refund.refund_id).await.1);
        self.report.mismatches.push(mismatch);
    }

    /// What WeChat says of an order now (`checkThird`: orderquery, kept in the record
    /// table), in words.
    async fn order_at_wechat(&self, order: &pay_log::Model) -> String {
        let log = PayLog::from(order.clone());
        match self.pay.check_third(&log).await {
            Ok(Some(record)) => format!(
                "orderquery: trade_state {}",
                record.trade_state.as_deref().unwrap_or("unknown")
            ),
            Ok(None) => "orderquery: WeChat does not know the order".to_owned(),
            Err(error) => {
                tracing::warn!(order_id = %log_safe(&order.order_id),
                    error = %log_safe(&error.to_string()), "reconciliation's orderquery failed");
                format!("orderquery failed: {}", error.public_message())
            }
        }
    }

    /// What WeChat says of a refund now (a refund query by `out_refund_no`): its state,
    /// and the answer in words.
    async fn refund_at_wechat(&self, out_refund_no: &str) -> (Option<RefundStatus>, String) {
        self.client.refund_state(out_refund_no).await
    }
}
