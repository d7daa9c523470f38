//! The daily bill (`/pay/downloadbill`) in WeChat's text format.
//!
//! A header line, one line per transaction with every value prefixed by a backquote (so
//! spreadsheets keep long numbers as text), then a summary header and a summary line.
//! Amounts in yuan with two decimals; the handling fee at WeChat's standard 0.60% with five
//! decimals, computed in integers.

use chrono::{DateTime, FixedOffset, NaiveDate};
use wechatpay_v2::Fen;
use wechatpay_v2::time;

use crate::store::{Order, Refund};

/// `bill_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BillType {
    All,
    Success,
    Refund,
}

const ALL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUCCESS_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注";
const REFUND_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The handling fee in units of 0.00001 yuan: 0.6% of `fen` fen is `6 * fen` such units.
fn fee_units(amount: Fen) -> i64 {
    amount.get().saturating_mul(6)
}

fn format_fee(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let units = units.unsigned_abs();
    format!("{sign}{}.{:05}", units / 100_000, units % 100_000)
}

fn line(values: &[String]) -> String {
    values
        .iter()
        .map(|value| format!("`{value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The columns every row starts with.
fn order_columns(order: &Order, at: String, state: &str) -> Vec<String> {
    vec![
        at,
        order.appid.clone(),
        order.mch_id.clone(),
        "0".into(),
        order.device_info.clone().unwrap_or_default(),
        order.transaction_id.clone().unwrap_or_default(),
        order.out_trade_no.clone(),
        order.openid.clone().unwrap_or_default(),
        order.trade_type.clone(),
        state.into(),
        "OTHERS".into(),
        order.fee_type.clone(),
        order.total_fee.to_string(),
        "0.00".into(),
    ]
}

fn refund_columns(refund: &Refund, now: DateTime<FixedOffset>) -> Vec<String> {
    vec![
        refund.refund_id.clone(),
        refund.out_refund_no.clone(),
        refund.refund_fee.to_string(),
        "0.00".into(),
        "ORIGINAL".into(),
        refund.status_at(now).to_owned(),
    ]
}

#[derive(Default)]
struct Totals {
    rows: usize,
    settled: i64,
    refunded: i64,
    fee_units: i64,
}

/// The bill of `date`, or `None` when nothing happened that day ("No Bill Exist").
pub(crate) fn render(orders: &[Order], date: NaiveDate, bill_type: BillType) -> Option<String> {
    let mut rows = Vec::new();
    let mut totals = Totals::default();
    let now = time::beijing_now();
    for order in orders {
        let paid_today = order.paid_at.filter(|at| time::beijing_date(*at) == date);
        if let Some(paid_at) = paid_today
            && bill_type != BillType::Refund
        {
            let mut row = order_columns(order, time::beijing_readable_time(paid_at), "SUCCESS");
            if bill_type == BillType::All {
                row.extend(["0", "0", "0.00", "0.00", "", ""].map(String::from));
            }
            let fee = fee_units(order.total_fee);
            row.extend([
                order.body.clone(),
                order.attach.clone().unwrap_or_default(),
                format_fee(fee),
                "0.60%".into(),
                order.total_fee.to_string(),
            ]);
            if bill_type == BillType::All {
                row.push("0.00".into());
            }
            row.push(String::new());
            rows.push(line(&row));
            totals.rows += 1;
            totals.settled += order.total_fee.get();
            totals.fee_units += fee;
        }
        if bill_type == BillType::Success {
            continue;
        }
        for refund in order
            .refunds
            .iter()
            .filter(|refund| time::beijing_date(refund.created_at) == date)
        {
            let time = time::beijing_readable_time(refund.created_at);
            let mut row = order_columns(order, time.clone(), "REFUND");
            if bill_type == BillType::Refund {
                let success_time = if refund.has_succeeded(now) {
                    time::beijing_readable_time(refund.settles_at)
                } else {
                    String::new()
                };
                row.extend([time.clone(), success_time]);
            }
            row.extend(refund_columns(refund, now));
            let fee = -fee_units(refund.refund_fee);
            row.extend([
                order.body.clone(),
                order.attach.clone().unwrap_or_default(),
                format_fee(fee),
                "0.60%".into(),
                order.total_fee.to_string(),
                refund.refund_fee.to_string(),
                String::new(),
            ]);
            rows.push(line(&row));
            totals.rows += 1;
            totals.refunded += refund.refund_fee.get();
            totals.fee_units += fee;
        }
    }
    if rows.is_empty() {
        return None;
    }
    let header = match bill_type {
        BillType::All => ALL_HEADER,
        BillType::Success => SUCCESS_HEADER,
        BillType::Refund => REFUND_HEADER,
    };
    let summary = line(&[
        totals.rows.to_string(),
        Fen::new(totals.settled).to_string(),
        Fen::new(totals.refunded).to_string(),
        "0.00".into(),
        format_fee(totals.fee_units),
        Fen::new(totals.settled).to_string(),
        Fen::new(totals.refunded).to_string(),
    ]);
    let mut text = String::new();
    for part in [header.to_string()]
        .into_iter()
        .chain(rows)
        .chain([SUMMARY_HEADER.to_string(), summary])
    {
        text.push_str(&part);
        text.push_str("\r\n");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_are_exact() {
        assert_eq!(format_fee(fee_units(Fen::new(1))), "0.00006");
        assert_eq!(format_fee(fee_units(Fen::new(9999))), "0.59994");
        assert_eq!(format_fee(-fee_units(Fen::new(100_000))), "-6.00000");
    }

    #[test]
    fn every_row_has_as_many_columns_as_its_header() {
        assert_eq!(ALL_HEADER.split(',').count(), 27);
        assert_eq!(SUCCESS_HEADER.split(',').count(), 20);
        assert_eq!(REFUND_HEADER.split(',').count(), 29);
    }
}
