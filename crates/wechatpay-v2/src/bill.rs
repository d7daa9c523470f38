//! WeChat Pay V2's daily bill (`/pay/downloadbill`): its text format, parsed and rendered.
//!
//! This module owns the bill format: the column sets of the `ALL`, `SUCCESS` and `REFUND`
//! bills, how each column is typed, the summary and how it must agree with the data. The
//! simulator renders its bills with [`render`], and merchants read WeChat's with [`parse`],
//! so both sides speak one format.
//!
//! A bill is:
//! 1. a header line naming the columns (Chinese names, comma-separated, no prefix); it tells
//!    which of the three bills this is;
//! 2. one line per transaction, every value prefixed with a backquote (`` `value ``, so that
//!    spreadsheets keep long numbers as text), comma-separated;
//! 3. the summary header ([`SUMMARY_HEADER`]) and one summary line, prefixed the same way.
//!
//! Amounts are yuan with two decimals and become integer [`Fen`] (read digit by digit, never
//! through a float). The handling fee (`手续费`) is written with five decimals and kept exact
//! as a [`ServiceFee`]; the rate (`费率`, `0.60%`) as a [`FeeRate`]. Times are Beijing time
//! (`yyyy-MM-dd HH:mm:ss`, read with [`crate::time`]).
//!
//! The parser never skips anything: an unknown header, a line with the wrong number of
//! fields, a value without its backquote, an amount, time or enumeration that does not parse,
//! a missing or extra summary, and a summary that disagrees with the data lines are each a
//! [`BillError`] naming the line number and the field. A bill with a header, no data line
//! and a zero summary parses to zero lines; WeChat's "No Bill Exist" is not a bill at all but
//! the XML error [`Client::download_bill`](crate::Client::download_bill) reports.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::money::Fen;
use crate::time;
use crate::types::{BillType, RefundStatus, TradeState, TradeType};

/// The header of the summary section, the same in every bill.
pub const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// A column of a bill's data lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `交易时间`: when the payment (or, in refund lines, the refund) happened.
    TradeTime,
    /// `公众账号ID`.
    AppId,
    /// `商户号`.
    MchId,
    /// `特约商户号` (`0` for a direct merchant).
    SubMchId,
    /// `设备号`.
    DeviceInfo,
    /// `微信订单号`.
    TransactionId,
    /// `商户订单号`.
    OutTradeNo,
    /// `用户标识`.
    OpenId,
    /// `交易类型`.
    TradeType,
    /// `交易状态`.
    TradeState,
    /// `付款银行`.
    BankType,
    /// `货币种类`.
    FeeType,
    /// `应结订单金额`.
    SettlementTotalFee,
    /// `代金券金额`.
    CouponFee,
    /// `退款申请时间` (REFUND bills).
    RefundApplyTime,
    /// `退款成功时间` (REFUND bills; empty until the refund succeeds).
    RefundSuccessTime,
    /// `微信退款单号` (`0` on payment lines).
    RefundId,
    /// `商户退款单号` (`0` on payment lines).
    OutRefundNo,
    /// `退款金额`.
    SettlementRefundFee,
    /// `充值券退款金额`.
    CouponRefundFee,
    /// `退款类型` (`ORIGINAL`, `BALANCE`).
    RefundChannel,
    /// `退款状态`.
    RefundStatus,
    /// `商品名称`.
    Body,
    /// `商户数据包`.
    Attach,
    /// `手续费`.
    ServiceFee,
    /// `费率`.
    Rate,
    /// `订单金额`.
    TotalFee,
    /// `申请退款金额`.
    RefundFee,
    /// `费率备注`.
    RateNote,
}

