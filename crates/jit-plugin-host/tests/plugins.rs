//! Native plugins end to end: the example discount plugin and a probe plugin are built with
//! cargo, copied into temporary apps as their Types' libraries, loaded through
//! `register_plugins`, and called through the runtime over a fixture parent Type.

mod support;

use jit_plugin_host::{LoadedPlugin, PluginProblem, register_plugins};
use jit_runtime::CallErrorKind;
use serde_json::json;
use std::sync::Arc;
use support::{TempApp, build, built_plugins, caller, library_file_name, shop};

#[tokio::test]
async fn create_is_discounted_by_the_plugin_and_created_by_the_parent() {
    let app = shop();
    let app = build(&app).await;

    let order = app
        .call(
            "pays.myDiscountPay",
            "create",
            json!({"subject": "Coffee", "amount": 99.99, "orderId": "D1"}),
            &caller(),
        )
        .await
        .expect("create through the plugin");
    // The parent stored the discounted amount; the plugin added its note.
    assert_eq!(order["amount"], json!(89.99));
    assert_eq!(
        order["mchId"], "1900000109",
        "the parent was built with the instance's settings"
    );
    assert_eq!(order["element"], "pays.myDiscountPay");
    assert_eq!(
        order["discount"],
        json!({"percent": 10, "originalAmount": "99.99", "discountedAmount": "89.99"})
    );

    // `check` is not overridden: it goes straight to the parent, which has the order.
    let stored = app
        .call(
            "pays.myDiscountPay",
            "check",
            json!({"orderId": "D1"}),
            &caller(),
        )
        .await
        .expect("check delegated to the parent");
    assert_eq!(stored["amount"], json!(89.99));
    assert_eq!(stored["status"], "wait");
    assert!(stored.get("discount").is_none());

    // A string amount stays a string; an instance's own discountPercent wins over the Type's.
    let half = app
        .call(
            "pays.halfPricePay",
            "create",
            json!({"subject": "Tea", "amount": "0.29"}),
            &caller(),
        )
        .await
        .expect("create on the second instance");
    assert_eq!(half["amount"], json!("0.14"));
    assert_eq!(half["discount"]["percent"], 50);
    assert_eq!(half["mchId"], "1900000110");
}

#[tokio::test]
async fn cancel_applies_the_plugin_rule_before_delegating() {
    let app = shop();
    let app = build(&app).await;
    let create = |id: &str| json!({"subject": "Book", "amount": 19.9, "orderId": id});
    for id in ["OPEN", "PAID"] {
        app.call("pays.myDiscountPay", "create", create(id), &caller())
            .await
            .expect("create");
    }
    app.call(
        "pays.myDiscountPay",
        "markPaid",
        json!({"orderId": "PAID"}),
        &caller(),
    )
    .await
    .expect("markPaid goes to the parent");

    let closed = app
        .call(
            "pays.myDiscountPay",
            "cancel",
            json!({"orderId": "OPEN"}),
            &caller(),
        )
        .await
        .expect("an unpaid order is cancelled by the parent");
    assert_eq!(closed["status"], "close");

    let refused = app
        .call(
            "pays.myDiscountPay",
            "cancel",
            json!({"orderId": "PAID"}),
            &caller(),
        )
        .await
        .expect_err("a paid order must not be cancelled");
    assert_eq!(refused.code(), "REJECTED");
    assert_eq!(refused.kind, CallErrorKind::Conflict);
    assert_eq!(
        refused.message,
        "order PAID is already paid and cannot be cancelled; refund it instead"
    );
    let still_paid = app
        .call(
            "pays.myDiscountPay",
            "check",
            json!({"orderId": "PAID"}),
            &caller(),
        )
        .await
        .expect("check");
    assert_eq!(
        still_paid["status"], "success",
        "the refused cancel changed nothing"
    );

    // A parent error propagated by the plugin keeps the parent's category, code and message.
    let missing = app
        .call(
            "pays.myDiscountPay",
            "cancel",
            json!({"orderId": "NOPE"}),
            &caller(),
        )
        .await
        .expect_err("unknown order");
    assert_eq!(missing.code(), "ORDER_NOT_FOUND");
    assert_eq!(missing.kind, CallErrorKind::NotFound);
    assert_eq!(missing.message, "no order NOPE");
}

