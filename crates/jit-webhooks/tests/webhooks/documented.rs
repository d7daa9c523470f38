//! The verifiers docs/events.md shows are the ones tested: its Python snippet is run
//! against this crate each way (Python's standard library only), and its Rust snippet is
//! the crate docs' doctest, line for line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jit_webhooks::{sign, verify};

use crate::{BODY, SECRET};

const SECTION: &str = "## Verifying a webhook";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The lines of the first ```{language} block of the "Verifying a webhook" section.
fn doc_snippet(language: &str) -> String {
    let path = repo_file("../../docs/events.md");
    let text = read(&path);
    let section = text
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("{} has no `{SECTION}` heading", path.display()))
        .1;
    // The section ends at the next heading of its level (or the file's end).
    let section = section.split("\n## ").next().unwrap_or(section);
    code_block(section.lines(), language)
        .unwrap_or_else(|| panic!("{}, {SECTION}: no ```{language} block", path.display()))
}

/// The lines between a ```{language} fence and the next ``` fence, joined with newlines.
fn code_block<'a>(mut lines: impl Iterator<Item = &'a str>, language: &str) -> Option<String> {
    let opening = format!("```{language}");
    lines.by_ref().find(|line| line.trim_end() == opening)?;
    let mut block = Vec::new();
    for line in lines {
        if line.trim_end() == "```" {
            return Some(block.join("\n"));
        }
        block.push(line);
    }
    None
}

