//! App generations: a new generation built beside the running one (kept and rebuilt
//! elements), weak handles following the current one, requests pinned to the old one,
//! retirement, a failed next build; and `cacheLevel: 1` (an instance per request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Tree, app_toml};
use jit_runtime::{
    App, AppBuilder, CacheLevel, CallContext, Element, ElementDef, ElementError, LoadContext,
    LoadErrorKind, Loader, ReplaceError,
};
use serde_json::{Map, Value, json};

/// The hooks elements ran, in order.
#[derive(Default)]
struct Log(parking_lot::Mutex<Vec<String>>);

impl Log {
    fn push(&self, event: &str, def: &ElementDef) {
        self.0.lock().push(format!("{event} {}", def.full_name));
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

/// An element that knows which instance it is and logs its exit.
struct Counted {
    def: Arc<ElementDef>,
    instance: u64,
    log: Arc<Log>,
}

#[async_trait::async_trait]
impl Element for Counted {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        _function: &str,
        _args: Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, jit_runtime::CallError> {
        Ok(json!(self.instance))
    }

    async fn on_app_exit(&self) {
        self.log.push("exit", &self.def);
    }
}

/// Builds [`Counted`] elements, numbering the instances.
struct CountedLoader {
    next: AtomicU64,
    log: Arc<Log>,
}

#[async_trait::async_trait]
impl Loader for CountedLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(Counted {
            def: cx.def().clone(),
            instance: self.next.fetch_add(1, Ordering::SeqCst) + 1,
            log: self.log.clone(),
        }))
    }
}

const META: &str = r#"{"type": ""}"#;
const TYPE: &str =
    r#"{"type": "c.Meta", "functionList": [{"name": "instance", "loginRequired": false}]}"#;

struct Fixture {
    tree: Tree,
    loader: Arc<dyn Loader>,
    log: Arc<Log>,
}

impl Fixture {
    fn new(elements: &[(&str, &str)]) -> Self {
        let app_toml = app_toml("shop");
        let mut files = vec![
            ("app/app.toml", app_toml.as_str()),
            ("app/elements/c/Meta/e.json", META),
            ("app/elements/c/Type/e.json", TYPE),
        ];
        files.extend_from_slice(elements);
        let log = Arc::new(Log::default());
        Self {
            tree: Tree::new(&files),
            loader: Arc::new(CountedLoader {
                next: AtomicU64::new(0),
                log: log.clone(),
            }),
            log,
        }
    }

    /// A builder as a host makes one per generation: the same shared loader each time.
    fn builder(&self) -> AppBuilder {
        AppBuilder::new(self.tree.join("app")).shared_loader("c.Meta", self.loader.clone())
    }

    async fn build(&self) -> App {
        self.builder().build().await.expect("build")
    }
}

fn same(a: &Arc<dyn Element>, b: &Arc<dyn Element>) -> bool {
    Arc::ptr_eq(a, b)
}