#[tokio::test]
async fn plugin_errors_map_to_the_runtime_categories() {
    let app = shop();
    let app = build(&app).await;
    let bad_amount = app
        .call(
            "pays.myDiscountPay",
            "create",
            json!({"subject": "Coffee", "amount": "12.345"}),
            &caller(),
        )
        .await
        .expect_err("three decimals");
    assert_eq!(bad_amount.kind, CallErrorKind::BadArguments);
    assert!(
        bad_amount.message.contains("found 12.345"),
        "{}",
        bad_amount.message
    );

    // The parent's CONFLICT comes back through the plugin as CONFLICT.
    let args = json!({"subject": "Coffee", "amount": 1, "orderId": "DUP"});
    app.call("pays.myDiscountPay", "create", args.clone(), &caller())
        .await
        .expect("first create");
    let duplicate = app
        .call("pays.myDiscountPay", "create", args, &caller())
        .await
        .expect_err("duplicate orderId");
    assert_eq!(duplicate.kind, CallErrorKind::Conflict);
}

#[tokio::test]
async fn the_plugin_sees_its_element_with_secrets_masked() {
    let app = shop();
    let app = build(&app).await;
    let echoed = app
        .call(
            "pays.myProbe",
            "echo",
            json!({"note": [1, "two"]}),
            &caller(),
        )
        .await
        .expect("echo");
    assert_eq!(echoed["function"], "echo");
    assert_eq!(echoed["args"], json!({"note": [1, "two"]}));
    let element = &echoed["element"];
    assert_eq!(element["fullName"], "pays.myProbe");
    assert_eq!(
        element["chain"],
        json!([
            "pays.myProbe",
            "pays.ProbeType",
            "pays.WechatPayType",
            "pays.Meta"
        ])
    );
    assert_eq!(element["settings"]["mchId"], "1900000111");
    assert_eq!(element["settings"]["apiKey"], jit_runtime::MASK);
    assert!(!echoed.to_string().contains("k-secret-2"));
}

#[tokio::test]
async fn panics_on_either_side_are_caught_and_reported() {
    let app = shop();
    let app = build(&app).await;

    let plugin_panic = app
        .call("pays.myProbe", "panic", json!({}), &caller())
        .await
        .expect_err("the plugin panics");
    assert_eq!(plugin_panic.kind, CallErrorKind::Internal);
    assert!(
        plugin_panic.message.contains("test_probe_plugin")
            && plugin_panic
                .message
                .contains("probe plugin panicking on request"),
        "{}",
        plugin_panic.message
    );

    let parent_panic = app
        .call(
            "pays.myProbe",
            "forward",
            json!({"function": "explode", "args": {}}),
            &caller(),
        )
        .await
        .expect_err("the parent panics inside the host callback");
    assert_eq!(parent_panic.kind, CallErrorKind::Internal);
    assert!(
        parent_panic
            .message
            .contains("fixture parent exploding on request"),
        "{}",
        parent_panic.message
    );

    // Both sides are still usable.
    let created = app
        .call(
            "pays.myProbe",
            "forward",
            json!({"function": "create", "args": {"subject": "After", "amount": 5}}),
            &caller(),
        )
        .await
        .expect("a call after the panics");
    assert_eq!(created["amount"], 5);
}

