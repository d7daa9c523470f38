//! The real `jit check` and `jit serve` on configurations that would fail open: no gateway
//! chosen, a simulated shop beyond loopback, no token or a published one. Each is a
//! problem for `check` and a refusal to start for `serve`, with the same message.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    EXAMPLE_GATEWAY, example_app, example_app_with, free_port, jit_command, v3_instance_live,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `jit check --app DIR` with `env`.
fn check(dir: &Path, env: &[(&str, &str)]) -> Output {
    jit_command()
        .args(["check", "--app"])
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .expect("jit check runs")
}

/// `jit serve --app DIR` with `env` (on a free loopback port unless `env` says otherwise),
/// which must refuse to start; returns its stderr.
fn serve_refusal(dir: &Path, env: &[(&str, &str)]) -> String {
    let port = free_port();
    let mut child = jit_command()
        .args(["serve", "--app"])
        .arg(dir)
        .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit serve runs");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("poll jit serve").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "jit serve started instead of refusing:\n{}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "{}", text(&output.stderr));
    text(&output.stderr)
}

/// Both commands refuse, each saying every expected part.
fn assert_refused(dir: &Path, env: &[(&str, &str)], expected: &[&str]) {
    let checked = check(dir, env);
    let stdout = text(&checked.stdout);
    assert!(!checked.status.success(), "check passed:\n{stdout}");
    let refused = serve_refusal(dir, env);
    for part in expected {
        assert!(
            stdout.contains(part),
            "check: `{part}` missing from:\n{stdout}"
        );
        assert!(
            refused.contains(part),
            "serve: `{part}` missing from:\n{refused}"
        );
    }
}

fn assert_checks_out(dir: &Path, env: &[(&str, &str)]) {
    let checked = check(dir, env);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
}

#[test]
fn an_app_that_chooses_no_gateway_is_refused() {
    let app = example_app_with(|toml| toml.replace(EXAMPLE_GATEWAY, "\n"));
    let app_toml = app.path().join("app.toml").display().to_string();
    assert_refused(
        app.path(),
        &[],
        &[
            &format!("{app_toml}: gateway: no payment gateway is chosen"),
            "`[gateway] simulator = true`",
            "`[gateway] base_url = \"https://api.mch.weixin.qq.com\"`",
        ],
    );
    // `simulator = false` chooses nothing either.
    let app = example_app_with(|toml| toml.replace(EXAMPLE_GATEWAY, "\nsimulator = false\n"));
    assert_refused(app.path(), &[], &["gateway: no payment gateway is chosen"]);
}

#[test]
fn an_empty_or_double_gateway_choice_is_refused() {
    let app = example_app();
    // Set but empty: today's "silently the simulator" case.
    assert_refused(
        app.path(),
        &[("JIT_GATEWAY_BASE_URL", "")],
        &[
            "environment: JIT_GATEWAY_BASE_URL: is set but empty",
            "simulator = true",
        ],
    );
    // The simulator in app.toml and a real gateway in the environment.
    assert_refused(
        app.path(),
        &[("JIT_GATEWAY_BASE_URL", "https://api.mch.weixin.qq.com")],
        &[
            "gateway: both `simulator = true` and a base_url (from the JIT_GATEWAY_BASE_URL variable)",
        ],
    );
}

#[test]
fn a_simulated_shop_stays_on_loopback_unless_a_shared_demo_is_meant() {
    let app = example_app();
    let wildcard = format!("0.0.0.0:{}", free_port());
    assert_refused(
        app.path(),
        &[("JIT_LISTEN", wildcard.as_str())],
        &[
            &format!("server.listen: `{wildcard}`"),
            "is not a loopback address",
            "SIMULATED",
            "simulator_public = true",
        ],
    );
    assert_refused(
        app.path(),
        &[("JIT_PUBLIC_BASE_URL", "https://shop.example.com")],
        &[
            "server.public_base_url: `https://shop.example.com`",
            "is not a loopback URL",
        ],
    );

    let demo = example_app_with(|toml| {
        toml.replace(
            EXAMPLE_GATEWAY,
            "\nsimulator = true\nsimulator_public = true\n",
        )
    });
    assert_checks_out(
        demo.path(),
        &[
            ("JIT_LISTEN", wildcard.as_str()),
            ("JIT_PUBLIC_BASE_URL", "https://shop.example.com"),
        ],
    );
}

