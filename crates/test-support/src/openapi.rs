//! The OpenAPI peer: a Python interpreter with the real `openapi-spec-validator` from PyPI,
//! the independent validator jit's OpenAPI documents are checked with.
//!
//! [`openapi_validator_python`] returns `$OPENAPI_SPEC_VALIDATOR_PYTHON` when that is set
//! (CI prepares it), and otherwise creates `<workspace>/target/openapi-spec-validator-venv`
//! on first use (`python3 -m venv`, then `pip install openapi-spec-validator==0.9.0`) under
//! an exclusive lock, as [`crate::wechatpy_python`] does for wechatpy (both through the
//! `venv` module). Failing to get an interpreter panics: the tests never skip silently.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::try_run_python_with;
use crate::venv::PinnedPeer;

/// The openapi-spec-validator release the tests are written against.
pub const OPENAPI_SPEC_VALIDATOR_VERSION: &str = "0.9.0";

/// A Python interpreter that can import `openapi_spec_validator` (version 0.9.0).
///
/// Panics with the reason when none can be had.
pub fn openapi_validator_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let check = format!(
                "import openapi_spec_validator, sys\nfrom importlib.metadata import version\nsys.exit(0 if version('openapi-spec-validator') == '{OPENAPI_SPEC_VALIDATOR_VERSION}' else 3)"
            );
            PinnedPeer {
                name: "openapi-spec-validator",
                version: OPENAPI_SPEC_VALIDATOR_VERSION,
                env_var: "OPENAPI_SPEC_VALIDATOR_PYTHON",
                extras: &[],
                check: &check,
            }
            .python()
        })
        .clone()
}

/// Every problem openapi-spec-validator finds in `document` read as OpenAPI 3.1, each as
/// `message (at json/path)`; empty when the document is valid. Panics when the validator
/// cannot run.
pub fn openapi_31_problems(document: &serde_json::Value) -> Vec<String> {
    const SNIPPET: &str = "\
from openapi_spec_validator import OpenAPIV31SpecValidator
result = [
    '%s (at %s)' % (error.message, '/'.join(str(part) for part in error.absolute_path))
    for error in OpenAPIV31SpecValidator(data).iter_errors()
]";
    let answer = try_run_python_with(&openapi_validator_python(), SNIPPET, document)
        .unwrap_or_else(|error| panic!("openapi-spec-validator did not run: {error}"));
    serde_json::from_value(answer).expect("the validator answers a list of messages")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The validator is alive: a document missing `info.version` is refused, a minimal one
    /// accepted.
    #[test]
    fn the_validator_tells_a_broken_document_from_a_valid_one() {
        let valid = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {},
        });
        assert_eq!(openapi_31_problems(&valid), Vec::<String>::new());
        let mut broken = valid.clone();
        broken["info"].as_object_mut().unwrap().remove("version");
        let problems = openapi_31_problems(&broken);
        assert!(
            problems.iter().any(|problem| problem.contains("version")),
            "{problems:?}"
        );
    }
}