impl Column {
    /// The column's name in the header line.
    pub const fn header(self) -> &'static str {
        self.names().0
    }

    /// The column's name in the protocol's field vocabulary (`settlement_refund_fee`).
    pub const fn field(self) -> &'static str {
        self.names().1
    }

    /// How errors name the column: `退款金额 (settlement_refund_fee)`.
    pub const fn label(self) -> &'static str {
        self.names().2
    }

    const fn names(self) -> (&'static str, &'static str, &'static str) {
        use Column::*;
        match self {
            TradeTime => ("交易时间", "trade_time", "交易时间 (trade_time)"),
            AppId => ("公众账号ID", "appid", "公众账号ID (appid)"),
            MchId => ("商户号", "mch_id", "商户号 (mch_id)"),
            SubMchId => ("特约商户号", "sub_mch_id", "特约商户号 (sub_mch_id)"),
            DeviceInfo => ("设备号", "device_info", "设备号 (device_info)"),
            TransactionId => (
                "微信订单号",
                "transaction_id",
                "微信订单号 (transaction_id)",
            ),
            OutTradeNo => ("商户订单号", "out_trade_no", "商户订单号 (out_trade_no)"),
            OpenId => ("用户标识", "openid", "用户标识 (openid)"),
            TradeType => ("交易类型", "trade_type", "交易类型 (trade_type)"),
            TradeState => ("交易状态", "trade_state", "交易状态 (trade_state)"),
            BankType => ("付款银行", "bank_type", "付款银行 (bank_type)"),
            FeeType => ("货币种类", "fee_type", "货币种类 (fee_type)"),
            SettlementTotalFee => (
                "应结订单金额",
                "settlement_total_fee",
                "应结订单金额 (settlement_total_fee)",
            ),
            CouponFee => ("代金券金额", "coupon_fee", "代金券金额 (coupon_fee)"),
            RefundApplyTime => (
                "退款申请时间",
                "refund_apply_time",
                "退款申请时间 (refund_apply_time)",
            ),
            RefundSuccessTime => (
                "退款成功时间",
                "refund_success_time",
                "退款成功时间 (refund_success_time)",
            ),
            RefundId => ("微信退款单号", "refund_id", "微信退款单号 (refund_id)"),
            OutRefundNo => (
                "商户退款单号",
                "out_refund_no",
                "商户退款单号 (out_refund_no)",
            ),
            SettlementRefundFee => (
                "退款金额",
                "settlement_refund_fee",
                "退款金额 (settlement_refund_fee)",
            ),
            CouponRefundFee => (
                "充值券退款金额",
                "coupon_refund_fee",
                "充值券退款金额 (coupon_refund_fee)",
            ),
            RefundChannel => ("退款类型", "refund_channel", "退款类型 (refund_channel)"),
            RefundStatus => ("退款状态", "refund_status", "退款状态 (refund_status)"),
            Body => ("商品名称", "body", "商品名称 (body)"),
            Attach => ("商户数据包", "attach", "商户数据包 (attach)"),
            ServiceFee => ("手续费", "service_fee", "手续费 (service_fee)"),
            Rate => ("费率", "rate", "费率 (rate)"),
            TotalFee => ("订单金额", "total_fee", "订单金额 (total_fee)"),
            RefundFee => ("申请退款金额", "refund_fee", "申请退款金额 (refund_fee)"),
            RateNote => ("费率备注", "rate_note", "费率备注 (rate_note)"),
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The columns every bill starts with.
macro_rules! leading_columns {
    ($($rest:ident),* $(,)?) => {
        &[
            Column::TradeTime,
            Column::AppId,
            Column::MchId,
            Column::SubMchId,
            Column::DeviceInfo,
            Column::TransactionId,
            Column::OutTradeNo,
            Column::OpenId,
            Column::TradeType,
            Column::TradeState,
            Column::BankType,
            Column::FeeType,
            Column::SettlementTotalFee,
            Column::CouponFee,
            $(Column::$rest,)*
        ]
    };
}

/// `bill_type=ALL`: every payment and every refund of the day.
const ALL_COLUMNS: &[Column] = leading_columns![
    RefundId,
    OutRefundNo,
    SettlementRefundFee,
    CouponRefundFee,
    RefundChannel,
    RefundStatus,
    Body,
    Attach,
    ServiceFee,
    Rate,
    TotalFee,
    RefundFee,
    RateNote,
];

/// `bill_type=SUCCESS`: the day's successful payments.
const SUCCESS_COLUMNS: &[Column] =
    leading_columns![Body, Attach, ServiceFee, Rate, TotalFee, RateNote];

/// `bill_type=REFUND`: the day's refunds, with when they were asked for and when they succeeded.
const REFUND_COLUMNS: &[Column] = leading_columns![
    RefundApplyTime,
    RefundSuccessTime,
    RefundId,
    OutRefundNo,
    SettlementRefundFee,
    CouponRefundFee,
    RefundChannel,
    RefundStatus,
    Body,
    Attach,
    ServiceFee,
    Rate,
    TotalFee,
    RefundFee,
    RateNote,
];

/// The columns of a bill type, in order; `None` for the types this module does not read
/// (`RECHARGE_REFUND`).
pub fn columns(bill_type: BillType) -> Option<&'static [Column]> {
    match bill_type {
        BillType::All => Some(ALL_COLUMNS),
        BillType::Success => Some(SUCCESS_COLUMNS),
        BillType::Refund => Some(REFUND_COLUMNS),
        BillType::RechargeRefund => None,
    }
}

/// The header line of a bill type, as WeChat writes it.
pub fn header(bill_type: BillType) -> Option<String> {
    columns(bill_type).map(|columns| {
        columns
            .iter()
            .map(|column| column.header())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A handling fee (`手续费`), exact: WeChat writes it in yuan with five decimals
/// (`0.00600`, `-0.02000`), so it counts hundred-thousandths of a yuan (thousandths of a
/// fen). Negative on refund lines, which give the fee back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServiceFee(i64);

impl ServiceFee {
    /// No fee.
    pub const ZERO: ServiceFee = ServiceFee(0);

    /// A fee of `units` hundred-thousandths of a yuan.
    pub const fn from_units(units: i64) -> ServiceFee {
        ServiceFee(units)
    }

    /// The fee in hundred-thousandths of a yuan.
    pub const fn units(self) -> i64 {
        self.0
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: ServiceFee) -> Option<ServiceFee> {
        self.0.checked_add(other.0).map(ServiceFee)
    }

    /// Reads `-0.02000`, `0.00600`, `0`: an optional minus, digits, at most five decimals.
    pub fn parse(text: &str) -> Result<ServiceFee, String> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let units = parse_fixed_point(digits, 5)
            .ok_or_else(|| format!("{text:?} is not a yuan amount with at most five decimals"))?;
        Ok(ServiceFee(if negative { -units } else { units }))
    }
}

impl fmt::Display for ServiceFee {
    /// Yuan with five decimals, as the bill writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let units = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:05}", units / 100_000, units % 100_000)
    }
}

/// A fee rate (`费率`) as the bill writes it (`0.60%`), kept as that text and read exactly
/// as parts per million (`0.60%` is 6000).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeeRate {
    text: String,
    parts_per_million: u32,
}

impl FeeRate {
    /// Reads a percentage with at most four decimals: `0.60%`, `1%`, `0.38%`.
    pub fn parse(text: &str) -> Result<FeeRate, String> {
        let refused = || format!("{text:?} is not a percentage such as 0.60%");
        let number = text.strip_suffix('%').ok_or_else(refused)?;
        let parts_per_million = parse_fixed_point(number, 4)
            .and_then(|units| u32::try_from(units).ok())
            .filter(|&ppm| ppm <= 1_000_000)
            .ok_or_else(refused)?;
        Ok(FeeRate {
            text: text.to_owned(),
            parts_per_million,
        })
    }

    /// The rate as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The rate in parts per million (`0.60%` → 6000).
    pub fn parts_per_million(&self) -> u32 {
        self.parts_per_million
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `digits[.fraction]` with at most `scale` fraction digits, as an integer count of
/// `10^-scale`; `None` for anything else (signs, exponents, spaces, overflow).
fn parse_fixed_point(text: &str, scale: u32) -> Option<i64> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((int_part, frac)) if !frac.is_empty() => (int_part, frac),
        Some(_) => return None,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !digits(int_part) || !digits(frac_part) {
        return None;
    }
    if frac_part.len() > scale as usize {
        return None;
    }
    let mut value: i64 = 0;
    for byte in int_part.bytes().chain(frac_part.bytes()) {
        value = value.checked_mul(10)?.checked_add(i64::from(byte - b'0'))?;
    }
    value.checked_mul(10_i64.checked_pow(scale - frac_part.len() as u32)?)
}

/// The refund a line records (ALL and REFUND bills).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRefund {
    /// `退款申请时间`: only REFUND bills have it.
    pub applied_at: Option<DateTime<Utc>>,
    /// `退款成功时间`: only REFUND bills have it, and only once the refund succeeded.
    pub succeeded_at: Option<DateTime<Utc>>,
    /// `微信退款单号`.
    pub refund_id: String,
    /// `商户退款单号`.
    pub out_refund_no: String,
    /// `退款金额`: what was refunded, coupons excluded.
    pub settlement_refund_fee: Fen,
    /// `充值券退款金额`.
    pub coupon_refund_fee: Fen,
    /// `退款类型` (`ORIGINAL`, `BALANCE`), verbatim.
    pub refund_channel: String,
    /// `退款状态`.
    pub refund_status: RefundStatus,
    /// `申请退款金额`: what the merchant asked to refund.
    pub refund_fee: Fen,
}

/// One transaction of a bill, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// `交易时间`.
    pub trade_time: DateTime<Utc>,
    /// `公众账号ID`.
    pub appid: String,
    /// `商户号`.
    pub mch_id: String,
    /// `特约商户号` (`0` for a direct merchant), verbatim.
    pub sub_mch_id: String,
    /// `设备号` (often empty).
    pub device_info: String,
    /// `微信订单号`.
    pub transaction_id: String,
    /// `商户订单号`.
    pub out_trade_no: String,
    /// `用户标识`.
    pub openid: String,
    /// `交易类型`.
    pub trade_type: TradeType,
    /// `交易状态`: `SUCCESS` for a payment line, `REFUND` for a refund line.
    pub trade_state: TradeState,
    /// `付款银行` (`CFT`, `OTHERS`, a bank code), verbatim.
    pub bank_type: String,
    /// `货币种类` (`CNY`).
    pub fee_type: String,
    /// `应结订单金额` (zero on refund lines).
    pub settlement_total_fee: Fen,
    /// `代金券金额`.
    pub coupon_fee: Fen,
    /// The refund of a refund line; `None` on payment lines (whose refund columns hold `0`).
    pub refund: Option<BillRefund>,
    /// `商品名称`.
    pub body: String,
    /// `商户数据包`.
    pub attach: String,
    /// `手续费`.
    pub service_fee: ServiceFee,
    /// `费率`.
    pub rate: FeeRate,
    /// `订单金额` (zero on refund lines).
    pub total_fee: Fen,
    /// `费率备注`.
    pub rate_note: String,
}

