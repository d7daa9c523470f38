//! The host calls of ABI version 2 (a plugin reaching other elements of the app), service
//! elements (a plugin with no parent Type), and plugins of ABI version 1 still loading.

mod support;

use jit_plugin_host::{CALL_DEPTH_EXCEEDED, MAX_NESTED_APP_CALLS};
use jit_runtime::{CallContext, CallErrorKind};
use serde_json::{Value, json};
use support::{TempApp, build, built_plugins, caller, library_file_name, shop};

/// The probe's functions, declared on a service element (its own e.json: it has no Type
/// declaring them). `callElement` needs no login, so an anonymous caller can reach it.
fn probe_functions() -> Value {
    json!([
        {"name": "echo", "args": [{"name": "note", "dataType": "Any", "required": false}]},
        {"name": "forward", "args": [
            {"name": "function", "dataType": "Stext"},
            {"name": "args", "dataType": "JSON", "required": false}
        ]},
        {"name": "lookup", "args": [{"name": "name", "dataType": "Stext"}]},
        {"name": "find", "args": [{"name": "selector", "dataType": "Stext"}]},
        {"name": "callElement", "loginRequired": false, "args": [
            {"name": "element", "dataType": "Stext"},
            {"name": "function", "dataType": "Stext"},
            {"name": "args", "dataType": "JSON", "required": false}
        ]},
        {"name": "bounce", "args": [{"name": "to", "dataType": "Stext"}]}
    ])
}

