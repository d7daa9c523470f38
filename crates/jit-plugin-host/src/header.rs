//! Comparing a plugin's header with what this host was built with, whether the header was
//! read from a loaded library or from the library file.

use jit_plugin_api::{
    ABI_VERSION, API_VERSION, HeaderPrefix, MAGIC, OLDEST_ABI_VERSION, PluginHeader, RUSTC_VERSION,
    TARGET_TRIPLE, header_size_of_abi,
};

/// One header field that differs from what the host expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMismatch {
    /// The field, as named in [`PluginHeader`]: `magic`, `abi_version`, `header_size`,
    /// `target_triple`, `rustc_version` or `api_version`.
    pub field: &'static str,
    /// What this host expects.
    pub expected: String,
    /// What the plugin's header says.
    pub found: String,
}

impl std::fmt::Display for HeaderMismatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "header field `{}` is {}, expected {}",
            self.field, self.found, self.expected
        )
    }
}

/// The ABI versions this host loads, for messages: `1 or 2`, or `1, 2 or 3`.
fn supported_versions() -> String {
    let versions: Vec<String> = (OLDEST_ABI_VERSION..=ABI_VERSION)
        .map(|version| version.to_string())
        .collect();
    match versions.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn quoted(text: &str) -> String {
    format!("`{text}`")
}

/// Checks the frozen leading fields. Nothing after them may be read unless this passes: with
/// another ABI version the rest of the header may have another layout or size.
pub(crate) fn check_prefix(prefix: &HeaderPrefix) -> Result<(), HeaderMismatch> {
    if prefix.magic != MAGIC {
        return Err(HeaderMismatch {
            field: "magic",
            expected: quoted(&MAGIC.escape_ascii().to_string()),
            found: quoted(&prefix.magic.escape_ascii().to_string()),
        });
    }
    // Every version from the oldest still served: the host's callback table only grows at
    // its end, so one table serves them all.
    let Some(size) = header_size_of_abi(prefix.abi_version) else {
        return Err(HeaderMismatch {
            field: "abi_version",
            expected: supported_versions(),
            found: prefix.abi_version.to_string(),
        });
    };
    if prefix.header_size as usize != size {
        return Err(HeaderMismatch {
            field: "header_size",
            expected: size.to_string(),
            found: prefix.header_size.to_string(),
        });
    }
    Ok(())
}

/// The header's build facts as text, or why a field's bytes are not text: read from a
/// loaded library's static ([`BuildFacts::of`]) or from the library file.
#[derive(Debug, Clone)]
pub(crate) struct BuildFacts<'a> {
    pub(crate) target_triple: Result<&'a str, String>,
    pub(crate) rustc_version: Result<&'a str, String>,
    pub(crate) api_version: Result<&'a str, String>,
}

impl<'a> BuildFacts<'a> {
    /// The facts of a header in memory.
    pub(crate) fn of(header: &'a PluginHeader) -> Self {
        Self {
            target_triple: header.target_triple.to_text(),
            rustc_version: header.rustc_version.to_text(),
            api_version: header.api_version.to_text(),
        }
    }
}

