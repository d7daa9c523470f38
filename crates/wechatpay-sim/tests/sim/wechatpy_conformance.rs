//! Conformance with an independent client: wechatpy 1.8.18 (PyPI), pointed at the
//! simulator through `API_BASE_URL`.

use std::time::Duration;

use crate::common::NotifyReceiver;
use serde_json::{Value, json};
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, MerchantConfig, SimConfig, SimHandle, Simulator,
};

/// Runs a wechatpy snippet off the async runtime (the simulator serves it meanwhile).
async fn python(snippet: String, data: Value) -> Value {
    tokio::task::spawn_blocking(move || test_support::run_python(&snippet, &data))
        .await
        .expect("the python runner does not panic")
}

const PRELUDE: &str = r#"
import requests
from datetime import datetime, timedelta
from wechatpy.pay import WeChatPay
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

def client(api_key=None, mch_id=None, appid=None, sandbox=False, timeout=10):
    pay = WeChatPay(appid=appid or data['appid'], api_key=api_key or data['key'],
                    mch_id=mch_id or data['mch_id'], mch_cert=data['cert'],
                    mch_key=data['cert_key'], timeout=timeout, sandbox=sandbox)
    pay.API_BASE_URL = data['base'] + '/'
    return pay

def signed(answer, key, hmac=False):
    fields = dict(answer)
    sign = fields.pop('sign')
    compute = calculate_signature_hmac if hmac else calculate_signature
    return compute(fields, key) == sign

def sim(path, body):
    answer = requests.post(data['base'] + path, json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()
"#;

async fn start() -> (SimHandle, NotifyReceiver, tempfile::TempDir, Value) {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0).with_merchant(
        MerchantConfig {
            refund_balance: Some(wechatpay_v2::Fen::new(10)),
            v3: None,
            ..MerchantConfig::new(
                "wxpoorpoorpoorpoor",
                "20000001",
                "poor-merchant-key-0123456789abcd",
            )
        },
    ))
    .await
    .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    // wechatpy sends the merchant certificate with refunds; over plain HTTP requests only
    // checks that the files exist, so a placeholder pair does.
    let certs = tempfile::tempdir().unwrap();
    let cert = certs.path().join("apiclient_cert.pem");
    let cert_key = certs.path().join("apiclient_key.pem");
    std::fs::write(&cert, "placeholder certificate\n").unwrap();
    std::fs::write(&cert_key, "placeholder key\n").unwrap();
    let data = json!({
        "base": sim.base_url(),
        "appid": DEFAULT_APPID,
        "mch_id": DEFAULT_MCH_ID,
        "key": DEFAULT_API_KEY,
        "notify_url": receiver.url,
        "cert": cert,
        "cert_key": cert_key,
        "today": wechatpay_v2::time::format_date(wechatpay_v2::time::beijing_date(chrono::Utc::now())),
    });
    (sim, receiver, certs, data)
}

const SCENARIOS: &str = r#"
pay = client()
key = data['key']
notify = data['notify_url']
result = {}
native = pay.order.create('NATIVE', 'simulated goods', 101, notify, client_ip='127.0.0.1',
                          out_trade_no='py-native', product_id='p1', attach='a=1')
jsapi = pay.order.create('JSAPI', '模拟商品', 1, notify, client_ip='127.0.0.1',
                         out_trade_no='py-jsapi', user_id='oUpF8uMuAJO_M2pxb1Q9zNjWeS6o')
mweb = pay.order.create('MWEB', 'simulated goods', 1, notify, client_ip='127.0.0.1',
                        out_trade_no='py-mweb',
                        scene_info={'h5_info': {'type': 'Wap', 'wap_url': 'https://example.com', 'wap_name': 'demo'}})
app = pay.order.create('APP', 'simulated goods', 1, notify, client_ip='127.0.0.1',
                       out_trade_no='py-app', sign_type='HMAC-SHA256')
result['created'] = {'native': native, 'jsapi': jsapi, 'mweb': mweb, 'app': app}
result['signed'] = [signed(native, key), signed(jsapi, key), signed(mweb, key),
                    signed(app, key, hmac=True)]
result['jsapi_params'] = pay.jsapi.get_jsapi_params(jsapi['prepay_id'])

