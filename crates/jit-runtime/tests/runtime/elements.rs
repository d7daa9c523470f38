//! Building and using elements: loaders, the cache under concurrency, typed access,
//! dynamic calls with argument checking, delegation to parent loaders, services.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Tree, app_toml};
use jit_runtime::{
    App, AppBuilder, CallContext, CallErrorKind, Chain, Element, ElementDef, ElementError,
    GetError, LoadContext, LoadErrorKind, Loader, Secret, WeakApp, provide_interfaces,
};
use serde_json::{Map, Value, json};

/// What hosted code sees of a pay element.
trait Pay: Send + Sync {
    fn currency(&self) -> String;
    fn api_key(&self) -> Secret<String>;
    fn label(&self) -> String;
}

/// An interface no fixture element provides.
trait Refund: Send + Sync {}

struct TestPay {
    def: Arc<ElementDef>,
    chain: Chain,
    app: WeakApp,
    label: String,
}

impl Pay for TestPay {
    fn currency(&self) -> String {
        self.chain
            .setting_str("currency")
            .unwrap_or("none")
            .to_owned()
    }
    fn api_key(&self) -> Secret<String> {
        self.chain.secret_str("apiKey").unwrap_or_default()
    }
    fn label(&self) -> String {
        self.label.clone()
    }
}

#[async_trait::async_trait]
impl Element for TestPay {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, jit_runtime::CallError> {
        match function {
            "create" => Ok(json!({"args": args, "by": cx.principal, "label": self.label})),
            "ping" => {
                // Elements reach other elements through their weak app handle.
                let meta = self.app.get_element("pays.Meta").await.is_ok();
                Ok(json!({"pong": true, "metaLoadable": meta, "label": self.label}))
            }
            other => Err(
                jit_runtime::CallError::function_not_found(format!("no {other}"))
                    .with_code("NO_SUCH"),
            ),
        }
    }

    provide_interfaces!(dyn Pay);
}

/// Builds TestPay elements, counting builds; fails while `failures` is above zero.
#[derive(Clone, Default)]
struct PayLoader {
    builds: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    delay: Duration,
}

#[async_trait::async_trait]
impl Loader for PayLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ElementError::msg("gateway unreachable"));
        }
        Ok(Arc::new(TestPay {
            def: cx.def().clone(),
            chain: cx.chain().clone(),
            app: cx.app().downgrade(),
            label: format!("built for the {} definition", cx.loader_def().layer),
        }))
    }
}

/// Loads Metas (and anything without a closer loader) as plain elements.
struct PlainLoader;

struct Plain(Arc<ElementDef>);

#[async_trait::async_trait]
impl Element for Plain {
    fn def(&self) -> &Arc<ElementDef> {
        &self.0
    }
}

#[async_trait::async_trait]
impl Loader for PlainLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(Plain(cx.def().clone())))
    }
}

fn shop() -> Tree {
    Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\n[env]\nJITRT_E_KEY = \"k-123\"\n",
        ),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"type": "pays.TestPayType", "mchId": "1900000109"}"#,
        ),
        (
            "app/elements/pays/myPay/myPay.json",
            r#"{"apiKey": "{{JITRT_E_KEY}}"}"#,
        ),
        (
            "app/elements/pays/early/e.json",
            r#"{"type": "pays.TestPayType", "backendLoadTime": "afterAppInit"}"#,
        ),
    ])
}

