//! A small element family of the tests' own, so the HTTP surface is tested apart from
//! payments: `fixture.Meta` and one service instance with a function per behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jit_runtime::{CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader};
use serde_json::{Map, Value, json};

/// Loader of `fixture.Meta`.
pub struct FixtureLoader;

#[jit_runtime::async_trait]
impl Loader for FixtureLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(EchoService {
            def: cx.def().clone(),
            in_flight: AtomicUsize::new(0),
        }))
    }
}

struct EchoService {
    def: Arc<ElementDef>,
    /// `slow` calls not finished yet.
    in_flight: AtomicUsize,
}

/// The file, beside the service's e.json, that its onAppExit writes.
pub const EXIT_RECORD: &str = "exited.txt";

#[jit_runtime::async_trait]
impl Element for EchoService {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    /// Records how many `slow` calls were still running when the app stopped.
    async fn on_app_exit(&self) {
        let record = self.def.source.with_file_name(EXIT_RECORD);
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        std::fs::write(record, format!("in flight at exit: {in_flight}"))
            .expect("the fixture app dir is writable");
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        match function {
            "echo" => Ok(json!({
                "text": args.get("text"),
                "times": args.get("times"),
                "principal": cx.principal,
                "requestId": cx.request_id,
                "peer": cx.peer.map(|peer| peer.to_string()),
            })),
            "ping" => Ok(json!({"pong": true})),
            "conflict" => Err(CallError::conflict("the thing is already done")),
            "upstream" => Err(CallError::upstream("the gateway answered SYSTEMERROR")),
            // Specific codes whose names say nothing about their category.
            "refused" => Err(CallError::conflict("the thing is locked").with_code("INVALID_STATE")),
            "missing" => Err(CallError::not_found("no such thing").with_code("THING_GONE")),
            "internal" => Err(CallError::internal(
                "cannot open /var/lib/secret-path/db: permission denied",
            )),
            "boom" => panic!("fixture panic on purpose"),
            // An error of the category and with the message the caller asks for: what an
            // element might answer when its configuration is broken, or when it quotes what
            // the request carried.
            "fail" => {
                let text = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or_default();
                let message = text("message").to_owned();
                Err(match text("kind") {
                    "bad" => CallError::bad_arguments(message),
                    "upstream" => CallError::upstream(message),
                    "conflict" => CallError::conflict(message),
                    "panic" => panic!("{message}"),
                    _ => CallError::internal(message),
                })
            }
            "slow" => {
                let millis = args.get("ms").and_then(Value::as_u64).unwrap_or(500);
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(json!({"slept": millis}))
            }
            // How many `slow` calls are running: tests wait on it instead of sleeping.
            "inFlight" => Ok(json!({"inFlight": self.in_flight.load(Ordering::SeqCst)})),
            "xmlEcho" => {
                let body = args.get("xml").and_then(Value::as_str).unwrap_or_default();
                Ok(Value::String(format!(
                    "<xml><return_code><![CDATA[SUCCESS]]></return_code><length>{}</length></xml>",
                    body.len()
                )))
            }
            other => Err(CallError::new(
                jit_runtime::CallErrorKind::FunctionNotFound,
                format!("no function {other}"),
            )),
        }
    }
}

/// `fixture/Meta/e.json`.
pub const META: &str = r#"{"title": "Fixture family"}"#;

/// `fixture/services/EchoSvc/e.json`.
pub const ECHO_SVC: &str = r#"{
  "type": "fixture.Meta",
  "title": "Echo service",
  "functionList": [
    {"name": "echo", "args": [
      {"name": "text", "dataType": "Stext"},
      {"name": "times", "dataType": "Integer", "required": false}
    ]},
    {"name": "ping", "args": [], "loginRequired": false},
    {"name": "conflict", "args": []},
    {"name": "upstream", "args": []},
    {"name": "refused", "args": []},
    {"name": "missing", "args": []},
    {"name": "internal", "args": []},
    {"name": "boom", "args": []},
    {"name": "fail", "args": [
      {"name": "kind", "dataType": "Stext"},
      {"name": "message", "dataType": "Ltext"}
    ]},
    {"name": "slow", "args": [{"name": "ms", "dataType": "Integer"}]},
    {"name": "inFlight", "args": []},
    {"name": "xmlEcho", "args": [{"name": "xml", "dataType": "Ltext"}],
     "loginRequired": false, "bodyFormat": "xml"}
  ]
}"#;
