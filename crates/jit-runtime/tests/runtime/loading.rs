//! Loading definitions: layout, layers, overriding, access modifiers, placeholders and
//! every kind of loading error with its message.

use std::collections::HashMap;
use std::path::Path;

use crate::common::{FRAMEWORK, Tree, app_toml};
use jit_runtime::{AccessModifier, AppBuilder, DataType, LoadErrorKind, LoadErrors, MASK};

fn errors_of(result: Result<jit_runtime::Definitions, LoadErrors>) -> LoadErrors {
    match result {
        Ok(defs) => panic!("expected errors, loaded {} elements", defs.len()),
        Err(errors) => errors,
    }
}

fn only(errors: &LoadErrors, kind: LoadErrorKind) -> &jit_runtime::LoadError {
    let matching: Vec<_> = errors.of_kind(kind).collect();
    assert_eq!(matching.len(), 1, "expected one {kind:?} in:\n{errors}");
    matching[0]
}

#[test]
fn framework_families_are_embedded_and_merged() {
    let tree = Tree::new(&[("app/app.toml", &app_toml("shop"))]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    let meta = defs.get("pays.Meta").expect("pays.Meta");
    assert_eq!(meta.layer, "framework");
    assert_eq!(meta.source, Path::new("<framework>/pays/Meta/e.json"));
    assert!(meta.dir.is_none());
    assert!(meta.is_meta());
    let chain = defs.chain("pays.TestPayType").expect("type");
    assert_eq!(chain.to_string(), "pays.TestPayType → pays.Meta");
    assert_eq!(
        defs.chain("models.Base").expect("models").to_string(),
        "models.Base → models.Meta"
    );
    assert_eq!(defs.layers().len(), 2);
    assert_eq!(defs.layers()[0].name, "framework");
    assert_eq!(defs.layers()[1].name, "shop");
    assert_eq!(defs.settings().org, "acme");
}

#[test]
fn instance_with_config_settings_functions_and_unknown_keys() {
    let tree = Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\n[env]\nJITRT_T1_KEY = \"k-from-file\"\n[server]\nport = 8080\n",
        ),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"title": "My pay", "type": "pays.TestPayType", "mchId": "1900000109", "backendLoadTime": "afterAppInit"}"#,
        ),
        (
            "app/elements/pays/myPay/myPay.json",
            r#"{"apiKey": "{{JITRT_T1_KEY}}", "notifyUrl": "https://{{ JITRT_T1_HOST }}/notify"}"#,
        ),
    ]);
    let mut env = HashMap::new();
    env.insert("JITRT_T1_HOST".to_owned(), "pay.example.com".to_owned());
    let defs = tree
        .builder("app")
        .env(env)
        .load_definitions()
        .expect("loads");
    let chain = defs.chain("pays.myPay").expect("instance");
    assert_eq!(
        chain.to_string(),
        "pays.myPay → pays.TestPayType → pays.Meta"
    );
    let def = chain.element();
    assert_eq!(def.layer, "shop");
    assert_eq!(def.title.as_deref(), Some("My pay"));
    assert_eq!(
        def.dir.as_deref(),
        Some(tree.join("app/elements/pays/myPay").as_path())
    );
    assert_eq!(
        def.extra.get("mchId").and_then(|v| v.as_str()),
        Some("1900000109")
    );
    assert!(!def.extra.contains_key("type"), "known keys are not extra");
    assert_eq!(
        def.backend_load_time,
        Some(jit_runtime::BackendLoadTime::AfterAppInit)
    );
    // Settings: instance config, then instance e.json, then the Type's e.json.
    assert_eq!(chain.setting_str("apiKey"), Some("k-from-file"));
    assert_eq!(
        chain.setting_str("notifyUrl"),
        Some("https://pay.example.com/notify")
    );
    assert_eq!(chain.setting_str("mchId"), Some("1900000109"));
    assert_eq!(chain.setting_str("currency"), Some("CNY"));
    assert_eq!(chain.setting("nothing"), None);
    // Secret keys are inherited from the Type.
    assert!(chain.is_secret("apiKey"));
    assert_eq!(
        format!("{:?}", chain.secret_str("apiKey").expect("key")),
        MASK
    );
    // Functions come from the Type.
    let create = chain.function("create").expect("create");
    assert!(create.login_required);
    assert_eq!(create.args[1].data_type, DataType::Integer);
    assert!(!create.args[2].required);
    let ping = chain.function("ping").expect("ping");
    assert!(!ping.login_required);
    assert_eq!(
        ping.extra.get("httpMethod").and_then(|v| v.as_str()),
        Some("GET")
    );
    // Other app.toml tables are kept for the host.
    assert_eq!(
        defs.settings().raw["server"]["port"].as_integer(),
        Some(8080)
    );
}