async fn build(tree: &Tree, loader: PayLoader) -> App {
    tree.builder("app")
        .loader("pays.TestPayType", loader)
        .loader("pays.Meta", PlainLoader)
        .loader("models.Meta", PlainLoader)
        .build()
        .await
        .unwrap_or_else(|e| panic!("build failed:\n{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_get_element_builds_once() {
    let tree = shop();
    let loader = PayLoader {
        delay: Duration::from_millis(50),
        ..PayLoader::default()
    };
    let app = build(&tree, loader.clone()).await;
    assert_eq!(
        loader.builds.load(Ordering::SeqCst),
        1,
        "afterAppInit element built by build()"
    );

    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get_element("pays.myPay").await })
        })
        .collect();
    let mut elements = Vec::new();
    for task in tasks {
        elements.push(task.await.expect("task").expect("element"));
    }
    assert_eq!(
        loader.builds.load(Ordering::SeqCst),
        2,
        "one more build for pays.myPay"
    );
    assert!(elements.iter().all(|e| Arc::ptr_eq(e, &elements[0])));
    let again = app.get_element("pays.myPay").await.expect("cached");
    assert!(Arc::ptr_eq(&again, &elements[0]));
    assert_eq!(loader.builds.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_reaches_every_waiter_and_is_retried() {
    let tree = shop();
    tree.write(&[(
        "app/elements/pays/early/e.json",
        r#"{"type": "pays.TestPayType"}"#,
    )]);
    let loader = PayLoader {
        delay: Duration::from_millis(50),
        failures: Arc::new(AtomicUsize::new(1)),
        ..PayLoader::default()
    };
    let app = build(&tree, loader.clone()).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get_element("pays.myPay").await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        let error = task.await.expect("task").expect_err("the one build failed");
        assert_eq!(
            error.to_string(),
            "building element `pays.myPay` failed: gateway unreachable"
        );
    }
    assert_eq!(
        loader.builds.load(Ordering::SeqCst),
        1,
        "waiters share the failed build"
    );
    app.get_element("pays.myPay")
        .await
        .expect("next call retries");
    assert_eq!(loader.builds.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn typed_access() {
    let tree = shop();
    let app = build(&tree, PayLoader::default()).await;
    let pay = app.get::<dyn Pay>("pays.myPay").await.expect("a Pay");
    assert_eq!(pay.currency(), "CNY");
    assert_eq!(pay.api_key().expose(), "k-123");
    assert_eq!(pay.api_key().to_string(), "******");
    let concrete = app
        .get::<TestPay>("pays.myPay")
        .await
        .expect("concrete type");
    assert_eq!(concrete.def.full_name.as_str(), "pays.myPay");
    let dynamic = app
        .get::<dyn Element>("pays.myPay")
        .await
        .expect("dyn Element");
    assert_eq!(dynamic.def().full_name.as_str(), "pays.myPay");

    let error = app
        .get::<dyn Refund>("pays.myPay")
        .await
        .err()
        .expect("not a Refund");
    assert!(matches!(error, GetError::WrongKind { .. }));
    assert!(
        error
            .to_string()
            .starts_with("element `pays.myPay` is not a `dyn ")
            && error.to_string().contains("Refund"),
        "{error}"
    );
    let error = app
        .get::<dyn Pay>("pays.Meta")
        .await
        .err()
        .expect("Meta is plain");
    assert!(matches!(error, GetError::WrongKind { .. }), "{error}");
    let error = app
        .get_element("pays.mypay")
        .await
        .err()
        .expect("not found");
    assert_eq!(
        error.to_string(),
        "no element `pays.mypay` (did you mean `pays.myPay`?)"
    );
}

#[tokio::test]
async fn call_checks_function_and_arguments() {
    let tree = shop();
    let app = build(&tree, PayLoader::default()).await;
    let user = CallContext::principal("u1");

    let ok = app
        .call(
            "pays.myPay",
            "create",
            json!({"subject": "tea", "amount": 100, "extra": {"a": [1]}}),
            &user,
        )
        .await
        .expect("valid call");
    assert_eq!(ok["args"]["amount"], 100);
    assert_eq!(ok["by"], "u1");

    let call = |args: Value| {
        let app = app.clone();
        let user = user.clone();
        async move {
            app.call("pays.myPay", "create", args, &user)
                .await
                .expect_err("refused")
        }
    };
    let missing = call(json!({"subject": "tea"})).await;
    assert_eq!(missing.kind, CallErrorKind::BadArguments);
    assert_eq!(missing.code(), "BAD_ARGUMENTS");
    assert_eq!(
        missing.message,
        "`pays.myPay.create`: missing required argument `amount` (Integer)"
    );
    let unknown = call(json!({"subject": "tea", "amount": 1, "colour": "red"})).await;
    assert_eq!(
        unknown.message,
        "`pays.myPay.create`: unknown argument `colour` (declared: subject, amount, orderId, extra)"
    );
    let wrong = call(json!({"subject": "tea", "amount": 1.5, "orderId": 7})).await;
    assert_eq!(
        wrong.message,
        "`pays.myPay.create`: argument `amount` must be Integer, got number; argument `orderId` must be Stext, got integer"
    );
    let null_required = call(json!({"subject": null, "amount": 1})).await;
    assert!(
        null_required
            .message
            .contains("missing required argument `subject` (Stext)")
    );
    let not_object = call(json!([1, 2])).await;
    assert_eq!(
        not_object.message,
        "arguments of `pays.myPay.create` must be a JSON object, got array"
    );

    let no_fn = app
        .call("pays.myPay", "refund", Value::Null, &user)
        .await
        .expect_err("no fn");
    assert_eq!(no_fn.kind, CallErrorKind::FunctionNotFound);
    assert_eq!(
        no_fn.message,
        "element `pays.myPay` declares no function `refund` (declared: create, ping)"
    );
    let anonymous = app
        .call(
            "pays.myPay",
            "create",
            json!({"subject": "t", "amount": 1}),
            &CallContext::anonymous(),
        )
        .await
        .expect_err("login required");
    assert_eq!(anonymous.kind, CallErrorKind::Unauthorized);
    assert_eq!(anonymous.code(), "UNAUTHORIZED");
    let pong = app
        .call("pays.myPay", "ping", Value::Null, &CallContext::anonymous())
        .await
        .expect("public function");
    assert_eq!(
        pong,
        json!({"pong": true, "metaLoadable": true, "label": "built for the framework definition"})
    );
    let nobody = app
        .call("pays.nobody", "ping", Value::Null, &user)
        .await
        .expect_err("404");
    assert_eq!(nobody.kind, CallErrorKind::NotFound);
    assert_eq!(nobody.code(), "NOT_FOUND");
}

#[tokio::test]
async fn find_elements_and_services() {
    struct Gateway(&'static str);
    let tree = shop();
    let app = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.Meta", PlainLoader)
        .provide(Arc::new(Gateway("sandbox")))
        .build()
        .await
        .expect("build");
    let names: Vec<_> = app
        .find_elements(".pays.TestPayType")
        .expect("a valid selector")
        .iter()
        .map(|d| d.full_name.to_string())
        .collect();
    assert_eq!(names, ["pays.early", "pays.myPay"]);
    assert_eq!(app.service::<Gateway>().expect("service").0, "sandbox");
    assert!(app.service::<String>().is_none());
    assert_eq!(app.settings().name, "shop");
    assert_eq!(app.chain("pays.myPay").expect("chain").len(), 3);
}

#[tokio::test]
async fn an_instance_without_a_loader_fails_build_but_not_load_definitions() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/users/e.json",
            r#"{"type": "models.Base"}"#,
        ),
    ]);
    tree.builder("app")
        .load_definitions()
        .expect("definitions need no loader");
    let errors = tree
        .builder("app")
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect_err("no loader for models");
    // models.Base has no instance but this one; only the instance needs a loader.
    assert_eq!(errors.len(), 1, "{errors}");
    let error = &errors.0[0];
    assert_eq!(error.kind, LoadErrorKind::NoLoader);
    assert_eq!(error.file, tree.join("app/elements/shop/users/e.json"));
    assert_eq!(
        error.message,
        "no loader is registered for any element of its chain shop.users → models.Base → \
         models.Meta in this host, so it cannot be built; a Type written in Rust needs the host \
         binary that registers its loader (see docs/extending.md); give `shop.users` code of its \
         own: a native plugin library in its folder named by its backendBundleEntry (`jit new \
         service shop.users` writes one to start from, see docs/plugins.md)"
    );
    // A Meta loader covers every element of its family.
    tree.builder("app")
        .loader("models.Meta", PlainLoader)
        .loader("pays.Meta", PlainLoader)
        .check()
        .expect("check passes");
    tree.builder("app")
        .loader("models.Meta", PlainLoader)
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("Meta loader suffices");
}

