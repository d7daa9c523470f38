//! Benchmarks: `get_element` on a loaded app (target ≤ 100 ns median) and loading a
//! generated tree of 10,000 elements (walk + parse + resolve, target ≤ 250 ms).
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

#[path = "support/generate.rs"]
mod generate;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jit_runtime::{AppBuilder, Element, ElementDef, ElementError, LoadContext, Loader};

struct Plain(Arc<ElementDef>);

#[async_trait::async_trait]
impl Element for Plain {
    fn def(&self) -> &Arc<ElementDef> {
        &self.0
    }
}

struct PlainLoader;

#[async_trait::async_trait]
impl Loader for PlainLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(Plain(cx.def().clone())))
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = generate::generate_app(dir.path(), 10_000);
    assert_eq!(written, 10_000);

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("load_definitions_10000_elements", |b| {
        b.iter(|| {
            let defs = AppBuilder::new(dir.path())
                .load_definitions()
                .expect("loads");
            assert_eq!(defs.len(), 10_000);
            black_box(defs)
        })
    });
    group.finish();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut builder = AppBuilder::new(dir.path());
    for f in 0..20 {
        builder = builder.loader(&format!("fam{f}.Meta"), PlainLoader);
    }
    let app = rt.block_on(builder.build()).expect("build");
    let name = "fam7.g3.inst311";
    rt.block_on(app.get_element(name)).expect("built once");

    c.bench_function("get_element_cached_in_10000", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(app.get_element(black_box(name)).await.expect("element")) })
    });
    c.bench_function("get_element_not_found", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(app.get_element(black_box("fam7.g3.nope")).await.is_err()) })
    });
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