#[tokio::test]
async fn calls_to_the_parent_are_checked_against_its_declaration() {
    let app = shop();
    let app = build(&app).await;
    let error = app
        .call(
            "pays.myProbe",
            "forward",
            json!({"function": "create", "args": {"subject": 7, "colour": "red"}}),
            &caller(),
        )
        .await
        .expect_err("ill-typed arguments for the parent");
    assert_eq!(error.kind, CallErrorKind::BadArguments);
    for expected in [
        "unknown argument `colour`",
        "argument `subject` must be Stext, got integer",
        "missing required argument `amount`",
        "pays.myProbe.create",
    ] {
        assert!(
            error.message.contains(expected),
            "{expected} not in: {}",
            error.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_through_the_plugin_on_a_multi_thread_runtime() {
    let app = shop();
    let app = build(&app).await;
    let calls = (0..64).map(|index| {
        let app = app.clone();
        tokio::spawn(async move {
            app.call(
                "pays.myDiscountPay",
                "create",
                json!({"subject": "Bulk", "amount": 10, "orderId": format!("B{index}")}),
                &caller(),
            )
            .await
        })
    });
    let handles: Vec<_> = calls.collect();
    for (index, handle) in handles.into_iter().enumerate() {
        let order = handle.await.expect("task").expect("create");
        assert_eq!(order["orderId"], format!("B{index}"));
        assert_eq!(order["amount"], json!(9.0));
    }
}

#[test]
fn the_same_library_is_opened_once_and_declares_its_overrides() {
    let app = shop();
    let loaded = jit_plugin_host::load_plugins(&app.definitions()).expect("load");
    let plugin_of = |type_name: &str| -> Arc<LoadedPlugin> {
        loaded
            .iter()
            .find(|(spec, _)| spec.type_name == type_name)
            .unwrap_or_else(|| panic!("{type_name} found"))
            .1
            .clone()
    };
    let discount = plugin_of("pays.DiscountWechatPayType");
    assert_eq!(discount.name(), "example-discount-plugin");
    assert_eq!(discount.version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        discount.overrides(),
        Some(&["create".to_owned(), "cancel".to_owned()][..])
    );
    assert!(discount.handles("create") && !discount.handles("check"));
    let copies = jit_plugin_host::copies_dir(&app.definitions().settings().dir);
    let again = jit_plugin_host::open_plugin(discount.path(), &copies).expect("reopen");
    assert!(Arc::ptr_eq(&again, &discount), "a library is opened once");

    let probe = plugin_of("pays.ProbeType");
    assert_eq!(probe.overrides(), None);
    assert!(probe.handles("anything"));

    // The files say the same as the loaded libraries.
    let inspected = jit_plugin_host::inspect_plugins(&app.definitions()).expect("inspect");
    assert_eq!(inspected.len(), loaded.len());
    for ((spec, file), (loaded_spec, plugin)) in inspected.iter().zip(&loaded) {
        assert_eq!(spec, loaded_spec);
        assert_eq!(file.path(), plugin.path());
        assert_eq!(file.name(), plugin.name());
        assert_eq!(file.version(), plugin.version());
    }
}

/// The header is read from the file as the loaded library would hold it: a file whose
/// header bytes are changed is refused for that field, without being loaded.
#[test]
fn header_fields_are_read_from_the_file() {
    let probe = std::fs::read(&built_plugins().probe).expect("read the probe library");
    let patched = |from: &[u8], to: &[u8]| -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let mut bytes = probe.clone();
        let mut found = 0;
        let mut at = 0;
        while let Some(offset) = bytes[at..].windows(from.len()).position(|w| w == from) {
            bytes[at + offset..at + offset + to.len()].copy_from_slice(to);
            at += offset + to.len();
            found += 1;
        }
        assert!(
            found > 0,
            "{:?} not in the library",
            String::from_utf8_lossy(from)
        );
        bytes
    };
    let app = TempApp::new("patched");
    let rustc = jit_plugin_api::RUSTC_VERSION.as_bytes();
    let mut other_rustc = rustc.to_vec();
    other_rustc[..5].copy_from_slice(b"RUSTC");
    for (name, bytes, field, found) in [
        (
            "magic",
            patched(&jit_plugin_api::MAGIC, b"NOTJIT\0\0"),
            "magic",
            "`NOTJIT\\x00\\x00`".to_owned(),
        ),
        (
            "rustc",
            patched(rustc, &other_rustc),
            "rustc_version",
            format!("`{}`", String::from_utf8_lossy(&other_rustc)),
        ),
    ] {
        let file = app.path().join(library_file_name(name));
        std::fs::write(&file, bytes).expect("write the patched library");
        let error = jit_plugin_host::inspect_plugin(&file).expect_err("refused");
        match &error {
            jit_plugin_host::OpenError::Refused { mismatch, .. } => {
                assert_eq!(mismatch.field, field, "{error}");
                assert_eq!(mismatch.found, found, "{error}");
            }
            other => panic!("{name}: expected a header refusal, got {other}"),
        }
        // Loading refuses the same, before the library is mapped.
        let loaded = jit_plugin_host::open_plugin(&file, &jit_plugin_host::copies_dir(app.path()))
            .expect_err("refused");
        assert_eq!(loaded.to_string(), error.to_string());
    }
}

/// A plugin library is contained in its element's folder by where it really is, every
/// symbolic link followed, not by how its path is spelled.
#[cfg(unix)]
#[test]
fn a_library_reached_through_a_link_must_stay_in_its_element_folder() {
    use std::os::unix::fs::symlink;
    let plugins = built_plugins();
    let app = TempApp::new("links").with_fixture_parent();
    let file_name = library_file_name("test_probe_plugin");

    // `libprobe.so` in the folder is a link to a library elsewhere in the app.
    std::fs::create_dir_all(app.path().join("outside")).expect("mkdir");
    let outside = app.path().join("outside").join(&file_name);
    std::fs::copy(&plugins.probe, &outside).expect("copy the library");
    app.element(
        "pays/LinkedOutType",
        json!({"type": "pays.WechatPayType", "backendBundleEntry": file_name}),
    );
    let folder = app.path().join("elements/pays/LinkedOutType");
    symlink(&outside, folder.join(&file_name)).expect("link out");
    // So is `lib/`, a link to a folder elsewhere.
    app.element(
        "pays/LinkedDirType",
        json!({"type": "pays.WechatPayType", "backendBundleEntry": format!("lib/{file_name}")}),
    );
    symlink(
        app.path().join("outside"),
        app.path().join("elements/pays/LinkedDirType/lib"),
    )
    .expect("link a folder out");

    let definitions = app.definitions();
    let errors = jit_plugin_host::find_plugins(&definitions).expect_err("links out refused");
    assert_eq!(errors.0.len(), 2, "{errors}");
    let canonical_outside = outside.canonicalize().expect("canonical");
    for (element, entry) in [
        ("pays.LinkedOutType", file_name.clone()),
        ("pays.LinkedDirType", format!("lib/{file_name}")),
    ] {
        let error = errors
            .0
            .iter()
            .find(|error| error.element == element)
            .unwrap_or_else(|| panic!("no error for {element}: {errors}"));
        match &error.problem {
            PluginProblem::LinksOutsideElement {
                entry: shown,
                resolved,
                ..
            } => {
                assert_eq!(shown, &entry);
                assert_eq!(resolved, &canonical_outside);
            }
            other => panic!("{element}: expected a link out, got {other:?}"),
        }
        let line = error.to_string();
        assert!(
            line.contains("outside the element's folder") && line.contains("symbolic links"),
            "{line}"
        );
    }
    // Loading and inspecting refuse before touching the library.
    let loaded = jit_plugin_host::load_plugins(&definitions).expect_err("refused");
    let inspected = jit_plugin_host::inspect_plugins(&definitions).expect_err("refused");
    assert_eq!(loaded.to_string(), errors.to_string());
    assert_eq!(inspected.to_string(), errors.to_string());

    // A link that stays inside the folder is followed.
    let app = TempApp::new("links-inside").with_fixture_parent();
    app.element(
        "pays/LinkedInType",
        json!({"type": "pays.WechatPayType", "backendBundleEntry": file_name}),
    );
    app.install(
        "pays/LinkedInType/versions",
        &plugins.probe,
        "libprobe-1.so",
    );
    let folder = app.path().join("elements/pays/LinkedInType");
    symlink("versions/libprobe-1.so", folder.join(&file_name)).expect("link in");
    let specs = jit_plugin_host::find_plugins(&app.definitions()).expect("a link inside");
    assert_eq!(specs.len(), 1);
    assert_eq!(
        specs[0].library,
        folder
            .join("versions/libprobe-1.so")
            .canonicalize()
            .expect("canonical")
    );
    jit_plugin_host::inspect_plugins(&app.definitions()).expect("its header is accepted");
}

#[tokio::test]
async fn a_plugin_type_without_a_parent_loader_says_what_it_cannot_delegate() {
    let app = shop();
    // No fixture loader for pays.WechatPayType this time, so no plain instance of it either.
    std::fs::remove_dir_all(app.path().join("elements/pays/plainPay")).expect("remove plainPay");
    let register = || {
        register_plugins(jit_runtime::AppBuilder::new(app.path()), &app.definitions())
            .expect("plugins accepted")
    };
    // The parent Type declares functions nothing in this host can serve: refused at build.
    let errors = register()
        .build()
        .await
        .expect_err("the parent Type has no loader");
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].kind, jit_runtime::LoadErrorKind::NoLoader);
    assert_eq!(
        errors.0[0].file,
        app.path().join("elements/pays/WechatPayType/e.json")
    );

    // A parent Type with nothing to serve passes the build; the plugin's element is then
    // built with no parent (as a service element is), and a delegation says what is missing.
    app.element(
        "pays/WechatPayType",
        json!({"title": "Declarations only", "type": "pays.Meta"}),
    );
    app.element(
        "pays/DiscountWechatPayType",
        json!({
            "type": "pays.WechatPayType",
            "backendBundleEntry": library_file_name("example_discount_plugin"),
            "discountPercent": 10,
            "functionList": [{"name": "create", "args": [
                {"name": "subject", "dataType": "Stext"},
                {"name": "amount", "dataType": "Any"}
            ]}]
        }),
    );
    let built = register()
        .build()
        .await
        .expect("every element that needs a loader has one");
    let error = built
        .call(
            "pays.myDiscountPay",
            "create",
            json!({"subject": "x", "amount": 1}),
            &caller(),
        )
        .await
        .expect_err("no parent to delegate to");
    assert_eq!(error.kind, CallErrorKind::FunctionNotFound);
    assert_eq!(
        error.message,
        "`pays.myDiscountPay` has no parent Type implementing `create`"
    );
}