/// The shop of the other tests plus a `services` family (as the stock host's framework layer
/// has it: a Meta and a NormalType with no loader) and two service elements whose own
/// backendBundleEntry names the probe plugin.
fn shop_with_services() -> TempApp {
    let app = shop();
    app.element("services/Meta", json!({"title": "Services", "type": ""}));
    app.element(
        "services/NormalType",
        json!({"title": "Service", "type": "services.Meta"}),
    );
    let probe_file = library_file_name("test_probe_plugin");
    for name in ["ProbeSvc", "OtherSvc"] {
        let folder = format!("shop/services/{name}");
        app.element(
            &folder,
            json!({
                "type": "services.NormalType",
                "backendBundleEntry": probe_file,
                "functionList": probe_functions(),
                "greeting": "hello"
            }),
        );
        app.install(&folder, &built_plugins().probe, &probe_file);
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_element_is_its_plugin_with_no_parent() {
    let app = shop_with_services();
    let app = build(&app).await;

    let echoed = app
        .call(
            "shop.services.ProbeSvc",
            "echo",
            json!({"note": 1}),
            &caller(),
        )
        .await
        .expect("echo enters the plugin");
    let info = &echoed["element"];
    assert_eq!(info["fullName"], "shop.services.ProbeSvc");
    assert_eq!(
        info["chain"],
        json!([
            "shop.services.ProbeSvc",
            "services.NormalType",
            "services.Meta"
        ])
    );
    assert_eq!(info["settings"]["greeting"], "hello");
    let functions: Vec<&str> = info["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|function| function["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        functions,
        ["echo", "forward", "lookup", "find", "callElement", "bounce"]
    );

    let no_parent = app
        .call(
            "shop.services.ProbeSvc",
            "forward",
            json!({"function": "create", "args": {}}),
            &caller(),
        )
        .await
        .expect_err("nothing to forward to");
    assert_eq!(no_parent.kind, CallErrorKind::FunctionNotFound);
    assert_eq!(
        no_parent.message,
        "`shop.services.ProbeSvc` has no parent Type implementing `create`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_element_describes_what_the_caller_may_see() {
    let base = TempApp::new("base");
    base.element(
        "hidden/Thing",
        json!({"type": "", "accessModifier": "private"}),
    );
    base.element("shared/Thing", json!({"type": "", "title": "Shared"}));
    let app = shop_with_services();
    app.write(
        "app.toml",
        &format!(
            "[app]\nname = \"shop\"\norg = \"acme\"\nextends = [{:?}]\n",
            base.path().display().to_string()
        ),
    );
    app.element(
        "pays/ownPrivatePay",
        json!({"type": "pays.WechatPayType", "mchId": "1900000199", "accessModifier": "private"}),
    );
    let app = build(&app).await;
    let lookup = |name: &str| {
        let app = app.clone();
        let name = name.to_owned();
        async move {
            app.call("pays.myProbe", "lookup", json!({"name": name}), &caller())
                .await
        }
    };

    // findElements: every element of a Type (further down the chain too), private
    // elements of another layer left out; a bad selector says where.
    let find = |selector: &str| {
        let app = app.clone();
        let selector = selector.to_owned();
        async move {
            app.call(
                "pays.myProbe",
                "find",
                json!({"selector": selector}),
                &caller(),
            )
            .await
        }
    };
    let pays = find(".pays.WechatPayType").await.expect("a selector");
    let pays: Vec<&str> = pays
        .as_array()
        .expect("a list")
        .iter()
        .map(|name| name.as_str().expect("a fullName"))
        .collect();
    assert!(pays.contains(&"pays.myDiscountPay"), "{pays:?}");
    assert!(pays.contains(&"pays.ownPrivatePay"), "same layer: {pays:?}");
    assert_eq!(
        find("*.Thing").await.expect("a glob"),
        json!(["shared.Thing"]),
        "another layer's private element is left out"
    );
    let bad = find(".pays.[").await.expect_err("not a selector");
    assert_eq!(bad.kind, CallErrorKind::BadArguments, "{}", bad.message);
    assert!(bad.message.contains("selector"), "{}", bad.message);

    let pay = lookup("pays.myDiscountPay").await.expect("visible");
    assert_eq!(pay["fullName"], "pays.myDiscountPay");
    assert_eq!(
        pay["chain"],
        json!([
            "pays.myDiscountPay",
            "pays.DiscountWechatPayType",
            "pays.WechatPayType",
            "pays.Meta"
        ])
    );
    assert_eq!(
        pay["settings"]["apiKey"],
        jit_runtime::MASK,
        "secrets masked"
    );
    assert_eq!(pay["settings"]["discountPercent"], 10);
    let create = pay["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|function| function["name"] == "create")
        .expect("create declared");
    assert_eq!(create["loginRequired"], true);
    assert_eq!(
        create["args"][0],
        json!({"name": "subject", "dataType": "Stext", "required": true})
    );

    assert_eq!(
        lookup("shared.Thing")
            .await
            .expect("a public element of a lower layer")["fullName"],
        "shared.Thing"
    );
    assert_eq!(
        lookup("pays.ownPrivatePay")
            .await
            .expect("private to the caller's own layer")["fullName"],
        "pays.ownPrivatePay"
    );
    for hidden in ["hidden.Thing", "pays.nothingHere"] {
        let error = lookup(hidden).await.expect_err(hidden);
        assert_eq!(error.kind, CallErrorKind::NotFound, "{hidden}");
        assert_eq!(error.message, format!("no element `{hidden}`"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_a_plugin_follow_the_rules_of_an_http_call() {
    let app = shop_with_services();
    let app = build(&app).await;
    let call_element = |element: &str, function: &str, args: Value, cx: CallContext| {
        let app = app.clone();
        let body = json!({"element": element, "function": function, "args": args});
        async move {
            app.call("shop.services.ProbeSvc", "callElement", body, &cx)
                .await
        }
    };

    // A plain element, and a plugin element (whose plugin then calls its parent).
    let order = call_element(
        "pays.myDiscountPay",
        "create",
        json!({"subject": "Tea", "amount": 99.99, "orderId": "S1"}),
        caller(),
    )
    .await
    .expect("create through another plugin");
    assert_eq!(order["amount"], json!(89.99));
    assert_eq!(order["element"], "pays.myDiscountPay");
    let checked = call_element(
        "pays.myDiscountPay",
        "check",
        json!({"orderId": "S1"}),
        caller(),
    )
    .await
    .expect("check");
    assert_eq!(checked["status"], "wait");

    // The same library re-entered: the service calls the other service's echo.
    let echoed = call_element(
        "shop.services.OtherSvc",
        "echo",
        json!({"note": "hi"}),
        caller(),
    )
    .await
    .expect("plugin to plugin");
    assert_eq!(echoed["element"]["fullName"], "shop.services.OtherSvc");
    assert_eq!(echoed["args"], json!({"note": "hi"}));

    let bad = call_element("pays.plainPay", "check", json!({"orderId": 7}), caller())
        .await
        .expect_err("orderId must be text");
    assert_eq!(bad.kind, CallErrorKind::BadArguments);
    assert!(bad.message.contains("orderId"), "{}", bad.message);

    let undeclared = call_element("pays.plainPay", "explodeLater", json!({}), caller())
        .await
        .expect_err("not declared");
    assert_eq!(undeclared.kind, CallErrorKind::FunctionNotFound);

    let type_target = call_element(
        "pays.WechatPayType",
        "check",
        json!({"orderId": "S1"}),
        caller(),
    )
    .await
    .expect_err("a Type serves no calls");
    assert_eq!(type_target.kind, CallErrorKind::NotFound);
    assert!(
        type_target.message.contains("is a Type"),
        "{}",
        type_target.message
    );

    // callElement itself needs no login; create does, and the plugin acts for its caller.
    let anonymous = call_element(
        "pays.plainPay",
        "create",
        json!({"subject": "Tea", "amount": 1}),
        CallContext::anonymous(),
    )
    .await
    .expect_err("anonymous caller");
    assert_eq!(anonymous.kind, CallErrorKind::Unauthorized);
    assert_eq!(
        anonymous.message,
        "`pays.plainPay.create` requires a logged-in caller"
    );
    let unknown = call_element("pays.nothingHere", "create", json!({}), caller())
        .await
        .expect_err("unknown element");
    assert_eq!(unknown.kind, CallErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cycle_between_plugins_ends_in_an_error() {
    let app = shop_with_services();
    let app = build(&app).await;
    for (from, to) in [
        ("shop.services.ProbeSvc", "shop.services.OtherSvc"),
        ("shop.services.ProbeSvc", "shop.services.ProbeSvc"),
    ] {
        let error = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            app.call(from, "bounce", json!({"to": to}), &caller()),
        )
        .await
        .expect("a cycle must not hang")
        .expect_err("a cycle must fail");
        assert_eq!(error.code(), CALL_DEPTH_EXCEEDED, "{}", error.message);
        assert_eq!(error.kind, CallErrorKind::Internal);
        assert!(
            error.message.contains(&format!(
                "nest deeper than {MAX_NESTED_APP_CALLS} ({to}.bounce → {from}.bounce → "
            )),
            "{}",
            error.message
        );
    }
    // The app still serves after the cycle unwound.
    app.call("shop.services.ProbeSvc", "echo", json!({}), &caller())
        .await
        .expect("echo after the cycle");
}

#[tokio::test]
async fn a_plugin_of_abi_version_1_still_loads_and_works() {
    let plugins = built_plugins();
    let header = jit_plugin_host::inspect_plugin(&plugins.abi1).expect("its header is accepted");
    assert_eq!(header.name(), "test-abi1-plugin");

    let app = TempApp::new("old").with_fixture_parent();
    let file = library_file_name("test_abi1_plugin");
    app.element(
        "pays/OldType",
        json!({
            "type": "pays.WechatPayType",
            "backendBundleEntry": file,
            "functionList": [{"name": "echo", "args": [{"name": "note", "dataType": "Any", "required": false}]}]
        }),
    );
    app.install("pays/OldType", &plugins.abi1, &file);
    app.element(
        "pays/oldPay",
        json!({"type": "pays.OldType", "mchId": "1900000120"}),
    );
    let app = build(&app).await;

    let echoed = app
        .call("pays.oldPay", "echo", json!({"note": "v1"}), &caller())
        .await
        .expect("echo");
    assert_eq!(echoed["abi"], 1);
    assert_eq!(echoed["args"], json!({"note": "v1"}));
    assert_eq!(echoed["element"]["fullName"], "pays.oldPay");
    assert_eq!(echoed["element"]["settings"]["mchId"], "1900000120");

    let order = app
        .call(
            "pays.oldPay",
            "create",
            json!({"subject": "Old", "amount": 3, "orderId": "V1"}),
            &caller(),
        )
        .await
        .expect("create goes to the parent through the plugin");
    assert_eq!(order["orderId"], "V1");
    assert_eq!(order["mchId"], "1900000120");
}