#[test]
fn frontend_and_backend_folders_do_not_count_in_names() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/backend/svc/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        (
            "app/elements/pays/frontend/page/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    assert!(defs.get("pays.svc").is_some());
    assert!(defs.get("pays.page").is_some());
}

#[test]
fn ill_typed_e_json_names_file_and_json_path() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/a/e.json",
            r#"{"type": "pays.Meta", "functionList": [{"name": "f", "args": [{"name": "x", "dataType": "Strng"}]}]}"#,
        ),
        (
            "app/elements/pays/b/e.json",
            r#"{"type": "pays.Meta", "title": 5}"#,
        ),
        (
            "app/elements/pays/c/e.json",
            "{\"type\": \"pays.Meta\",\n \"title\": }",
        ),
        (
            "app/elements/pays/d/e.json",
            r#"{"type": "pays.Meta", "backendLoadTime": "soon"}"#,
        ),
        (
            "app/elements/pays/e/e.json",
            r#"{"type": "pays.Meta", "accessModifier": "secret"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    assert_eq!(errors.len(), 5, "{errors}");
    assert!(errors.iter().all(|e| e.kind == LoadErrorKind::Parse));
    let a = &errors.0[0];
    assert_eq!(a.file, tree.join("app/elements/pays/a/e.json"));
    assert_eq!(
        a.json_path.as_deref(),
        Some("functionList[0].args[0].dataType")
    );
    assert!(
        a.message.contains("unknown dataType `Strng`"),
        "{}",
        a.message
    );
    assert!(
        a.message.contains("Stext"),
        "lists the known types: {}",
        a.message
    );
    assert_eq!(
        a.to_string(),
        format!(
            "{}: functionList[0].args[0].dataType: {}",
            tree.join("app/elements/pays/a/e.json").display(),
            a.message
        )
    );
    let b = &errors.0[1];
    assert_eq!(b.json_path.as_deref(), Some("title"));
    assert!(
        b.message
            .contains("invalid type: integer `5`, expected a string"),
        "{}",
        b.message
    );
    let c = &errors.0[2];
    assert!(
        c.message.contains("line 2"),
        "syntax errors carry a position: {}",
        c.message
    );
    assert_eq!(errors.0[3].json_path.as_deref(), Some("backendLoadTime"));
    assert!(
        errors.0[3].message.contains("afterAppInit"),
        "{}",
        errors.0[3].message
    );
    assert_eq!(errors.0[4].json_path.as_deref(), Some("accessModifier"));
    // Display: one problem per line.
    assert_eq!(errors.to_string().lines().count(), 5);
}

#[test]
fn duplicate_functions_and_arguments_are_errors() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/a/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "f", "args": [{"name": "x", "dataType": "Stext"}, {"name": "x", "dataType": "Integer"}]},
                {"name": "f"}]}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let paths: Vec<_> = errors
        .iter()
        .map(|e| e.json_path.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        ["functionList[0].args[1].name", "functionList[1].name"],
        "{errors}"
    );
    assert!(
        errors.0[0]
            .message
            .contains("argument `x` is declared twice")
    );
    assert!(
        errors.0[1]
            .message
            .contains("function `f` is declared twice")
    );
}

#[test]
fn body_formats_are_read_and_a_raw_one_takes_exactly_one_argument() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/a/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "plain"},
                {"name": "notify", "args": [{"name": "body", "dataType": "Stext"}], "bodyFormat": "xml"},
                {"name": "callback", "args": [{"name": "request", "dataType": "JSON"}], "bodyFormat": "http"}]}"#,
        ),
        (
            "app/elements/pays/b/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "none", "bodyFormat": "http"},
                {"name": "two", "bodyFormat": "xml", "args": [
                    {"name": "x", "dataType": "Stext"}, {"name": "y", "dataType": "Stext"}]}]}"#,
        ),
        (
            "app/elements/pays/c/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "f", "args": [{"name": "x", "dataType": "Stext"}], "bodyFormat": "form"}]}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let paths: Vec<_> = errors
        .iter()
        .map(|e| e.json_path.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "functionList[0].args",
            "functionList[1].args",
            "functionList[0].bodyFormat"
        ],
        "{errors}"
    );
    assert!(
        errors.0[0].message.contains("declares 0 arguments"),
        "{errors}"
    );
    assert!(
        errors.0[1].message.contains("`bodyFormat: xml`"),
        "{errors}"
    );
    assert!(errors.0[2].message.contains("form"), "{errors}");

    // Without the broken ones, each format is on its declaration and back in e.json's shape.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/a/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "plain"},
                {"name": "callback", "args": [{"name": "request", "dataType": "JSON"}], "bodyFormat": "http"}]}"#,
        ),
    ]);
    let definitions = tree.builder("app").load_definitions().unwrap();
    let chain = definitions.chain("pays.a").unwrap();
    let plain = chain.function("plain").unwrap();
    let callback = chain.function("callback").unwrap();
    assert_eq!(plain.body_format, jit_runtime::BodyFormat::Json);
    assert_eq!(callback.body_format, jit_runtime::BodyFormat::Http);
    assert!(plain.to_json().get("bodyFormat").is_none());
    assert_eq!(callback.to_json()["bodyFormat"], "http");
    assert!(callback.extra.is_empty(), "{:?}", callback.extra);
}

