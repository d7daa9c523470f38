//! `[events]`, `[[webhooks]]` and `[reconciler]` mistakes through the real binary: `jit
//! check` prints each with its file and key, and `jit serve` refuses to start on it, and
//! neither ever prints a webhook's secret.

use std::ffi::OsStr;

use crate::binary::{refused_to_start, text};
use crate::util::{example_app_with, jit_command};

/// A secret long enough, which must never be printed.
const SECRET: &str = "never-printed-0123456789abcdef0123";

/// `jit check` on the example shop with `extra` appended to its app.toml and `SECRET` in
/// `TEST_WEBHOOK_SECRET`: its output, and whether it passed.
fn check_with(extra: &str) -> (bool, String, tempfile::TempDir) {
    let app = example_app_with(|text| format!("{text}\n{extra}\n"));
    let output = jit_command()
        .args(["check", "--app"])
        .arg(app.path())
        .env("TEST_WEBHOOK_SECRET", SECRET)
        .output()
        .expect("jit check runs");
    (output.status.success(), text(&output), app)
}

#[test]
fn check_and_serve_name_the_webhook_key_that_is_wrong() {
    let cases = [
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:9000/hook\"\nsecret = \"short-secret\"\n",
            "app.toml: webhooks[0].secret: is shorter than 32 characters",
        ),
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:9000/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:9001/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
             events = [\"order.paid\", \"order.shipped\"]\n",
            "app.toml: webhooks[1].events[1]: unknown event type `order.shipped`; known types: \
             order.paid, order.paid_after_close, order.closed, order.timeout, order.payment_conflict",
        ),
        (
            // The simulator is the example shop's gateway: no real endpoint.
            "[[webhooks]]\nurl = \"https://erp.example.com/jit/events\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n",
            "app.toml: webhooks[0].url: `https://erp.example.com/jit/events` is not on this machine, \
             and payments are SIMULATED",
        ),
        (
            "[events]\nretry_for_hours = 1000\n",
            "app.toml: events.retry_for_hours: expected an integer from 1 to 720 (hours), found 1000",
        ),
        (
            "[reconciler]\nscan_interval = 5\n",
            "app.toml: reconciler.scan_interval: unknown key",
        ),
    ];
    for (extra, expected) in cases {
        let (passed, said, app) = check_with(extra);
        assert!(!passed, "check passed on:\n{extra}\n{said}");
        assert!(said.contains(expected), "`{expected}` missing:\n{said}");
        assert!(!said.contains(SECRET), "the secret was printed:\n{said}");
        let refused = refused_to_start(app.path(), &[("TEST_WEBHOOK_SECRET", OsStr::new(SECRET))]);
        assert!(refused.contains(expected), "serve:\n{refused}");
        assert!(
            !refused.contains(SECRET),
            "serve printed the secret:\n{refused}"
        );
    }
}

#[test]
fn a_sound_events_configuration_checks() {
    let (passed, said, _app) = check_with(
        "[events]\nretry_for_hours = 48\npoll_interval_ms = 500\n\
         [reconciler]\nfirst_check_after_secs = 30\n\
         [[webhooks]]\nurl = \"http://localhost:9000/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
         events = [\"order.paid\", \"order.paid_after_close\"]\ntimeout_ms = 2000\n",
    );
    assert!(passed, "{said}");
    assert!(said.starts_with("ok: app demo/shop"), "{said}");
}
