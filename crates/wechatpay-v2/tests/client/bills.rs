//! The daily bill's parser: WeChat's three column sets, typed lines, the checked summary,
//! errors that name the line and field, and render → parse round trips.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use wechatpay_v2::bill::{self, Column, SUMMARY_HEADER};
use wechatpay_v2::{
    Bill, BillError, BillRefund, BillRow, BillType, FeeRate, Fen, RefundStatus, ServiceFee,
    TradeState, TradeType,
};

fn header(bill_type: BillType) -> String {
    bill::header(bill_type).unwrap()
}

/// A bill of `bill_type` from data lines and a summary line, lines ending in `\r\n`.
fn bill_text(bill_type: BillType, lines: &[&str], summary: &str) -> String {
    let mut text = header(bill_type);
    text.push_str("\r\n");
    for line in lines {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str(SUMMARY_HEADER);
    text.push_str("\r\n");
    text.push_str(summary);
    text.push_str("\r\n");
    text
}

const ALL_PAYMENT: &str = "`2026-03-01 09:15:02,`wx2421b1c4370ec43b,`10000100,`0,`dev-7,`4200000001202603011234567890,`shop-1001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`CMB_DEBIT,`CNY,`99.99,`0.00,`0,`0,`0.00,`0.00,`,`,`T恤 白色,`color=white,`0.59994,`0.60%,`99.99,`0.00,`";
const ALL_REFUND: &str = "`2026-03-01 18:40:00,`wx2421b1c4370ec43b,`10000100,`0,`dev-7,`4200000001202603011234567890,`shop-1001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`REFUND,`CMB_DEBIT,`CNY,`0.00,`0.00,`50300000012026030112345678901,`shop-1001-r1,`19.90,`0.00,`ORIGINAL,`SUCCESS,`T恤 白色,`color=white,`-0.11940,`0.60%,`0.00,`19.90,`";
const ALL_SUMMARY: &str = "`2,`99.99,`19.90,`0.00,`0.48054,`99.99,`19.90";

fn at(text: &str) -> DateTime<Utc> {
    wechatpay_v2::time::parse_beijing_readable_time(text).unwrap()
}

#[test]
fn an_all_bill_is_read_line_by_line() {
    let text = bill_text(BillType::All, &[ALL_PAYMENT, ALL_REFUND], ALL_SUMMARY);
    let bill = Bill::parse(&text).unwrap();
    assert_eq!(bill.bill_type, BillType::All);
    assert_eq!(bill.lines.len(), 2);

    let payment = &bill.lines[0];
    assert_eq!(payment.number, 2);
    assert_eq!(payment.raw, ALL_PAYMENT);
    let row = &payment.row;
    assert_eq!(row.trade_time, at("2026-03-01 09:15:02"));
    assert_eq!(
        row.trade_time,
        Utc.with_ymd_and_hms(2026, 3, 1, 1, 15, 2).unwrap(),
        "bill times are Beijing time"
    );
    assert_eq!(row.appid, "wx2421b1c4370ec43b");
    assert_eq!(row.mch_id, "10000100");
    assert_eq!(row.sub_mch_id, "0");
    assert_eq!(row.device_info, "dev-7");
    assert_eq!(row.transaction_id, "4200000001202603011234567890");
    assert_eq!(row.out_trade_no, "shop-1001");
    assert_eq!(row.openid, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(row.trade_type, TradeType::Jsapi);
    assert_eq!(row.trade_state, TradeState::Success);
    assert_eq!(row.bank_type, "CMB_DEBIT");
    assert_eq!(row.fee_type, "CNY");
    assert_eq!(row.settlement_total_fee, Fen::new(9999));
    assert_eq!(row.coupon_fee, Fen::ZERO);
    assert_eq!(row.refund, None);
    assert_eq!(row.body, "T恤 白色");
    assert_eq!(row.attach, "color=white");
    assert_eq!(row.service_fee, ServiceFee::from_units(59_994));
    assert_eq!(row.rate.parts_per_million(), 6000);
    assert_eq!(row.rate.as_str(), "0.60%");
    assert_eq!(row.total_fee, Fen::new(9999));
    assert_eq!(row.rate_note, "");

    let refund_line = &bill.lines[1];
    assert_eq!(refund_line.number, 3);
    let row = &refund_line.row;
    assert_eq!(row.trade_state, TradeState::Refund);
    assert_eq!(row.settlement_total_fee, Fen::ZERO);
    assert_eq!(row.service_fee, ServiceFee::from_units(-11_940));
    assert_eq!(
        row.refund,
        Some(BillRefund {
            applied_at: None,
            succeeded_at: None,
            refund_id: "50300000012026030112345678901".into(),
            out_refund_no: "shop-1001-r1".into(),
            settlement_refund_fee: Fen::new(1990),
            coupon_refund_fee: Fen::ZERO,
            refund_channel: "ORIGINAL".into(),
            refund_status: RefundStatus::Success,
            refund_fee: Fen::new(1990),
        })
    );

    assert_eq!(bill.summary.number, 5);
    assert_eq!(bill.summary.raw, ALL_SUMMARY);
    let totals = bill.summary.totals;
    assert_eq!(totals.count, 2);
    assert_eq!(totals.settlement_total_fee, Fen::new(9999));
    assert_eq!(totals.settlement_refund_fee, Fen::new(1990));
    assert_eq!(totals.service_fee, ServiceFee::from_units(48_054));
    assert_eq!(totals.refund_fee, Fen::new(1990));
}

#[test]
fn success_and_refund_bills_have_their_own_columns() {
    let success = "`2026-03-01 09:15:02,`wx1,`10000100,`0,`,`42001,`o-1,`oUser,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`goods,`,`0.00006,`0.60%,`0.01,`";
    let bill = Bill::parse(&bill_text(
        BillType::Success,
        &[success],
        "`1,`0.01,`0.00,`0.00,`0.00006,`0.01,`0.00",
    ))
    .unwrap();
    assert_eq!(bill.bill_type, BillType::Success);
    assert_eq!(bill.lines[0].row.total_fee, Fen::new(1));
    assert_eq!(bill.lines[0].row.refund, None);

    let processing = "`2026-03-01 10:00:00,`wx1,`10000100,`0,`,`42001,`o-1,`oUser,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`2026-03-01 10:00:00,`,`5031,`o-1-r1,`0.50,`0.00,`ORIGINAL,`PROCESSING,`goods,`,`-0.00300,`0.60%,`0.00,`0.50,`";
    let done = "`2026-03-01 11:00:00,`wx1,`10000100,`0,`,`42001,`o-1,`oUser,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`2026-03-01 11:00:00,`2026-03-01 11:00:05,`5032,`o-1-r2,`0.25,`0.00,`ORIGINAL,`SUCCESS,`goods,`,`-0.00150,`0.60%,`0.00,`0.25,`";
    let bill = Bill::parse(&bill_text(
        BillType::Refund,
        &[processing, done],
        "`2,`0.00,`0.75,`0.00,`-0.00450,`0.00,`0.75",
    ))
    .unwrap();
    assert_eq!(bill.bill_type, BillType::Refund);
    let first = bill.lines[0].row.refund.as_ref().unwrap();
    assert_eq!(first.applied_at, Some(at("2026-03-01 10:00:00")));
    assert_eq!(first.succeeded_at, None);
    assert_eq!(first.refund_status, RefundStatus::Processing);
    let second = bill.lines[1].row.refund.as_ref().unwrap();
    assert_eq!(second.succeeded_at, Some(at("2026-03-01 11:00:05")));
    assert_eq!(
        bill.summary.totals.service_fee,
        ServiceFee::from_units(-450)
    );
}

#[test]
fn a_bill_without_data_lines_has_zero_lines() {
    let text = bill_text(
        BillType::All,
        &[],
        "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00",
    );
    let bill = Bill::parse(&text).unwrap();
    assert!(bill.lines.is_empty());
    assert_eq!(bill.summary.totals.count, 0);
    // LF line endings, no final line ending, and WeChat's shorter zeros read the same.
    let text = format!(
        "{}\n{SUMMARY_HEADER}\n`0,`0,`0.0,`0,`0,`0,`0",
        header(BillType::All)
    );
    assert!(Bill::parse(&text).unwrap().lines.is_empty());
}

/// The error of parsing `text`, which must not parse.
fn refused(text: &str) -> BillError {
    match Bill::parse(text) {
        Ok(bill) => panic!("parsed: {bill:?}"),
        Err(error) => error,
    }
}

fn field_error(text: &str) -> (usize, &'static str, String) {
    match refused(text) {
        BillError::Field {
            line,
            field,
            reason,
        } => (line, field, reason),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn an_unknown_header_or_a_truncated_bill_is_refused() {
    assert_eq!(refused(""), BillError::Empty);
    let unknown = "交易时间,公众账号ID,商户号,新列\r\n";
    assert!(
        matches!(refused(unknown), BillError::UnknownHeader { header } if header == "交易时间,公众账号ID,商户号,新列")
    );
    let error = refused(unknown).to_string();
    assert!(error.starts_with("line 1: unknown bill header"), "{error}");

    // Cut before the summary: the lines read so far are not a bill.
    let truncated = format!("{}\r\n{ALL_PAYMENT}\r\n", header(BillType::All));
    assert_eq!(refused(&truncated), BillError::MissingSummary { line: 3 });
    let no_summary_line = format!(
        "{}\r\n{ALL_PAYMENT}\r\n{SUMMARY_HEADER}\r\n",
        header(BillType::All)
    );
    assert_eq!(
        refused(&no_summary_line),
        BillError::MissingSummary { line: 4 }
    );
    let trailing = format!(
        "{}\nextra\n",
        bill_text(
            BillType::All,
            &[ALL_PAYMENT],
            "`1,`99.99,`0.00,`0.00,`0.59994,`99.99,`0.00"
        )
    );
    assert_eq!(refused(&trailing), BillError::TrailingContent { line: 6 });
    // A blank line among the data is not skipped.
    let blank = bill_text(BillType::All, &[ALL_PAYMENT, ""], ALL_SUMMARY);
    assert!(matches!(
        refused(&blank),
        BillError::FieldCount {
            line: 3,
            found: 1,
            expected: 27,
            ..
        }
    ));
}

#[test]
fn a_bad_line_is_reported_with_its_number_and_field() {
    // One field too many: a comma inside a value.
    let comma = ALL_PAYMENT.replace("`T恤 白色", "`T恤,白色");
    let text = bill_text(BillType::All, &[ALL_PAYMENT, &comma], ALL_SUMMARY);
    let error = refused(&text);
    assert_eq!(
        error,
        BillError::FieldCount {
            line: 3,
            bill_type: BillType::All,
            expected: 27,
            found: 28
        }
    );
    assert_eq!(
        error.to_string(),
        "line 3: 28 fields where the ALL bill has 27"
    );

    let cases: [(String, &str, &str); 9] = [
        (
            ALL_PAYMENT.replace("`99.99,`0.00,`0", "`99.999,`0.00,`0"),
            "应结订单金额 (settlement_total_fee)",
            "more than two decimals",
        ),
        (
            ALL_PAYMENT.replace("`99.99,`0.00,`0", "`-99.99,`0.00,`0"),
            "应结订单金额 (settlement_total_fee)",
            "negative",
        ),
        (
            ALL_PAYMENT.replace("`2026-03-01 09:15:02", "`2026-02-30 09:15:02"),
            "交易时间 (trade_time)",
            "yyyy-MM-dd HH:mm:ss",
        ),
        (
            ALL_PAYMENT.replace("`JSAPI", "`CASH"),
            "交易类型 (trade_type)",
            "CASH",
        ),
        (
            ALL_PAYMENT.replace("`0.59994", "`0.599941"),
            "手续费 (service_fee)",
            "five decimals",
        ),
        (
            ALL_PAYMENT.replace("`0.60%", "`0.60"),
            "费率 (rate)",
            "percentage",
        ),
        (
            ALL_PAYMENT.replace(",`oUpF8", ",oUpF8"),
            "用户标识 (openid)",
            "backquote",
        ),
        (
            ALL_PAYMENT.replace("`0.00,`0.00,`,`,", "`1.00,`0.00,`,`,"),
            "退款金额 (settlement_refund_fee)",
            "without a refund",
        ),
        (
            ALL_REFUND.replace("`SUCCESS,`T恤", "`DONE,`T恤"),
            "退款状态 (refund_status)",
            "DONE",
        ),
    ];
    for (line, field, reason_part) in cases {
        let text = bill_text(BillType::All, &[ALL_PAYMENT, &line], ALL_SUMMARY);
        let (number, got_field, reason) = field_error(&text);
        assert_eq!((number, got_field), (3, field), "{line}");
        assert!(reason.contains(reason_part), "{field}: {reason}");
    }

    // A refund line must carry its refund, and a payment line must not claim to be one.
    let hollow_refund = ALL_PAYMENT.replace("`SUCCESS,`CMB", "`REFUND,`CMB");
    let (line, field, reason) =
        field_error(&bill_text(BillType::All, &[&hollow_refund], ALL_SUMMARY));
    assert_eq!((line, field), (2, "交易状态 (trade_state)"));
    assert!(reason.contains("without a refund"), "{reason}");
    let success_refund = ALL_REFUND.replace("`REFUND,`CMB", "`SUCCESS,`CMB");
    let (_, field, _) = field_error(&bill_text(BillType::All, &[&success_refund], ALL_SUMMARY));
    assert_eq!(field, "交易状态 (trade_state)");

    // A REFUND bill's refund that succeeded says when.
    let no_time = "`2026-03-01 11:00:00,`wx1,`10000100,`0,`,`42001,`o-1,`oUser,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`2026-03-01 11:00:00,`,`5032,`o-1-r2,`0.25,`0.00,`ORIGINAL,`SUCCESS,`goods,`,`-0.00150,`0.60%,`0.00,`0.25,`";
    let (_, field, _) = field_error(&bill_text(
        BillType::Refund,
        &[no_time],
        "`1,`0.00,`0.25,`0.00,`-0.00150,`0.00,`0.25",
    ));
    assert_eq!(field, "退款成功时间 (refund_success_time)");
}

#[test]
fn a_summary_that_disagrees_with_the_lines_says_which_total() {
    let cases = [
        (
            "`3,`99.99,`19.90,`0.00,`0.48054,`99.99,`19.90",
            "总交易单数 (count)",
            "3",
            "2",
        ),
        (
            "`2,`99.99,`19.91,`0.00,`0.48054,`99.99,`19.90",
            "退款总金额 (settlement_refund_fee)",
            "19.91",
            "19.90",
        ),
        (
            "`2,`99.99,`19.90,`0.00,`0.48000,`99.99,`19.90",
            "手续费总金额 (service_fee)",
            "0.48000",
            "0.48054",
        ),
        (
            "`2,`99.99,`19.90,`0.00,`0.48054,`100.00,`19.90",
            "订单总金额 (total_fee)",
            "100.00",
            "99.99",
        ),
    ];
    for (summary, field, stated, computed) in cases {
        let text = bill_text(BillType::All, &[ALL_PAYMENT, ALL_REFUND], summary);
        assert_eq!(
            refused(&text),
            BillError::SummaryMismatch {
                line: 5,
                field,
                stated: stated.into(),
                computed: computed.into(),
            },
            "{summary}"
        );
    }
    let error = refused(&bill_text(BillType::All, &[ALL_PAYMENT], "`1,`99.99"));
    assert!(
        error
            .to_string()
            .starts_with("line 4, field summary: 2 fields"),
        "{error}"
    );
    let (line, field, _) = field_error(&bill_text(
        BillType::All,
        &[ALL_PAYMENT],
        "`1,`99.99,`0.00,`0.00,`x,`99.99,`0.00",
    ));
    assert_eq!((line, field), (4, "手续费总金额 (service_fee)"));
}

#[test]
fn render_refuses_what_a_bill_cannot_carry() {
    let text = bill_text(BillType::All, &[ALL_PAYMENT, ALL_REFUND], ALL_SUMMARY);
    let bill = Bill::parse(&text).unwrap();
    let rows: Vec<BillRow> = bill.rows().cloned().collect();
    assert_eq!(bill::render(BillType::All, &rows).unwrap(), text);
    assert!(matches!(
        bill::render(BillType::Success, &rows),
        Err(BillError::RowMismatch { row: 1, .. })
    ));
    assert!(matches!(
        bill::render(BillType::Refund, &rows),
        Err(BillError::RowMismatch { row: 0, .. })
    ));
    let mut comma = rows[0].clone();
    comma.attach = "a,b".into();
    assert!(matches!(
        bill::render(BillType::All, &[comma]),
        Err(BillError::Unrepresentable {
            field: "商户数据包 (attach)",
            ..
        })
    ));
    assert_eq!(
        bill::render(BillType::RechargeRefund, &[]),
        Err(BillError::UnsupportedType(BillType::RechargeRefund))
    );
    assert_eq!(Column::RefundFee.header(), "申请退款金额");
}

// ---- render → parse round trips ----

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000-01-01 .. 2099-12-31, whole seconds (the bill's precision).
    (946_684_800_i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// Text a bill can carry: anything but commas and line breaks, Chinese included.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_\\-=&. 中文商品`%]{0,16}"
}

fn amount() -> impl Strategy<Value = Fen> {
    (0_i64..=2_147_483_647).prop_map(Fen::new)
}

fn rate() -> impl Strategy<Value = FeeRate> {
    prop_oneof![
        Just("0.60%".to_owned()),
        Just("1%".to_owned()),
        (0_u32..100, 0_u32..100).prop_map(|(int, frac)| format!("{int}.{frac:02}%")),
    ]
    .prop_map(|text| FeeRate::parse(&text).unwrap())
}

fn refund(bill_type: BillType) -> impl Strategy<Value = BillRefund> {
    let times = bill_type == BillType::Refund;
    (
        instant(),
        proptest::option::of(instant()),
        "[0-9]{1,29}",
        "[A-Za-z0-9_-]{1,32}",
        amount(),
        amount(),
        prop_oneof![Just("ORIGINAL"), Just("BALANCE")],
        prop_oneof![
            Just(RefundStatus::Success),
            Just(RefundStatus::Processing),
            Just(RefundStatus::Change),
            Just(RefundStatus::RefundClose),
        ],
        amount(),
    )
        .prop_map(
            move |(applied, succeeded, id, no, settled, coupon, channel, status, asked)| {
                BillRefund {
                    applied_at: times.then_some(applied),
                    // A succeeded refund in a REFUND bill says when.
                    succeeded_at: match (times, status) {
                        (false, _) => None,
                        (true, RefundStatus::Success) => Some(succeeded.unwrap_or(applied)),
                        (true, _) => succeeded,
                    },
                    // `0` is how a payment line writes "no refund".
                    refund_id: if id == "0" { "1".into() } else { id },
                    out_refund_no: if no == "0" { "r0".into() } else { no },
                    settlement_refund_fee: settled,
                    coupon_refund_fee: coupon,
                    refund_channel: channel.into(),
                    refund_status: status,
                    refund_fee: asked,
                }
            },
        )
}

fn row(bill_type: BillType) -> impl Strategy<Value = BillRow> {
    let refund = match bill_type {
        BillType::Success => Just(None).boxed(),
        BillType::Refund => refund(bill_type).prop_map(Some).boxed(),
        _ => proptest::option::of(refund(bill_type)).boxed(),
    };
    (
        (
            instant(),
            "wx[0-9a-f]{16}",
            "[0-9]{8,10}",
            prop_oneof![Just("0".to_owned()), "[0-9]{8,10}"],
            text(),
            "[0-9]{28}",
            "[A-Za-z0-9_-]{1,32}",
            "[A-Za-z0-9_-]{0,28}",
        ),
        (
            prop_oneof![
                Just(TradeType::Jsapi),
                Just(TradeType::Native),
                Just(TradeType::App),
                Just(TradeType::Mweb),
                Just(TradeType::Micropay),
            ],
            prop_oneof![Just("CFT"), Just("OTHERS"), Just("CMB_DEBIT")],
            amount(),
            amount(),
            refund,
            text(),
            text(),
            (-100_000_000_i64..100_000_000).prop_map(ServiceFee::from_units),
            rate(),
            amount(),
            text(),
        ),
    )
        .prop_map(
            |(
                (
                    trade_time,
                    appid,
                    mch_id,
                    sub_mch_id,
                    device_info,
                    transaction_id,
                    out_trade_no,
                    openid,
                ),
                (
                    trade_type,
                    bank,
                    settled,
                    coupon,
                    refund,
                    body,
                    attach,
                    service_fee,
                    rate,
                    total,
                    note,
                ),
            )| BillRow {
                trade_time,
                appid,
                mch_id,
                sub_mch_id,
                device_info,
                transaction_id,
                out_trade_no,
                openid,
                trade_type,
                trade_state: if refund.is_some() {
                    TradeState::Refund
                } else {
                    TradeState::Success
                },
                bank_type: bank.into(),
                fee_type: "CNY".into(),
                settlement_total_fee: settled,
                coupon_fee: coupon,
                refund,
                body,
                attach,
                service_fee,
                rate,
                total_fee: total,
                rate_note: note,
            },
        )
}

fn bill_rows() -> impl Strategy<Value = (BillType, Vec<BillRow>)> {
    prop_oneof![
        Just(BillType::All),
        Just(BillType::Success),
        Just(BillType::Refund)
    ]
    .prop_flat_map(|bill_type| {
        (
            Just(bill_type),
            proptest::collection::vec(row(bill_type), 0..8),
        )
    })
}

proptest! {
    #[test]
    fn render_then_parse_gives_the_rows_back((bill_type, rows) in bill_rows()) {
        let text = bill::render(bill_type, &rows).unwrap();
        let bill = Bill::parse(&text).unwrap();
        prop_assert_eq!(bill.bill_type, bill_type);
        prop_assert_eq!(bill.rows().cloned().collect::<Vec<_>>(), rows.clone());
        let raw_lines: Vec<&str> = text.split("\r\n").collect();
        for line in &bill.lines {
            prop_assert_eq!(line.raw.as_str(), raw_lines[line.number - 1]);
        }
        prop_assert_eq!(bill.summary.totals.count, rows.len() as u64);
        // Every data line edited to one more fen in its first amount fails the summary check.
        if let Some(first) = bill.lines.first() {
            let mut bumped = first.row.clone();
            bumped.settlement_total_fee = Fen::new(bumped.settlement_total_fee.get() + 1);
            let bumped_line = bill::render(bill_type, std::slice::from_ref(&bumped)).unwrap();
            let bumped_line = bumped_line.split("\r\n").nth(1).unwrap();
            let tampered = text.replacen(&first.raw, bumped_line, 1);
            let is_summary_mismatch = matches!(
                Bill::parse(&tampered),
                Err(BillError::SummaryMismatch { .. })
            );
            prop_assert!(is_summary_mismatch);
        }
    }
}
