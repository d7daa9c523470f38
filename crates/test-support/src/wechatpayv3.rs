//! The API v3 peer: a Python interpreter with the real `wechatpayv3` from PyPI, in its own
//! venv so its `cryptography` and `requests` never disturb wechatpy's.
//!
//! [`wechatpayv3_python`] returns `$WECHATPAYV3_PYTHON` when that is set, and otherwise
//! creates `<workspace>/target/wechatpayv3-venv` on first use (`python3 -m venv`, then
//! `pip install wechatpayv3==2.0.4 cryptography`) under an exclusive lock on
//! `target/wechatpayv3-venv.lock`, as [`crate::wechatpy_python`] does for wechatpy (both
//! through the `venv` module). Failing to get an interpreter panics: interop tests never skip
//! silently.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::try_run_python_with;
use crate::venv::PinnedPeer;

/// The wechatpayv3 release the API v3 interop tests are written against.
pub const WECHATPAYV3_VERSION: &str = "2.0.4";

/// A Python interpreter that can `import wechatpayv3` (version 2.0.4) and `cryptography`.
///
/// Panics with the reason when none can be had.
pub fn wechatpayv3_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let check = format!(
                "import wechatpayv3, cryptography, sys\nfrom importlib.metadata import version\nsys.exit(0 if version('wechatpayv3') == '{WECHATPAYV3_VERSION}' else 3)"
            );
            PinnedPeer {
                name: "wechatpayv3",
                version: WECHATPAYV3_VERSION,
                env_var: "WECHATPAYV3_PYTHON",
                extras: &["cryptography"],
                check: &check,
            }
            .python()
        })
        .clone()
}

/// Runs a Python snippet with the wechatpayv3 interpreter, JSON in and out: the snippet sees
/// the input as `data` and assigns its answer to `result`. Returns the traceback as the error.
pub fn try_run_wechatpayv3_python(
    snippet: &str,
    data: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    try_run_python_with(&wechatpayv3_python(), snippet, data)
}

/// [`try_run_wechatpayv3_python`], panicking with the Python error.
pub fn run_wechatpayv3_python(snippet: &str, data: &serde_json::Value) -> serde_json::Value {
    try_run_wechatpayv3_python(snippet, data).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wechatpayv3_interpreter_has_the_pinned_release() {
        let out = run_wechatpayv3_python(
            "from importlib.metadata import version\nresult = {'v': version('wechatpayv3'), 'n': data + 1}",
            &serde_json::json!(1),
        );
        assert_eq!(out, serde_json::json!({"v": WECHATPAYV3_VERSION, "n": 2}));
    }
}