#[test]
fn published_tokens_and_no_tokens_are_refused() {
    // A real gateway with the example app's token.
    let public = ("JIT_PUBLIC_BASE_URL", "https://shop.example.com");
    let live = example_app_with(|toml| {
        toml.replace(
            EXAMPLE_GATEWAY,
            "\nbase_url = \"https://api.mch.weixin.qq.com\"\n",
        )
    });
    v3_instance_live(live.path());
    assert_refused(
        live.path(),
        &[public],
        &["auth.tokens: the token `demo-token` is published in jit's example apps"],
    );
    // The same token from the environment is the same published token.
    assert_refused(
        live.path(),
        &[
            ("JIT_API_TOKENS", "a-secret-of-our-own-7f3a9c,demo-token"),
            public,
        ],
        &["the token `demo-token` is published"],
    );
    // A secret of one's own passes (the gateway is not contacted by check).
    assert_checks_out(
        live.path(),
        &[("JIT_API_TOKENS", "a-secret-of-our-own-7f3a9c"), public],
    );
    // With the simulator the demo token is what the README uses.
    let demo = example_app();
    assert_checks_out(demo.path(), &[]);

    // No token at all, while PaySvc's functions require a login: refused, not open.
    let open = example_app_with(|toml| toml.replace("tokens = [\"{{JIT_API_TOKEN}}\"]", ""));
    assert_refused(
        open.path(),
        &[],
        &[
            "auth.tokens: no bearer token is configured, yet",
            "function(s) require a login (`pays.",
        ],
    );
}

/// The example's V3 instance signs with a demo key published here and trusts the
/// simulator's keys: a real gateway refuses both, as it refuses the demo token.
#[test]
fn a_real_gateway_refuses_the_demo_v3_key_and_a_v3_instance_that_cannot_verify_wechat() {
    let live = example_app_with(|toml| {
        toml.replace(
            EXAMPLE_GATEWAY,
            "\nbase_url = \"https://api.mch.weixin.qq.com\"\n",
        )
    });
    let env = [
        ("JIT_API_TOKENS", "a-secret-of-our-own-7f3a9c"),
        ("JIT_PUBLIC_BASE_URL", "https://shop.example.com"),
    ];
    assert_refused(
        live.path(),
        &env,
        &[
            "elements/pays/myWechatPayV3/myWechatPayV3.json: config.wechatpayPublicKeyId: `pays.myWechatPayV3` does not say how to verify WeChat's signatures, and the gateway is not the simulator",
            "elements/pays/myWechatPayV3/myWechatPayV3.json: config.privateKeyPath: `privateKeyPath` names ",
            "demo_apiclient_key.simulator-only.pem, the example app's demo key, published in this repository for the simulator only",
        ],
    );
    // The merchant's own key and the WeChat Pay public key: it checks out.
    v3_instance_live(live.path());
    assert_checks_out(live.path(), &env);
}

#[test]
fn a_real_gateway_needs_a_public_base_url_it_can_reach() {
    let live = example_app_with(|toml| {
        toml.replace(
            EXAMPLE_GATEWAY,
            "\nbase_url = \"https://api.mch.weixin.qq.com\"\n",
        )
    });
    v3_instance_live(live.path());
    let token = ("JIT_API_TOKENS", "a-secret-of-our-own-7f3a9c");
    assert_refused(
        live.path(),
        &[token],
        &[
            "server.public_base_url: is not set, and the gateway `https://api.mch.weixin.qq.com` is not on this machine",
        ],
    );
    assert_refused(
        live.path(),
        &[token, ("JIT_PUBLIC_BASE_URL", "http://127.0.0.1:8080")],
        &["server.public_base_url: `http://127.0.0.1:8080` is a loopback URL"],
    );
    // A gateway on this machine (a standalone `jit sim`) reaches a loopback shop.
    assert_checks_out(
        live.path(),
        &[token, ("JIT_GATEWAY_BASE_URL", "http://127.0.0.1:8090")],
    );
}

/// A database URL never reaches the terminal with its password, whatever its form.
#[test]
fn database_passwords_stay_out_of_start_up_errors() {
    let app = example_app();
    // Port 1 on loopback refuses at once: the start fails connecting.
    for (url, secrets) in [
        (
            "postgres://jit:p@ss-w0rd@127.0.0.1:1/shop",
            &["p@ss-w0rd", "ss-w0rd"][..],
        ),
        (
            "postgres://jit@127.0.0.1:1/shop?password=s3cret-pw",
            &["s3cret-pw"][..],
        ),
        (
            "postgres://jit:plain-s3cret@127.0.0.1:1/shop",
            &["plain-s3cret"][..],
        ),
    ] {
        let stderr = serve_refusal(app.path(), &[("JIT_DATABASE_URL", url)]);
        assert!(stderr.contains("database"), "{stderr}");
        for secret in secrets {
            assert!(
                !stderr.contains(secret),
                "`{secret}` of {url} in:\n{stderr}"
            );
        }
    }
}
