//! The gateway's protocol behaviour, driven by a raw signed client.

use crate::common;
use std::time::Duration;

use crate::common::{
    NotifyReceiver, call, call_with, default_head, native_order, params, post_raw,
};
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, MerchantConfig, SimConfig, Simulator,
    TradeState,
};
use wechatpay_v2::{ApiKey, SignType};

#[tokio::test]
async fn starts_in_one_line_and_signs_its_answers() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    for sign_type in [SignType::Md5, SignType::HmacSha256] {
        let out_trade_no = format!("sig-{}", sign_type.as_str());
        let answer = call_with(
            &base,
            "/pay/unifiedorder",
            native_order(&out_trade_no, 1, "http://127.0.0.1:9/notify"),
            DEFAULT_API_KEY,
            sign_type,
        )
        .await;
        answer.assert_success();
        let used = wechatpay_v2::verify(&answer.params, &ApiKey::new(DEFAULT_API_KEY))
            .expect("the answer is signed with the merchant key");
        assert_eq!(
            used, sign_type,
            "answers are signed with the request's sign_type"
        );
        assert!(answer.get("prepay_id").starts_with("wx"));
        assert!(
            answer
                .get("code_url")
                .starts_with("weixin://wxpay/bizpayurl?pr="),
            "{}",
            answer.body
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn protocol_errors_answer_return_code_fail() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    let order = || native_order("p-1", 1, "http://127.0.0.1:9/notify");

    let bad_sign = call_with(
        &base,
        "/pay/unifiedorder",
        order(),
        "not-the-key",
        SignType::Md5,
    )
    .await;
    assert_eq!(bad_sign.get("return_code"), "FAIL");
    assert_eq!(bad_sign.err_code(), "SIGNERROR");
    assert!(
        bad_sign.get("sign").is_empty(),
        "protocol errors are unsigned"
    );

    // An HMAC signature without sign_type is checked as MD5, as WeChat does.
    let mut hmac_without_type = order();
    let signature = wechatpay_v2::sign(
        &hmac_without_type,
        SignType::HmacSha256,
        &ApiKey::new(DEFAULT_API_KEY),
    );
    hmac_without_type.insert("sign".into(), signature);
    let answer = post_raw(
        &base,
        "/pay/unifiedorder",
        wechatpay_v2::xml::encode(&hmac_without_type),
    )
    .await;
    assert_eq!(answer.err_code(), "SIGNERROR");

    let mut missing_body = order();
    missing_body.shift_remove("body");
    let answer = call(&base, "/pay/unifiedorder", missing_body).await;
    assert_eq!(answer.err_code(), "LACK_PARAMS");
    assert!(answer.get("return_msg").contains("body"), "{}", answer.body);

    let mut zero_fee = order();
    zero_fee.insert("total_fee".into(), "0".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", zero_fee).await.err_code(),
        "PARAM_ERROR"
    );
    let mut yuan_fee = order();
    yuan_fee.insert("total_fee".into(), "0.01".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", yuan_fee).await.err_code(),
        "PARAM_ERROR"
    );
    let mut bad_type = order();
    bad_type.insert("trade_type".into(), "CASH".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", bad_type).await.err_code(),
        "PARAM_ERROR"
    );

    let mut jsapi = order();
    jsapi.insert("trade_type".into(), "JSAPI".into());
    let answer = call(&base, "/pay/unifiedorder", jsapi).await;
    assert_eq!(answer.err_code(), "LACK_PARAMS");
    assert!(answer.get("return_msg").contains("openid"));
    let mut native = order();
    native.shift_remove("product_id");
    assert_eq!(
        call(&base, "/pay/unifiedorder", native).await.err_code(),
        "LACK_PARAMS"
    );
    let mut mweb = order();
    mweb.insert("trade_type".into(), "MWEB".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", mweb.clone())
            .await
            .err_code(),
        "LACK_PARAMS"
    );
    mweb.insert("scene_info".into(), "not json".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", mweb).await.err_code(),
        "PARAM_ERROR"
    );

    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><mch_id>&x;</mch_id></xml>";
    let answer = post_raw(&base, "/pay/unifiedorder", xxe.into()).await;
    assert_eq!(answer.err_code(), "XML_FORMAT_ERROR");
    assert_eq!(
        post_raw(&base, "/pay/orderquery", "not xml".into())
            .await
            .err_code(),
        "XML_FORMAT_ERROR"
    );

    let latin1 = reqwest::Client::new()
        .post(format!("{base}/pay/orderquery"))
        .body(b"<xml><body>\xe9</body></xml>".to_vec())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(latin1.contains("NOT_UTF8"), "{latin1}");

    let mut stranger = order();
    stranger.insert("mch_id".into(), "999".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", stranger).await.err_code(),
        "MCHID_NOT_EXIST"
    );
    let mut other_app = order();
    other_app.insert("appid".into(), "wx0000000000000000".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", other_app).await.err_code(),
        "APPID_MCHID_NOT_MATCH"
    );
    assert!(
        sim.inspect().orders.is_empty(),
        "no refused call leaves an order"
    );
}

#[tokio::test]
async fn orders_follow_wechats_state_machine() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    let order = native_order("sm-1", 100, "http://127.0.0.1:9/notify");
    let first = call(&base, "/pay/unifiedorder", order.clone()).await;
    first.assert_success();
    let mut again = order.clone();
    again.insert("nonce_str".into(), "another-nonce".into());
    let second = call(&base, "/pay/unifiedorder", again).await;
    second.assert_success();
    assert_eq!(
        first.get("prepay_id"),
        second.get("prepay_id"),
        "same parameters, same prepay"
    );
    let mut changed = order.clone();
    changed.insert("total_fee".into(), "101".into());
    assert_eq!(
        call(&base, "/pay/unifiedorder", changed).await.err_code(),
        "OUT_TRADE_NO_USED"
    );

    let query = |out_trade_no: &str| {
        let mut p = default_head();
        p.insert("out_trade_no".into(), out_trade_no.into());
        p
    };
    let answer = call(&base, "/pay/orderquery", query("sm-1")).await;
    answer.assert_success();
    assert_eq!(answer.get("trade_state"), "NOTPAY");
    assert_eq!(
        call(&base, "/pay/orderquery", query("nope"))
            .await
            .err_code(),
        "ORDERNOTEXIST"
    );

    let paid = sim
        .pay(first.get("code_url"))
        .expect("the payer scans the code");
    assert_eq!(paid.state, TradeState::Success);
    let answer = call(&base, "/pay/orderquery", query("sm-1")).await;
    assert_eq!(answer.get("trade_state"), "SUCCESS");
    assert_eq!(answer.get("total_fee"), "100");
    assert_eq!(answer.get("transaction_id").len(), 28);
    let mut by_transaction = default_head();
    by_transaction.insert("transaction_id".into(), answer.get("transaction_id").into());
    assert_eq!(
        call(&base, "/pay/orderquery", by_transaction)
            .await
            .get("out_trade_no"),
        "sm-1"
    );
    assert_eq!(
        call(&base, "/pay/closeorder", query("sm-1"))
            .await
            .err_code(),
        "ORDERPAID"
    );
    assert_eq!(
        call(&base, "/pay/unifiedorder", order).await.err_code(),
        "ORDERPAID"
    );

    call(
        &base,
        "/pay/unifiedorder",
        native_order("sm-2", 5, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    call(&base, "/pay/closeorder", query("sm-2"))
        .await
        .assert_success();
    assert_eq!(
        call(&base, "/pay/closeorder", query("sm-2"))
            .await
            .err_code(),
        "ORDERCLOSED"
    );
    assert!(sim.pay("sm-2").is_err(), "a closed order cannot be paid");
    assert_eq!(
        call(&base, "/pay/closeorder", query("sm-9"))
            .await
            .err_code(),
        "ORDERNOTEXIST"
    );

    call(
        &base,
        "/pay/unifiedorder",
        native_order("sm-3", 5, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    sim.start_paying("sm-3").unwrap();
    assert_eq!(
        call(&base, "/pay/orderquery", query("sm-3"))
            .await
            .get("trade_state"),
        "USERPAYING"
    );
    sim.fail_payment("sm-3").unwrap();
    assert_eq!(
        call(&base, "/pay/orderquery", query("sm-3"))
            .await
            .get("trade_state"),
        "PAYERROR"
    );
}

fn refund_call(
    out_trade_no: &str,
    out_refund_no: &str,
    total: &str,
    fee: &str,
) -> wechatpay_v2::Params {
    let mut p = default_head();
    p.extend(params(&[
        ("out_trade_no", out_trade_no),
        ("out_refund_no", out_refund_no),
        ("total_fee", total),
        ("refund_fee", fee),
    ]));
    p
}

#[tokio::test]
async fn refunds_are_bounded_by_the_paid_amount() {
    let sim = Simulator::start(SimConfig::default().with_merchant(MerchantConfig {
        refund_balance: Some(wechatpay_v2::Fen::new(30)),
        v3: None,
        ..MerchantConfig::new("wxpoor", "20000001", "poor-merchant-key")
    }))
    .await
    .unwrap();
    let base = sim.base_url();
    call(
        &base,
        "/pay/unifiedorder",
        native_order("rf-1", 100, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    assert_eq!(
        call(
            &base,
            "/secapi/pay/refund",
            refund_call("rf-1", "r1", "100", "10")
        )
        .await
        .err_code(),
        "TRADE_STATE_ERROR",
        "an unpaid order cannot be refunded"
    );
    sim.pay("rf-1").unwrap();
    let first = call(
        &base,
        "/secapi/pay/refund",
        refund_call("rf-1", "r1", "100", "60"),
    )
    .await;
    first.assert_success();
    assert_eq!(first.get("refund_fee"), "60");
    let retried = call(
        &base,
        "/secapi/pay/refund",
        refund_call("rf-1", "r1", "100", "60"),
    )
    .await;
    assert_eq!(
        retried.get("refund_id"),
        first.get("refund_id"),
        "a retry is the same refund"
    );
    assert_eq!(
        call(
            &base,
            "/secapi/pay/refund",
            refund_call("rf-1", "r1", "100", "61")
        )
        .await
        .err_code(),
        "REFUND_FEE_MISMATCH"
    );
    assert_eq!(
        call(
            &base,
            "/secapi/pay/refund",
            refund_call("rf-1", "r2", "100", "41")
        )
        .await
        .err_code(),
        "PARAM_ERROR"
    );
    assert_eq!(
        call(
            &base,
            "/secapi/pay/refund",
            refund_call("rf-1", "r2", "99", "10")
        )
        .await
        .err_code(),
        "PARAM_ERROR",
        "total_fee must be the order's"
    );
    call(
        &base,
        "/secapi/pay/refund",
        refund_call("rf-1", "r2", "100", "40"),
    )
    .await
    .assert_success();

    let mut query = default_head();
    query.insert("out_trade_no".into(), "rf-1".into());
    let answer = call(&base, "/pay/refundquery", query.clone()).await;
    answer.assert_success();
    assert_eq!(answer.get("refund_count"), "2");
    assert_eq!(answer.get("out_refund_no_0"), "r1");
    assert_eq!(answer.get("refund_status_1"), "SUCCESS");
    assert_eq!(
        call(&base, "/pay/orderquery", query)
            .await
            .get("trade_state"),
        "REFUND"
    );
    let mut by_refund_id = default_head();
    by_refund_id.insert("refund_id".into(), first.get("refund_id").into());
    let answer = call(&base, "/pay/refundquery", by_refund_id).await;
    assert_eq!(answer.get("refund_count"), "1");
    assert_eq!(answer.get("refund_fee_0"), "60");
    let mut unknown = default_head();
    unknown.insert("out_refund_no".into(), "nope".into());
    assert_eq!(
        call(&base, "/pay/refundquery", unknown).await.err_code(),
        "REFUNDNOTEXIST"
    );

    // A merchant whose balance is short.
    let mut poor = params(&[
        ("appid", "wxpoor"),
        ("mch_id", "20000001"),
        ("nonce_str", "n1"),
        ("body", "b"),
        ("out_trade_no", "poor-1"),
        ("total_fee", "100"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/n"),
        ("trade_type", "APP"),
    ]);
    common::call_with(
        &base,
        "/pay/unifiedorder",
        poor.clone(),
        "poor-merchant-key",
        SignType::Md5,
    )
    .await
    .assert_success();
    sim.pay("poor-1").unwrap();
    for name in [
        "body",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ] {
        poor.shift_remove(name);
    }
    poor.extend(params(&[
        ("out_refund_no", "pr1"),
        ("total_fee", "100"),
        ("refund_fee", "31"),
    ]));
    let answer = common::call_with(
        &base,
        "/secapi/pay/refund",
        poor,
        "poor-merchant-key",
        SignType::Md5,
    )
    .await;
    assert_eq!(answer.err_code(), "NOTENOUGH");
}

#[tokio::test]
async fn the_sandbox_uses_its_own_key_and_orders() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    let sandbox = sim.sandbox_base_url();
    assert_eq!(sandbox, format!("{base}/xdc/apiv2sandbox"));
    let sandbox_key = sandbox_key_at(&base, "/xdc/apiv2getsignkey/sign/getsignkey").await;
    assert_eq!(sandbox_key.len(), 32);
    assert_eq!(
        sim.sandbox_key(DEFAULT_MCH_ID).unwrap().expose_secret(),
        sandbox_key
    );

    let order = native_order("sb-1", 101, "http://127.0.0.1:9/n");
    let with_real_key = call(&sandbox, "/pay/unifiedorder", order.clone()).await;
    assert_eq!(
        with_real_key.err_code(),
        "SIGNERROR",
        "sandbox calls need the sandbox key"
    );
    call_with(
        &sandbox,
        "/pay/unifiedorder",
        order,
        &sandbox_key,
        SignType::Md5,
    )
    .await
    .assert_success();
    let query = order_query("sb-1");
    assert_eq!(
        call(&base, "/pay/orderquery", query.clone())
            .await
            .err_code(),
        "ORDERNOTEXIST",
        "sandbox orders are not live orders"
    );
    call_with(
        &sandbox,
        "/pay/orderquery",
        query,
        &sandbox_key,
        SignType::Md5,
    )
    .await
    .assert_success();
    sim.shutdown().await;
}

/// `getsignkey` at `path`, signed with the real key: the sandbox key it answers.
async fn sandbox_key_at(base: &str, path: &str) -> String {
    let answer = call(
        base,
        path,
        params(&[("mch_id", DEFAULT_MCH_ID), ("nonce_str", "abc")]),
    )
    .await;
    assert_eq!(
        answer.get("return_code"),
        "SUCCESS",
        "{path}: {}",
        answer.body
    );
    answer.get("sandbox_signkey").to_string()
}

fn order_query(out_trade_no: &str) -> wechatpay_v2::Params {
    let mut query = default_head();
    query.insert("out_trade_no".into(), out_trade_no.into());
    query
}

/// WeChat moved its sandbox from `/sandboxnew/` to `/xdc/apiv2sandbox/`; older clients
/// (wechatpy among them) still use the old paths. Both are one sandbox: the same key, the
/// same orders and refunds, whichever path a call comes by.
#[tokio::test]
async fn the_old_and_the_new_sandbox_paths_are_one_sandbox() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    let key = sandbox_key_at(&base, "/xdc/apiv2getsignkey/sign/getsignkey").await;
    assert_eq!(
        sandbox_key_at(&base, "/sandboxnew/pay/getsignkey").await,
        key,
        "the old getsignkey answers the same key"
    );
    let sandbox_call = |root: &'static str, path: &'static str, params| {
        let (base, key) = (base.clone(), key.clone());
        async move { call_with(&format!("{base}{root}"), path, params, &key, SignType::Md5).await }
    };
    let (new, old) = ("/xdc/apiv2sandbox", "/sandboxnew");
    for (made_at, used_at, out_trade_no) in [(new, old, "sb-new"), (old, new, "sb-old")] {
        let out_trade_no = out_trade_no.to_owned();
        let created = sandbox_call(
            made_at,
            "/pay/unifiedorder",
            native_order(&out_trade_no, 200, "http://127.0.0.1:9/n"),
        )
        .await;
        created.assert_success();
        assert_eq!(
            call(
                &format!("{base}{used_at}"),
                "/pay/orderquery",
                order_query(&out_trade_no)
            )
            .await
            .err_code(),
            "SIGNERROR",
            "{used_at}: the real key signs no sandbox call"
        );
        let unpaid = sandbox_call(used_at, "/pay/orderquery", order_query(&out_trade_no)).await;
        unpaid.assert_success();
        assert_eq!(unpaid.get("trade_state"), "NOTPAY", "{made_at} → {used_at}");
        sim.pay(created.get("code_url")).unwrap();
        let paid = sandbox_call(used_at, "/pay/orderquery", order_query(&out_trade_no)).await;
        assert_eq!(paid.get("trade_state"), "SUCCESS", "{made_at} → {used_at}");

        let refund_no = format!("{out_trade_no}-r");
        // Refunds below both roots, with and without the /secapi/ part.
        let first = sandbox_call(
            used_at,
            "/pay/refund",
            refund_call(&out_trade_no, &refund_no, "200", "50"),
        )
        .await;
        first.assert_success();
        let retried = sandbox_call(
            made_at,
            "/secapi/pay/refund",
            refund_call(&out_trade_no, &refund_no, "200", "50"),
        )
        .await;
        retried.assert_success();
        assert_eq!(
            retried.get("refund_id"),
            first.get("refund_id"),
            "a retry at the other root is the same refund"
        );
        let mut refund_query = default_head();
        refund_query.insert("out_refund_no".into(), refund_no.clone());
        let refunds = sandbox_call(made_at, "/pay/refundquery", refund_query).await;
        refunds.assert_success();
        assert_eq!(refunds.get("refund_fee_0"), "50");

        let closing = format!("{out_trade_no}-c");
        sandbox_call(
            made_at,
            "/pay/unifiedorder",
            native_order(&closing, 1, "http://127.0.0.1:9/n"),
        )
        .await
        .assert_success();
        let mut close = default_head();
        close.insert("out_trade_no".into(), closing.clone());
        sandbox_call(used_at, "/pay/closeorder", close)
            .await
            .assert_success();
        let closed = sandbox_call(made_at, "/pay/orderquery", order_query(&closing)).await;
        assert_eq!(closed.get("trade_state"), "CLOSED");
    }
    let inspection = sim.inspect();
    for root in [new, old] {
        assert!(
            inspection
                .requests
                .iter()
                .any(|request| request.path.starts_with(root) && request.endpoint == "refund"),
            "refunds were made below {root}"
        );
    }
    assert!(
        inspection
            .orders
            .iter()
            .all(|order| order.env == wechatpay_sim::Env::Sandbox),
        "every order is a sandbox order"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn download_bill_lists_the_days_transactions() {
    let sim = Simulator::start_default().await;
    let base = sim.base_url();
    let today =
        wechatpay_v2::time::format_date(wechatpay_v2::time::beijing_date(chrono::Utc::now()));
    let bill = |bill_type: &str| {
        let mut p = default_head();
        p.insert("bill_date".into(), today.clone());
        p.insert("bill_type".into(), bill_type.into());
        p
    };
    let answer = call(&base, "/pay/downloadbill", bill("ALL")).await;
    assert_eq!(answer.get("return_code"), "FAIL");
    assert_eq!(answer.get("return_msg"), "No Bill Exist");

    for (no, fee) in [("bill-1", "100"), ("bill-2", "250")] {
        call(
            &base,
            "/pay/unifiedorder",
            native_order(no, fee.parse().unwrap(), "http://127.0.0.1:9/n"),
        )
        .await
        .assert_success();
        sim.pay(no).unwrap();
    }
    call(
        &base,
        "/secapi/pay/refund",
        refund_call("bill-2", "br1", "250", "50"),
    )
    .await
    .assert_success();

    let text = call(&base, "/pay/downloadbill", bill("ALL")).await.body;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("交易时间,公众账号ID,商户号"));
    let columns = lines[0].split(',').count();
    for row in &lines[1..4] {
        assert_eq!(row.split(',').count(), columns, "{row}");
        assert!(row.starts_with('`'));
    }
    assert!(lines[1].contains("`bill-1,") && lines[1].contains("`SUCCESS,"));
    assert!(lines[3].contains("`REFUND,") && lines[3].contains("`br1,"));
    assert_eq!(lines[5], "`3,`3.50,`0.50,`0.00,`0.01800,`3.50,`0.50");

    let success = call(&base, "/pay/downloadbill", bill("SUCCESS")).await.body;
    assert_eq!(success.lines().count(), 5, "{success}");
    let refunds = call(&base, "/pay/downloadbill", bill("REFUND")).await.body;
    assert_eq!(refunds.lines().count(), 4, "{refunds}");

    let mut bad_date = bill("ALL");
    bad_date.insert("bill_date".into(), "2026-01-01".into());
    assert_eq!(
        call(&base, "/pay/downloadbill", bad_date)
            .await
            .get("return_msg"),
        "invalid bill_date"
    );
}

#[tokio::test]
async fn the_store_is_bounded_per_merchant() {
    let sim = Simulator::start(SimConfig {
        max_orders_per_merchant: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url();
    for n in 0..5 {
        call(
            &base,
            "/pay/unifiedorder",
            native_order(&format!("b-{n}"), 1, "http://127.0.0.1:9/n"),
        )
        .await
        .assert_success();
        if n == 1 {
            sim.pay("b-1").unwrap();
        }
    }
    let kept: Vec<String> = sim
        .inspect()
        .orders
        .into_iter()
        .map(|order| order.out_trade_no)
        .collect();
    assert_eq!(kept, ["b-2", "b-3", "b-4"]);
}

#[tokio::test]
async fn the_payer_and_inspection_work_over_http() {
    let receiver = NotifyReceiver::start(0).await;
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
        .await
        .unwrap();
    let base = sim.base_url();
    let created = call(
        &base,
        "/pay/unifiedorder",
        native_order("h-1", 8, &receiver.url),
    )
    .await;
    created.assert_success();
    let http = reqwest::Client::new();
    let paid = http
        .post(format!("{base}/sim/pay"))
        .json(&serde_json::json!({ "code_url": created.get("code_url") }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let paid: serde_json::Value = paid.json().await.unwrap();
    assert_eq!(paid["order"]["state"], "SUCCESS");
    assert_eq!(paid["order"]["total_fee"], 8);
    let again = http
        .post(format!("{base}/sim/pay"))
        .json(&serde_json::json!({ "out_trade_no": "h-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "a paid order cannot be paid again");
    let missing = http
        .post(format!("{base}/sim/fail"))
        .json(&serde_json::json!({ "out_trade_no": "h-404" }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    receiver.wait_for(1, Duration::from_secs(5)).await;
    common::logged_notifies(&sim, "h-1", 1).await;
    let inspection: serde_json::Value = http
        .get(format!("{base}/sim/inspect"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = inspection["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["endpoint"], "unifiedorder");
    assert!(
        requests[0]["request_body"]
            .as_str()
            .unwrap()
            .contains("h-1")
    );
    assert!(
        requests[0]["response_body"]
            .as_str()
            .unwrap()
            .contains("prepay_id")
    );
    let notifies = inspection["notifies"].as_array().unwrap();
    assert_eq!(notifies.len(), 1);
    assert_eq!(notifies[0]["outcome"], "acknowledged");
    assert_eq!(notifies[0]["reply_status"], 200);
    assert_eq!(inspection["payer_actions"][0]["action"], "pay");

    let cleared = http
        .delete(format!("{base}/sim/inspect"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(sim.inspect().requests.is_empty());
    assert_eq!(
        sim.inspect().orders.len(),
        1,
        "clearing the log keeps the orders"
    );
}

#[tokio::test]
async fn configuration_reads_from_toml_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.toml");
    std::fs::write(
        &path,
        format!(
            "time_scale = 50.0\n[[merchants]]\nappid = \"{DEFAULT_APPID}\"\nmch_id = \"{DEFAULT_MCH_ID}\"\nkey = \"{DEFAULT_API_KEY}\"\n\
             [[faults]]\nendpoint = \"orderquery\"\ntimes = 1\nfault = {{ kind = \"system_error\" }}\n"
        ),
    )
    .unwrap();
    let config = SimConfig::from_toml_file(&path).unwrap();
    assert_eq!(config.time_scale, 50.0);
    let sim = Simulator::start(config).await.unwrap();
    assert_eq!(sim.faults().list().len(), 1);
    let mut query = default_head();
    query.insert("out_trade_no".into(), "x".into());
    assert_eq!(
        call(&sim.base_url(), "/pay/orderquery", query.clone())
            .await
            .err_code(),
        "SYSTEMERROR"
    );
    assert_eq!(
        call(&sim.base_url(), "/pay/orderquery", query)
            .await
            .err_code(),
        "ORDERNOTEXIST"
    );
    sim.shutdown().await;

    let error = SimConfig::from_toml_str("time_scale = 0.0").unwrap_err();
    assert!(error.to_string().contains("time_scale"), "{error}");
    let error =
        SimConfig::from_toml_str("[[merchants]]\nappid = \"a\"\nmch_id = \"\"\nkey = \"k\"")
            .unwrap_err();
    assert!(error.to_string().contains("merchants[0].mch_id"), "{error}");
    let tls = SimConfig::from_toml_str(
        "[tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\nclient_ca_file = \"ca.pem\"\n",
    )
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(tls.client_ca_file, std::path::Path::new("ca.pem"));
    let error = SimConfig::from_toml_str("[tls]\ncert_file = \"server.pem\"\n").unwrap_err();
    assert!(error.to_string().contains("key_file"), "{error}");
    let error = SimConfig::from_toml_str("refund_processing_ms = 31536000001").unwrap_err();
    assert!(
        error.to_string().contains("refund_processing_ms"),
        "{error}"
    );
    assert_eq!(
        SimConfig::from_toml_str("refund_processing_ms = 2500")
            .unwrap()
            .refund_processing(),
        Duration::from_millis(2500)
    );
    let error = SimConfig::from_toml_str("[[faults]]\nfault = { kind = \"explode\" }").unwrap_err();
    assert!(error.to_string().contains("explode"), "{error}");
    let error = SimConfig::from_toml_file(dir.path().join("missing.toml")).unwrap_err();
    assert!(error.to_string().contains("missing.toml"), "{error}");
    let debug = format!("{:?}", MerchantConfig::default_merchant());
    assert!(
        !debug.contains(DEFAULT_API_KEY),
        "keys never show in Debug: {debug}"
    );
}

#[tokio::test]
async fn a_running_simulator_learns_new_merchants_and_app_ids() {
    use wechatpay_sim::LearnedMerchant;
    let sim = Simulator::start_default().await;
    let merchant = MerchantConfig::new("wxnew", "30000002", "new-key");
    assert_eq!(
        sim.learn_merchant(merchant.clone()).unwrap(),
        LearnedMerchant::Added
    );
    assert_eq!(
        sim.learn_merchant(merchant.clone()).unwrap(),
        LearnedMerchant::Known
    );
    assert_eq!(
        sim.learn_merchant(MerchantConfig::new("wxmini", "30000002", "new-key"))
            .unwrap(),
        LearnedMerchant::AppIdsAdded(vec!["wxmini".to_owned()])
    );
    let refused = sim
        .learn_merchant(MerchantConfig::new("wxnew", "30000002", "other-key"))
        .unwrap_err();
    assert!(refused.to_string().contains("another API key"), "{refused}");
    assert!(!refused.to_string().contains("other-key"), "{refused}");
    // Calls for the learned app id are accepted, signed with the merchant's key.
    for appid in ["wxnew", "wxmini"] {
        let answer = common::call_with(
            &sim.base_url(),
            "/pay/orderquery",
            params(&[
                ("appid", appid),
                ("mch_id", "30000002"),
                ("nonce_str", "n"),
                ("out_trade_no", "x"),
            ]),
            "new-key",
            SignType::HmacSha256,
        )
        .await;
        assert_eq!(answer.err_code(), "ORDERNOTEXIST", "{appid}");
    }
}

#[tokio::test]
async fn merchants_can_be_added_while_running() {
    let sim = Simulator::start_default().await;
    sim.add_merchant(MerchantConfig {
        refund_balance: Some(wechatpay_v2::Fen::ZERO),
        v3: None,
        ..MerchantConfig::new("wxlate", "30000001", "late-key")
    })
    .unwrap();
    assert!(
        sim.add_merchant(MerchantConfig::new("wxlate", "30000001", "late-key"))
            .is_err()
    );
    let answer = common::call_with(
        &sim.base_url(),
        "/pay/orderquery",
        params(&[
            ("appid", "wxlate"),
            ("mch_id", "30000001"),
            ("nonce_str", "n"),
            ("out_trade_no", "x"),
        ]),
        "late-key",
        SignType::HmacSha256,
    )
    .await;
    assert_eq!(answer.err_code(), "ORDERNOTEXIST");
    wechatpay_v2::verify(&answer.params, &ApiKey::new("late-key")).unwrap();

    let head = [
        ("appid", "wxlate"),
        ("mch_id", "30000001"),
        ("nonce_str", "n"),
    ];
    let mut create = params(&head);
    create.extend(params(&[
        ("body", "b"),
        ("out_trade_no", "late-1"),
        ("total_fee", "5"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/n"),
        ("trade_type", "APP"),
    ]));
    common::call_with(
        &sim.base_url(),
        "/pay/unifiedorder",
        create,
        "late-key",
        SignType::Md5,
    )
    .await
    .assert_success();
    sim.pay("late-1").unwrap();
    let mut refund = params(&head);
    refund.extend(params(&[
        ("out_trade_no", "late-1"),
        ("out_refund_no", "late-r1"),
        ("total_fee", "5"),
        ("refund_fee", "1"),
    ]));
    let answer = common::call_with(
        &sim.base_url(),
        "/secapi/pay/refund",
        refund,
        "late-key",
        SignType::Md5,
    )
    .await;
    assert_eq!(
        answer.err_code(),
        "NOTENOUGH",
        "the added merchant's balance applies"
    );
}

#[tokio::test]
async fn a_simulator_in_another_process_is_driven_through_remote_sim() {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
        .await
        .unwrap();
    let remote = wechatpay_sim::RemoteSim::new(format!("{}/", sim.base_url()));
    call(
        &sim.base_url(),
        "/pay/unifiedorder",
        native_order("r-1", 3, "http://127.0.0.1:9/n"),
    )
    .await
    .assert_success();
    let paid = remote
        .pay(&wechatpay_sim::PayTarget::out_trade_no("r-1"))
        .await
        .unwrap();
    assert_eq!(paid["state"], "SUCCESS");
    let refused = remote
        .fail_payment(&wechatpay_sim::PayTarget::out_trade_no("r-1"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("409"), "{refused}");
    assert!(refused.to_string().contains("r-1"), "{refused}");

    let rule = wechatpay_sim::FaultRule::new(wechatpay_sim::Fault::Latency { ms: 1 })
        .for_merchant(DEFAULT_MCH_ID)
        .times(2);
    let id = remote.add_fault(&rule).await.unwrap();
    let faults = remote.faults().await.unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].id, id);
    assert_eq!(faults[0].rule, rule);
    let inspection = remote.inspect().await.unwrap();
    assert_eq!(inspection["orders"][0]["out_trade_no"], "r-1");

    let unreachable = wechatpay_sim::RemoteSim::new("http://127.0.0.1:9")
        .inspect()
        .await
        .unwrap_err();
    assert!(unreachable.to_string().contains("127.0.0.1:9"));

    // `run_until` is how a command line serves until Ctrl-C.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let base = sim.base_url();
    let serving = tokio::spawn(sim.run_until(async {
        let _ = stopped.await;
    }));
    assert!(reqwest::get(format!("{base}/sim/health")).await.is_ok());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap();
    assert!(reqwest::get(format!("{base}/sim/health")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_payers_and_closes_settle_an_order_exactly_once() {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
        .await
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    let base = sim.base_url();
    for round in 0..5 {
        let out_trade_no = format!("race-{round}");
        call(
            &base,
            "/pay/unifiedorder",
            native_order(&out_trade_no, 1, &receiver.url),
        )
        .await
        .assert_success();
        let http = reqwest::Client::new();
        let mut racers = Vec::new();
        for racer in 0..12 {
            let http = http.clone();
            let base = base.clone();
            let out_trade_no = out_trade_no.clone();
            racers.push(tokio::spawn(async move {
                if racer % 3 == 0 {
                    let mut close = default_head();
                    close.insert("out_trade_no".into(), out_trade_no);
                    let answer = call(&base, "/pay/closeorder", close).await;
                    ("close", answer.get("result_code") == "SUCCESS")
                } else {
                    let answer = http
                        .post(format!("{base}/sim/pay"))
                        .json(&serde_json::json!({ "out_trade_no": out_trade_no }))
                        .send()
                        .await
                        .unwrap();
                    ("pay", answer.status() == 200)
                }
            }));
        }
        let mut winners = Vec::new();
        for racer in racers {
            let (action, won) = racer.await.unwrap();
            if won {
                winners.push(action);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let order = sim.order(&out_trade_no).unwrap();
        let expected = if winners[0] == "pay" {
            TradeState::Success
        } else {
            TradeState::Closed
        };
        assert_eq!(order.state, expected);
    }
    // One notify per paid order, never more: once none is pending, count them.
    let paid = common::settled(&sim)
        .await
        .orders
        .iter()
        .filter(|order| order.state == TradeState::Success)
        .count();
    assert_eq!(receiver.received().len(), paid);
}
