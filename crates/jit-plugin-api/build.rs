//! Records the compiler version and target triple this crate is built with, so the plugin
//! header (written into every plugin) and the host's expectations (compiled into `jit`)
//! can be compared before any plugin code runs.

use std::process::Command;

fn main() {
    // Cargo tells build scripts which compiler it builds with; asking that exact binary
    // (not whatever `rustc` is first on PATH) is what makes the comparison meaningful.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .arg("-V")
        .output()
        .unwrap_or_else(|error| panic!("running `{rustc} -V` failed: {error}"));
    assert!(
        output.status.success(),
        "`{rustc} -V` exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let version = String::from_utf8(output.stdout)
        .unwrap_or_else(|error| panic!("`{rustc} -V` printed non-UTF-8 output: {error}"));
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");

    println!(
        "cargo:rustc-env=JIT_PLUGIN_API_RUSTC_VERSION={}",
        version.trim()
    );
    println!("cargo:rustc-env=JIT_PLUGIN_API_TARGET={target}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
}