/// A data line: its number in the bill (the header is line 1), its text, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    /// The line number, counting from 1 at the header.
    pub number: usize,
    /// The line as received (without its line ending).
    pub raw: String,
    /// The line, typed.
    pub row: BillRow,
}

/// The summary line's values: the number of lines and the sums of the amount columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillTotals {
    /// `总交易单数`: the number of data lines.
    pub count: u64,
    /// `应结订单总金额`: the sum of `应结订单金额`.
    pub settlement_total_fee: Fen,
    /// `退款总金额`: the sum of `退款金额`.
    pub settlement_refund_fee: Fen,
    /// `充值券退款总金额`: the sum of `充值券退款金额`.
    pub coupon_refund_fee: Fen,
    /// `手续费总金额`: the sum of `手续费`.
    pub service_fee: ServiceFee,
    /// `订单总金额`: the sum of `订单金额`.
    pub total_fee: Fen,
    /// `申请退款总金额`: the sum of `申请退款金额`.
    pub refund_fee: Fen,
}

impl BillTotals {
    /// The totals of `rows`, as the summary line must state them; `None` on overflow.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a BillRow>) -> Option<BillTotals> {
        let mut totals = BillTotals::default();
        for row in rows {
            let refund = row.refund.as_ref();
            let amount = |pick: fn(&BillRefund) -> Fen| refund.map_or(Fen::ZERO, pick);
            totals.count = totals.count.checked_add(1)?;
            totals.settlement_total_fee = totals
                .settlement_total_fee
                .checked_add(row.settlement_total_fee)?;
            totals.settlement_refund_fee = totals
                .settlement_refund_fee
                .checked_add(amount(|r| r.settlement_refund_fee))?;
            totals.coupon_refund_fee = totals
                .coupon_refund_fee
                .checked_add(amount(|r| r.coupon_refund_fee))?;
            totals.service_fee = totals.service_fee.checked_add(row.service_fee)?;
            totals.total_fee = totals.total_fee.checked_add(row.total_fee)?;
            totals.refund_fee = totals.refund_fee.checked_add(amount(|r| r.refund_fee))?;
        }
        Some(totals)
    }

    /// The summary's fields with their names, in the summary's column order.
    fn fields(&self) -> [(&'static str, String); 7] {
        [
            ("总交易单数 (count)", self.count.to_string()),
            (
                "应结订单总金额 (settlement_total_fee)",
                self.settlement_total_fee.to_string(),
            ),
            (
                "退款总金额 (settlement_refund_fee)",
                self.settlement_refund_fee.to_string(),
            ),
            (
                "充值券退款总金额 (coupon_refund_fee)",
                self.coupon_refund_fee.to_string(),
            ),
            ("手续费总金额 (service_fee)", self.service_fee.to_string()),
            ("订单总金额 (total_fee)", self.total_fee.to_string()),
            ("申请退款总金额 (refund_fee)", self.refund_fee.to_string()),
        ]
    }
}