/// `check` and `build` of `tree`'s app with `loaders` registered: both must agree.
async fn check_and_build(
    tree: &Tree,
    loaders: &[&str],
) -> (
    Result<(), jit_runtime::LoadErrors>,
    Result<(), jit_runtime::LoadErrors>,
) {
    let builder = || {
        loaders.iter().fold(tree.builder("app"), |builder, name| {
            builder.loader(name, PlainLoader)
        })
    };
    (
        builder().check().map(drop),
        builder().build().await.map(drop),
    )
}

#[tokio::test]
async fn an_element_declaring_functions_needs_a_loader_even_when_it_is_no_instance() {
    // A service element straight under its Meta (like pays.services.PaySvc): its chain is
    // two long, so it is no instance, but its functions are served.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/ordersSvc/e.json",
            r#"{"type": "models.Meta", "functionList": [{"name": "list", "args": []}]}"#,
        ),
        // The same without functions is never built, and needs no loader.
        (
            "app/elements/shop/note/e.json",
            r#"{"type": "models.Meta"}"#,
        ),
    ]);
    let (checked, built) = check_and_build(&tree, &["pays.Meta"]).await;
    for errors in [checked.expect_err("check"), built.expect_err("build")] {
        assert_eq!(errors.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!(error.kind, LoadErrorKind::NoLoader);
        assert_eq!(error.file, tree.join("app/elements/shop/ordersSvc/e.json"));
        assert!(
            error.message.contains(
                "no loader is registered for any element of its chain shop.ordersSvc → \
                 models.Meta in this host, so every call of its functions would fail"
            ),
            "{error}"
        );
        assert!(error.message.contains("docs/extending.md"), "{error}");
        assert!(
            error.message.contains(
                "give `shop.ordersSvc` code of its own: a native plugin library in its folder \
                 named by its backendBundleEntry (`jit new service shop.ordersSvc` writes one"
            ),
            "{error}"
        );
    }
    // A Meta with functions of its own is callable too.
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/tools/Meta/e.json",
            r#"{"type": "", "functionList": [{"name": "ping", "args": []}]}"#,
        ),
    ]);
    let (checked, _) = check_and_build(&tree, &["pays.Meta"]).await;
    let errors = checked.expect_err("a callable Meta without a loader");
    assert_eq!(
        errors.of_kind(LoadErrorKind::NoLoader).count(),
        1,
        "{errors}"
    );
    let (checked, built) = check_and_build(&tree, &["pays.Meta", "tools.Meta"]).await;
    checked.expect("its own loader");
    built.expect("its own loader");
}