sim('/sim/pay', {'code_url': native['code_url']})
result['query'] = pay.order.query(out_trade_no='py-native')
result['query_by_transaction'] = pay.order.query(transaction_id=result['query']['transaction_id'])
result['close'] = pay.order.close('py-mweb')
result['closed'] = pay.order.query(out_trade_no='py-mweb')
result['refund'] = pay.refund.apply(total_fee=101, refund_fee=40, out_refund_no='py-r1',
                                    out_trade_no='py-native', notify_url=notify)
result['refund_signed'] = signed(result['refund'], key)
result['refund_query'] = pay.refund.query(out_refund_no='py-r1')
result['refund_query_by_order'] = pay.refund.query(out_trade_no='py-native')
result['bill'] = pay.tools.download_bill(data['today'])
"#;

#[tokio::test]
async fn wechatpy_runs_every_call_without_error() {
    let (sim, receiver, _certs, data) = start().await;
    let out = python(format!("{PRELUDE}{SCENARIOS}"), data.clone()).await;

    let created = &out["created"];
    assert!(
        created["native"]["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl?pr=")
    );
    assert!(
        created["mweb"]["mweb_url"]
            .as_str()
            .unwrap()
            .starts_with("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx")
    );
    assert_eq!(created["jsapi"]["trade_type"], "JSAPI");
    assert_eq!(created["app"]["trade_type"], "APP");
    assert_eq!(
        out["signed"],
        json!([true, true, true, true]),
        "wechatpy verifies every answer"
    );
    assert_eq!(
        out["jsapi_params"]["package"],
        format!(
            "prepay_id={}",
            created["jsapi"]["prepay_id"].as_str().unwrap()
        )
    );

    assert_eq!(out["query"]["trade_state"], "SUCCESS");
    assert_eq!(out["query"]["total_fee"], "101");
    assert_eq!(out["query"]["attach"], "a=1");
    assert_eq!(out["query_by_transaction"]["out_trade_no"], "py-native");
    assert_eq!(out["close"]["result_code"], "SUCCESS");
    assert_eq!(out["closed"]["trade_state"], "CLOSED");
    assert_eq!(out["refund"]["refund_fee"], "40");
    assert_eq!(out["refund_signed"], true);
    assert_eq!(out["refund_query"]["refund_status_0"], "SUCCESS");
    assert_eq!(out["refund_query_by_order"]["refund_count"], "1");
    let bill = out["bill"]
        .as_str()
        .expect("a successful bill is text, not XML");
    assert!(bill.contains("`py-native,"), "{bill}");
    assert!(bill.contains("`py-r1,"), "{bill}");

    // The notifies, checked by wechatpy's own parsers: the payment notify's signature and
    // the refund notify's decryption.
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    let payment = received
        .iter()
        .find(|r| r.body.contains("transaction_id"))
        .expect("a payment notify");
    let refund = received
        .iter()
        .find(|r| r.body.contains("req_info"))
        .expect("a refund notify");
    let parsed = python(
        r#"
from wechatpy.pay import WeChatPay
pay = WeChatPay(appid=data['appid'], api_key=data['key'], mch_id=data['mch_id'])
result = {'payment': pay.parse_payment_result(data['payment']),
          'refund': pay.parse_refund_notify_result(data['refund'])}
"#
        .to_string(),
        json!({
            "appid": DEFAULT_APPID,
            "mch_id": DEFAULT_MCH_ID,
            "key": DEFAULT_API_KEY,
            "payment": payment.body,
            "refund": refund.body,
        }),
    )
    .await;
    let payment = &parsed["payment"];
    assert_eq!(payment["out_trade_no"], "py-native");
    assert_eq!(payment["total_fee"], 101);
    assert_eq!(payment["cash_fee"], 101);
    assert_eq!(payment["result_code"], "SUCCESS");
    assert_eq!(payment["attach"], "a=1");
    assert_eq!(payment["transaction_id"], out["query"]["transaction_id"]);
    let refund = &parsed["refund"];
    assert_eq!(refund["out_refund_no"], "py-r1");
    assert_eq!(refund["refund_fee"], 40);
    assert_eq!(refund["total_fee"], 101);
    assert_eq!(refund["refund_status"], "SUCCESS");
    assert_eq!(refund["refund_id"], out["refund"]["refund_id"]);
    sim.shutdown().await;
}