#[test]
fn shown_functions_keep_e_json_shape_with_and_without_titles() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/a/e.json",
            r#"{"type": "pays.Meta", "functionList": [
                {"name": "f", "title": "Eff", "returnType": "Stext", "icon": "x.svg",
                 "args": [{"name": "x", "title": "Ex", "dataType": "Stext", "required": true},
                          {"name": "y", "dataType": "Integer"}]},
                {"name": "g", "loginRequired": false}]}"#,
        ),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    let shown = defs
        .chain("pays.a")
        .expect("a")
        .element()
        .to_json_masked::<&str>(&[]);
    assert_eq!(
        shown["functionList"],
        serde_json::json!([
            {"name": "f", "title": "Eff", "returnType": "Stext", "loginRequired": true, "icon": "x.svg",
             "args": [{"name": "x", "title": "Ex", "dataType": "Stext", "required": true},
                      {"name": "y", "dataType": "Integer", "required": true}]},
            {"name": "g", "args": [], "loginRequired": false}
        ])
    );
}

#[test]
fn invalid_names_are_errors() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/my-pay/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        ("app/elements/pays/2fast/e.json", r#"{"type": "pays.Meta"}"#),
        ("app/elements/pays/ok/e.json", r#"{"type": "pays..Meta"}"#),
        ("app/elements/e.json", r#"{"type": "pays.Meta"}"#),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let invalid: Vec<_> = errors.of_kind(LoadErrorKind::InvalidName).collect();
    assert_eq!(invalid.len(), 4, "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("folder name `my-pay` is not a valid element name segment"),
        "{text}"
    );
    assert!(text.contains("folder name `2fast`"), "{text}");
    assert!(
        text.contains("type: invalid type name: segment `` of `pays..Meta`"),
        "{text}"
    );
    assert!(text.contains("not at the layer root"), "{text}");
}

#[test]
fn same_full_name_twice_in_one_layer_is_an_error() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        ("app/elements/pays/a/e.json", r#"{"type": "pays.Meta"}"#),
        (
            "app/elements/pays/backend/a/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let dup = only(&errors, LoadErrorKind::Duplicate);
    assert!(
        dup.message
            .contains("`pays.a` is defined twice in layer `shop`"),
        "{}",
        dup.message
    );
    assert!(
        dup.message.contains("pays/a/e.json") || dup.message.contains("backend"),
        "{}",
        dup.message
    );

    // Two framework families defining the same names: duplicates within the framework layer.
    let errors = errors_of(
        AppBuilder::new(tree.join("app"))
            .framework_layer(&FRAMEWORK)
            .framework_layer(&FRAMEWORK)
            .load_definitions(),
    );
    let dups: Vec<_> = errors
        .of_kind(LoadErrorKind::Duplicate)
        .filter(|e| e.file.starts_with("<framework>"))
        .collect();
    assert_eq!(dups.len(), 5, "each fixture element twice:\n{errors}");
    assert_eq!(
        dups[0].message,
        "`pays.Internal` is defined twice in layer `framework` (also in <framework>/pays/Internal/e.json)"
    );
}

#[test]
fn unknown_type_suggests_the_closest_name() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"type": "pays.TestPaytype"}"#,
        ),
        ("app/elements/pays/other/e.json", r#"{"type": "zzz.Qqq"}"#),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let unknown: Vec<_> = errors.of_kind(LoadErrorKind::UnknownType).collect();
    assert_eq!(unknown.len(), 2, "{errors}");
    assert_eq!(unknown[0].file, tree.join("app/elements/pays/myPay/e.json"));
    assert_eq!(unknown[0].json_path.as_deref(), Some("type"));
    assert_eq!(
        unknown[0].message,
        "unknown type `pays.TestPaytype` (did you mean `pays.TestPayType`?)"
    );
    assert_eq!(unknown[1].message, "unknown type `zzz.Qqq`");
}

#[test]
fn cycles_are_shown_and_chains_into_them_end_nowhere() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        ("app/elements/loop/a/e.json", r#"{"type": "loop.b"}"#),
        ("app/elements/loop/b/e.json", r#"{"type": "loop.c"}"#),
        ("app/elements/loop/c/e.json", r#"{"type": "loop.a"}"#),
        ("app/elements/loop/self/e.json", r#"{"type": "loop.self"}"#),
        ("app/elements/loop/x/e.json", r#"{"type": "loop.b"}"#),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let cycles: Vec<_> = errors.of_kind(LoadErrorKind::Cycle).collect();
    assert_eq!(cycles.len(), 2, "{errors}");
    assert_eq!(
        cycles[0].message,
        "type cycle: loop.a → loop.b → loop.c → loop.a"
    );
    assert_eq!(cycles[0].file, tree.join("app/elements/loop/a/e.json"));
    assert_eq!(cycles[1].message, "type cycle: loop.self → loop.self");
    let nowhere = only(&errors, LoadErrorKind::ChainEndsNowhere);
    assert_eq!(nowhere.file, tree.join("app/elements/loop/x/e.json"));
    assert_eq!(
        nowhere.message,
        "chain `loop.x → loop.b → loop.c → loop.a` ends nowhere: it runs into the type cycle loop.a → loop.b → loop.c → loop.a"
    );
}

#[test]
fn a_chain_through_a_broken_type_ends_nowhere() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/Broken/e.json",
            r#"{"type": "shop.Missing"}"#,
        ),
        ("app/elements/shop/Mid/e.json", r#"{"type": "shop.Broken"}"#),
        ("app/elements/shop/inst/e.json", r#"{"type": "shop.Mid"}"#),
        (
            "app/elements/shop/Bad/e.json",
            r#"{"type": "shop.Meta", "title": ["x"]}"#,
        ),
        (
            "app/elements/shop/badUser/e.json",
            r#"{"type": "shop.Bad"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let unknown = only(&errors, LoadErrorKind::UnknownType);
    assert_eq!(unknown.file, tree.join("app/elements/shop/Broken/e.json"));
    let nowhere: Vec<_> = errors.of_kind(LoadErrorKind::ChainEndsNowhere).collect();
    assert_eq!(nowhere.len(), 3, "{errors}");
    let by_file = |name: &str| {
        nowhere
            .iter()
            .find(|e| e.file == tree.join(&format!("app/elements/shop/{name}/e.json")))
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("no error for {name}: {errors}"))
    };
    assert_eq!(
        by_file("inst"),
        "chain `shop.inst → shop.Mid → shop.Broken` ends nowhere: `shop.Broken` has the unknown type `shop.Missing`"
    );
    assert_eq!(
        by_file("Mid"),
        "chain `shop.Mid → shop.Broken` ends nowhere: `shop.Broken` has the unknown type `shop.Missing`"
    );
    assert_eq!(
        by_file("badUser"),
        "chain `shop.badUser → shop.Bad` ends nowhere: `shop.Bad` could not be loaded (see its own errors)"
    );
    only(&errors, LoadErrorKind::Parse);
}

#[test]
fn every_problem_is_reported_at_once() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        ("app/elements/a/one/e.json", r#"{"type": "pays.Nope"}"#),
        (
            "app/elements/a/two/e.json",
            r#"{"type": "pays.Meta", "title": false}"#,
        ),
        ("app/elements/a/three/e.json", r#"{"type": "a.three"}"#),
        (
            "app/elements/a/four/e.json",
            r#"{"type": "pays.Meta", "frontBundleEntry": "./four.json"}"#,
        ),
        ("app/elements/a/five/e.json", r#"{"type": "pays.Meta"}"#),
        (
            "app/elements/a/five/five.json",
            r#"{"k": "{{JITRT_SURELY_UNSET_VAR}}"}"#,
        ),
        ("app/elements/a/ok/e.json", r#"{"type": "pays.Meta"}"#),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let kinds: Vec<_> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(errors.len(), 5, "{errors}");
    for kind in [
        LoadErrorKind::UnknownType,
        LoadErrorKind::Parse,
        LoadErrorKind::Cycle,
        LoadErrorKind::Config,
        LoadErrorKind::MissingVariable,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing from:\n{errors}");
    }
}

/// framework < base (extended app) < the app itself.
fn three_layers() -> Tree {
    Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\nextends = [\"../base\"]\n",
        ),
        ("base/app.toml", "[app]\nname = \"base\"\n"),
        (
            "base/elements/pays/TestPayType/e.json",
            r#"{"title": "base version", "type": "pays.Meta", "currency": "USD", "onlyInBase": 1}"#,
        ),
        (
            "base/elements/pays/baseOnly/e.json",
            r#"{"type": "pays.TestPayType"}"#,
        ),
        (
            "app/elements/pays/TestPayType/e.json",
            r#"{"title": "app version", "type": "pays.Meta", "secretKeys": ["apiKey"]}"#,
        ),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"type": "pays.TestPayType"}"#,
        ),
    ])
}

#[test]
fn higher_layers_override_lower_ones_by_full_name() {
    let tree = three_layers();
    let defs = tree.builder("app").load_definitions().expect("loads");
    let names: Vec<_> = defs.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["framework", "base", "shop"]);

    let top = defs.get("pays.TestPayType").expect("type");
    assert_eq!(top.title.as_deref(), Some("app version"));
    assert_eq!(top.layer, "shop");
    assert_eq!(defs.layer_index("pays.TestPayType"), Some(2));
    let base = top.overrides.as_ref().expect("overrides base");
    assert_eq!(base.title.as_deref(), Some("base version"));
    assert_eq!(base.layer, "base");
    let framework = base.overrides.as_ref().expect("overrides framework");
    assert_eq!(framework.layer, "framework");
    assert_eq!(
        framework.source,
        Path::new("<framework>/pays/TestPayType/e.json")
    );
    assert!(framework.overrides.is_none());

    // Every chain uses the highest definition, including the base layer's instance.
    for name in ["pays.myPay", "pays.baseOnly"] {
        let chain = defs.chain(name).expect(name);
        assert_eq!(chain.defs()[1].title.as_deref(), Some("app version"));
    }
    assert_eq!(defs.get("pays.baseOnly").expect("base").layer, "base");
    // An override replaces the definition: keys of the lower one do not leak through.
    let chain = defs.chain("pays.myPay").expect("myPay");
    assert_eq!(chain.setting("currency"), None);
    assert_eq!(chain.setting("onlyInBase"), None);
    assert!(chain.is_secret("apiKey"));
    // Functions were declared only by the framework's definition, which is overridden.
    assert!(chain.function("create").is_none());
}

/// An extended app's own `extends` are layers below it, and an app two others extend
/// (a diamond) is one layer, placed at its first use.
#[test]
fn extends_are_followed_through_every_app_each_app_once() {
    let tree = Tree::new(&[
        (
            "shop/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\nextends = [\"../payments\", \"../catalog\"]\n",
        ),
        (
            "payments/app.toml",
            "[app]\nname = \"payments\"\nextends = [\"../core\"]\n",
        ),
        (
            "catalog/app.toml",
            "[app]\nname = \"catalog\"\nextends = [\"../core\"]\n",
        ),
        ("core/app.toml", "[app]\nname = \"core\"\n"),
        (
            "core/elements/pays/TestPayType/e.json",
            r#"{"title": "core", "type": "pays.Meta"}"#,
        ),
        (
            "catalog/elements/pays/TestPayType/e.json",
            r#"{"title": "catalog", "type": "pays.Meta"}"#,
        ),
        (
            "payments/elements/pays/corePay/e.json",
            r#"{"type": "pays.TestPayType"}"#,
        ),
    ]);
    let defs = tree.builder("shop").load_definitions().expect("loads");
    let names: Vec<_> = defs.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["framework", "core", "payments", "catalog", "shop"]);
    let top = defs.get("pays.TestPayType").expect("type");
    assert_eq!(top.title.as_deref(), Some("catalog"));
    assert_eq!(
        top.overrides.as_ref().unwrap().title.as_deref(),
        Some("core")
    );
    assert_eq!(
        defs.chain("pays.corePay").expect("chain").defs()[1]
            .title
            .as_deref(),
        Some("catalog")
    );
}

#[test]
fn apps_that_extend_each_other_are_a_cycle_error() {
    let tree = Tree::new(&[
        (
            "shop/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\nextends = [\"../base\"]\n",
        ),
        (
            "base/app.toml",
            "[app]\nname = \"base\"\nextends = [\"../core\"]\n",
        ),
        // Back to the app itself, spelled through its parent folder.
        (
            "core/app.toml",
            "[app]\nname = \"core\"\nextends = [\"../shop/../shop\"]\n",
        ),
    ]);
    let errors = errors_of(tree.builder("shop").load_definitions());
    let error = only(&errors, LoadErrorKind::Settings);
    assert_eq!(error.file, tree.join("core/app.toml"));
    assert_eq!(error.json_path.as_deref(), Some("app.extends[0]"));
    assert!(
        error
            .message
            .starts_with("apps extend each other in a cycle: ")
            && error.message.matches(" → ").count() == 3,
        "{}",
        error.message
    );
}

#[test]
fn protected_elements_cannot_be_overridden() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/Locked/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        (
            "app/elements/pays/lockedUser/e.json",
            r#"{"type": "pays.Locked"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    assert_eq!(errors.len(), 1, "{errors}");
    let error = only(&errors, LoadErrorKind::ProtectedOverride);
    assert_eq!(error.file, tree.join("app/elements/pays/Locked/e.json"));
    assert_eq!(
        error.message,
        "`pays.Locked` is protected in layer `framework` (<framework>/pays/Locked/e.json) and cannot be overridden"
    );

    // Using a protected Type (without redefining it) is fine.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/lockedUser/e.json",
            r#"{"type": "pays.Locked"}"#,
        ),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    assert_eq!(
        defs.get("pays.Locked").expect("locked").access_modifier,
        AccessModifier::Protected
    );
}

#[test]
fn private_elements_are_invisible_to_higher_layers() {
    // Using a lower layer's private element as a type is an error.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/mine/e.json",
            r#"{"type": "pays.Internal"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let error = only(&errors, LoadErrorKind::PrivateType);
    assert_eq!(error.json_path.as_deref(), Some("type"));
    assert_eq!(
        error.message,
        "type `pays.Internal` is private to layer `framework` and cannot be used from layer `shop`"
    );

    // A higher layer defining the same name makes a new element, not an override; the
    // framework's own users keep the private one.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/Internal/e.json",
            r#"{"title": "app's own", "type": "pays.Meta"}"#,
        ),
        (
            "app/elements/pays/mine/e.json",
            r#"{"type": "pays.Internal"}"#,
        ),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    let own = defs.get("pays.Internal").expect("app's element");
    assert_eq!(own.layer, "shop");
    assert!(
        own.overrides.is_none(),
        "not an override of the private element"
    );
    let framework_user = defs.chain("pays.internalUser").expect("framework user");
    assert_eq!(framework_user.defs()[1].layer, "framework");
    assert_eq!(
        framework_user.defs()[1].access_modifier,
        AccessModifier::Private
    );
    assert_eq!(
        defs.chain("pays.mine").expect("mine").defs()[1]
            .title
            .as_deref(),
        Some("app's own")
    );
    assert_eq!(
        defs.iter_all().count(),
        defs.len() + 1,
        "the hidden private one still exists"
    );

    // Within one layer a private Type is usable.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/Hidden/e.json",
            r#"{"type": "pays.Meta", "accessModifier": "private"}"#,
        ),
        (
            "app/elements/shop/user/e.json",
            r#"{"type": "shop.Hidden"}"#,
        ),
    ]);
    tree.builder("app")
        .load_definitions()
        .expect("same-layer private type is fine");
}