/// Checks the build facts, most fundamental first: a plugin for another target or compiler
/// is refused as such even if its API version happens to match.
pub(crate) fn check_build(facts: &BuildFacts<'_>) -> Result<(), HeaderMismatch> {
    let fields: [(&'static str, &Result<&str, String>, &str); 3] = [
        ("target_triple", &facts.target_triple, TARGET_TRIPLE),
        ("rustc_version", &facts.rustc_version, RUSTC_VERSION),
        ("api_version", &facts.api_version, API_VERSION),
    ];
    for (field, stored, expected) in fields {
        match stored.as_deref() {
            Ok(found) if found == expected => {}
            Ok(found) => {
                return Err(HeaderMismatch {
                    field,
                    expected: quoted(expected),
                    found: quoted(found),
                });
            }
            Err(problem) => {
                return Err(HeaderMismatch {
                    field,
                    expected: quoted(expected),
                    found: problem.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_plugin_api::{
        ByteView, HeaderString, HostApi, OutputSink, PluginEntryPoints, STATUS_ERROR,
    };

    unsafe extern "C" fn describe(_out: *const OutputSink) -> u32 {
        STATUS_ERROR
    }

    unsafe extern "C" fn call(
        _host: *const HostApi,
        _function: ByteView,
        _args: ByteView,
        _out: *const OutputSink,
    ) -> u32 {
        STATUS_ERROR
    }

    fn good() -> PluginHeader {
        PluginHeader::current("t", "0.0.0", PluginEntryPoints { describe, call })
    }

    fn refusal(header: &PluginHeader) -> HeaderMismatch {
        check_prefix(&header.prefix)
            .and_then(|()| check_build(&BuildFacts::of(header)))
            .expect_err("header should be refused")
    }

    #[test]
    fn a_header_from_this_build_is_accepted() {
        let header = good();
        assert_eq!(check_prefix(&header.prefix), Ok(()));
        assert_eq!(check_build(&BuildFacts::of(&header)), Ok(()));
    }

    #[test]
    fn every_field_is_checked_and_named_with_expected_and_found() {
        let mut header = good();
        header.prefix.magic = *b"NOTJIT\0\0";
        assert_eq!(
            refusal(&header).to_string(),
            "header field `magic` is `NOTJIT\\x00\\x00`, expected `JITPLUG\\x00`"
        );

        let mut header = good();
        header.prefix.abi_version = 999;
        assert_eq!(
            refusal(&header).to_string(),
            "header field `abi_version` is 999, expected 1 or 2"
        );

        let mut header = good();
        header.prefix.header_size = 12;
        let mismatch = refusal(&header);
        assert_eq!(mismatch.field, "header_size");
        assert_eq!(mismatch.found, "12");
        assert_eq!(mismatch.expected, size_of::<PluginHeader>().to_string());

        let mut header = good();
        header.target_triple = HeaderString::new("riscv64gc-unknown-none-elf");
        assert_eq!(
            refusal(&header).to_string(),
            format!(
                "header field `target_triple` is `riscv64gc-unknown-none-elf`, expected `{TARGET_TRIPLE}`"
            )
        );

        let mut header = good();
        header.rustc_version = HeaderString::new("rustc 1.80.0 (051478957 2024-07-21)");
        assert_eq!(
            refusal(&header).to_string(),
            format!(
                "header field `rustc_version` is `rustc 1.80.0 (051478957 2024-07-21)`, expected `{RUSTC_VERSION}`"
            )
        );

        let mut header = good();
        header.api_version = HeaderString::new("9.9.9");
        assert_eq!(
            refusal(&header).to_string(),
            format!("header field `api_version` is `9.9.9`, expected `{API_VERSION}`")
        );
    }

    #[test]
    fn every_version_from_the_oldest_served_is_accepted() {
        for version in OLDEST_ABI_VERSION..=ABI_VERSION {
            let mut header = good();
            header.prefix.abi_version = version;
            assert_eq!(check_prefix(&header.prefix), Ok(()), "ABI {version}");
        }
        let mut header = good();
        header.prefix.abi_version = 0;
        assert_eq!(refusal(&header).field, "abi_version");
        header.prefix.abi_version = ABI_VERSION + 1;
        assert_eq!(refusal(&header).field, "abi_version");
    }

    #[test]
    fn the_prefix_is_checked_before_anything_after_it() {
        // A wrong ABI version and a wrong compiler: the ABI version is reported, because with
        // another ABI the strings may not even be where this host looks for them.
        let mut header = good();
        header.prefix.abi_version = ABI_VERSION + 1;
        header.rustc_version = HeaderString::new("rustc 0.0.0");
        assert_eq!(refusal(&header).field, "abi_version");
    }
}