/// Every refusal in one app, so it also shows that all of them are reported at once.
#[test]
fn refusals_name_the_element_the_file_and_the_reason() {
    let plugins = built_plugins();
    let app = TempApp::new("refusals").with_fixture_parent();
    let mut expect = Vec::new();
    let plugin_type = |folder: &str, entry: &str| {
        app.element(
            &format!("pays/{folder}"),
            json!({"type": "pays.WechatPayType", "backendBundleEntry": entry}),
        );
        format!("pays.{folder}")
    };

    // 1. A header claiming ABI version 999.
    let bad_abi_file = library_file_name("test_bad_plugin");
    let bad_abi = plugin_type("WrongAbiType", &bad_abi_file);
    app.install("pays/WrongAbiType", &plugins.bad_abi, &bad_abi_file);
    expect.push((
        bad_abi,
        "header field `abi_version` is 999, expected 1 or 2".to_owned(),
    ));

    // 2. A file that is not a library.
    let not_library = plugin_type("TextFileType", "libnotes.so");
    app.write(
        "elements/pays/TextFileType/libnotes.so",
        "these are notes, not machine code\n",
    );
    expect.push((
        not_library,
        "libnotes.so` is not a loadable library".to_owned(),
    ));

    // 3. A library without the header symbol.
    let no_header_file = library_file_name("no_header");
    let no_header = plugin_type("NoHeaderType", &no_header_file);
    compile_library_without_header(
        &app.path()
            .join("elements/pays/NoHeaderType")
            .join(&no_header_file),
    );
    expect.push((
        no_header,
        "is not a jit plugin: it exports no `JIT_PLUGIN_HEADER` symbol".to_owned(),
    ));

    // 4. A missing file.
    let missing = plugin_type("MissingType", "libgone.so");
    expect.push((missing, "libgone.so` does not exist".to_owned()));

    let definitions = app.definitions();
    let errors = jit_plugin_host::load_plugins(&definitions).expect_err("every plugin refused");
    let shown = errors.to_string();
    assert_eq!(
        errors.0.len(),
        expect.len(),
        "one error per plugin Type:\n{shown}"
    );
    for (element, message) in &expect {
        let error = errors
            .0
            .iter()
            .find(|error| &error.element == element)
            .unwrap_or_else(|| panic!("no error for {element}:\n{shown}"));
        let line = error.to_string();
        assert!(
            line.contains(message.as_str()),
            "`{message}` not in: {line}"
        );
        let e_json = app
            .path()
            .join("elements")
            .join(element.replace('.', "/"))
            .join("e.json");
        assert!(
            line.starts_with(&format!(
                "{}: backendBundleEntry: {element}: ",
                e_json.display()
            )),
            "{line}"
        );
        let load_error = error.to_load_error();
        assert_eq!(load_error.file, e_json);
        assert_eq!(load_error.json_path.as_deref(), Some("backendBundleEntry"));
    }
    let wrong_abi = errors
        .0
        .iter()
        .find(|e| e.element == "pays.WrongAbiType")
        .expect("abi");
    match &wrong_abi.problem {
        PluginProblem::Open(jit_plugin_host::OpenError::Refused { mismatch, .. }) => {
            assert_eq!(mismatch.field, "abi_version");
            assert_eq!(mismatch.expected, "1 or 2");
            assert_eq!(mismatch.found, "999");
        }
        other => panic!("expected a header refusal, got {other:?}"),
    }
    // The refused library's entry points leave a trace when called: there must be none.
    let trace = std::env::temp_dir().join(format!("jit-bad-plugin-{}-ran", std::process::id()));
    assert!(!trace.exists(), "an entry point of the refused plugin ran");

    // Checking the headers from the files alone (`jit check`) refuses exactly the same.
    let inspected =
        jit_plugin_host::inspect_plugins(&definitions).expect_err("every plugin refused");
    assert_eq!(inspected.to_string(), shown);

    // register_plugins refuses the same way and the app is never built.
    let Err(refused) = register_plugins(app.builder(), &definitions) else {
        panic!("register_plugins accepted refused plugins");
    };
    assert_eq!(refused.0.len(), expect.len());
}