#[test]
fn placeholders_fill_from_env_with_the_process_winning() {
    let tree = Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\n[env]\nPATH = \"from-app-toml\"\nJITRT_T2_A = \"file\"\nJITRT_T2_B = \"file\"\nJITRT_T2_Q = \"say \\\"hi\\\" \\\\ bye\"\n",
        ),
        ("app/elements/shop/x/e.json", r#"{"type": "pays.Meta"}"#),
        (
            "app/elements/shop/x/x.json",
            r#"{"path": "{{PATH}}", "a": "{{JITRT_T2_A}}", "b": "{{JITRT_T2_B}}", "q": "{{JITRT_T2_Q}}", "literal": "{{not a var}}"}"#,
        ),
    ]);
    let mut env = HashMap::new();
    env.insert("JITRT_T2_B".to_owned(), "builder".to_owned());
    env.insert("PATH".to_owned(), "from-builder".to_owned());
    let defs = tree
        .builder("app")
        .env(env)
        .load_definitions()
        .expect("loads");
    let chain = defs.chain("shop.x").expect("x");
    assert_eq!(
        chain.setting_str("path"),
        Some(std::env::var("PATH").expect("PATH").as_str())
    );
    assert_eq!(chain.setting_str("a"), Some("file"));
    assert_eq!(chain.setting_str("b"), Some("builder"));
    assert_eq!(
        chain.setting_str("q"),
        Some("say \"hi\" \\ bye"),
        "values are JSON-escaped"
    );
    assert_eq!(chain.setting_str("literal"), Some("{{not a var}}"));
    // The same filling is offered for other text (app.toml values).
    assert_eq!(
        defs.fill_placeholders("db://{{JITRT_T2_A}}/x", Path::new("app.toml"))
            .expect("filled"),
        "db://file/x"
    );
    let missing = defs
        .fill_placeholders("{{JITRT_T2_NOPE}}", Path::new("app.toml"))
        .expect_err("missing");
    assert_eq!(missing.variable, "JITRT_T2_NOPE");
    assert!(
        missing
            .to_string()
            .starts_with("app.toml: environment variable `JITRT_T2_NOPE`")
    );
}

