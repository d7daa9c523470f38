//! `jit check` fails, and `jit serve` refuses to start, when the binary cannot build an
//! element of the app: a Type whose Rust code this binary lacks (examples/custom_host's
//! discount Type under the stock `jit`, which used to serve it at full price), and an
//! element with functions and no loader anywhere on its chain (which used to pass check
//! and answer 500 on every call). The host binary that has the code still takes the app.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::binary::{jit, refused_to_start, text, use_simulator};
use crate::custom_type::shop;
use crate::util::{copy_dir, copy_example_app};

fn custom_host_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom_host/app")
}

/// The problem line of `report` about the e.json at `e_json`, starting with `prefix` after
/// the file.
fn problem_line<'r>(report: &'r str, e_json: &Path, prefix: &str) -> &'r str {
    let start = format!("{}: {prefix}", e_json.display());
    report
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("no line starting `{start}` in:\n{report}"))
}

#[test]
fn the_stock_binary_refuses_a_type_whose_rust_code_it_lacks() {
    // The example app as shipped: check reads it and writes nothing.
    let app = custom_host_app();
    let output = jit(&["check"], &app).output().expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    let e_json = app.join("elements/pays/MyWechatPayType/e.json");
    let line = problem_line(&report, &e_json, "backendBundleEntry: ");
    for part in [
        "`pays.MyWechatPayType` says its backend code ships with it",
        "this host has no loader for `pays.MyWechatPayType`",
        "with the behaviour of `pays.WechatPayType` and none of its own",
        "docs/extending.md",
    ] {
        assert!(line.contains(part), "`{part}` not in: {line}");
    }

    // jit serve refuses it the same way.
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(&app, copy.path());
    use_simulator(copy.path());
    let report = refused_to_start(copy.path(), &[]);
    let e_json = copy.path().join("elements/pays/MyWechatPayType/e.json");
    let line = problem_line(&report, &e_json, "backendBundleEntry: ");
    assert!(
        line.contains("this host has no loader for `pays.MyWechatPayType`"),
        "{line}"
    );

    // A host that registers the Type's loader (examples/custom_host's main, here in this
    // process rather than a second cargo build of the example) takes the same app.
    let code = shop::host().run_cli_from([
        OsStr::new("jit"),
        OsStr::new("check"),
        OsStr::new("--app"),
        copy.path().as_os_str(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "the custom host refused the app");
}

#[test]
fn an_element_with_functions_and_no_loader_fails_check_and_serve() {
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    use_simulator(app.path());
    // A service straight under pays.Meta: the stock binary registers no loader for it, nor
    // for pays.Meta, so nothing could ever answer its function.
    let folder = app.path().join("elements/pays/services/GreetSvc");
    std::fs::create_dir_all(&folder).expect("create the element's folder");
    let e_json = serde_json::json!({
        "title": "Greeter",
        "type": "pays.Meta",
        "functionList": [{"name": "hello", "args": [], "loginRequired": false}]
    });
    std::fs::write(folder.join("e.json"), e_json.to_string()).expect("write e.json");
    let expected = "no loader is registered for any element of its chain \
                    pays.services.GreetSvc → pays.Meta in this host, so every call of its \
                    functions would fail";

    let output = jit(&["check"], app.path())
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    let line = problem_line(&report, &folder.join("e.json"), expected);
    assert!(line.contains("docs/extending.md"), "{line}");

    let report = refused_to_start(app.path(), &[]);
    problem_line(&report, &folder.join("e.json"), expected);
    // Refused before the database or the simulator was set up: nothing is left behind.
    for left in ["shop.db", ".jit/simulator.json"] {
        assert!(
            !app.path().join(left).exists(),
            "a refused start left {left} behind"
        );
    }
}