/// wechatpy's `sandbox=True`, in 1.8.18 as on its master branch (checked February 2025),
/// still sends its calls below `/sandboxnew/`, where WeChat's sandbox was before it moved to
/// `/xdc/apiv2sandbox/`: the simulator serves it there, as one sandbox with the new paths.
const SANDBOX: &str = r#"
sandbox = client(sandbox=True)
notify = data['notify_url']
result = {'key': sandbox.sandbox_api_key}
created = sandbox.order.create('NATIVE', 'sandbox goods', 101, notify, client_ip='127.0.0.1',
                               out_trade_no='py-sandbox', product_id='p1')
result['created'] = created
result['created_signed'] = signed(created, sandbox.sandbox_api_key)
sim('/sim/pay', {'code_url': created['code_url']})
result['query'] = sandbox.order.query(out_trade_no='py-sandbox')
result['refund'] = sandbox.refund.apply(total_fee=101, refund_fee=30, out_refund_no='py-sandbox-r1',
                                        out_trade_no='py-sandbox')
result['refund_signed'] = signed(result['refund'], sandbox.sandbox_api_key)
"#;

#[tokio::test]
async fn wechatpy_sandbox_mode_is_served_at_the_old_sandbox_paths() {
    let (sim, _receiver, _certs, data) = start().await;
    let out = python(format!("{PRELUDE}{SANDBOX}"), data).await;
    assert_eq!(
        out["key"],
        sim.sandbox_key(DEFAULT_MCH_ID).unwrap().expose_secret()
    );
    assert_eq!(out["created"]["result_code"], "SUCCESS");
    assert_eq!(out["created_signed"], true);
    assert_eq!(out["query"]["trade_state"], "SUCCESS");
    assert_eq!(out["refund"]["refund_fee"], "30");
    assert_eq!(out["refund_signed"], true);
    let paths: Vec<String> = sim
        .inspect()
        .requests
        .iter()
        .map(|request| request.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/sandboxnew/pay/getsignkey",
            "/sandboxnew/pay/unifiedorder",
            "/sandboxnew/pay/orderquery",
            "/sandboxnew/secapi/pay/refund",
        ]
    );

    // The order wechatpy made by the old paths, as the workspace's client sees it by the new.
    let client = wechatpay_v2::Client::new(wechatpay_v2::ClientConfig {
        base_url: sim.base_url(),
        app_id: DEFAULT_APPID.into(),
        mch_id: DEFAULT_MCH_ID.into(),
        api_key: wechatpay_v2::ApiKey::new(DEFAULT_API_KEY),
        sandbox: true,
        ..wechatpay_v2::ClientConfig::default()
    })
    .unwrap();
    let refunds = client
        .refund_query(&wechatpay_v2::RefundRef::OutRefundNo(
            "py-sandbox-r1".into(),
        ))
        .await
        .unwrap();
    assert_eq!(refunds.refunds[0].refund_fee, wechatpay_v2::Fen::new(30));
    assert_eq!(
        sim.inspect()
            .requests
            .last()
            .map(|request| request.path.as_str()),
        Some("/xdc/apiv2sandbox/pay/refundquery")
    );
    sim.shutdown().await;
}

const ERRORS: &str = r#"
pay = client()
notify = data['notify_url']
result = {}

def errcode(call):
    try:
        call()
        return 'no error'
    except WeChatPayException as error:
        return error.errcode or 'return_code={} status={}'.format(
            error.return_code, error.response.status_code if error.response is not None else None)

start = datetime(2030, 1, 1, 8, 0, 0)
end = start + timedelta(hours=2)
def create(out_trade_no, fee, **extra):
    return pay.order.create('NATIVE', 'goods', fee, notify, client_ip='127.0.0.1',
                            out_trade_no=out_trade_no, product_id='p1',
                            time_start=start, time_expire=end, **extra)

first = create('py-e1', 100)
result['same_prepay'] = create('py-e1', 100)['prepay_id'] == first['prepay_id']
result['OUT_TRADE_NO_USED'] = errcode(lambda: create('py-e1', 200))
result['SIGNERROR'] = errcode(lambda: client(api_key='0' * 32).order.query(out_trade_no='py-e1'))
result['LACK_PARAMS'] = errcode(lambda: pay.order.create('JSAPI', 'goods', 1, notify,
                                                         client_ip='127.0.0.1', out_trade_no='py-e0'))