/// An app whose Type `shop.DiscountType` extends the fixture's `pays.TestPayType`, with an
/// instance; `type_extra` is added to the Type's e.json.
fn app_with_own_type(type_extra: &str) -> Tree {
    Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/shop/DiscountType/e.json",
            &format!(r#"{{"type": "pays.TestPayType", "discountPercent": 10{type_extra}}}"#),
        ),
        // An instance: `"."` is JitAi's default and names no code of the instance's own.
        (
            "app/elements/shop/members/e.json",
            r#"{"type": "shop.DiscountType", "backendBundleEntry": "."}"#,
        ),
    ])
}

#[tokio::test]
async fn a_type_of_the_app_that_ships_code_needs_a_loader_of_its_own() {
    let tree = app_with_own_type(r#", "backendBundleEntry": ".""#);
    // The parent's loader alone would build shop.members without the discount.
    let (checked, built) = check_and_build(&tree, &["pays.Meta", "pays.TestPayType"]).await;
    for errors in [checked.expect_err("check"), built.expect_err("build")] {
        assert_eq!(errors.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!(error.kind, LoadErrorKind::CodeNotInHost);
        assert_eq!(
            error.file,
            tree.join("app/elements/shop/DiscountType/e.json")
        );
        assert_eq!(error.json_path.as_deref(), Some("backendBundleEntry"));
        for part in [
            "`shop.DiscountType` says its backend code ships with it (backendBundleEntry \".\")",
            "this host has no loader for `shop.DiscountType`",
            "with the behaviour of `pays.TestPayType` and none of its own",
            "docs/extending.md",
        ] {
            assert!(error.message.contains(part), "`{part}` not in: {error}");
        }
    }

    // A loader registered for the Type itself builds it.
    let (checked, built) = check_and_build(
        &tree,
        &["pays.Meta", "pays.TestPayType", "shop.DiscountType"],
    )
    .await;
    checked.expect("own loader");
    built.expect("own loader");

    // A loader the host registers only when it serves (a native plugin) counts for check,
    // and build still wants the real one.
    tree.builder("app")
        .loader("pays.Meta", PlainLoader)
        .expect_loader("shop.DiscountType")
        .check()
        .expect("the expected loader counts for check");
    let errors = tree
        .builder("app")
        .loader("pays.Meta", PlainLoader)
        .expect_loader("shop.DiscountType")
        .build()
        .await
        .expect_err("build wants a registered loader");
    assert_eq!(
        errors.of_kind(LoadErrorKind::CodeNotInHost).count(),
        1,
        "{errors}"
    );

    // A Type with no backendBundleEntry is configuration only: the parent builds it.
    let tree = app_with_own_type("");
    let (checked, built) = check_and_build(&tree, &["pays.Meta", "pays.TestPayType"]).await;
    checked.expect("configuration-only Type");
    built.expect("configuration-only Type");
}

#[tokio::test]
async fn a_meta_of_the_app_that_ships_code_needs_its_own_loader() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/inv/Meta/e.json",
            r#"{"type": "", "backendBundleEntry": "."}"#,
        ),
        ("app/elements/inv/Stock/e.json", r#"{"type": "inv.Meta"}"#),
        ("app/elements/inv/shelf/e.json", r#"{"type": "inv.Stock"}"#),
    ]);
    // The Type's loader builds the instance, but the Meta's code would never run.
    let (checked, _) = check_and_build(&tree, &["pays.Meta", "inv.Stock"]).await;
    let errors = checked.expect_err("the Meta's code is missing");
    let error = errors
        .of_kind(LoadErrorKind::CodeNotInHost)
        .next()
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(error.message.contains("without any of its code"), "{error}");
    let (checked, built) = check_and_build(&tree, &["pays.Meta", "inv.Meta"]).await;
    checked.expect("own loader");
    built.expect("own loader");
}

