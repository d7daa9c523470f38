//! Reading a plugin's header from its library file without loading the library: all that
//! `jit check` does with a plugin, and what [`crate::open_plugin`] does before it loads one.
//!
//! An object-file parser (the `object` crate: ELF, Mach-O, PE) finds the exported
//! `JIT_PLUGIN_HEADER` symbol and the bytes the file holds at its address. The header's
//! fields are inline (no pointer, no relocation), so the file holds them exactly as the
//! loaded library would. Nothing of the library runs, not even its initialisers
//! (`.init_array`, Mach-O initialisers, `DllMain`), which the system's dynamic loader runs
//! as soon as it maps a library.

use std::mem::offset_of;
use std::path::{Path, PathBuf};

use jit_plugin_api::{
    HEADER_STRING_CAPACITY, HEADER_SYMBOL, HeaderPrefix, HeaderString, PluginHeader,
};
use object::{BinaryFormat, Endian, Endianness, Object, ObjectKind, ObjectSegment};

use crate::header::{BuildFacts, check_build, check_prefix};
use crate::library::OpenError;

/// A [`HeaderString`] is its length (`u32`) followed by its bytes, `repr(C)`.
const HEADER_STRING_BYTES: usize = 4 + HEADER_STRING_CAPACITY;
const _: () = assert!(size_of::<HeaderString>() == HEADER_STRING_BYTES);

/// A plugin library whose header, read from the file, matches this host's build: which
/// library it is and what its header says it is. A [`crate::LoadedPlugin`] carries one too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedPlugin {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    pub(crate) version: String,
}