/// Polls `check` until it holds, failing after a deadline.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_next_generation_keeps_unchanged_elements_and_rebuilds_changed_ones() {
    let fx = Fixture::new(&[
        ("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#),
        ("app/elements/c/b/e.json", r#"{"type": "c.Type"}"#),
        ("app/elements/c/gone/e.json", r#"{"type": "c.Type"}"#),
        ("app/elements/c/b/b.json", r#"{"greeting": "hello"}"#),
    ]);
    let first = fx.build().await;
    let a = first.get_element("c.a").await.unwrap();
    let b = first.get_element("c.b").await.unwrap();
    first.get_element("c.gone").await.unwrap();

    // b's config file changes, gone goes, new comes.
    fx.tree.write(&[
        ("app/elements/c/b/b.json", r#"{"greeting": "bonjour"}"#),
        ("app/elements/c/new/e.json", r#"{"type": "c.Type"}"#),
    ]);
    std::fs::remove_dir_all(fx.tree.join("app/elements/c/gone")).unwrap();
    let next = fx.builder().build_next(&first).await.expect("next");
    assert_eq!(next.app.generation(), 2);
    assert_eq!(next.changes.added, ["c.new"]);
    assert_eq!(next.changes.removed, ["c.gone"]);
    assert_eq!(next.changes.changed, ["c.b"]);
    assert_eq!(next.changes.kept, ["c.a"]);

    let second = next.app.clone();
    assert!(same(&second.get_element("c.a").await.unwrap(), &a));
    let b2 = second.get_element("c.b").await.unwrap();
    assert!(!same(&b2, &b), "a changed definition is built afresh");
    // Not served yet: the first generation is still current.
    assert!(first.is_current());
    next.make_current(Duration::from_secs(30)).unwrap();
    assert!(!first.is_current() && second.is_current());

    // Once nothing holds the first generation, what it alone had stops, once.
    drop((a, b, b2));
    drop(first);
    eventually("the first generation's retirement", || {
        fx.log.snapshot().len() == 2
    })
    .await;
    let mut stopped = fx.log.take();
    stopped.sort();
    assert_eq!(stopped, ["exit c.b", "exit c.gone"]);

    // At exit: the kept element (built by the first generation) and the new b, once each.
    second.exit().await;
    assert_eq!(fx.log.take(), ["exit c.b", "exit c.a"]);
}

#[tokio::test]
async fn a_loader_that_is_not_the_same_rebuilds_even_an_unchanged_element() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let first = fx.build().await;
    let a = first.get_element("c.a").await.unwrap();
    // The same definitions, another loader value (a plugin library that changed).
    let other: Arc<dyn Loader> = Arc::new(CountedLoader {
        next: AtomicU64::new(100),
        log: fx.log.clone(),
    });
    let next = AppBuilder::new(fx.tree.join("app"))
        .shared_loader("c.Meta", other)
        .build_next(&first)
        .await
        .unwrap();
    // Every element the loader builds changed with it (the Type and Meta too).
    assert_eq!(next.changes.changed, ["c.Meta", "c.Type", "c.a"]);
    assert!(next.changes.kept.is_empty());
    assert!(!same(&next.app.get_element("c.a").await.unwrap(), &a));
}

#[tokio::test]
async fn weak_handles_reach_the_current_generation() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let first = fx.build().await;
    let weak = first.downgrade();
    let live = first.live();
    assert!(weak.get_element("c.new").await.is_err());

    fx.tree
        .write(&[("app/elements/c/new/e.json", r#"{"type": "c.Type"}"#)]);
    let next = fx.builder().build_next(&first).await.unwrap();
    next.make_current(Duration::from_secs(30)).unwrap();

    assert_eq!(weak.upgrade().expect("alive").generation(), 2);
    weak.get_element("c.new")
        .await
        .expect("the new element, through the weak handle");
    assert_eq!(live.current().generation(), 2);
    // The pinned handle still answers from its own generation.
    assert_eq!(first.generation(), 1);
    assert!(first.chain("c.new").is_none());
}

#[tokio::test]
async fn a_request_pinned_to_the_old_generation_finishes_on_it() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let live = fx.build().await.live();
    // A request starts: it pins the generation served now.
    let request = live.current();
    let before = request.get_element("c.a").await.unwrap();

    fx.tree.write(&[(
        "app/elements/c/a/e.json",
        r#"{"type": "c.Type", "title": "changed"}"#,
    )]);
    let next = fx.builder().build_next(&live.current()).await.unwrap();
    next.make_current(Duration::from_secs(30)).unwrap();

    // The request keeps its generation and its element; a new request gets the new one.
    assert_eq!(request.generation(), 1);
    assert!(same(&request.get_element("c.a").await.unwrap(), &before));
    let cx = CallContext::anonymous();
    assert_eq!(
        request
            .call("c.a", "instance", Value::Null, &cx)
            .await
            .unwrap(),
        json!(1)
    );
    assert_eq!(
        live.current()
            .call("c.a", "instance", Value::Null, &cx)
            .await
            .unwrap(),
        json!(2)
    );
    // The old element is not stopped while the request runs...
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        fx.log.snapshot().is_empty(),
        "stopped under a running request"
    );
    // ... and is once it ends.
    drop((request, before));
    eventually("the old element's exit", || {
        fx.log.snapshot() == ["exit c.a"]
    })
    .await;
}

#[tokio::test]
async fn a_generation_still_held_is_retired_after_the_grace() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let first = fx.build().await;
    first.get_element("c.a").await.unwrap();
    fx.tree.write(&[(
        "app/elements/c/a/e.json",
        r#"{"type": "c.Type", "title": "changed"}"#,
    )]);
    let next = fx.builder().build_next(&first).await.unwrap();
    next.make_current(Duration::from_millis(50)).unwrap();
    // `first` is still held (a request that never ends): the grace bounds the wait.
    eventually("retirement after the grace", || {
        fx.log.snapshot() == ["exit c.a"]
    })
    .await;
    first.exit().await;
    assert_eq!(fx.log.take(), ["exit c.a"], "stopped once");
}

#[tokio::test]
async fn a_failed_next_build_leaves_the_running_generation_untouched() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let first = fx.build().await;
    let a = first.get_element("c.a").await.unwrap();
    fx.tree.write(&[
        (
            "app/elements/c/a/e.json",
            r#"{"type": "c.Type", "cacheLevel": 7}"#,
        ),
        ("app/elements/c/new/e.json", r#"{"type": "c.Type"}"#),
    ]);
    let errors = fx
        .builder()
        .build_next(&first)
        .await
        .err()
        .expect("refused");
    let shown = errors.to_string();
    assert!(shown.contains("c/a/e.json"), "{shown}");
    assert!(shown.contains("cacheLevel"), "{shown}");
    let live = first.live().current();
    assert_eq!(live.generation(), 1);
    assert!(live.chain("c.new").is_none());
    assert!(same(&live.get_element("c.a").await.unwrap(), &a));

    // A generation built but abandoned stops only its own elements.
    fx.tree
        .write(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let next = fx.builder().build_next(&first).await.unwrap();
    next.app.get_element("c.new").await.unwrap();
    next.abandon().await;
    assert_eq!(fx.log.take(), ["exit c.new"]);
    assert!(first.is_current());
}

#[tokio::test]
async fn a_next_generation_built_beside_a_replaced_one_is_refused() {
    let fx = Fixture::new(&[("app/elements/c/a/e.json", r#"{"type": "c.Type"}"#)]);
    let first = fx.build().await;
    let one = fx.builder().build_next(&first).await.unwrap();
    let two = fx.builder().build_next(&first).await.unwrap();
    one.make_current(Duration::from_secs(1)).unwrap();
    let refused = two.make_current(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(refused, ReplaceError::Stale { .. }), "{refused}");
    first.exit().await;
    let after_exit = fx.builder().build_next(&first).await.unwrap();
    assert!(matches!(
        after_exit.make_current(Duration::from_secs(1)),
        Err(ReplaceError::Exited(_))
    ));
}

#[tokio::test]
async fn cache_level_1_builds_an_instance_per_request_shared_within_it() {
    let fx = Fixture::new(&[
        (
            "app/elements/c/perRequest/e.json",
            r#"{"type": "c.Type", "cacheLevel": 1}"#,
        ),
        (
            "app/elements/c/once/e.json",
            r#"{"type": "c.Type", "cacheLevel": 0}"#,
        ),
    ]);
    let app = fx.build().await;
    assert_eq!(
        app.chain("c.perRequest").unwrap().cache_level(),
        CacheLevel::Request
    );
    assert_eq!(
        app.chain("c.once").unwrap().cache_level(),
        CacheLevel::Process
    );
    let call = |cx: CallContext, name: &'static str| {
        let app = app.clone();
        async move { app.call(name, "instance", Value::Null, &cx).await.unwrap() }
    };
    let request_one = CallContext::anonymous();
    let first = call(request_one.clone(), "c.perRequest").await;
    // Several calls within one request share the request's instance.
    assert_eq!(call(request_one.clone(), "c.perRequest").await, first);
    assert!(same(
        &app.get_element_in("c.perRequest", &request_one)
            .await
            .unwrap(),
        &app.get_element_in("c.perRequest", &request_one.clone())
            .await
            .unwrap()
    ));
    // Another request, another instance.
    let second = call(CallContext::anonymous(), "c.perRequest").await;
    assert_ne!(first, second);
    // cacheLevel 0: one instance for every request.
    let once = call(CallContext::anonymous(), "c.once").await;
    assert_eq!(call(CallContext::anonymous(), "c.once").await, once);
    // Per-request instances are the request's: the app does not stop them.
    app.exit().await;
    assert_eq!(fx.log.take(), ["exit c.once"]);
}

#[tokio::test]
async fn an_odd_cache_level_is_a_load_error_naming_the_file_and_path() {
    for odd in ["2", "\"1\"", "-1", "1.5", "true"] {
        let element = format!(r#"{{"type": "c.Type", "cacheLevel": {odd}}}"#);
        let fx = Fixture::new(&[("app/elements/c/a/e.json", element.as_str())]);
        let Err(errors) = fx.builder().load_definitions() else {
            panic!("{odd}: refused")
        };
        let error = errors.iter().next().expect("one error");
        assert_eq!(error.kind, LoadErrorKind::Parse, "{odd}");
        assert_eq!(error.json_path.as_deref(), Some("cacheLevel"), "{odd}");
        assert!(error.file.ends_with("c/a/e.json"), "{odd}: {error}");
        assert!(
            error
                .message
                .contains("0 (one instance for the process) or 1"),
            "{odd}: {error}"
        );
    }
}
