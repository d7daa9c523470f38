//! How `jit sim pay` finds the simulator a running `jit serve` started:
//! `<app dir>/.jit/simulator.json`.
//!
//! The payer side of the simulator (`/sim/pay`, `/sim/fail`, `/sim/paying`) is only on
//! the simulator's own loopback listener, at a port the OS picks. `jit serve` writes that
//! URL here while it runs and removes the file when it stops; `jit sim pay ORDER_ID` in the
//! app folder reads it, so the README's flow needs no flags.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file, relative to the app folder.
pub(crate) const RELATIVE_PATH: &str = ".jit/simulator.json";

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SimulatorFile {
    /// The simulator's base URL (loopback), where the payer side answers.
    pub(crate) url: String,
    /// The shop that started it.
    pub(crate) shop: String,
    /// The `jit serve` process.
    pub(crate) pid: u32,
}

/// A file this process wrote; [`Written::remove`] takes it away again.
#[derive(Debug)]
pub(crate) struct Written {
    path: PathBuf,
    record: SimulatorFile,
}

/// The file's path for the app in `app_dir`.
pub(crate) fn path(app_dir: &Path) -> PathBuf {
    app_dir.join(RELATIVE_PATH)
}

impl SimulatorFile {
    /// Writes the file for the app in `app_dir` (replacing one a crashed server left).
    pub(crate) fn write(self, app_dir: &Path) -> io::Result<Written> {
        let path = path(app_dir);
        let dir = path.parent().expect("the path has a folder");
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(&self).map_err(io::Error::other)?;
        // Written aside, then renamed: a reader never sees half a file.
        let partial = dir.join(format!("simulator.json.{}.tmp", std::process::id()));
        std::fs::write(&partial, text + "\n")?;
        std::fs::rename(&partial, &path)?;
        Ok(Written { path, record: self })
    }

    /// Reads the file of the app in `app_dir`, or says why there is none to read.
    pub(crate) fn read(app_dir: &Path) -> Result<Self, String> {
        let path = path(app_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "no running shop's simulator found: {} does not exist (`jit serve` writes it \
                     while it runs with `[gateway] simulator = true`); start the shop in that \
                     folder, pass --app DIR, or --sim URL for a standalone `jit sim`",
                    path.display()
                ));
            }
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        };
        serde_json::from_str(&text).map_err(|err| {
            format!(
                "{}: not a simulator record ({err}); delete it and restart `jit serve`",
                path.display()
            )
        })
    }
}

impl Written {
    /// Removes the file if it is still the one this process wrote (another server on the
    /// same folder may have replaced it), and the `.jit` folder if that leaves it empty.
    pub(crate) fn remove(self) {
        let still_ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| serde_json::from_str::<SimulatorFile>(&text).ok())
            .is_some_and(|found| found == self.record);
        if still_ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(file = %self.path.display(), error = %err, "cannot remove the simulator record");
        }
        if let Some(dir) = self.path.parent() {
            // Fails, as it should, when something else is in the folder.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed_only_by_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let record = SimulatorFile {
            url: "http://127.0.0.1:4000".to_owned(),
            shop: "http://127.0.0.1:8080".to_owned(),
            pid: 7,
        };
        let first = record.clone().write(dir.path()).unwrap();
        assert_eq!(SimulatorFile::read(dir.path()).unwrap(), record);

        // A second server on the same folder replaces it; the first one's stop leaves the
        // second one's record alone.
        let newer = SimulatorFile {
            url: "http://127.0.0.1:4001".to_owned(),
            ..record
        };
        let second = newer.clone().write(dir.path()).unwrap();
        first.remove();
        assert_eq!(SimulatorFile::read(dir.path()).unwrap(), newer);
        second.remove();
        let missing = SimulatorFile::read(dir.path()).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(
            !dir.path().join(".jit").exists(),
            "the empty folder went too"
        );
    }
}
