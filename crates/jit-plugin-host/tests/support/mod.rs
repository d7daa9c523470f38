//! Shared by the plugin tests: building the plugin crates, temporary app trees, and a fixture
//! parent Type standing in for `pays.WechatPayType`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jit_runtime::{
    App, AppBuilder, CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader,
};
use serde_json::{Map, Value, json};

/// The cdylibs the tests load, built with the workspace's own cargo and target dir.
pub struct BuiltPlugins {
    pub discount: PathBuf,
    pub probe: PathBuf,
    pub bad_abi: PathBuf,
    /// `test-abi1-plugin`: built as ABI version 1 plugins were.
    pub abi1: PathBuf,
}

/// Builds the three plugin crates once per test binary (a no-op when they are up to date)
/// and returns their library files, as cargo reports them.
pub fn built_plugins() -> &'static BuiltPlugins {
    static BUILT: OnceLock<BuiltPlugins> = OnceLock::new();
    BUILT.get_or_init(|| {
        // Benchmarks (optimised builds) measure optimised plugins too.
        let mut libraries = test_support::build_cdylibs(
            &[
                "example-discount-plugin",
                "test-probe-plugin",
                "test-bad-plugin",
                "test-abi1-plugin",
            ],
            !cfg!(debug_assertions),
        );
        let mut take = |name: &str| {
            libraries
                .remove(name)
                .unwrap_or_else(|| panic!("cargo reported no cdylib for `{name}`"))
        };
        BuiltPlugins {
            discount: take("example_discount_plugin"),
            probe: take("test_probe_plugin"),
            bad_abi: take("test_bad_plugin"),
            abi1: take("test_abi1_plugin"),
        }
    })
}

pub use test_support::library_file_name;

/// A temporary app: `app.toml` and `elements/`.
pub struct TempApp {
    pub dir: tempfile::TempDir,
}

impl TempApp {
    pub fn new(name: &str) -> Self {
        let app = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        app.write(
            "app.toml",
            &format!("[app]\nname = \"{name}\"\norg = \"acme\"\n"),
        );
        app
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, content: &str) {
        let file = self.dir.path().join(relative);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    /// Writes `elements/<folder>/e.json`.
    pub fn element(&self, folder: &str, e_json: Value) {
        self.write(
            &format!("elements/{folder}/e.json"),
            &serde_json::to_string_pretty(&e_json).expect("json"),
        );
    }

    /// Copies `library` into `elements/<folder>/<file_name>`.
    pub fn install(&self, folder: &str, library: &Path, file_name: &str) {
        let target = self
            .dir
            .path()
            .join("elements")
            .join(folder)
            .join(file_name);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(library, &target).expect("copy plugin library");
    }

    /// A builder for this app with the fixture parent's loader registered.
    pub fn builder(&self) -> AppBuilder {
        AppBuilder::new(self.path()).loader("pays.WechatPayType", FixturePayLoader)
    }

    pub fn definitions(&self) -> jit_runtime::Definitions {
        AppBuilder::new(self.path())
            .load_definitions()
            .unwrap_or_else(|errors| panic!("fixture app does not load:\n{errors}"))
    }

    /// `pays.Meta` and a fixture `pays.WechatPayType` with create/check/cancel/markPaid/explode.
    pub fn with_fixture_parent(self) -> Self {
        self.element("pays/Meta", json!({"title": "Payments", "type": ""}));
        let order_id = json!({"name": "orderId", "dataType": "Stext"});
        self.element(
            "pays/WechatPayType",
            json!({
                "title": "Fixture WeChat Pay Type",
                "type": "pays.Meta",
                "backendBundleEntry": ".",
                "secretKeys": ["apiKey"],
                "functionList": [
                    {"name": "create", "args": [
                        {"name": "subject", "dataType": "Stext"},
                        {"name": "amount", "dataType": "Any"},
                        {"name": "orderId", "dataType": "Stext", "required": false}
                    ]},
                    {"name": "check", "args": [order_id]},
                    {"name": "cancel", "args": [order_id]},
                    {"name": "markPaid", "args": [order_id]},
                    {"name": "explode", "args": []}
                ]
            }),
        );
        self
    }
}

/// The caller every test uses.
pub fn caller() -> CallContext {
    CallContext::principal("tester")
}

/// Loader of the fixture parent Type.
pub struct FixturePayLoader;

#[jit_runtime::async_trait]
impl Loader for FixturePayLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let mch_id = cx
            .chain()
            .setting_str("mchId")
            .ok_or_else(|| ElementError::MissingSetting {
                key: "mchId".to_owned(),
            })?
            .to_owned();
        Ok(Arc::new(FixturePay {
            def: cx.def().clone(),
            mch_id,
            orders: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }))
    }
}

/// An in-memory stand-in for a pay Type: orders keyed by orderId, amounts kept as given.
pub struct FixturePay {
    def: Arc<ElementDef>,
    mch_id: String,
    orders: Mutex<HashMap<String, Value>>,
    next_id: AtomicU64,
}