#[test]
fn placement_problems_are_refused_before_opening_anything() {
    let app = TempApp::new("placement").with_fixture_parent();
    app.element(
        "pays/EscapingType",
        json!({"type": "pays.WechatPayType", "backendBundleEntry": "../libelsewhere.so"}),
    );
    app.element(
        "plugins/Meta",
        json!({"type": "", "backendBundleEntry": "libmeta.so"}),
    );
    let errors = jit_plugin_host::find_plugins(&app.definitions()).expect_err("refused");
    let shown = errors.to_string();
    assert!(
        shown.contains("pays.EscapingType: `../libelsewhere.so` must be a path relative to the element's folder and inside it"),
        "{shown}"
    );
    assert!(
        shown.contains("plugins.Meta: a Meta cannot be a native plugin"),
        "{shown}"
    );
    let as_load_errors: jit_runtime::LoadErrors = errors.into();
    assert_eq!(as_load_errors.len(), 2);
}

/// Compiles a tiny `cdylib` that exports a function but no plugin header.
fn compile_library_without_header(output: &std::path::Path) {
    test_support::compile_cdylib(NO_HEADER_SOURCE, "no_header", output);
}

/// A library exporting a function but no plugin header.
const NO_HEADER_SOURCE: &str =
    "#[unsafe(no_mangle)]\npub extern \"C\" fn unrelated_function() -> u32 { 7 }\n";

