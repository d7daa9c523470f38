//! Loads a generated tree of elements and reports time and peak memory.
//!
//! ```text
//! cargo run --release -p jit-runtime --example load_tree -- generate /tmp/tree 10000
//! /usr/bin/time -v cargo run --release -p jit-runtime --example load_tree -- load /tmp/tree
//! ```

#[path = "../benches/support/generate.rs"]
mod generate;

use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let dir = PathBuf::from(args.get(2).expect("DIR"));
            let total: usize = args.get(3).map_or(10_000, |n| n.parse().expect("count"));
            let written = generate::generate_app(&dir, total);
            println!("wrote {written} elements under {}", dir.display());
        }
        Some("load") => {
            let dir = PathBuf::from(args.get(2).expect("DIR"));
            let before = peak_rss_kib();
            let start = Instant::now();
            let defs = jit_runtime::AppBuilder::new(&dir)
                .load_definitions()
                .unwrap_or_else(|e| panic!("{e}"));
            let elapsed = start.elapsed();
            println!(
                "loaded {} elements in {:.1} ms; peak RSS before {} KiB, after {} KiB",
                defs.len(),
                elapsed.as_secs_f64() * 1e3,
                before.unwrap_or(0),
                peak_rss_kib().unwrap_or(0)
            );
        }
        _ => eprintln!("usage: load_tree generate DIR [COUNT] | load DIR"),
    }
}