result['LACK_PARAMS_MWEB'] = errcode(lambda: pay.order.create('MWEB', 'goods', 1, notify,
                                                              client_ip='127.0.0.1', out_trade_no='py-e0'))
result['LACK_PARAMS_NATIVE'] = errcode(lambda: pay.order.create('NATIVE', 'goods', 1, notify,
                                                                client_ip='127.0.0.1', out_trade_no='py-e0'))
# (wechatpy leaves a zero total_fee out, which is LACK_PARAMS; a negative one is sent.)
result['PARAM_ERROR'] = errcode(lambda: create('py-e0', -1))
result['PARAM_ERROR_TRADE_TYPE'] = errcode(lambda: pay.order.create('CASH', 'goods', 1, notify, client_ip='127.0.0.1', out_trade_no='py-e0'))
result['XML_FORMAT_ERROR'] = errcode(lambda: pay._handle_result(
    requests.post(data['base'] + '/pay/orderquery', data=b'<xml><mch_id>1</mch_id>', timeout=10)))
result['ORDERNOTEXIST'] = errcode(lambda: pay.order.query(out_trade_no='py-nope'))
sim('/sim/pay', {'out_trade_no': 'py-e1'})
result['ORDERPAID'] = errcode(lambda: pay.order.close('py-e1'))
create('py-e2', 100)
pay.order.close('py-e2')
result['ORDERCLOSED'] = errcode(lambda: pay.order.close('py-e2'))
result['REFUND_PARAM_ERROR'] = errcode(lambda: pay.refund.apply(
    total_fee=100, refund_fee=101, out_refund_no='py-er1', out_trade_no='py-e1'))
result['REFUNDNOTEXIST'] = errcode(lambda: pay.refund.query(out_refund_no='py-er-nope'))
result['MCHID_NOT_EXIST'] = errcode(lambda: client(mch_id='99999999').order.query(out_trade_no='x'))
result['APPID_MCHID_NOT_MATCH'] = errcode(lambda: client(appid='wx0000000000000000').order.query(out_trade_no='x'))

poor = client(appid='wxpoorpoorpoorpoor', mch_id='20000001', api_key='poor-merchant-key-0123456789abcd')
poor.order.create('APP', 'goods', 100, notify, client_ip='127.0.0.1', out_trade_no='py-poor')
sim('/sim/pay', {'out_trade_no': 'py-poor'})
result['NOTENOUGH'] = errcode(lambda: poor.refund.apply(
    total_fee=100, refund_fee=50, out_refund_no='py-pr1', out_trade_no='py-poor'))

def fault(rule):
    answer = requests.post(data['base'] + '/sim/faults', json=rule, timeout=10)
    assert answer.status_code == 201, answer.text

fault({'endpoint': 'orderquery', 'times': 1, 'fault': {'kind': 'system_error'}})
result['SYSTEMERROR'] = errcode(lambda: pay.order.query(out_trade_no='py-e1'))
fault({'endpoint': 'orderquery', 'times': 1, 'fault': {'kind': 'http_status', 'status': 502}})
result['HTTP_502'] = errcode(lambda: pay.order.query(out_trade_no='py-e1'))
fault({'endpoint': 'orderquery', 'times': 1, 'fault': {'kind': 'hang'}})
try:
    client(timeout=0.3).order.query(out_trade_no='py-e1')
    result['HANG'] = 'answered'
except requests.exceptions.Timeout:
    result['HANG'] = 'timeout'
result['after_faults'] = pay.order.query(out_trade_no='py-e1')['trade_state']
"#;