/// The summary line: its number, its text, and its values (checked against the data lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillSummary {
    /// The line number of the summary line.
    pub number: usize,
    /// The line as received.
    pub raw: String,
    /// Its values.
    pub totals: BillTotals,
}

/// A parsed bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// Which bill this is, known from its header.
    pub bill_type: BillType,
    /// The data lines, in order.
    pub lines: Vec<BillLine>,
    /// The summary, which agrees with `lines`.
    pub summary: BillSummary,
}

/// Why a bill's text is not a bill this module can vouch for. Every variant names the line
/// (counting from 1 at the header) and, where there is one, the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    /// No text at all.
    #[error("the bill is empty")]
    Empty,
    /// A header that is none of the ALL, SUCCESS and REFUND bills'.
    #[error("line 1: unknown bill header {header:?}")]
    UnknownHeader {
        /// The header line (its first 200 characters).
        header: String,
    },
    /// A line with more or fewer fields than its header has columns.
    #[error("line {line}: {found} fields where the {bill_type} bill has {expected}")]
    FieldCount {
        /// The line number.
        line: usize,
        /// The bill's type.
        bill_type: BillType,
        /// How many fields the header has.
        expected: usize,
        /// How many the line has.
        found: usize,
    },
    /// A field whose value does not parse or does not fit the line.
    #[error("line {line}, field {field}: {reason}")]
    Field {
        /// The line number.
        line: usize,
        /// The field, as `退款金额 (settlement_refund_fee)`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The text ends before the summary header and line (a truncated bill).
    #[error("line {line}: the bill ends without its summary ({SUMMARY_HEADER})")]
    MissingSummary {
        /// The line where the summary was expected.
        line: usize,
    },
    /// Something other than empty lines after the summary line.
    #[error("line {line}: unexpected text after the summary line")]
    TrailingContent {
        /// The line number.
        line: usize,
    },
    /// A summary value that is not what the data lines add up to.
    #[error(
        "line {line}, field {field}: the summary says {stated}, the data lines add up to {computed}"
    )]
    SummaryMismatch {
        /// The summary line's number.
        line: usize,
        /// The summary field, as `退款总金额 (settlement_refund_fee)`.
        field: &'static str,
        /// What the summary says.
        stated: String,
        /// What the data lines add up to.
        computed: String,
    },
    /// The data lines' totals do not fit in 64 bits.
    #[error("line {line}: the data lines' totals overflow")]
    TotalsOverflow {
        /// The summary line's number.
        line: usize,
    },
    /// A bill type this module does not render ([`columns`] has none for it).
    #[error("the {0} bill's columns are not known to this module")]
    UnsupportedType(BillType),
    /// A value the format cannot carry (a comma or a line break would split the line).
    #[error(
        "row {row}, field {field}: {value:?} cannot be written in a bill (comma or line break)"
    )]
    Unrepresentable {
        /// The row's index (from 0) among the rows rendered.
        row: usize,
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A row that does not fit the bill type being rendered (a refund in a SUCCESS bill, a
    /// payment in a REFUND bill).
    #[error("row {row}: {reason}")]
    RowMismatch {
        /// The row's index (from 0) among the rows rendered.
        row: usize,
        /// Why.
        reason: String,
    },
}

impl Bill {
    /// Parses a bill's text (see [`parse`]).
    pub fn parse(text: &str) -> Result<Bill, BillError> {
        parse(text)
    }

    /// The data lines' rows.
    pub fn rows(&self) -> impl Iterator<Item = &BillRow> {
        self.lines.iter().map(|line| &line.row)
    }
}

/// Parses a bill's text: the header, every data line, the summary, and the summary's
/// agreement with the data lines. Lines may end in `\r\n` or `\n`; empty lines after the
/// summary (the file's final line ending) are ignored, anywhere else they are errors.
pub fn parse(text: &str) -> Result<Bill, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    let header_line = match lines.next() {
        Some((_, line)) if !line.is_empty() => line,
        _ => return Err(BillError::Empty),
    };
    let bill_type = [BillType::All, BillType::Success, BillType::Refund]
        .into_iter()
        .find(|&bill_type| header(bill_type).as_deref() == Some(header_line))
        .ok_or_else(|| BillError::UnknownHeader {
            header: header_line.chars().take(200).collect(),
        })?;
    let columns = columns(bill_type).expect("the three bills have columns");

    let mut data = Vec::new();
    let mut summary_header_line = None;
    while let Some((number, line)) = lines.next() {
        if line == SUMMARY_HEADER {
            summary_header_line = Some(number);
            break;
        }
        // Only empty lines left: the text ends here, cut before its summary.
        if line.is_empty() && lines.clone().all(|(_, rest)| rest.is_empty()) {
            return Err(BillError::MissingSummary { line: number });
        }
        data.push(BillLine {
            number,
            raw: line.to_owned(),
            row: parse_row(number, line, bill_type, columns)?,
        });
    }
    let Some(summary_header_line) = summary_header_line else {
        return Err(BillError::MissingSummary {
            line: data.last().map_or(2, |line| line.number + 1),
        });
    };
    let (number, line) =
        lines
            .next()
            .filter(|(_, line)| !line.is_empty())
            .ok_or(BillError::MissingSummary {
                line: summary_header_line + 1,
            })?;
    let summary = BillSummary {
        number,
        raw: line.to_owned(),
        totals: parse_summary(number, line)?,
    };
    if let Some((line, _)) = lines.find(|(_, line)| !line.is_empty()) {
        return Err(BillError::TrailingContent { line });
    }

    let computed = BillTotals::of(data.iter().map(|line| &line.row))
        .ok_or(BillError::TotalsOverflow { line: number })?;
    for ((field, stated), (_, computed)) in
        summary.totals.fields().into_iter().zip(computed.fields())
    {
        if stated != computed {
            return Err(BillError::SummaryMismatch {
                line: number,
                field,
                stated,
                computed,
            });
        }
    }
    Ok(Bill {
        bill_type,
        lines: data,
        summary,
    })
}