#[test]
fn a_missing_variable_names_it_and_the_file() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/x/e.json",
            r#"{"type": "pays.Meta", "frontBundleEntry": "./settings.json"}"#,
        ),
        (
            "app/elements/shop/x/settings.json",
            "{\"apiKey\": \"{{JITRT_T3_MISSING_KEY}}\"}",
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let error = only(&errors, LoadErrorKind::MissingVariable);
    assert_eq!(error.file, tree.join("app/elements/shop/x/settings.json"));
    assert_eq!(
        error.message,
        "environment variable `JITRT_T3_MISSING_KEY` used by placeholder {{JITRT_T3_MISSING_KEY}} is not set (in [env] of app.toml or the process environment)"
    );
}

#[test]
fn config_file_problems() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/named/e.json",
            r#"{"type": "pays.Meta", "frontBundleEntry": "./cfg.json"}"#,
        ),
        (
            "app/elements/shop/broken/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        (
            "app/elements/shop/broken/broken.json",
            "{\"secret\": \"abc\",}",
        ),
        (
            "app/elements/shop/generic/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        ("app/elements/shop/generic/config.json", r#"{"k": 1}"#),
        (
            "app/elements/shop/tsx/e.json",
            r#"{"type": "pays.Meta", "frontBundleEntry": "./index.tsx"}"#,
        ),
        (
            "app/elements/shop/out/e.json",
            r#"{"type": "pays.Meta", "frontBundleEntry": "../generic/config.json"}"#,
        ),
    ]);
    let errors = errors_of(tree.builder("app").load_definitions());
    assert_eq!(errors.len(), 3, "{errors}");
    let outside = errors
        .iter()
        .find(|e| e.file == tree.join("app/elements/shop/out/e.json"))
        .expect("escaping config path");
    assert_eq!(outside.json_path.as_deref(), Some("frontBundleEntry"));
    assert_eq!(
        outside.message,
        "config file `../generic/config.json` named by frontBundleEntry must be inside the element folder"
    );
    tree.write(&[("app/elements/shop/out/e.json", r#"{"type": "pays.Meta"}"#)]);
    let named = errors
        .iter()
        .find(|e| e.file == tree.join("app/elements/shop/named/e.json"))
        .expect("missing named config");
    assert_eq!(named.kind, LoadErrorKind::Config);
    assert_eq!(
        named.message,
        "config file `./cfg.json` named by frontBundleEntry does not exist"
    );
    let broken = errors
        .iter()
        .find(|e| e.file == tree.join("app/elements/shop/broken/broken.json"))
        .expect("broken config");
    assert!(
        broken.message.starts_with("invalid JSON: trailing comma"),
        "{}",
        broken.message
    );
    assert!(!broken.message.contains("abc"), "no content in errors");

    tree.write(&[
        ("app/elements/shop/named/cfg.json", "{}"),
        ("app/elements/shop/broken/broken.json", "{}"),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    assert_eq!(
        defs.chain("shop.generic").expect("g").setting("k"),
        Some(&serde_json::json!(1))
    );
    assert!(defs.get("shop.tsx").expect("tsx").config.is_none());
}

#[test]
fn app_toml_problems() {
    let tree = Tree::new(&[("app/elements/.keep", "")]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let error = only(&errors, LoadErrorKind::Settings);
    assert_eq!(error.file, tree.join("app/app.toml"));
    assert!(
        error.message.starts_with("cannot read app.toml"),
        "{}",
        error.message
    );

    tree.write(&[(
        "app/app.toml",
        "[app]\norg = 3\nextends = \"x\"\n[env]\nA = [1]\n",
    )]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let paths: Vec<_> = errors
        .iter()
        .map(|e| e.json_path.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        ["app.name", "app.org", "app.extends", "env.A"],
        "{errors}"
    );

    tree.write(&[(
        "app/app.toml",
        "[app]\nname = \"s\"\norg = \"o\"\nextends = [\"../nowhere\"]\n",
    )]);
    let errors = errors_of(tree.builder("app").load_definitions());
    let error = only(&errors, LoadErrorKind::Settings);
    assert_eq!(error.json_path.as_deref(), Some("app.extends[0]"));
    assert!(
        error.message.contains("does not exist"),
        "{}",
        error.message
    );

    tree.write(&[("app/app.toml", "[app\nname = 1")]);
    let errors = errors_of(tree.builder("app").load_definitions());
    assert!(errors.0[0].message.starts_with("invalid TOML"), "{errors}");
}

#[test]
fn secrets_are_masked_in_debug_and_display_json() {
    let tree = Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\n[env]\nJITRT_T4_KEY = \"top-secret-value\"\n",
        ),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"type": "pays.TestPayType", "mchId": "1900000109"}"#,
        ),
        (
            "app/elements/pays/myPay/myPay.json",
            r#"{"apiKey": "{{JITRT_T4_KEY}}", "nested": {"apiKey": "{{JITRT_T4_KEY}}"}}"#,
        ),
    ]);
    let defs = tree.builder("app").load_definitions().expect("loads");
    let chain = defs.chain("pays.myPay").expect("myPay");
    assert_eq!(chain.setting_str("apiKey"), Some("top-secret-value"));
    let debug = format!("{:?}", chain.element());
    assert!(!debug.contains("top-secret-value"), "{debug}");
    assert!(
        debug.contains("1900000109"),
        "non-secret values stay visible: {debug}"
    );
    let shown = serde_json::to_string_pretty(&chain.to_json_masked()).expect("json");
    assert!(!shown.contains("top-secret-value"), "{shown}");
    let json = chain.to_json_masked();
    assert_eq!(json["config"]["apiKey"], MASK);
    assert_eq!(json["config"]["nested"]["apiKey"], MASK);
    assert_eq!(json["settings"]["apiKey"], MASK);
    assert_eq!(json["settings"]["mchId"], "1900000109");
    assert_eq!(json["settings"]["currency"], "CNY");
    assert_eq!(
        json["chain"],
        serde_json::json!(["pays.myPay", "pays.TestPayType", "pays.Meta"])
    );
    assert_eq!(json["functions"][0]["name"], "create");
    let secret = chain.secret_str("apiKey").expect("secret");
    assert_eq!(secret.to_string(), MASK);
    assert_eq!(format!("{secret:?}"), MASK);
    assert_eq!(secret.expose(), "top-secret-value");
    assert_eq!(serde_json::to_value(&secret).expect("ser"), MASK);
}

#[test]
fn find_elements_by_type() {
    let tree = three_layers();
    let defs = tree.builder("app").load_definitions().expect("loads");
    let names = |t: &str| -> Vec<String> {
        let selector = jit_runtime::Selector::parse(&format!(".{t}")).expect("selector");
        defs.select(&selector)
            .iter()
            .map(|chain| chain.element().full_name.to_string())
            .collect()
    };
    assert_eq!(names("pays.TestPayType"), ["pays.baseOnly", "pays.myPay"]);
    assert_eq!(
        names("pays.Meta"),
        [
            // `pays.Internal` is private to the framework layer: not listed in the app.
            "pays.Locked",
            "pays.TestPayType",
            "pays.baseOnly",
            "pays.internalUser",
            "pays.myPay"
        ]
    );
    assert!(names("pays.myPay").is_empty());
    assert!(defs.is_used_as_type("pays.TestPayType"));
    assert!(!defs.is_used_as_type("pays.myPay"));
    assert_eq!(defs.suggest("pays.mypay").as_deref(), Some("pays.myPay"));
}

#[test]
fn an_unreadable_e_json_is_an_io_error() {
    let tree = Tree::new(&[("app/app.toml", &app_toml("shop"))]);
    let path = tree.join("app/elements/shop/bin/e.json");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, [0xff, 0xfe, b'{', b'}']).expect("write");
    let errors = errors_of(tree.builder("app").load_definitions());
    let error = only(&errors, LoadErrorKind::Io);
    assert_eq!(error.file, path);
    assert_eq!(error.message, "cannot read e.json: not valid UTF-8");
    tree.write(&[("app/elements/shop/bin/e.json", "[1, 2]")]);
    let errors = errors_of(tree.builder("app").load_definitions());
    assert_eq!(
        only(&errors, LoadErrorKind::Parse).message,
        "e.json must hold a JSON object"
    );
}

