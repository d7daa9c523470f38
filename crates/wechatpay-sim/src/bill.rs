//! The daily bill (`/pay/downloadbill`) of the simulator's orders and refunds.
//!
//! This module decides what the simulated day's bill says: one line per payment made that
//! day, one per refund asked for that day, as WeChat writes them (a refund line carries its
//! amounts in the refund columns and zero in the order columns; its fee is negative, giving
//! the fee back). The format itself (columns, backquotes, the summary) belongs to
//! [`wechatpay_v2::bill`], which writes it here and parses it at the merchant, so the two
//! agree by construction. The handling fee is WeChat's standard 0.60%, exact in
//! hundred-thousandths of a yuan. A refund line's status is the refund's at the time of
//! the download (SUCCESS, CHANGE, REFUNDCLOSE or PROCESSING). [`BillAlteration`]s make a
//! bill disagree with the orders on purpose, for reconciliation tests.

use chrono::{DateTime, FixedOffset, NaiveDate};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use wechatpay_v2::bill::{self, BillError, BillRefund, BillRow, FeeRate, ServiceFee};
use wechatpay_v2::{BillType, Fen, TradeState, TradeType, time};

use crate::store::{Order, Refund};

/// The rate every simulated merchant pays.
const RATE: &str = "0.60%";

/// The handling fee at 0.60%: 0.6% of `fen` fen is `6 * fen` hundred-thousandths of a yuan.
fn service_fee(amount: Fen) -> ServiceFee {
    ServiceFee::from_units(amount.get().saturating_mul(6))
}

/// A bill line cannot carry a comma or a line break (they would split it); the simulator
/// writes them as a full-width comma and a space, which is what such a body looks like in
/// WeChat's bills rather than a broken line.
fn bill_text(value: &str) -> String {
    value.replace(',', "，").replace(['\r', '\n'], " ")
}

/// The columns every line of `order` shares.
fn order_row(order: &Order, at: DateTime<FixedOffset>) -> Result<BillRow, BillError> {
    let trade_type: TradeType =
        order
            .trade_type
            .parse()
            .map_err(|error: wechatpay_v2::UnknownValue| BillError::RowMismatch {
                row: 0,
                reason: error.to_string(),
            })?;
    Ok(BillRow {
        trade_time: at.to_utc(),
        appid: order.appid.clone(),
        mch_id: order.mch_id.clone(),
        sub_mch_id: "0".into(),
        device_info: bill_text(order.device_info.as_deref().unwrap_or_default()),
        transaction_id: order.transaction_id.clone().unwrap_or_default(),
        out_trade_no: order.out_trade_no.clone(),
        openid: order.openid.clone().unwrap_or_default(),
        trade_type,
        trade_state: TradeState::Success,
        bank_type: "OTHERS".into(),
        fee_type: order.fee_type.clone(),
        settlement_total_fee: order.total_fee,
        coupon_fee: Fen::ZERO,
        refund: None,
        body: bill_text(&order.body),
        attach: bill_text(order.attach.as_deref().unwrap_or_default()),
        service_fee: service_fee(order.total_fee),
        rate: FeeRate::parse(RATE).expect("the simulator's rate is a rate"),
        total_fee: order.total_fee,
        rate_note: String::new(),
    })
}

/// A refund's line: the order's columns with zero order amounts, the refund's columns, and
/// the fee given back.
fn refund_row(
    order: &Order,
    refund: &Refund,
    bill_type: BillType,
    now: DateTime<FixedOffset>,
) -> Result<BillRow, BillError> {
    // Only the REFUND bill has the request and success time columns.
    let times = bill_type == BillType::Refund;
    Ok(BillRow {
        trade_state: TradeState::Refund,
        settlement_total_fee: Fen::ZERO,
        total_fee: Fen::ZERO,
        service_fee: ServiceFee::from_units(-service_fee(refund.refund_fee).units()),
        refund: Some(BillRefund {
            applied_at: times.then(|| refund.created_at.to_utc()),
            succeeded_at: refund
                .success_time(now)
                .filter(|_| times)
                .map(|at| at.to_utc()),
            refund_id: refund.refund_id.clone(),
            out_refund_no: refund.out_refund_no.clone(),
            settlement_refund_fee: refund.refund_fee,
            coupon_refund_fee: Fen::ZERO,
            refund_channel: "ORIGINAL".into(),
            refund_status: refund.status_at(now),
            refund_fee: refund.refund_fee,
        }),
        ..order_row(order, refund.created_at)?
    })
}

