//! Plugin libraries are loaded from content-addressed copies, never from the file the
//! user edits: `<app>/.jit/plugins/<sha256>-<file name>`.
//!
//! A library the system's dynamic loader has mapped must never be written to: a user
//! rebuilding a plugin in place (`cp target/release/libx.so elements/...`) would rewrite
//! pages of code that is running. So the host reads the library once, names a copy after
//! its content, writes that copy (read-only) if it is not there yet, and maps the copy.
//! The same content is the same copy (a reload keeps the loaded plugin and the elements
//! built from it); a changed library is a new copy, loaded beside the old one, which stays
//! mapped for as long as the process runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::library::OpenError;

/// Where the copies of an app's plugin libraries live, inside the app folder.
pub fn copies_dir(app_dir: &Path) -> PathBuf {
    app_dir.join(".jit").join("plugins")
}

/// A library's bytes, read once, and the name of its copy.
pub(crate) struct LibraryContent {
    pub(crate) bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub(crate) sha256: String,
}

impl LibraryContent {
    /// Reads the library at `path` (canonical).
    pub(crate) fn read(path: &Path) -> Result<Self, OpenError> {
        let bytes = std::fs::read(path).map_err(|error| OpenError::NotALibrary {
            path: path.to_owned(),
            reason: format!("it cannot be read: {error}"),
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        Ok(Self { bytes, sha256 })
    }

    /// The copy of this content under `copies`, written when it is not there yet (or
    /// does not hold this content): the file the dynamic loader maps.
    pub(crate) fn copy_into(&self, original: &Path, copies: &Path) -> Result<PathBuf, OpenError> {
        let file_name = original
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".to_owned());
        let copy = copies.join(format!("{}-{file_name}", self.sha256));
        let cannot = |what: &str, error: std::io::Error| OpenError::Copy {
            path: original.to_owned(),
            copy: copy.clone(),
            reason: format!("{what}: {error}"),
        };
        if let Ok(existing) = std::fs::read(&copy)
            && format!("{:x}", Sha256::digest(&existing)) == self.sha256
        {
            return Ok(copy);
        }
        std::fs::create_dir_all(copies).map_err(|e| cannot("cannot create the folder", e))?;
        // Written beside it under a name of this process, then renamed into place: a copy
        // is never seen half-written, and a copy in use is replaced, never rewritten.
        let partial = copies.join(format!(
            ".{}-{file_name}.{}.partial",
            self.sha256,
            std::process::id()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(&self.bytes)?;
            file.sync_all()?;
            let mut permissions = file.metadata()?.permissions();
            permissions.set_readonly(true);
            std::fs::set_permissions(&partial, permissions)?;
            std::fs::rename(&partial, &copy)
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(cannot("cannot write the copy", error));
        }
        Ok(copy)
    }
}
