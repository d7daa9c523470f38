//! Test-only helpers shared by the crates' interop and events tests.
//!
//! Owns the interop tests' Python interpreters: one that has the real `wechatpy==1.8.18` from
//! PyPI, the independent peer the WeChat Pay V2 code is checked against, and one with
//! `wechatpayv3` for API v3. Those know nothing of this project's crates.
//!
//! [`wechatpy_python`] returns `$WECHATPY_PYTHON` when that is set (CI prepares it), and
//! otherwise creates `<workspace>/target/wechatpy-venv` on first use with `python3 -m venv`
//! and `pip install wechatpy==1.8.18 cryptography`. Test binaries run in parallel, so the
//! set-up is guarded by an exclusive lock on `target/wechatpy-venv.lock`. Failing to get an
//! interpreter panics: interop tests never skip silently. Both interpreters are had the same
//! way, by the `venv` module.
//!
//! [`wechatpayv3_python`] does the same for the API v3 peer, `wechatpayv3==2.0.4`, in its own
//! venv (`target/wechatpayv3-venv`, `$WECHATPAYV3_PYTHON` when set).
//!
//! [`openapi_31_problems`] checks an OpenAPI 3.1 document with the real
//! `openapi-spec-validator==0.9.0` from PyPI, in its own venv
//! (`target/openapi-spec-validator-venv`, `$OPENAPI_SPEC_VALIDATOR_PYTHON` when set).
//!
//! It also builds shared libraries for tests that load them ([`build_cdylibs`],
//! [`compile_cdylib`]): workspace crates by name through cargo, one-file libraries through
//! rustc.
//!
//! And it runs the merchant's side of jit's webhooks for the events tests:
//! [`WebhookReceiver`], a loopback endpoint that checks signatures with `jit-webhooks` (the
//! one project crate it uses: the verifier a merchant would use) and records every request.
//!
//! And the browser tests' headless Chromium: [`Browser`] (module [`browser`]).
//!
//! And fixed WeChat Pay API v3 keys of both sides, for tests that play WeChat ([`v3_keys`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub mod browser;
mod cdylib;
mod openapi;
pub mod v3_keys;
mod venv;
pub mod webhook_receiver;
mod wechatpayv3;

pub use browser::Browser;
pub use cdylib::{build_cdylibs, compile_cdylib, library_file_name};
pub use openapi::{OPENAPI_SPEC_VALIDATOR_VERSION, openapi_31_problems, openapi_validator_python};
use venv::PinnedPeer;
pub use webhook_receiver::WebhookReceiver;
pub use wechatpayv3::{
    WECHATPAYV3_VERSION, run_wechatpayv3_python, try_run_wechatpayv3_python, wechatpayv3_python,
};

/// The wechatpy release every interop test is written against.
pub const WECHATPY_VERSION: &str = "1.8.18";

/// The cargo workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support sits two levels below the workspace root")
        .to_path_buf()
}

pub(crate) fn run_step(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Python interpreter that can `import wechatpy` (version 1.8.18) and `cryptography`.
///
/// Panics with the reason when none can be had.
pub fn wechatpy_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let check = format!(
                "import wechatpy, cryptography, sys; sys.exit(0 if wechatpy.__version__ == '{WECHATPY_VERSION}' else 3)"
            );
            PinnedPeer {
                name: "wechatpy",
                version: WECHATPY_VERSION,
                env_var: "WECHATPY_PYTHON",
                extras: &["cryptography"],
                check: &check,
            }
            .python()
        })
        .clone()
}

/// Runs a Python snippet with the wechatpy interpreter, JSON in and out.
///
/// The snippet sees the input as the variable `data` and must assign its answer to
/// `result`, which is written back as JSON. Returns the Python traceback as the error.
pub fn try_run_python(
    snippet: &str,
    data: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    try_run_python_with(&wechatpy_python(), snippet, data)
}

/// [`try_run_python`] with another interpreter (see [`wechatpayv3_python`]).
pub fn try_run_python_with(
    python: &Path,
    snippet: &str,
    data: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let program = format!(
        "import json, sys\ndata = json.loads(sys.stdin.read())\n{snippet}\nsys.stdout.write(json.dumps(result))\n"
    );
    let mut child = Command::new(python)
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start python: {e}"))?;
    let input = serde_json::to_vec(data).map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .map_err(|e| format!("cannot write to python: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("python did not finish: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "python exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "python printed something that is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// [`try_run_python`], panicking with the Python error.
pub fn run_python(snippet: &str, data: &serde_json::Value) -> serde_json::Value {
    try_run_python(snippet, data).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_snippets_round_trip_json() {
        let out = run_python(
            "import wechatpy\nresult = {'n': data['n'] + 1, 'v': wechatpy.__version__}",
            &serde_json::json!({"n": 41}),
        );
        assert_eq!(out, serde_json::json!({"n": 42, "v": WECHATPY_VERSION}));
    }

    #[test]
    fn python_errors_are_reported() {
        let error = try_run_python("result = 1 / 0", &serde_json::json!(null)).unwrap_err();
        assert!(error.contains("ZeroDivisionError"), "{error}");
    }
}
