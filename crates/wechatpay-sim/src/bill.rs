//! The daily bill (`/pay/downloadbill`) of the simulator's orders and refunds.
//!
//! This module decides what the simulated day's bill says: one line per payment made that
//! day, one per refund asked for that day, as WeChat writes them (a refund line carries its
//! amounts in the refund columns and zero in the order columns; its fee is negative, giving
//! the fee back). The format itself (columns, backquotes, the summary) belongs to
//! [`wechatpay_v2::bill`], which writes it here and parses it at the merchant, so the two
//! agree by construction. The handling fee is WeChat's standard 0.60%, exact in
//! hundred-thousandths of a yuan.

use chrono::{DateTime, FixedOffset, NaiveDate};
use wechatpay_v2::bill::{self, BillError, BillRefund, BillRow, FeeRate, ServiceFee};
use wechatpay_v2::{BillType, Fen, RefundStatus, TradeState, TradeType, time};

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
    let succeeded = refund.has_succeeded(now);
    // Only the REFUND bill has the request and success time columns.
    let times = bill_type == BillType::Refund;
    Ok(BillRow {
        trade_state: TradeState::Refund,
        settlement_total_fee: Fen::ZERO,
        total_fee: Fen::ZERO,
        service_fee: ServiceFee::from_units(-service_fee(refund.refund_fee).units()),
        refund: Some(BillRefund {
            applied_at: times.then(|| refund.created_at.to_utc()),
            succeeded_at: (times && succeeded).then(|| refund.settles_at.to_utc()),
            refund_id: refund.refund_id.clone(),
            out_refund_no: refund.out_refund_no.clone(),
            settlement_refund_fee: refund.refund_fee,
            coupon_refund_fee: Fen::ZERO,
            refund_channel: "ORIGINAL".into(),
            refund_status: if succeeded {
                RefundStatus::Success
            } else {
                RefundStatus::Processing
            },
            refund_fee: refund.refund_fee,
        }),
        ..order_row(order, refund.created_at)?
    })
}

/// The lines of the bill of `date`: the day's payments (ALL, SUCCESS) and refunds (ALL,
/// REFUND), order by order.
pub(crate) fn rows(
    orders: &[Order],
    date: NaiveDate,
    bill_type: BillType,
    now: DateTime<FixedOffset>,
) -> Result<Vec<BillRow>, BillError> {
    let mut rows = Vec::new();
    for order in orders {
        let paid_today = order.paid_at.filter(|at| time::beijing_date(*at) == date);
        if let Some(paid_at) = paid_today
            && bill_type != BillType::Refund
        {
            rows.push(order_row(order, paid_at)?);
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
) -> Result<Option<String>, BillError> {
    let rows = rows(orders, date, bill_type, time::beijing_now())?;
    if rows.is_empty() {
        return Ok(None);
    }
    bill::render(bill_type, &rows).map(Some)
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

    #[test]
    fn texts_that_would_split_a_line_are_rewritten() {
        assert_eq!(bill_text("a,b\r\nc"), "a，b  c");
        assert_eq!(bill_text("模拟商品"), "模拟商品");
    }
}