/// A data or summary line's values, each stripped of its backquote; `labels` names the
/// fields for errors.
fn split_values(
    line_number: usize,
    line: &str,
    labels: impl Fn(usize) -> &'static str,
) -> Result<Vec<&str>, BillError> {
    line.split(',')
        .enumerate()
        .map(|(index, value)| {
            value.strip_prefix('`').ok_or_else(|| BillError::Field {
                line: line_number,
                field: labels(index),
                reason: format!("{value:?} lacks the backquote every bill value starts with"),
            })
        })
        .collect()
}

/// One data line, read field by field.
struct RowReader<'a> {
    line: usize,
    columns: &'static [Column],
    values: Vec<&'a str>,
}

impl<'a> RowReader<'a> {
    fn text(&self, column: Column) -> &'a str {
        let index = self
            .columns
            .iter()
            .position(|&c| c == column)
            .expect("the reader is asked only for its bill's columns");
        self.values[index]
    }

    fn error(&self, column: Column, reason: String) -> BillError {
        BillError::Field {
            line: self.line,
            field: column.label(),
            reason,
        }
    }

    fn parsed<T, E: fmt::Display>(
        &self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, BillError> {
        parse(self.text(column)).map_err(|error| self.error(column, error.to_string()))
    }

    fn amount(&self, column: Column) -> Result<Fen, BillError> {
        self.parsed(column, Fen::from_yuan_str)
    }

    fn time(&self, column: Column) -> Result<DateTime<Utc>, BillError> {
        self.parsed(column, time::parse_beijing_readable_time)
    }

    fn optional_time(&self, column: Column) -> Result<Option<DateTime<Utc>>, BillError> {
        match self.text(column) {
            "" => Ok(None),
            _ => self.time(column).map(Some),
        }
    }

    fn owned(&self, column: Column) -> String {
        self.text(column).to_owned()
    }
}

