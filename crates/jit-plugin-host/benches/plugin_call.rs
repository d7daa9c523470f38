//! What a call costs when it goes through a native plugin, against the same call made on the
//! parent Type's element directly. All three go through `App::call` (argument checks
//! included) on a multi-thread runtime, and call the fixture parent's `check`.
//!
//! - `direct`: an instance of the parent Type itself.
//! - `plugin_not_overridden`: an instance of the discount plugin's Type; `check` is not in
//!   its overrides, so the call goes straight to the parent without entering the library.
//! - `plugin_entered_one_parent_call`: the probe plugin's `forward`: enters the library on a
//!   blocking thread, which calls the parent's `check` back through the host callback.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn plugin_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tree = support::shop();
    let app = runtime.block_on(support::build(&tree));
    let cx = support::caller();
    runtime.block_on(async {
        for instance in ["pays.plainPay", "pays.myDiscountPay"] {
            app.call(
                instance,
                "create",
                json!({"subject": "Bench", "amount": 1, "orderId": "BENCH"}),
                &cx,
            )
            .await
            .expect("create the order the benchmark reads");
        }
    });

    let mut group = c.benchmark_group("plugin_call");
    let cases = [
        (
            "direct",
            "pays.plainPay",
            "check",
            json!({"orderId": "BENCH"}),
        ),
        (
            "plugin_not_overridden",
            "pays.myDiscountPay",
            "check",
            json!({"orderId": "BENCH"}),
        ),
        (
            "plugin_entered_one_parent_call",
            "pays.myProbe",
            "forward",
            json!({"function": "check", "args": {"orderId": "BENCH"}}),
        ),
    ];
    // The probe forwards to its own parent element, which has no order BENCH yet.
    runtime.block_on(async {
        app.call(
            "pays.myProbe",
            "forward",
            json!({"function": "create", "args": {"subject": "Bench", "amount": 1, "orderId": "BENCH"}}),
            &cx,
        )
        .await
        .expect("create the probe's order");
    });
    for (name, element, function, args) in cases {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let app = app.clone();
                let cx = cx.clone();
                let args = args.clone();
                async move {
                    app.call(element, function, args, &cx)
                        .await
                        .expect("benchmarked call")
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
