//! The API v3 peer: a Python interpreter with the real `wechatpayv3` from PyPI, in its own
//! venv so its `cryptography` and `requests` never disturb wechatpy's.
//!
//! [`wechatpayv3_python`] returns `$WECHATPAYV3_PYTHON` when that is set, and otherwise
//! creates `<workspace>/target/wechatpayv3-venv` on first use (`python3 -m venv`, then
//! `pip install wechatpayv3==2.0.4 cryptography`) under an exclusive lock on
//! `target/wechatpayv3-venv.lock`, as [`crate::wechatpy_python`] does for wechatpy. Failing
//! to get an interpreter panics: interop tests never skip silently.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::{run_step, try_run_python_with, workspace_root};

/// The wechatpayv3 release the API v3 interop tests are written against.
pub const WECHATPAYV3_VERSION: &str = "2.0.4";

fn has_wechatpayv3(python: &Path) -> bool {
    let check = format!(
        "import wechatpayv3, cryptography, sys\nfrom importlib.metadata import version\nsys.exit(0 if version('wechatpayv3') == '{WECHATPAYV3_VERSION}' else 3)"
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn create_venv() -> PathBuf {
    let target = workspace_root().join("target");
    std::fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let lock_path = target.join("wechatpayv3-venv.lock");
    let lock: File = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    // Held until the end of this function: another test binary doing the same waits here,
    // then finds the venv ready.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));

    let venv = target.join("wechatpayv3-venv");
    let python = venv.join("bin").join("python");
    if !has_wechatpayv3(&python) {
        run_step(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the wechatpayv3 venv",
        );
        run_step(
            Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("wechatpayv3=={WECHATPAYV3_VERSION}"),
                "cryptography",
            ]),
            "installing wechatpayv3 into the venv",
        );
        assert!(
            has_wechatpayv3(&python),
            "{} still cannot import wechatpayv3 {WECHATPAYV3_VERSION} after installation",
            python.display()
        );
    }
    python
}

/// A Python interpreter that can `import wechatpayv3` (version 2.0.4) and `cryptography`.
///
/// Panics with the reason when none can be had.
pub fn wechatpayv3_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| match std::env::var_os("WECHATPAYV3_PYTHON") {
            Some(given) => {
                let python = PathBuf::from(given);
                assert!(
                    has_wechatpayv3(&python),
                    "WECHATPAYV3_PYTHON={} cannot import wechatpayv3 {WECHATPAYV3_VERSION} and cryptography",
                    python.display()
                );
                python
            }
            None => create_venv(),
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
