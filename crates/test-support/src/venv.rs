//! The one way an interop peer's Python interpreter is had: `$<ENV_VAR>` when set (CI
//! prepares it), else a venv of its own under `<workspace>/target/<name>-venv`, created on
//! first use (`python3 -m venv`, then `pip install <name>==<version> <extras>`) under an
//! exclusive lock on `target/<name>-venv.lock`, since test binaries run in parallel. Failing
//! to get an interpreter panics: interop tests never skip silently.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{run_step, workspace_root};

/// A PyPI package pinned at one release, with what else its venv needs.
pub(crate) struct PinnedPeer<'a> {
    /// The package; also names the venv (`target/<name>-venv`).
    pub name: &'a str,
    /// The release every interop test is written against.
    pub version: &'a str,
    /// The variable that names a prepared interpreter instead.
    pub env_var: &'a str,
    /// Other packages installed with it.
    pub extras: &'a [&'a str],
    /// A Python program that exits 0 when the interpreter has the pinned release and the
    /// extras.
    pub check: &'a str,
}

impl PinnedPeer<'_> {
    fn is_ready(&self, python: &Path) -> bool {
        Command::new(python)
            .args(["-c", self.check])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The interpreter: `$env_var` (checked), or the venv, created when missing.
    pub fn python(&self) -> PathBuf {
        match std::env::var_os(self.env_var) {
            Some(given) => {
                let python = PathBuf::from(given);
                assert!(
                    self.is_ready(&python),
                    "{}={} cannot import {} {} and {}",
                    self.env_var,
                    python.display(),
                    self.name,
                    self.version,
                    self.extras.join(", ")
                );
                python
            }
            None => self.create_venv(),
        }
    }

    fn create_venv(&self) -> PathBuf {
        let name = self.name;
        let target = workspace_root().join("target");
        std::fs::create_dir_all(&target)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
        let lock_path = target.join(format!("{name}-venv.lock"));
        let lock: File = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
        // Held until the end of this function: another test binary doing the same waits
        // here, then finds the venv ready.
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));

        let venv = target.join(format!("{name}-venv"));
        let python = venv.join("bin").join("python");
        if !self.is_ready(&python) {
            run_step(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                &format!("creating the {name} venv"),
            );
            run_step(
                Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .arg(format!("{name}=={}", self.version))
                    .args(self.extras),
                &format!("installing {name} into the venv"),
            );
            assert!(
                self.is_ready(&python),
                "{} still cannot import {name} {} after installation",
                python.display(),
                self.version
            );
        }
        python
    }
}