#[tokio::test]
async fn each_error_arrives_in_wechatpy_as_its_code() {
    let (sim, _receiver, _certs, data) = start().await;
    let out = python(format!("{PRELUDE}{ERRORS}"), data).await;
    assert_eq!(
        out["same_prepay"], true,
        "identical parameters give the same prepay_id"
    );
    for code in [
        "OUT_TRADE_NO_USED",
        "SIGNERROR",
        "LACK_PARAMS",
        "PARAM_ERROR",
        "XML_FORMAT_ERROR",
        "ORDERNOTEXIST",
        "ORDERPAID",
        "ORDERCLOSED",
        "REFUNDNOTEXIST",
        "MCHID_NOT_EXIST",
        "APPID_MCHID_NOT_MATCH",
        "NOTENOUGH",
        "SYSTEMERROR",
    ] {
        assert_eq!(out[code], code, "{out:#}");
    }
    assert_eq!(out["LACK_PARAMS_MWEB"], "LACK_PARAMS");
    assert_eq!(out["LACK_PARAMS_NATIVE"], "LACK_PARAMS");
    assert_eq!(out["REFUND_PARAM_ERROR"], "PARAM_ERROR");
    assert_eq!(out["PARAM_ERROR_TRADE_TYPE"], "PARAM_ERROR");
    assert_eq!(out["HTTP_502"], "return_code=None status=502");
    assert_eq!(out["HANG"], "timeout");
    assert_eq!(out["after_faults"], "SUCCESS");
    sim.shutdown().await;
}

/// A refund the simulator is told to end as CHANGE, one held in PROCESSING and then closed,
/// and the day's bills, all read by wechatpy: its refund query, its refund notify
/// decryption and its bill download agree with the simulator and with this crate's parsers.
const REFUND_OUTCOMES: &str = r#"
pay = client()
notify = data['notify_url']
result = {}
order = pay.order.create('NATIVE', 'simulated goods', 500, notify, client_ip='127.0.0.1',
                         out_trade_no='py-out', product_id='p1')
sim('/sim/pay', {'code_url': order['code_url']})
sim('/sim/refund-plans', {'out_refund_no': 'py-out-change', 'status': 'CHANGE'})
sim('/sim/refund-plans', {'out_trade_no': 'py-out', 'status': 'PROCESSING'})
# The first refund takes the plan naming it, the second the plan naming its order.
pay.refund.apply(total_fee=500, refund_fee=120, out_refund_no='py-out-change',
                 out_trade_no='py-out', notify_url=notify)
pay.refund.apply(total_fee=500, refund_fee=380, out_refund_no='py-out-held',
                 out_trade_no='py-out', notify_url=notify)
result['change'] = pay.refund.query(out_refund_no='py-out-change')
result['held'] = pay.refund.query(out_refund_no='py-out-held')
result['settled'] = sim('/sim/refunds/settle', {'out_refund_no': 'py-out-held', 'status': 'REFUNDCLOSE'})
result['closed'] = pay.refund.query(out_refund_no='py-out-held')
# The closed refund's 380 can be refunded again, under a new number.
result['again'] = pay.refund.apply(total_fee=500, refund_fee=380, out_refund_no='py-out-again',
                                   out_trade_no='py-out', notify_url=notify)
result['all_refunds'] = pay.refund.query(out_trade_no='py-out')
result['bill_all'] = pay.tools.download_bill(data['today'], 'ALL')
result['bill_refund'] = pay.tools.download_bill(data['today'], 'REFUND')
"#;