/// A deliberate disagreement between the bills and the simulator's own orders, for tests
/// of a merchant's reconciliation: the payment line of the order `out_trade_no` is left
/// out of the ALL and SUCCESS bills (`omit`), or states another amount (`total_fee`, with
/// the fee and the totals line following it). Exactly one of the two. The order itself,
/// as `orderquery` and `refundquery` report it, does not change, as a live query at
/// WeChat would contradict a wrong bill; refund lines are not altered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillAlteration {
    /// The order whose payment line is altered.
    pub out_trade_no: String,
    /// Leave the payment line out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omit: bool,
    /// State this amount instead of the order's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_fee: Option<Fen>,
}

impl BillAlteration {
    /// The order's payment is missing from the bills.
    pub fn omit(out_trade_no: impl Into<String>) -> Self {
        BillAlteration {
            out_trade_no: out_trade_no.into(),
            omit: true,
            total_fee: None,
        }
    }

    /// The bills state `total_fee` for the order's payment.
    pub fn total_fee(out_trade_no: impl Into<String>, total_fee: Fen) -> Self {
        BillAlteration {
            out_trade_no: out_trade_no.into(),
            omit: false,
            total_fee: Some(total_fee),
        }
    }
}

/// Why a [`BillAlteration`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBillAlteration {
    /// Neither or both of `omit` and `total_fee`.
    #[error("a bill alteration of `{0}` sets exactly one of omit and total_fee")]
    OneChange(String),
    /// A zero or negative amount.
    #[error("a bill alteration of `{0}` needs a positive total_fee")]
    Amount(String),
}

/// Puts `alteration` in force, replacing an earlier one of the same order.
pub(crate) fn alter(
    alterations: &Mutex<Vec<BillAlteration>>,
    alteration: BillAlteration,
) -> Result<(), InvalidBillAlteration> {
    match alteration.total_fee {
        Some(_) if alteration.omit => {
            return Err(InvalidBillAlteration::OneChange(alteration.out_trade_no));
        }
        None if !alteration.omit => {
            return Err(InvalidBillAlteration::OneChange(alteration.out_trade_no));
        }
        Some(fee) if fee <= Fen::ZERO => {
            return Err(InvalidBillAlteration::Amount(alteration.out_trade_no));
        }
        _ => {}
    }
    let mut alterations = alterations.lock();
    alterations.retain(|earlier| earlier.out_trade_no != alteration.out_trade_no);
    alterations.push(alteration);
    Ok(())
}

/// The payment line of `order`, as altered (`None`: left out).
fn payment_row(
    order: &Order,
    paid_at: DateTime<FixedOffset>,
    alterations: &[BillAlteration],
) -> Result<Option<BillRow>, BillError> {
    let mut row = order_row(order, paid_at)?;
    match alterations
        .iter()
        .find(|alteration| alteration.out_trade_no == order.out_trade_no)
    {
        Some(alteration) if alteration.omit => return Ok(None),
        Some(BillAlteration {
            total_fee: Some(total_fee),
            ..
        }) => {
            row.total_fee = *total_fee;
            row.settlement_total_fee = *total_fee;
            row.service_fee = service_fee(*total_fee);
        }
        _ => {}
    }
    Ok(Some(row))
}

/// The lines of the bill of `date`: the day's payments (ALL, SUCCESS) and refunds (ALL,
/// REFUND), order by order, with `alterations` applied.
pub(crate) fn rows(
    orders: &[Order],
    date: NaiveDate,
    bill_type: BillType,
    now: DateTime<FixedOffset>,
    alterations: &[BillAlteration],
) -> Result<Vec<BillRow>, BillError> {
    let mut rows = Vec::new();
    for order in orders {
        let paid_today = order.paid_at.filter(|at| time::beijing_date(*at) == date);
        if let Some(paid_at) = paid_today
            && bill_type != BillType::Refund
        {
            rows.extend(payment_row(order, paid_at, alterations)?);
        }
        if bill_type == BillType::Success {
            continue;
        }
        for refund in order
            .refunds
            .iter()
            .filter(|refund| time::beijing_date(refund.created_at) == date)
        {
            rows.push(refund_row(order, refund, bill_type, now)?);
        }
    }
    Ok(rows)
}