#[test]
fn placeholder_syntax() {
    use jit_runtime::EnvSource;
    use std::collections::BTreeMap;
    let mut file = BTreeMap::new();
    file.insert("JITRT_P_A".to_owned(), "1".to_owned());
    file.insert("JITRT_P_B".to_owned(), "two".to_owned());
    let env = EnvSource::new(HashMap::new(), file);
    let fill = |text: &str| env.fill(text, Path::new("f.json"));
    assert_eq!(
        fill("{{JITRT_P_A}}{{JITRT_P_B}}").expect("adjacent"),
        "1two"
    );
    assert_eq!(fill("x{{ JITRT_P_A }}y").expect("spaces"), "x1y");
    assert_eq!(fill("{{JITRT_P_A").expect("unterminated"), "{{JITRT_P_A");
    assert_eq!(fill("{{{JITRT_P_A}}}").expect("extra braces"), "{1}");
    assert_eq!(fill("{{a-b}} {{}}").expect("not names"), "{{a-b}} {{}}");
    assert_eq!(
        EnvSource::placeholders("{{A}} {{ B }} {{c d}}"),
        ["A".to_owned(), "B".to_owned()]
    );
    let error = fill("ok {{JITRT_P_A}} {{JITRT_P_NONE}}").expect_err("missing");
    assert_eq!(error.variable, "JITRT_P_NONE");
    assert_eq!(error.file, Path::new("f.json"));
}

#[test]
fn listing_for_tools() {
    let tree = three_layers();
    let defs = tree.builder("app").load_definitions().expect("loads");
    let listing: Vec<String> = defs
        .iter()
        .filter(|chain| chain.element().full_name.as_str().starts_with("pays."))
        .map(|chain| format!("{chain} [{}]", chain.element().layer))
        .collect();
    assert_eq!(
        listing,
        [
            "pays.Internal → pays.Meta [framework]",
            "pays.Locked → pays.Meta [framework]",
            "pays.Meta [framework]",
            "pays.TestPayType → pays.Meta [shop]",
            "pays.baseOnly → pays.TestPayType → pays.Meta [base]",
            "pays.internalUser → pays.Internal → pays.Meta [framework]",
            "pays.myPay → pays.TestPayType → pays.Meta [shop]",
        ]
    );
    let shown = defs
        .chain("pays.TestPayType")
        .expect("type")
        .to_json_masked();
    assert_eq!(
        shown["overrides"],
        tree.join("base/elements/pays/TestPayType/e.json")
            .display()
            .to_string()
    );
    assert_eq!(shown["layer"], "shop");
}
