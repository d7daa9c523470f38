//! Shared helpers: fixture app trees written to temporary dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use jit_runtime::AppBuilder;

/// The fixture framework family (`pays.*`).
pub static FRAMEWORK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/tests/fixtures/framework");
/// A second fixture family (`models.*`), merged into the same framework layer.
pub static MODELS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/tests/fixtures/models");

/// A temporary dir holding an app tree.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    /// Writes `files` (relative path, content) under a new temporary dir.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = Self { dir };
        tree.write(files);
        tree
    }

    /// Writes more files.
    pub fn write(&self, files: &[(&str, &str)]) {
        for (path, content) in files {
            let full = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write");
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A builder for the app at `relative` with both fixture families in the framework layer.
    pub fn builder(&self, relative: &str) -> AppBuilder {
        AppBuilder::new(self.join(relative))
            .framework_layer(&FRAMEWORK)
            .framework_layer(&MODELS)
    }
}

/// A minimal app.toml.
pub fn app_toml(name: &str) -> String {
    format!("[app]\nname = \"{name}\"\norg = \"acme\"\n")
}