fn order_id(args: &Map<String, Value>) -> Result<String, CallError> {
    args.get("orderId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CallError::bad_arguments("orderId is required"))
}

#[jit_runtime::async_trait]
impl Element for FixturePay {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, CallError> {
        // Yield once, so a parent call really goes through the runtime's scheduler.
        tokio::task::yield_now().await;
        let mut orders = self.orders.lock().expect("orders lock");
        match function {
            "create" => {
                let id = match args.get("orderId").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => format!("T{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
                };
                if orders.contains_key(&id) {
                    return Err(CallError::conflict(format!("order {id} already exists")));
                }
                let order = json!({
                    "orderId": id,
                    "subject": args["subject"],
                    "amount": args["amount"],
                    "status": "wait",
                    "mchId": self.mch_id,
                    "element": self.def.full_name.to_string(),
                });
                orders.insert(id, order.clone());
                Ok(order)
            }
            "check" => {
                let id = order_id(&args)?;
                orders.get(&id).cloned().ok_or_else(|| order_not_found(&id))
            }
            "cancel" | "markPaid" => {
                let id = order_id(&args)?;
                let order = orders.get_mut(&id).ok_or_else(|| order_not_found(&id))?;
                if order["status"] != "wait" {
                    return Err(CallError::conflict(format!(
                        "order {id} is {}",
                        order["status"].as_str().unwrap_or("?")
                    )));
                }
                order["status"] = json!(if function == "cancel" {
                    "close"
                } else {
                    "success"
                });
                Ok(order.clone())
            }
            "explode" => {
                drop(orders);
                panic!("fixture parent exploding on request")
            }
            other => Err(CallError::new(
                jit_runtime::CallErrorKind::FunctionNotFound,
                format!("fixture has no {other}"),
            )),
        }
    }
}

/// An app with the discount Type (10% off, from the Type's e.json), two instances of it (one
/// overriding the discount to 50%), the probe Type with one instance, and a plain instance
/// of the fixture parent.
pub fn shop() -> TempApp {
    let plugins = built_plugins();
    let app = TempApp::new("shop").with_fixture_parent();
    let discount_file = library_file_name("example_discount_plugin");
    app.element(
        "pays/DiscountWechatPayType",
        json!({
            "title": "WeChat Pay with a discount",
            "type": "pays.WechatPayType",
            "backendBundleEntry": discount_file,
            "discountPercent": 10
        }),
    );
    app.install(
        "pays/DiscountWechatPayType",
        &plugins.discount,
        &discount_file,
    );
    app.element(
        "pays/myDiscountPay",
        json!({"type": "pays.DiscountWechatPayType", "mchId": "1900000109", "apiKey": "k-secret-1"}),
    );
    app.element(
        "pays/halfPricePay",
        json!({"type": "pays.DiscountWechatPayType", "mchId": "1900000110", "discountPercent": 50}),
    );

    let probe_file = library_file_name("test_probe_plugin");
    app.element(
        "pays/ProbeType",
        json!({
            "type": "pays.WechatPayType",
            "backendBundleEntry": format!("./{probe_file}"),
            "functionList": [
                {"name": "echo", "args": [{"name": "note", "dataType": "Any", "required": false}]},
                {"name": "forward", "args": [
                    {"name": "function", "dataType": "Stext"},
                    {"name": "args", "dataType": "JSON", "required": false}
                ]},
                {"name": "panic", "args": []},
                {"name": "lookup", "args": [{"name": "name", "dataType": "Stext"}]},
                {"name": "find", "args": [{"name": "selector", "dataType": "Stext"}]},
                {"name": "callElement", "args": [
                    {"name": "element", "dataType": "Stext"},
                    {"name": "function", "dataType": "Stext"},
                    {"name": "args", "dataType": "JSON", "required": false}
                ]},
                {"name": "bounce", "args": [{"name": "to", "dataType": "Stext"}]}
            ]
        }),
    );
    app.install("pays/ProbeType", &plugins.probe, &probe_file);
    app.element(
        "pays/plainPay",
        json!({"type": "pays.WechatPayType", "mchId": "1900000112"}),
    );
    app.element(
        "pays/myProbe",
        json!({"type": "pays.ProbeType", "mchId": "1900000111", "apiKey": "k-secret-2"}),
    );
    app
}

pub async fn build(app: &TempApp) -> App {
    let builder = jit_plugin_host::register_plugins(app.builder(), &app.definitions())
        .unwrap_or_else(|errors| panic!("plugins refused:\n{errors}"));
    builder
        .build()
        .await
        .unwrap_or_else(|errors| panic!("app does not build:\n{errors}"))
}

fn order_not_found(id: &str) -> CallError {
    CallError::not_found(format!("no order {id}")).with_code("ORDER_NOT_FOUND")
}