/// An app shadowing the Type of the app it extends with a plugin of the same fullName: the
/// plugin wraps the shadowed Type's loader, which stays reachable as its parent.
#[tokio::test]
async fn a_plugin_can_shadow_the_type_it_extends() {
    let plugins = built_plugins();
    let base = TempApp::new("base").with_fixture_parent();
    let app = TempApp::new("shadowing");
    app.write(
        "app.toml",
        &format!(
            "[app]\nname = \"shadowing\"\norg = \"acme\"\nextends = [{:?}]\n",
            base.path().display().to_string()
        ),
    );
    let file = library_file_name("example_discount_plugin");
    app.element(
        "pays/WechatPayType",
        json!({
            "type": "pays.Meta",
            "backendBundleEntry": file,
            "discountPercent": 20,
            "functionList": [
                {"name": "create", "args": [
                    {"name": "subject", "dataType": "Stext"},
                    {"name": "amount", "dataType": "Any"},
                    {"name": "orderId", "dataType": "Stext", "required": false}
                ]},
                {"name": "check", "args": [{"name": "orderId", "dataType": "Stext"}]}
            ]
        }),
    );
    app.install("pays/WechatPayType", &plugins.discount, &file);
    app.element(
        "pays/myPay",
        json!({"type": "pays.WechatPayType", "mchId": "1900000113"}),
    );

    // The fixture loader (standing for the official one) first, then the plugins.
    let built = build(&app).await;
    let order = built
        .call(
            "pays.myPay",
            "create",
            json!({"subject": "Shadowed", "amount": 10, "orderId": "S1"}),
            &caller(),
        )
        .await
        .expect("create through the shadowing plugin");
    assert_eq!(order["amount"], json!(8.0));
    assert_eq!(order["discount"]["percent"], 20);
    let stored = built
        .call("pays.myPay", "check", json!({"orderId": "S1"}), &caller())
        .await
        .expect("check on the shadowed Type's element");
    assert_eq!(stored["amount"], json!(8.0));
}