/// The bill of `date`, or `None` when nothing happened that day ("No Bill Exist").
pub(crate) fn render(
    orders: &[Order],
    date: NaiveDate,
    bill_type: BillType,
    alterations: &[BillAlteration],
) -> Result<Option<String>, BillError> {
    let rows = rows(orders, date, bill_type, time::beijing_now(), alterations)?;
    if rows.is_empty() {
        return Ok(None);
    }
    bill::render(bill_type, &rows).map(Some)
}

/// The V3 fund-flow bill (`/v3/bill/fundflowbill`) of the basic account on `date`, or
/// `None` when no money moved that day: one income line per payment made that day and one
/// expense line per refund asked for that day (closed refunds left out: their money came
/// back), oldest first, with the running balance from zero at the start of the day (the
/// simulator keeps no balance across days, and no fee lines), then WeChat's summary.
pub(crate) fn fund_flow(orders: &[Order], date: NaiveDate) -> Option<String> {
    struct Line {
        at: DateTime<FixedOffset>,
        business_no: String,
        name: &'static str,
        income: bool,
        amount: Fen,
        voucher: String,
        remark: String,
    }
    let now = time::beijing_now();
    let mut lines = Vec::new();
    for order in orders {
        if let (Some(paid_at), Some(transaction_id)) = (order.paid_at, &order.transaction_id)
            && time::beijing_date(paid_at) == date
        {
            lines.push(Line {
                at: paid_at,
                business_no: transaction_id.clone(),
                name: "交易",
                income: true,
                amount: order.total_fee,
                voucher: order.out_trade_no.clone(),
                remark: String::new(),
            });
        }
        for refund in order
            .refunds
            .iter()
            .filter(|refund| time::beijing_date(refund.created_at) == date)
            .filter(|refund| refund.counts_at(now))
        {
            lines.push(Line {
                at: refund.created_at,
                business_no: refund.refund_id.clone(),
                name: "退款",
                income: false,
                amount: refund.refund_fee,
                voucher: refund.out_refund_no.clone(),
                remark: refund
                    .refund_desc
                    .as_deref()
                    .map(bill_text)
                    .unwrap_or_default(),
            });
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.sort_by_key(|line| line.at);
    let mut text = String::from(
        "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号\n",
    );
    let mut balance = Fen::ZERO;
    let (mut income_count, mut income, mut expense_count, mut expense) =
        (0usize, Fen::ZERO, 0usize, Fen::ZERO);
    for (index, line) in lines.iter().enumerate() {
        let direction = if line.income {
            income_count += 1;
            income = income.checked_add(line.amount).unwrap_or(Fen::MAX);
            balance = balance.checked_add(line.amount).unwrap_or(Fen::MAX);
            "收入"
        } else {
            expense_count += 1;
            expense = expense.checked_add(line.amount).unwrap_or(Fen::MAX);
            balance = balance.checked_sub(line.amount).unwrap_or(Fen::MAX);
            "支出"
        };
        let flow_no = format!("1900{}{:08}", line.at.format("%Y%m%d"), index + 1);
        text.push_str(&format!(
            "`{},`{},`{},`{},`{},`{},`{},`{},`system,`{},`{}\n",
            time::beijing_readable_time(line.at),
            line.business_no,
            flow_no,
            line.name,
            line.name,
            direction,
            line.amount,
            balance,
            line.remark,
            line.voucher,
        ));
    }
    text.push_str("资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n");
    text.push_str(&format!(
        "`{},`{income_count},`{income},`{expense_count},`{expense}\n",
        lines.len()
    ));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_are_exact() {
        assert_eq!(service_fee(Fen::new(1)).to_string(), "0.00006");
        assert_eq!(service_fee(Fen::new(9999)).to_string(), "0.59994");
        assert_eq!(
            ServiceFee::from_units(-service_fee(Fen::new(100_000)).units()).to_string(),
            "-6.00000"
        );
    }

    /// An order of 1000 fen paid a day before `now`, refunded 300, 200 and 100 at `now`
    /// (the 100 closed).
    fn paid_yesterday_refunded_today(now: DateTime<FixedOffset>) -> Order {
        use crate::store::{NewOrder, OrderRef, PayTarget, RefundPlan, RefundRequest, Store};
        use crate::{DEFAULT_APPID, DEFAULT_MCH_ID};
        let store = Store::new(10, []);
        let _ = store.create(NewOrder {
            api_version: crate::store::ApiVersion::V2,
            env: crate::Env::Live,
            appid: DEFAULT_APPID.into(),
            mch_id: DEFAULT_MCH_ID.into(),
            out_trade_no: "o1".into(),
            body: "b".into(),
            attach: None,
            device_info: None,
            total_fee: Fen::new(1000),
            fee_type: "CNY".into(),
            trade_type: "NATIVE".into(),
            openid: None,
            notify_url: "http://127.0.0.1:1/n".into(),
            sign_type: None,
            time_expire: None,
            fingerprint: Vec::new(),
        });
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        store
            .plan_refund(RefundPlan::refund(
                "r3",
                wechatpay_v2::RefundStatus::RefundClose,
            ))
            .unwrap();
        for (no, fee) in [("r1", 300), ("r2", 200), ("r3", 100)] {
            store
                .refund(
                    crate::Env::Live,
                    DEFAULT_MCH_ID,
                    &OrderRef::OutTradeNo("o1".into()),
                    RefundRequest {
                        out_refund_no: no.into(),
                        total_fee: Fen::new(1000),
                        refund_fee: Fen::new(fee),
                        notify_url: None,
                        refund_desc: None,
                        processing: std::time::Duration::ZERO,
                    },
                )
                .unwrap();
        }
        let mut order = store.all_orders().remove(0);
        order.paid_at = Some(now - chrono::Duration::days(1));
        for refund in &mut order.refunds {
            refund.created_at = now;
            refund.settles_at = Some(now);
        }
        order
    }

    #[test]
    fn a_refund_of_an_order_paid_on_an_earlier_day_is_billed_on_its_own_day() {
        use wechatpay_v2::{Bill, RefundStatus};
        let now = time::beijing_now();
        let today = time::beijing_date(now);
        let yesterday = today.pred_opt().unwrap();
        let orders = [paid_yesterday_refunded_today(now)];

        let paid_day = render(&orders, yesterday, BillType::All, &[])
            .unwrap()
            .unwrap();
        let paid_day = Bill::parse(&paid_day).unwrap();
        assert_eq!(paid_day.lines.len(), 1);
        assert!(paid_day.lines[0].row.refund.is_none());
        assert_eq!(paid_day.summary.totals.total_fee, Fen::new(1000));
        assert_eq!(
            render(&orders, yesterday, BillType::Refund, &[]).unwrap(),
            None,
            "no refund that day"
        );

        assert_eq!(
            render(&orders, today, BillType::Success, &[]).unwrap(),
            None,
            "no payment today"
        );
        for bill_type in [BillType::All, BillType::Refund] {
            let text = render(&orders, today, bill_type, &[]).unwrap().unwrap();
            let bill = Bill::parse(&text).unwrap();
            let refunds: Vec<(&str, Fen, RefundStatus)> = bill
                .rows()
                .map(|row| {
                    let refund = row.refund.as_ref().expect("only refund lines");
                    (
                        refund.out_refund_no.as_str(),
                        refund.refund_fee,
                        refund.refund_status,
                    )
                })
                .collect();
            assert_eq!(
                refunds,
                [
                    ("r1", Fen::new(300), RefundStatus::Success),
                    ("r2", Fen::new(200), RefundStatus::Success),
                    ("r3", Fen::new(100), RefundStatus::RefundClose),
                ],
                "{bill_type:?}"
            );
            let totals = &bill.summary.totals;
            assert_eq!(totals.count, 3);
            assert_eq!(totals.total_fee, Fen::ZERO);
            assert_eq!(totals.refund_fee, Fen::new(600));
            assert_eq!(totals.settlement_refund_fee, Fen::new(600));
            assert_eq!(totals.service_fee, ServiceFee::from_units(-6 * 600));
        }
    }

    #[test]
    fn texts_that_would_split_a_line_are_rewritten() {
        assert_eq!(bill_text("a,b\r\nc"), "a，b  c");
        assert_eq!(bill_text("模拟商品"), "模拟商品");
    }
}