fn parse_row(
    line: usize,
    text: &str,
    bill_type: BillType,
    columns: &'static [Column],
) -> Result<BillRow, BillError> {
    let found = text.split(',').count();
    if found != columns.len() {
        return Err(BillError::FieldCount {
            line,
            bill_type,
            expected: columns.len(),
            found,
        });
    }
    let values = split_values(line, text, |index| columns[index].label())?;
    let r = RowReader {
        line,
        columns,
        values,
    };
    use Column as C;
    let trade_state: TradeState = r.parsed(C::TradeState, str::parse)?;
    let refund = match bill_type {
        BillType::Success => None,
        _ => read_refund(&r, bill_type)?,
    };
    let is_refund_line = trade_state == TradeState::Refund;
    if is_refund_line != refund.is_some() {
        let reason = if is_refund_line {
            "a REFUND line without a refund (微信退款单号 is empty or 0)".to_owned()
        } else if bill_type == BillType::Refund {
            format!("{trade_state} in a REFUND bill, whose lines are all refunds")
        } else {
            format!("a {trade_state} line with a refund (微信退款单号 is set)")
        };
        return Err(r.error(C::TradeState, reason));
    }
    Ok(BillRow {
        trade_time: r.time(C::TradeTime)?,
        appid: r.owned(C::AppId),
        mch_id: r.owned(C::MchId),
        sub_mch_id: r.owned(C::SubMchId),
        device_info: r.owned(C::DeviceInfo),
        transaction_id: r.owned(C::TransactionId),
        out_trade_no: r.owned(C::OutTradeNo),
        openid: r.owned(C::OpenId),
        trade_type: r.parsed(C::TradeType, str::parse)?,
        trade_state,
        bank_type: r.owned(C::BankType),
        fee_type: r.owned(C::FeeType),
        settlement_total_fee: r.amount(C::SettlementTotalFee)?,
        coupon_fee: r.amount(C::CouponFee)?,
        refund,
        body: r.owned(C::Body),
        attach: r.owned(C::Attach),
        service_fee: r.parsed(C::ServiceFee, ServiceFee::parse)?,
        rate: r.parsed(C::Rate, FeeRate::parse)?,
        total_fee: r.amount(C::TotalFee)?,
        rate_note: r.owned(C::RateNote),
    })
}