impl InspectedPlugin {
    /// The library file (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin package's name, from its header.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin package's version, from its header.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The canonical path of the plugin library at `path`, which must be a regular file.
pub(crate) fn canonical_file(path: &Path) -> Result<PathBuf, OpenError> {
    let canonical = path.canonicalize().map_err(|error| OpenError::Missing {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    if !canonical.is_file() {
        return Err(OpenError::Missing {
            path: canonical,
            reason: "not a regular file".to_owned(),
        });
    }
    Ok(canonical)
}

/// Reads the plugin library at `path` as a file and checks its header, every field
/// [`crate::open_plugin`] checks and with the same refusals, without loading it: no code of
/// the library runs.
pub fn inspect_plugin(path: &Path) -> Result<InspectedPlugin, OpenError> {
    let path = canonical_file(path)?;
    let data = std::fs::read(&path).map_err(|error| OpenError::NotALibrary {
        path: path.clone(),
        reason: format!("it cannot be read: {error}"),
    })?;
    inspect_bytes(path, &data)
}

/// [`inspect_plugin`] over bytes already read from `path` (what is checked is what is
/// loaded).
pub(crate) fn inspect_bytes(path: PathBuf, data: &[u8]) -> Result<InspectedPlugin, OpenError> {
    let file = object::File::parse(data).map_err(|error| OpenError::NotALibrary {
        path: path.clone(),
        reason: format!("it is not an ELF, Mach-O or PE file ({error})"),
    })?;
    if file.kind() != ObjectKind::Dynamic {
        return Err(OpenError::NotALibrary {
            path,
            reason: format!(
                "it is {} file, not a shared library",
                kind_name(file.kind())
            ),
        });
    }
    let Some(address) = header_address(&file) else {
        return Err(OpenError::NoHeader {
            path,
            reason: "the file's export table does not name it".to_owned(),
        });
    };
    if address % align_of::<PluginHeader>() as u64 != 0 {
        return Err(OpenError::BadHeaderAddress {
            path,
            problem: "misaligned",
        });
    }
    let endian = Endianness::from_big_endian(!file.is_little_endian())
        .expect("both byte orders are supported");
    let u32_at = |bytes: &[u8], offset: usize| {
        let mut word = [0; 4];
        word.copy_from_slice(&bytes[offset..offset + 4]);
        endian.read_u32_bytes(word)
    };

    // The frozen prefix first: with another ABI the rest may have another layout or size.
    let Some(bytes) = bytes_at(&file, address, size_of::<HeaderPrefix>()) else {
        return Err(OpenError::BadHeaderAddress {
            path,
            problem: "not initialised data of the file",
        });
    };
    let mut magic = [0; 8];
    magic.copy_from_slice(&bytes[..8]);
    let prefix = HeaderPrefix {
        magic,
        abi_version: u32_at(bytes, offset_of!(HeaderPrefix, abi_version)),
        header_size: u32_at(bytes, offset_of!(HeaderPrefix, header_size)),
    };
    let refused = |path: PathBuf| move |mismatch| OpenError::Refused { path, mismatch };
    check_prefix(&prefix).map_err(refused(path.clone()))?;

    let Some(header) = bytes_at(&file, address, size_of::<PluginHeader>()) else {
        return Err(OpenError::BadHeaderAddress {
            path,
            problem: "cut short by the end of the file's data",
        });
    };
    let text = |offset: usize| -> Result<&str, String> {
        let len = u32_at(header, offset) as usize;
        let stored = &header[offset + 4..offset + HEADER_STRING_BYTES];
        // The same reading as `HeaderString::to_text`, in the file's byte order.
        let bytes = stored.get(..len).ok_or_else(|| {
            format!("<invalid: length {len} exceeds capacity {HEADER_STRING_CAPACITY}>")
        })?;
        std::str::from_utf8(bytes).map_err(|error| format!("<invalid UTF-8: {error}>"))
    };
    let facts = BuildFacts {
        target_triple: text(offset_of!(PluginHeader, target_triple)),
        rustc_version: text(offset_of!(PluginHeader, rustc_version)),
        api_version: text(offset_of!(PluginHeader, api_version)),
    };
    check_build(&facts).map_err(refused(path.clone()))?;
    let shown = |text: Result<&str, String>| text.map_or_else(|problem| problem, str::to_owned);
    Ok(InspectedPlugin {
        name: shown(text(offset_of!(PluginHeader, plugin_name))),
        version: shown(text(offset_of!(PluginHeader, plugin_version))),
        path,
    })
}

/// The address of the exported header symbol (Mach-O prefixes C names with `_`).
fn header_address(file: &object::File<'_>) -> Option<u64> {
    let name = HEADER_SYMBOL.strip_suffix(b"\0").unwrap_or(HEADER_SYMBOL);
    let exports = file.exports().ok()?;
    exports
        .iter()
        .find(|export| {
            let exported = export.name();
            match file.format() {
                BinaryFormat::MachO => exported.strip_prefix(b"_") == Some(name),
                _ => exported == name,
            }
        })
        .map(|export| export.address())
}

/// The `len` bytes the file holds for the loaded image at `address`, if a segment maps them
/// from the file (not zero-filled memory such as `.bss`).
fn bytes_at<'data>(file: &object::File<'data>, address: u64, len: usize) -> Option<&'data [u8]> {
    file.segments()
        .find_map(|segment| segment.data_range(address, len as u64).ok().flatten())
        .filter(|bytes| bytes.len() == len)
}

fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Executable => "an executable",
        ObjectKind::Relocatable => "a relocatable object",
        ObjectKind::Core => "a core dump",
        _ => "an unknown kind of object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_other_files_are_not_libraries() {
        for (content, reason) in [
            (
                &b"these are notes, not machine code\n"[..],
                "not an ELF, Mach-O or PE file",
            ),
            (&b"\x7fELF"[..], "not an ELF, Mach-O or PE file"),
            (&b""[..], "not an ELF, Mach-O or PE file"),
        ] {
            let error =
                inspect_bytes(PathBuf::from("/plugins/libx.so"), content).expect_err("refused");
            let shown = error.to_string();
            assert!(
                shown.contains("`/plugins/libx.so` is not a loadable library"),
                "{shown}"
            );
            assert!(shown.contains(reason), "{shown}");
        }
    }

    #[test]
    fn the_running_test_executable_is_no_shared_library() {
        let exe = std::env::current_exe().expect("the test executable");
        let data = std::fs::read(&exe).expect("read it");
        match inspect_bytes(exe, &data).expect_err("an executable is refused") {
            // A position-independent executable is a shared object to the ELF header; then
            // it is refused for exporting no header.
            OpenError::NotALibrary { reason, .. } => {
                assert!(reason.contains("an executable"), "{reason}")
            }
            OpenError::NoHeader { .. } => {}
            other => panic!("unexpected refusal: {other}"),
        }
    }
}
