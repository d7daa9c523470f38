//! The real `jit` binary: check, ls, show.

use std::process::{Command, Output};

use crate::util::TempApp;

fn jit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the jit binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_every_problem_and_fails() {
    let app = TempApp::new(
        "[database]\nurl = \"postgres://shop:{{MISSING_DB_PASSWORD_42}}@db/shop\"\n",
        &[
            ("elements/fam/Meta/e.json", r#"{"title": "family"}"#),
            // Malformed JSON.
            (
                "elements/fam/broken/e.json",
                r#"{"type": "fam.Meta", "title": }"#,
            ),
            // A type that does not exist, close to a real one.
            ("elements/fam/lost/e.json", r#"{"type": "fam.Mета"}"#),
            ("elements/fam/typo/e.json", r#"{"type": "fam.Mtea"}"#),
            // A wrong dataType deep inside functionList.
            (
                "elements/fam/svc/e.json",
                r#"{"type": "fam.Meta", "functionList": [{"name": "f", "args": [{"name": "a", "dataType": "Strng"}]}]}"#,
            ),
            // Two elements naming each other.
            ("elements/fam/a/e.json", r#"{"type": "fam.b"}"#),
            ("elements/fam/b/e.json", r#"{"type": "fam.a"}"#),
            // A placeholder with no value.
            ("elements/fam/cfg/e.json", r#"{"type": "fam.Meta"}"#),
            (
                "elements/fam/cfg/cfg.json",
                r#"{"key": "{{NOT_SET_ANYWHERE_42}}"}"#,
            ),
        ],
    );
    let output = jit(&["check", "--app", app.path().to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "exit non-zero:\n{stdout}");
    for expected in [
        "broken/e.json",
        "typo/e.json",
        "fam.Mtea",
        "did you mean `fam.Meta`",
        "svc/e.json: functionList[0].args[0].dataType",
        "Strng",
        "a/e.json",
        "type cycle: fam.a → fam.b → fam.a",
        "lost/e.json",
        "NOT_SET_ANYWHERE_42",
        "app.toml: environment variable `MISSING_DB_PASSWORD_42`",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from:\n{stdout}"
        );
    }
    let problems = stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    assert_eq!(problems, 7, "one line per problem:\n{stdout}");
    assert!(text(&output.stderr).contains("problem(s) found"));
}

#[test]
fn check_ls_and_show_on_a_sound_app() {
    let app = TempApp::new(
        "",
        &[
            ("elements/fam/Meta/e.json", r#"{"title": "family"}"#),
            (
                "elements/fam/BaseType/e.json",
                r#"{"type": "fam.Meta", "secretKeys": ["apiKey"]}"#,
            ),
            (
                "elements/fam/inst/e.json",
                r#"{"type": "fam.BaseType", "title": "An instance", "mchId": "123", "apiKey": "{{TEST_TOKEN}}"}"#,
            ),
        ],
    );
    let dir = app.path().to_str().unwrap();

    // The stock binary has no loader for this family: check says so (serve would refuse).
    let output = jit(&["check", "--app", dir]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("inst/e.json: no loader is registered for any element of its chain fam.inst → fam.BaseType → fam.Meta in this host"),
        "{stdout}"
    );

    // The example shop is sound.
    let shop = tempfile::tempdir().unwrap();
    crate::util::copy_example_app(shop.path());
    let output = jit(&["check", "--app", shop.path().to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.starts_with("ok: app demo/shop"), "{stdout}");
    assert!(
        stdout.contains("9 elements (4 instances) in 2 layers (framework < shop)"),
        "{stdout}"
    );

    let output = jit(&["ls", "--app", dir]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("fam.inst → fam.BaseType → fam.Meta"),
        "{stdout}"
    );
    assert!(stdout.contains("[instance; shop]"), "{stdout}");
    assert!(stdout.contains("[Meta; shop]"), "{stdout}");

    let output = jit(&["show", "fam.inst", "--app", dir]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("show prints JSON");
    assert_eq!(shown["fullName"], "fam.inst");
    assert_eq!(shown["mchId"], "123");
    assert!(
        !stdout.contains(crate::util::TOKEN),
        "the secret is masked:\n{stdout}"
    );

    let output = jit(&["show", "fam.ints", "--app", dir]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("did you mean `fam.inst`"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn sim_runs_standalone_and_the_payer_commands_reach_it() {
    let port = crate::util::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut simulator = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args([
            "sim",
            "--listen",
            &listen,
            "--appid",
            "wx0000000000000001",
            "--mch-id",
            "1900000001",
        ])
        .env("JIT_SIM_KEY", "0123456789abcdef0123456789abcdef")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("jit sim starts");
    let url = format!("http://{listen}");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "jit sim never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pay = jit(&["sim", "pay", "D20260101000000123456", "--sim", &url]);
    let fail = jit(&["sim", "fail", "D20260101000000123456", "--sim", &url]);
    simulator.kill().expect("stop the simulator");
    let _ = simulator.wait();

    for output in [pay, fail] {
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("no order matches out_trade_no `D20260101000000123456`"),
            "{stderr}"
        );
    }

    // Nothing listening: the error says where it looked and how to point elsewhere.
    let output = jit(&["sim", "pay", "X1", "--sim", &url]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--sim sets its URL"),
        "{}",
        text(&output.stderr)
    );
}

/// A command's failure keeps its cause: `error: …` says what the command could not do,
/// the `caused by:` lines below it why (the transport's own words), not a flattened string.
#[test]
fn errors_print_their_causes_on_caused_by_lines() {
    // A port nothing listens on.
    let port = crate::util::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let output = jit(&["sim", "pay", "X1", "--sim", &url]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let error = lines
        .iter()
        .position(|line| line.starts_with("error: cannot reach the simulator at "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    // The message is the command's own; the transport error is a cause of it.
    assert!(!lines[error].contains("error sending request"), "{stderr}");
    let causes: Vec<&str> = lines[error + 1..]
        .iter()
        .filter_map(|line| line.strip_prefix("  caused by: "))
        .collect();
    assert!(
        causes.iter().any(|cause| cause.contains(&url)),
        "no cause names the URL:\n{stderr}"
    );
    assert!(causes.len() >= 2, "the cause chain was cut:\n{stderr}");
}

/// `jit sim refund-plan` holds the next refund of an order in PROCESSING, and
/// `jit sim refund-settle` ends it as CHANGE: the merchant's refund query sees both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_refund_commands_decide_how_a_refund_ends() {
    use wechatpay_v2::{
        ApiKey, Client, ClientConfig, Fen, RefundRef, RefundStatus, SignType, TradeKind,
        UnifiedOrderRequest,
    };

    let sim = wechatpay_sim::Simulator::start_default().await;
    let url = sim.base_url();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            jit(&args)
        })
    };
    let args = |words: &[&str]| {
        let mut all: Vec<String> = words.iter().map(|word| word.to_string()).collect();
        all.extend(["--sim".to_string(), url.clone()]);
        all
    };
    let client = Client::new(ClientConfig {
        base_url: url.clone(),
        app_id: wechatpay_sim::DEFAULT_APPID.into(),
        mch_id: wechatpay_sim::DEFAULT_MCH_ID.into(),
        api_key: ApiKey::new(wechatpay_sim::DEFAULT_API_KEY),
        sign_type: SignType::Md5,
        ..ClientConfig::default()
    })
    .unwrap();
    client
        .unified_order(&UnifiedOrderRequest::new(
            TradeKind::Native {
                product_id: "p1".into(),
            },
            "goods",
            "D1",
            Fen::new(300),
            "127.0.0.1",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap();
    sim.pay("D1").unwrap();

    let planned = run(args(&["sim", "refund-plan", "D1", "processing"]))
        .await
        .unwrap();
    assert!(planned.status.success(), "{}", text(&planned.stderr));
    assert!(text(&planned.stdout).contains("PROCESSING"));
    // The workspace client asks for a merchant certificate for refunds; the simulator over
    // plain HTTP takes a signed refund without one.
    let mut refund = wechatpay_v2::Params::new();
    for (name, value) in [
        ("appid", wechatpay_sim::DEFAULT_APPID),
        ("mch_id", wechatpay_sim::DEFAULT_MCH_ID),
        ("nonce_str", "n1"),
        ("out_trade_no", "D1"),
        ("out_refund_no", "D1-R1"),
        ("total_fee", "300"),
        ("refund_fee", "300"),
    ] {
        refund.insert(name.into(), value.into());
    }
    wechatpay_v2::sign_params(
        &mut refund,
        SignType::Md5,
        &ApiKey::new(wechatpay_sim::DEFAULT_API_KEY),
    );
    let answer = reqwest::Client::new()
        .post(format!("{url}/secapi/pay/refund"))
        .body(wechatpay_v2::xml::encode(&refund))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        answer.contains("<result_code>SUCCESS</result_code>"),
        "{answer}"
    );
    let refund_ref = RefundRef::OutRefundNo("D1-R1".into());
    let query = || client.refund_query(&refund_ref);
    assert_eq!(
        query().await.unwrap().refunds[0].refund_status,
        RefundStatus::Processing
    );

    let settled = run(args(&["sim", "refund-settle", "D1-R1", "CHANGE"]))
        .await
        .unwrap();
    assert!(settled.status.success(), "{}", text(&settled.stderr));
    assert_eq!(
        query().await.unwrap().refunds[0].refund_status,
        RefundStatus::Change
    );

    // Refusals name the refund or the value.
    let again = run(args(&["sim", "refund-settle", "D1-R1", "SUCCESS"]))
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("refund `D1-R1` has already settled as CHANGE"),
        "{}",
        text(&again.stderr)
    );
    let bogus = run(args(&["sim", "refund-plan", "D1", "REFUNDED"]))
        .await
        .unwrap();
    assert!(!bogus.status.success());
    assert!(
        text(&bogus.stderr).contains("expected SUCCESS, CHANGE, REFUNDCLOSE or PROCESSING"),
        "{}",
        text(&bogus.stderr)
    );
    sim.shutdown().await;
}