#[tokio::test]
async fn after_app_init_failures_are_reported_by_build() {
    let tree = shop();
    let errors = tree
        .builder("app")
        .loader(
            "pays.TestPayType",
            PayLoader {
                failures: Arc::new(AtomicUsize::new(1)),
                ..PayLoader::default()
            },
        )
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect_err("early fails");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].kind, LoadErrorKind::Build);
    assert_eq!(
        errors.0[0].file,
        tree.join("app/elements/pays/early/e.json")
    );
    assert_eq!(
        errors.0[0].message,
        "building element `pays.early` failed: gateway unreachable"
    );
}

/// Wraps whatever the parent loader builds, recording that it did.
struct Wrapping {
    tag: &'static str,
}

struct Wrapped {
    inner: Arc<dyn Element>,
    tag: String,
}

#[async_trait::async_trait]
impl Element for Wrapped {
    fn def(&self) -> &Arc<ElementDef> {
        self.inner.def()
    }
    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, jit_runtime::CallError> {
        let mut out = self.inner.call(function, args, cx).await?;
        out["wrappedBy"] = json!(self.tag);
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Loader for Wrapping {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let inner = cx.load_with_parent().await?;
        Ok(Arc::new(Wrapped {
            inner,
            tag: format!(
                "{} at chain[{}] ({})",
                self.tag,
                cx.chain_index(),
                cx.loader_def().layer
            ),
        }))
    }
}

#[tokio::test]
async fn an_extending_type_delegates_to_its_parent_loader() {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        (
            "app/elements/pays/DiscountPayType/e.json",
            r#"{"type": "pays.TestPayType", "currency": "EUR"}"#,
        ),
        (
            "app/elements/pays/cheap/e.json",
            r#"{"type": "pays.DiscountPayType"}"#,
        ),
    ]);
    let app = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.DiscountPayType", Wrapping { tag: "discount" })
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("build");
    let out = app
        .call("pays.cheap", "ping", Value::Null, &CallContext::anonymous())
        .await
        .expect("call");
    assert_eq!(out["wrappedBy"], "discount at chain[1] (shop)");
    assert_eq!(out["pong"], true);
    // The wrapper does not provide `dyn Pay`; the chain still carries the settings.
    assert!(app.get::<dyn Pay>("pays.cheap").await.is_err());
    assert_eq!(
        app.chain("pays.cheap")
            .expect("chain")
            .setting_str("currency"),
        Some("EUR")
    );
}