#[tokio::test]
async fn libraries_are_loaded_from_copies_and_a_reload_keeps_unchanged_ones() {
    let app = shop();
    let first = build(&app).await;
    first
        .call(
            "pays.myDiscountPay",
            "create",
            json!({"subject": "Coffee", "amount": 10, "orderId": "R1"}),
            &caller(),
        )
        .await
        .expect("create");
    first.get_element("pays.myProbe").await.expect("probe");
    let loaded = jit_plugin_host::load_plugins(&app.definitions()).expect("load");
    let discount = &loaded
        .iter()
        .find(|(spec, _)| spec.type_name == "pays.DiscountWechatPayType")
        .expect("discount")
        .1;
    // The copy: in the app's .jit/plugins, named after its content, read-only, the same bytes.
    let copy = discount.loaded_from();
    let copies = jit_plugin_host::copies_dir(app.path());
    assert!(copy.starts_with(&copies), "{}", copy.display());
    let original_bytes = std::fs::read(discount.path()).expect("original");
    assert_eq!(std::fs::read(copy).expect("copy"), original_bytes);
    assert!(std::fs::metadata(copy).unwrap().permissions().readonly());
    let copy_name = copy.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(copy_name.split_once('-').expect("sha-name").0.len(), 64);
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        assert!(
            maps.contains(&copy.display().to_string()),
            "the copy is mapped"
        );
        assert!(
            !maps.contains(&discount.path().display().to_string()),
            "the user's file is never mapped"
        );
    }

    // The probe library is overwritten in place with a changed build (a byte more).
    let probe_file = app
        .path()
        .join("elements/pays/ProbeType")
        .join(library_file_name("test_probe_plugin"));
    let mut changed = std::fs::read(&probe_file).expect("probe");
    changed.push(0);
    std::fs::write(&probe_file, &changed).expect("overwrite in place");

    let next = register_plugins(app.builder(), &app.definitions())
        .expect("plugins")
        .build_next(&first)
        .await
        .expect("next generation");
    assert!(
        next.changes.kept.contains(&"pays.myDiscountPay".to_owned()),
        "{:?}",
        next.changes
    );
    assert!(
        next.changes.changed.contains(&"pays.myProbe".to_owned()),
        "{:?}",
        next.changes
    );
    assert!(Arc::ptr_eq(
        &next.app.get_element("pays.myDiscountPay").await.unwrap(),
        &first.get_element("pays.myDiscountPay").await.unwrap()
    ));
    // The new library answers; the old copy is still there, as it was.
    next.app
        .call("pays.myProbe", "echo", json!({"note": "hi"}), &caller())
        .await
        .expect("the changed plugin answers");
    let reloaded = jit_plugin_host::load_plugins(&app.definitions()).expect("load");
    let probe_now = &reloaded
        .iter()
        .find(|(spec, _)| spec.type_name == "pays.ProbeType")
        .expect("probe")
        .1;
    assert_eq!(std::fs::read(probe_now.loaded_from()).unwrap(), changed);
    let copies_now = std::fs::read_dir(&copies).unwrap().count();
    assert_eq!(copies_now, 3, "two libraries, the probe in two versions");
}