#[tokio::test]
async fn wechatpy_reads_change_and_closed_refunds_their_notifies_and_the_bills() {
    use wechatpay_v2::{ApiKey, Bill, BillType, Fen, RefundStatus};

    let (sim, receiver, _certs, data) = start().await;
    let out = python(format!("{PRELUDE}{REFUND_OUTCOMES}"), data).await;

    let change = &out["change"];
    assert_eq!(change["refund_status_0"], "CHANGE");
    assert_eq!(change["refund_fee_0"], "120");
    assert_eq!(change.get("refund_success_time_0"), None, "{change}");
    assert_eq!(out["held"]["refund_status_0"], "PROCESSING");
    assert_eq!(out["settled"]["refund"]["ends_as"], "REFUNDCLOSE");
    assert_eq!(out["closed"]["refund_status_0"], "REFUNDCLOSE");
    assert_eq!(out["again"]["refund_fee"], "380");
    let all_refunds = &out["all_refunds"];
    assert_eq!(all_refunds["refund_count"], "3");
    let statuses: Vec<&str> = (0..3)
        .map(|n| all_refunds[format!("refund_status_{n}")].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["CHANGE", "REFUNDCLOSE", "SUCCESS"]);

    // One notify per settled refund (payment + CHANGE + REFUNDCLOSE + SUCCESS), each
    // decrypted by wechatpy and by this crate's parser, which must agree.
    let received = receiver.wait_for(4, Duration::from_secs(10)).await;
    let refund_bodies: Vec<String> = received
        .iter()
        .filter(|r| r.body.contains("req_info"))
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(refund_bodies.len(), 3, "no notify while a refund is held");
    let parsed = python(
        r#"
from wechatpy.pay import WeChatPay
pay = WeChatPay(appid=data['appid'], api_key=data['key'], mch_id=data['mch_id'])
result = [pay.parse_refund_notify_result(body) for body in data['bodies']]
"#
        .to_string(),
        json!({
            "appid": DEFAULT_APPID,
            "mch_id": DEFAULT_MCH_ID,
            "key": DEFAULT_API_KEY,
            "bodies": refund_bodies,
        }),
    )
    .await;
    let mut seen = Vec::new();
    for (body, theirs) in refund_bodies.iter().zip(parsed.as_array().unwrap()) {
        let ours =
            wechatpay_v2::parse_refund_notify(body.as_bytes(), &ApiKey::new(DEFAULT_API_KEY))
                .unwrap();
        assert_eq!(theirs["out_refund_no"], ours.out_refund_no.as_str());
        assert_eq!(theirs["refund_id"], ours.refund_id.as_str());
        assert_eq!(theirs["out_trade_no"], "py-out");
        assert_eq!(theirs["transaction_id"], ours.transaction_id.as_str());
        assert_eq!(theirs["refund_status"], ours.refund_status.as_str());
        assert_eq!(theirs["refund_fee"], ours.refund_fee.get());
        assert_eq!(theirs["total_fee"], 500);
        assert_eq!(
            theirs["refund_recv_accout"],
            ours.refund_recv_account.as_deref().unwrap()
        );
        assert_eq!(
            theirs.get("success_time").and_then(Value::as_str),
            ours.success_time.as_deref()
        );
        // Only a successful refund has a success time.
        assert_eq!(
            ours.success_time.is_some(),
            ours.refund_status == RefundStatus::Success
        );
        seen.push((ours.out_refund_no, ours.refund_status));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("py-out-again".to_string(), RefundStatus::Success),
            ("py-out-change".to_string(), RefundStatus::Change),
            ("py-out-held".to_string(), RefundStatus::RefundClose),
        ]
    );

    // wechatpy's bill text, parsed by this crate, is the simulator's order and refunds.
    let order = sim.order("py-out").unwrap();
    let all = Bill::parse(out["bill_all"].as_str().unwrap()).unwrap();
    assert_eq!(all.bill_type, BillType::All);
    assert_eq!(all.lines.len(), 4);
    let payment = all.rows().find(|row| row.refund.is_none()).unwrap();
    assert_eq!(payment.out_trade_no, "py-out");
    assert_eq!(Some(&payment.transaction_id), order.transaction_id.as_ref());
    assert_eq!(payment.total_fee, order.total_fee);
    let refunds = Bill::parse(out["bill_refund"].as_str().unwrap()).unwrap();
    let mut lines: Vec<(String, RefundStatus, Fen, bool)> = refunds
        .rows()
        .map(|row| {
            let refund = row.refund.as_ref().unwrap();
            (
                refund.out_refund_no.clone(),
                refund.refund_status,
                refund.refund_fee,
                refund.succeeded_at.is_some(),
            )
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        lines,
        [
            (
                "py-out-again".to_string(),
                RefundStatus::Success,
                Fen::new(380),
                true
            ),
            (
                "py-out-change".to_string(),
                RefundStatus::Change,
                Fen::new(120),
                false
            ),
            (
                "py-out-held".to_string(),
                RefundStatus::RefundClose,
                Fen::new(380),
                false
            ),
        ]
    );
    for row in refunds.rows() {
        let refund = row.refund.as_ref().unwrap();
        let stored = order
            .refunds
            .iter()
            .find(|stored| stored.out_refund_no == refund.out_refund_no)
            .unwrap();
        assert_eq!(refund.refund_id, stored.refund_id);
    }
    // The totals line sums every refund line, closed ones included: they were asked for
    // that day.
    assert_eq!(refunds.summary.totals.count, 3);
    assert_eq!(refunds.summary.totals.refund_fee, Fen::new(880));
    sim.shutdown().await;
}