/// The refund columns of an ALL or REFUND line: a refund when `微信退款单号` is set; on a
/// payment line (`0` or empty) the other refund columns must say nothing either.
fn read_refund(r: &RowReader<'_>, bill_type: BillType) -> Result<Option<BillRefund>, BillError> {
    use Column as C;
    let no_refund = |column: Column| matches!(r.text(column), "" | "0");
    if no_refund(C::RefundId) {
        for column in [C::SettlementRefundFee, C::CouponRefundFee, C::RefundFee] {
            if r.amount(column)? != Fen::ZERO {
                return Err(r.error(column, "an amount on a line without a refund".into()));
            }
        }
        for column in [C::OutRefundNo, C::RefundChannel, C::RefundStatus] {
            if !no_refund(column) {
                return Err(r.error(column, "a value on a line without a refund".into()));
            }
        }
        return Ok(None);
    }
    let (applied_at, succeeded_at) = if bill_type == BillType::Refund {
        (
            Some(r.time(C::RefundApplyTime)?),
            r.optional_time(C::RefundSuccessTime)?,
        )
    } else {
        (None, None)
    };
    let refund_status: RefundStatus = r.parsed(C::RefundStatus, str::parse)?;
    if bill_type == BillType::Refund
        && refund_status == RefundStatus::Success
        && succeeded_at.is_none()
    {
        return Err(r.error(
            C::RefundSuccessTime,
            "empty on a refund whose state is SUCCESS".into(),
        ));
    }
    if r.text(C::OutRefundNo).is_empty() {
        return Err(r.error(C::OutRefundNo, "empty on a refund line".into()));
    }
    Ok(Some(BillRefund {
        applied_at,
        succeeded_at,
        refund_id: r.owned(C::RefundId),
        out_refund_no: r.owned(C::OutRefundNo),
        settlement_refund_fee: r.amount(C::SettlementRefundFee)?,
        coupon_refund_fee: r.amount(C::CouponRefundFee)?,
        refund_channel: r.owned(C::RefundChannel),
        refund_status,
        refund_fee: r.amount(C::RefundFee)?,
    }))
}

fn parse_summary(line: usize, text: &str) -> Result<BillTotals, BillError> {
    let labels = BillTotals::default().fields().map(|(label, _)| label);
    let found = text.split(',').count();
    if found != labels.len() {
        return Err(BillError::Field {
            line,
            field: "summary",
            reason: format!("{found} fields where the summary has {}", labels.len()),
        });
    }
    let values = split_values(line, text, |index| labels[index])?;
    let field = |index: usize, reason: String| BillError::Field {
        line,
        field: labels[index],
        reason,
    };
    let amount = |index: usize| {
        Fen::from_yuan_str(values[index]).map_err(|error| field(index, error.to_string()))
    };
    Ok(BillTotals {
        count: values[0]
            .parse::<u64>()
            .ok()
            .filter(|_| values[0].bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| field(0, format!("{:?} is not a count", values[0])))?,
        settlement_total_fee: amount(1)?,
        settlement_refund_fee: amount(2)?,
        coupon_refund_fee: amount(3)?,
        service_fee: ServiceFee::parse(values[4]).map_err(|reason| field(4, reason))?,
        total_fee: amount(5)?,
        refund_fee: amount(6)?,
    })
}