/// The visible lines of the crate docs' Rust example (rustdoc hides lines starting `# `).
fn crate_doc_example() -> String {
    let path = repo_file("src/lib.rs");
    let text = read(&path);
    let doc_lines = text
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line));
    let block = code_block(doc_lines, "rust")
        .unwrap_or_else(|| panic!("{}: no ```rust block in the crate docs", path.display()));
    block
        .lines()
        .filter(|line| !(*line == "#" || line.starts_with("# ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_rust_verifier_is_the_crates_doctest() {
    let documented = doc_snippet("rust");
    assert!(
        documented.contains("verify_now"),
        "the documented Rust verifier uses the crate:\n{documented}"
    );
    assert_eq!(
        documented,
        crate_doc_example(),
        "docs/events.md's Rust snippet and the doctest in crates/jit-webhooks/src/lib.rs differ"
    );
}

/// One request to the documented Python code: sign with `signature`, or check with `verify`.
enum PythonCall<'a> {
    Sign {
        secret: &'a [u8],
        timestamp: i64,
        body: &'a [u8],
    },
    Verify {
        secret: &'a [u8],
        header: &'a str,
        body: &'a [u8],
    },
}

/// Runs the documented Python snippet, then a driver calling it once per line of input,
/// and returns one output line per call.
fn run_python(calls: &[PythonCall<'_>]) -> Vec<String> {
    let driver = r#"
import sys
def unhex(text):
    return b"" if text == "-" else bytes.fromhex(text)
for line in sys.stdin:
    op, secret, arg, body = line.split()
    secret, body = unhex(secret), unhex(body)
    if op == "sign":
        print(signature(secret, arg, body))
    else:
        print(verify(secret, unhex(arg).decode(), body))
"#;
    let program = format!("{}\n{driver}", doc_snippet("python"));
    let input: String = calls
        .iter()
        .map(|call| match call {
            PythonCall::Sign {
                secret,
                timestamp,
                body,
            } => format!(
                "sign {} {timestamp} {}\n",
                hex_or_dash(secret),
                hex_or_dash(body)
            ),
            PythonCall::Verify {
                secret,
                header,
                body,
            } => format!(
                "verify {} {} {}\n",
                hex_or_dash(secret),
                hex_or_dash(header.as_bytes()),
                hex_or_dash(body)
            ),
        })
        .collect();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (the interop test needs a Python 3 interpreter on PATH)");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("python3 reads its input");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success(),
        "the documented Python failed: {}\n--- program ---\n{program}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .expect("python3 prints text")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), calls.len(), "one answer per call: {lines:?}");
    lines
}

/// Hex, with `-` for no bytes, so that every input line has four words (the driver's
/// `unhex` reads it back).
fn hex_or_dash(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "-".to_string()
    } else {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Secrets and bodies both sides must agree on: text, binary, empty and long.
fn samples() -> Vec<(Vec<u8>, Vec<u8>)> {
    let long_secret: Vec<u8> = (0..200u8).collect();
    vec![
        (SECRET.to_vec(), BODY.to_vec()),
        (SECRET.to_vec(), Vec::new()),
        (
            b"k".to_vec(),
            "{\"body\":\"商品 · ünïcode\",\"n\":1}".as_bytes().to_vec(),
        ),
        (
            vec![0, 255, 10, 13, 32],
            vec![0xff, 0xfe, 0x00, b'\n', b',', b'='],
        ),
        (long_secret, BODY.repeat(50)),
    ]
}

#[test]
fn python_signs_what_rust_verifies() {
    let now = unix_now();
    let samples = samples();
    let calls: Vec<PythonCall<'_>> = samples
        .iter()
        .map(|(secret, body)| PythonCall::Sign {
            secret,
            timestamp: now,
            body,
        })
        .collect();
    let signatures = run_python(&calls);
    for ((secret, body), python_v1) in samples.iter().zip(&signatures) {
        let header = format!("t={now},v1={python_v1}");
        assert_eq!(
            verify(secret, &header, body, now, 300),
            Ok(()),
            "Rust refuses Python's signature {header}"
        );
        assert_eq!(header, sign(secret, now, body), "both sides write the same");
    }
}

#[test]
fn rust_signs_what_the_documented_python_verifies() {
    let now = unix_now();
    let samples = samples();
    let headers: Vec<String> = samples
        .iter()
        .map(|(secret, body)| sign(secret, now, body))
        .collect();
    let mut calls: Vec<PythonCall<'_>> = samples
        .iter()
        .zip(&headers)
        .map(|((secret, body), header)| PythonCall::Verify {
            secret,
            header,
            body,
        })
        .collect();
    let accepted = calls.len();

    // And what it must refuse: a changed body, another secret, a stale or future timestamp.
    let stale = sign(SECRET, now - 3600, BODY);
    let future = sign(SECRET, now + 3600, BODY);
    let good = sign(SECRET, now, BODY);
    let other = sign(b"another secret", now, BODY);
    let good_v1 = good.split_once(",v1=").expect("t=...,v1=...").1;
    let other_v1 = other.split_once(",v1=").expect("t=...,v1=...").1;
    // Rotation: the old secret's signature first, ours second, a v0 ignored; spaces.
    let rotated = format!(" t={now} , v0=abc, v1={other_v1} ,v1={good_v1} ");
    let duplicate_t = format!("t={now},t={now},v1={good_v1}");
    let refused_cases = [
        (SECRET, good.as_str(), &b"{}"[..]),
        (b"another secret", good.as_str(), BODY),
        (SECRET, stale.as_str(), BODY),
        (SECRET, future.as_str(), BODY),
        (SECRET, other.as_str(), BODY),
        (SECRET, duplicate_t.as_str(), BODY),
    ];
    calls.push(PythonCall::Verify {
        secret: SECRET,
        header: &rotated,
        body: BODY,
    });
    for (secret, header, body) in refused_cases {
        calls.push(PythonCall::Verify {
            secret,
            header,
            body,
        });
    }

    let answers = run_python(&calls);
    let expected: Vec<&str> = std::iter::repeat_n("True", accepted + 1)
        .chain(std::iter::repeat_n("False", refused_cases.len()))
        .collect();
    assert_eq!(answers, expected);
    // The crate agrees on every case.
    for (call, answer) in calls.iter().zip(&answers) {
        let PythonCall::Verify {
            secret,
            header,
            body,
        } = call
        else {
            unreachable!("only verify calls here")
        };
        assert_eq!(
            verify(secret, header, body, now, 300).is_ok(),
            answer == "True",
            "Rust and Python disagree on {header}"
        );
    }
}
