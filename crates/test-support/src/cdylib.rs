//! Building shared libraries (`cdylib`) for tests that load them: workspace crates through
//! the workspace's own cargo and target dir, and one-file libraries through rustc.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::workspace_root;

/// Builds the workspace `packages` with cargo (a no-op when they are up to date) and returns
/// each one's shared library as cargo reports it, keyed by the library target's name
/// (`example_discount_plugin` for the package `example-discount-plugin`).
///
/// `release` picks the release profile; callers usually pass `!cfg!(debug_assertions)` so
/// optimised test builds (benchmarks) load optimised libraries. Panics with cargo's output
/// when the build fails or a package produces no shared library.
pub fn build_cdylibs(packages: &[&str], release: bool) -> HashMap<String, PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--message-format=json-render-diagnostics"]);
    for package in packages {
        command.args(["-p", package]);
    }
    if release {
        command.arg("--release");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {packages:?}: {e}"));
    assert!(
        output.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut libraries = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let name = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let dylib = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|file| file.ends_with(std::env::consts::DLL_SUFFIX));
        if let Some(file) = dylib {
            libraries.insert(name, PathBuf::from(file));
        }
    }
    for package in packages {
        let name = package.replace('-', "_");
        assert!(
            libraries.contains_key(&name),
            "cargo reported no cdylib for `{package}`"
        );
    }
    libraries
}

/// Compiles the one-file Rust `source` into the shared library `output` with rustc
/// (`$RUSTC` when cargo sets it), as crate `crate_name`. Panics when rustc fails.
pub fn compile_cdylib(source: &str, crate_name: &str, output: &Path) {
    let source_file = output.with_extension("rs");
    std::fs::write(&source_file, source)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", source_file.display()));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let result = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "cdylib",
            "--crate-name",
            crate_name,
            "-o",
        ])
        .arg(output)
        .arg(&source_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rustc: {e}"));
    assert!(
        result.status.success(),
        "compiling {} failed:\n{}",
        source_file.display(),
        String::from_utf8_lossy(&result.stderr)
    );
}

/// The platform's file name for a library called `name` (`libname.so` on Linux,
/// `libname.dylib` on macOS, `name.dll` on Windows).
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}