/// Writes a bill of `bill_type` with `rows` as its data lines and the summary they add up to,
/// lines ending in `\r\n`. Refuses a row that does not belong in that bill (a refund in a
/// SUCCESS bill, a payment in a REFUND bill, a trade state that disagrees with the refund)
/// and a text value the format cannot carry (a comma or a line break).
pub fn render(bill_type: BillType, rows: &[BillRow]) -> Result<String, BillError> {
    let columns = columns(bill_type).ok_or(BillError::UnsupportedType(bill_type))?;
    let totals = BillTotals::of(rows).ok_or(BillError::TotalsOverflow {
        line: rows.len() + 3,
    })?;
    let mut text = header(bill_type).expect("columns exist");
    text.push_str("\r\n");
    for (index, row) in rows.iter().enumerate() {
        let mismatch = |reason: &str| BillError::RowMismatch {
            row: index,
            reason: reason.to_owned(),
        };
        match (bill_type, &row.refund) {
            (BillType::Success, Some(_)) => return Err(mismatch("a refund in a SUCCESS bill")),
            (BillType::Refund, None) => return Err(mismatch("a payment in a REFUND bill")),
            _ => {}
        }
        if (row.trade_state == TradeState::Refund) != row.refund.is_some() {
            return Err(mismatch(
                "trade_state is REFUND exactly when the row has a refund",
            ));
        }
        let values = columns
            .iter()
            .map(|&column| {
                let value = row_value(row, column);
                if value.contains([',', '\r', '\n']) {
                    return Err(BillError::Unrepresentable {
                        row: index,
                        field: column.label(),
                        value,
                    });
                }
                Ok(value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        push_values(&mut text, values);
    }
    text.push_str(SUMMARY_HEADER);
    text.push_str("\r\n");
    push_values(&mut text, totals.fields().map(|(_, value)| value));
    Ok(text)
}

fn push_values(text: &mut String, values: impl IntoIterator<Item = String>) {
    let line = values
        .into_iter()
        .map(|value| format!("`{value}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push_str(&line);
    text.push_str("\r\n");
}

/// What `column` says about `row`, as the bill writes it.
fn row_value(row: &BillRow, column: Column) -> String {
    use Column as C;
    let refund = row.refund.as_ref();
    let refund_time = |pick: fn(&BillRefund) -> Option<DateTime<Utc>>| {
        refund
            .and_then(pick)
            .map(time::beijing_readable_time)
            .unwrap_or_default()
    };
    // A payment line's refund columns, as WeChat writes them.
    let refund_text =
        |pick: fn(&BillRefund) -> String, none: &str| refund.map_or_else(|| none.to_owned(), pick);
    match column {
        C::TradeTime => time::beijing_readable_time(row.trade_time),
        C::AppId => row.appid.clone(),
        C::MchId => row.mch_id.clone(),
        C::SubMchId => row.sub_mch_id.clone(),
        C::DeviceInfo => row.device_info.clone(),
        C::TransactionId => row.transaction_id.clone(),
        C::OutTradeNo => row.out_trade_no.clone(),
        C::OpenId => row.openid.clone(),
        C::TradeType => row.trade_type.to_string(),
        C::TradeState => row.trade_state.to_string(),
        C::BankType => row.bank_type.clone(),
        C::FeeType => row.fee_type.clone(),
        C::SettlementTotalFee => row.settlement_total_fee.to_string(),
        C::CouponFee => row.coupon_fee.to_string(),
        C::RefundApplyTime => refund_time(|r| r.applied_at),
        C::RefundSuccessTime => refund_time(|r| r.succeeded_at),
        C::RefundId => refund_text(|r| r.refund_id.clone(), "0"),
        C::OutRefundNo => refund_text(|r| r.out_refund_no.clone(), "0"),
        C::SettlementRefundFee => refund_text(|r| r.settlement_refund_fee.to_string(), "0.00"),
        C::CouponRefundFee => refund_text(|r| r.coupon_refund_fee.to_string(), "0.00"),
        C::RefundChannel => refund_text(|r| r.refund_channel.clone(), ""),
        C::RefundStatus => refund_text(|r| r.refund_status.to_string(), ""),
        C::Body => row.body.clone(),
        C::Attach => row.attach.clone(),
        C::ServiceFee => row.service_fee.to_string(),
        C::Rate => row.rate.to_string(),
        C::TotalFee => row.total_fee.to_string(),
        C::RefundFee => refund_text(|r| r.refund_fee.to_string(), "0.00"),
        C::RateNote => row.rate_note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_wechats() {
        assert_eq!(
            header(BillType::All).unwrap(),
            "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
        );
        assert_eq!(
            header(BillType::Success).unwrap(),
            "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注"
        );
        assert_eq!(
            header(BillType::Refund).unwrap(),
            "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
        );
        assert_eq!(header(BillType::RechargeRefund), None);
    }

    #[test]
    fn fees_and_rates_are_exact() {
        for (text, units, shown) in [
            ("0.00600", 600, "0.00600"),
            ("-0.02000", -2000, "-0.02000"),
            ("0", 0, "0.00000"),
            ("12.5", 1_250_000, "12.50000"),
        ] {
            let fee = ServiceFee::parse(text).unwrap();
            assert_eq!(fee.units(), units, "{text}");
            assert_eq!(fee.to_string(), shown);
        }
        for bad in ["0.000001", "", "-", "1e3", "0.", ".5", "+1", " 1", "--1"] {
            assert!(ServiceFee::parse(bad).is_err(), "{bad}");
        }
        for (text, ppm) in [
            ("0.60%", 6000),
            ("1%", 10_000),
            ("0.38%", 3800),
            ("100%", 1_000_000),
        ] {
            let rate = FeeRate::parse(text).unwrap();
            assert_eq!(rate.parts_per_million(), ppm, "{text}");
            assert_eq!(rate.as_str(), text);
        }
        for bad in ["0.60", "%", "0.123456%", "-1%", "101%", "0.6 %"] {
            assert!(FeeRate::parse(bad).is_err(), "{bad}");
        }
    }
}