#[tokio::test]
async fn a_shadowing_type_keeps_the_official_loader_and_can_delegate_to_it() {
    let files = [
        ("app/app.toml", app_toml("shop")),
        (
            "app/elements/pays/TestPayType/e.json",
            r#"{"title": "patched", "type": "pays.Meta", "functionList": [{"name": "ping", "loginRequired": false}]}"#.to_owned(),
        ),
        ("app/elements/pays/myPay/e.json", r#"{"type": "pays.TestPayType"}"#.to_owned()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let tree = Tree::new(&files);

    // Without an app loader, the official loader still builds the shadowing Type's instances.
    let app = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("build");
    let pay = app.get::<dyn Pay>("pays.myPay").await.expect("pay");
    assert_eq!(pay.label(), "built for the shop definition");
    assert_eq!(
        pay.currency(),
        "none",
        "the patched Type replaced the official settings"
    );

    // With its own loader for the same fullName, the app's loader runs and delegates.
    let app = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.TestPayType", Wrapping { tag: "patch" })
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("build");
    let out = app
        .call("pays.myPay", "ping", Value::Null, &CallContext::anonymous())
        .await
        .expect("call");
    assert_eq!(out["wrappedBy"], "patch at chain[1] (shop)");
    // The official loader, reached by delegation, sees the definition it was written for.
    assert_eq!(out["label"], "built for the framework definition");
}

#[tokio::test]
async fn weak_app_does_not_keep_the_app_alive() {
    let tree = shop();
    let app = build(&tree, PayLoader::default()).await;
    let pay = app.get_element("pays.myPay").await.expect("pay");
    let weak = app.downgrade();
    assert!(weak.get_element("pays.Meta").await.is_ok());
    drop(app);
    assert!(weak.upgrade().is_none(), "elements hold only weak handles");
    assert!(matches!(
        weak.get_element("pays.Meta").await,
        Err(GetError::AppGone)
    ));
    drop(pay);
}

#[tokio::test]
async fn load_with_parent_without_a_parent_is_an_error() {
    let tree = shop();
    let result = tree
        .builder("app")
        .loader("pays.TestPayType", Wrapping { tag: "alone" })
        .loader("pays.Internal", PlainLoader)
        .build()
        .await;
    let errors = result.expect_err("no parent loader for the afterAppInit element");
    assert_eq!(
        errors.0[0].message,
        "building element `pays.early` failed: no parent loader above `pays.TestPayType` on the chain"
    );
    let _ = AppBuilder::new(tree.path());
}

/// Builds an element that first gets the element named by its `needs` setting; when gated,
/// only once every gated build has reached that point.
#[derive(Default)]
struct Needy {
    gate: Option<Arc<tokio::sync::Barrier>>,
}

#[async_trait::async_trait]
impl Loader for Needy {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        if let Some(needed) = cx.chain().setting_str("needs") {
            if let Some(gate) = &self.gate {
                gate.wait().await;
            }
            cx.app().get_element(needed).await?;
        }
        Ok(Arc::new(Plain(cx.def().clone())))
    }
}

/// `dep.a` and `dep.b` need each other; `dep.c` needs `dep.d`, which needs nothing.
async fn needy_app(needy: Needy) -> (Tree, App) {
    let tree = Tree::new(&[
        ("app/app.toml", &app_toml("shop")),
        ("app/elements/dep/Meta/e.json", r#"{"type": ""}"#),
        ("app/elements/dep/Type/e.json", r#"{"type": "dep.Meta"}"#),
        (
            "app/elements/dep/a/e.json",
            r#"{"type": "dep.Type", "needs": "dep.b"}"#,
        ),
        (
            "app/elements/dep/b/e.json",
            r#"{"type": "dep.Type", "needs": "dep.a"}"#,
        ),
        (
            "app/elements/dep/c/e.json",
            r#"{"type": "dep.Type", "needs": "dep.d"}"#,
        ),
        ("app/elements/dep/d/e.json", r#"{"type": "dep.Type"}"#),
    ]);
    let app = tree
        .builder("app")
        .loader("dep.Meta", needy)
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("build");
    (tree, app)
}

#[tokio::test]
async fn loaders_that_need_each_other_get_an_error_not_a_hang() {
    let (_tree, app) = needy_app(Needy::default()).await;
    let error = tokio::time::timeout(Duration::from_secs(5), app.get_element("dep.a"))
        .await
        .expect("no hang")
        .err()
        .expect("cycle");
    assert_eq!(
        error.to_string(),
        "building element `dep.a` failed: building element `dep.b` failed: element `dep.a` depends on itself while being built: dep.a → dep.b → dep.a"
    );
    // Dependencies without a cycle build fine, and the failed ones can be retried.
    app.get_element("dep.c").await.expect("c needs d");
    assert!(app.get_element("dep.d").await.is_ok());
}

/// Two tasks each start one of two builds that need each other: each would join the
/// other's build and wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_started_by_two_tasks_that_need_each_other_fail_instead_of_hanging() {
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let (_tree, app) = needy_app(Needy { gate: Some(gate) }).await;
    let (a, b) = {
        let (app_a, app_b) = (app.clone(), app.clone());
        let a = tokio::spawn(async move { app_a.get_element("dep.a").await });
        let b = tokio::spawn(async move { app_b.get_element("dep.b").await });
        tokio::time::timeout(Duration::from_secs(5), async {
            (a.await.unwrap(), b.await.unwrap())
        })
        .await
        .expect("no hang")
    };
    let messages = [
        a.err().expect("a fails").to_string(),
        b.err().expect("b fails").to_string(),
    ];
    let refused: Vec<_> = messages
        .iter()
        .filter(|m| m.contains("depends on itself while being built: "))
        .collect();
    assert_eq!(refused.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.ends_with("dep.a → dep.b → dep.a") || m.ends_with("dep.b → dep.a → dep.b")),
        "{messages:?}"
    );
    // Nothing is left waiting: an element that needs nothing still builds.
    app.get_element("dep.d").await.expect("d");
}

#[tokio::test]
async fn preloaded_definitions_are_built_without_walking_the_tree_again() {
    let tree = shop();
    let definitions = tree.builder("app").load_definitions().expect("definitions");
    // Break the tree on disk: a second walk would now fail on this file.
    tree.write(&[("app/elements/pays/myPay/e.json", "{ not json")]);
    assert!(tree.builder("app").load_definitions().is_err());

    let checked = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.Meta", PlainLoader)
        .loader("models.Meta", PlainLoader)
        .definitions(definitions)
        .check()
        .expect("check uses the preloaded definitions");
    let app = tree
        .builder("app")
        .loader("pays.TestPayType", PayLoader::default())
        .loader("pays.Meta", PlainLoader)
        .loader("models.Meta", PlainLoader)
        .definitions(checked)
        .build()
        .await
        .expect("build uses the preloaded definitions");
    let pay = app.get::<dyn Pay>("pays.myPay").await.expect("a Pay");
    assert_eq!(pay.api_key().expose(), "k-123");
}

/// What the lifecycle hooks of [`Hooked`] elements did, in order.
#[derive(Default)]
struct HookLog(parking_lot::Mutex<Vec<String>>);

impl HookLog {
    fn push(&self, event: &str, element: &ElementDef) {
        self.0.lock().push(format!("{event} {}", element.full_name));
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// An element that records its hooks. Its first `on_load` fails when its e.json says
/// `"failFirstLoad": true`.
struct Hooked {
    def: Arc<ElementDef>,
    log: Arc<HookLog>,
    loaded: std::sync::atomic::AtomicBool,
    fail_load: bool,
}

#[async_trait::async_trait]
impl Element for Hooked {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn on_load(&self) -> Result<(), ElementError> {
        self.log.push("load", &self.def);
        if self.fail_load {
            return Err(ElementError::Other {
                message: "the warm-up failed".into(),
                source: None,
            });
        }
        self.loaded.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn on_called(&self) {
        assert!(
            self.loaded.load(Ordering::SeqCst),
            "handed out before onLoad"
        );
        self.log.push("called", &self.def);
    }

    async fn on_app_exit(&self) {
        self.log.push("exit", &self.def);
    }
}

/// Builds [`Hooked`] elements, after getting the element named by `needs` if any.
struct HookedLoader {
    log: Arc<HookLog>,
    loads: AtomicUsize,
}

#[async_trait::async_trait]
impl Loader for HookedLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        if let Some(needed) = cx.chain().setting_str("needs") {
            cx.app().get_element(needed).await?;
        }
        let first = self.loads.fetch_add(1, Ordering::SeqCst) == 0;
        let fail_first = cx.chain().setting("failFirstLoad") == Some(&json!(true));
        Ok(Arc::new(Hooked {
            def: cx.def().clone(),
            log: self.log.clone(),
            loaded: std::sync::atomic::AtomicBool::new(false),
            fail_load: first && fail_first,
        }))
    }
}

async fn hooked_app(extra: &[(&str, &str)]) -> (Tree, App, Arc<HookLog>) {
    let app_toml = app_toml("shop");
    let mut files = vec![
        ("app/app.toml", app_toml.as_str()),
        ("app/elements/hook/Meta/e.json", r#"{"type": ""}"#),
        ("app/elements/hook/Type/e.json", r#"{"type": "hook.Meta"}"#),
    ];
    files.extend_from_slice(extra);
    let tree = Tree::new(&files);
    let log = Arc::new(HookLog::default());
    let app = tree
        .builder("app")
        .loader(
            "hook.Meta",
            HookedLoader {
                log: log.clone(),
                loads: AtomicUsize::new(0),
            },
        )
        .loader("pays.Meta", PlainLoader)
        .build()
        .await
        .expect("build");
    (tree, app, log)
}

#[tokio::test]
async fn lifecycle_hooks_run_on_load_on_each_call_and_once_at_exit() {
    let (_tree, app, log) = hooked_app(&[
        (
            "app/elements/hook/a/e.json",
            r#"{"type": "hook.Type", "needs": "hook.b"}"#,
        ),
        ("app/elements/hook/b/e.json", r#"{"type": "hook.Type"}"#),
        (
            "app/elements/hook/unused/e.json",
            r#"{"type": "hook.Type"}"#,
        ),
    ])
    .await;
    app.get_element("hook.a").await.unwrap();
    app.get_element("hook.a").await.unwrap();
    app.get::<dyn Element>("hook.b").await.unwrap();
    assert_eq!(
        log.take(),
        [
            "load hook.b",
            "called hook.b", // hook.a's loader asking for it
            "load hook.a",
            "called hook.a",
            "called hook.a",
            "called hook.b",
        ]
    );
    app.exit().await;
    // The most recently built first; the element never built has nothing to stop.
    assert_eq!(log.take(), ["exit hook.a", "exit hook.b"]);
    app.exit().await;
    assert!(log.take().is_empty(), "exit runs once");
}

#[tokio::test]
async fn a_failing_on_load_fails_the_build_and_is_tried_again() {
    let (_tree, app, log) = hooked_app(&[(
        "app/elements/hook/warm/e.json",
        r#"{"type": "hook.Type", "failFirstLoad": true}"#,
    )])
    .await;
    let error = app.get_element("hook.warm").await.err().expect("fails");
    assert_eq!(
        error.to_string(),
        "building element `hook.warm` failed: the warm-up failed"
    );
    app.get_element("hook.warm")
        .await
        .expect("the second build");
    assert_eq!(
        log.take(),
        ["load hook.warm", "load hook.warm", "called hook.warm"]
    );
    app.exit().await;
    // Only the element that finished loading is stopped.
    assert_eq!(log.take(), ["exit hook.warm"]);
}
