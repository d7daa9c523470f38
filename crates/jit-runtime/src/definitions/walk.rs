//! Finding elements: walks a layer (a folder on disk, or the embedded framework trees) for
//! every `e.json`, and reads the files of an element folder.
//!
//! The disk walk runs on several threads and hands each element to the parser as soon as
//! it is found; what comes back is sorted by e.json path, so output does not depend on
//! thread timing.

use std::path::{Path, PathBuf};

use include_dir::Dir;
use parking_lot::{Condvar, Mutex};

use super::FRAMEWORK_PREFIX;
use crate::error::{LoadError, LoadErrorKind};

/// Where a layer's files come from.
pub(super) enum LayerSource {
    /// Element trees compiled into the binary (the framework layer).
    Embedded(Vec<&'static Dir<'static>>),
    /// An `elements/` folder on disk.
    Disk(PathBuf),
}

/// One e.json found by the walk.
pub(super) struct Found {
    /// Folder path segments relative to the layer root.
    pub(super) segments: Vec<String>,
    /// The e.json as shown in errors.
    pub(super) source: PathBuf,
    /// The element folder on disk.
    pub(super) dir: Option<PathBuf>,
    /// The e.json text, or why it could not be read; taken by the parser.
    pub(super) text: Result<String, String>,
    /// The element folder in the embedded framework layer.
    embedded_dir: Option<&'static Dir<'static>>,
}

/// A file of an element folder, read.
pub(super) struct SiblingFile {
    /// The path as shown in errors.
    pub(super) shown: PathBuf,
    /// Its text.
    pub(super) text: String,
}

impl Found {
    /// Reads a file of the element folder by relative path; `Ok(None)` when it does not
    /// exist, `Err` (a message naming the file) when it cannot be read.
    pub(super) fn read_sibling(&self, relative: &str) -> Result<Option<SiblingFile>, String> {
        let relative = relative.trim_start_matches("./");
        let shown = self
            .source
            .parent()
            .map_or_else(|| PathBuf::from(relative), |p| p.join(relative));
        if let Some(dir) = &self.dir {
            let path = dir.join(relative);
            match read_small_file(&path) {
                Ok(text) => Ok(Some(SiblingFile { shown, text })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", shown.display())),
            }
        } else if let Some(dir) = self.embedded_dir {
            match dir.get_file(dir.path().join(relative)) {
                Some(file) => match file.contents_utf8() {
                    Some(text) => Ok(Some(SiblingFile {
                        shown,
                        text: text.to_owned(),
                    })),
                    None => Err(format!("{} is not UTF-8", shown.display())),
                },
                None => Ok(None),
            }
        } else {
            Ok(None)
        }
    }
}

/// Reads a UTF-8 file. Unlike `fs::read_to_string` it asks for no metadata first: element
/// files are small, and with ten thousand of them the extra system call shows.
fn read_small_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    // Grows to the exact size for files under one chunk; kept texts waste no capacity.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// What the walking threads share: the folders still to read.
struct QueueState {
    /// Folders waiting to be read.
    waiting: Vec<PathBuf>,
    /// Folders waiting or being read; the walk ends when it reaches zero.
    unfinished: usize,
}

/// Folders still to read, shared by the walking threads.
struct WorkQueue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

impl WorkQueue {
    fn new(root: PathBuf) -> Self {
        Self {
            state: Mutex::new(QueueState {
                waiting: vec![root],
                unfinished: 1,
            }),
            changed: Condvar::new(),
        }
    }

    /// The next folder to read; `None` once every folder has been read.
    fn next(&self) -> Option<PathBuf> {
        let mut state = self.state.lock();
        loop {
            if let Some(dir) = state.waiting.pop() {
                return Some(dir);
            }
            if state.unfinished == 0 {
                return None;
            }
            self.changed.wait(&mut state);
        }
    }

    /// Marks one folder read and queues its subfolders.
    fn finish(&self, subdirs: Vec<PathBuf>) {
        let mut state = self.state.lock();
        state.unfinished = state.unfinished + subdirs.len() - 1;
        let wake = !subdirs.is_empty() || state.unfinished == 0;
        state.waiting.extend(subdirs);
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

/// What reading one folder found: its subfolders to walk and whether it holds an e.json.
struct FolderListing {
    subdirs: Vec<PathBuf>,
    has_element: bool,
}

/// Lists one folder; hidden subfolders (`.git`, ...) are left out.
fn list_folder(dir: &Path, problems: &mut Vec<LoadError>) -> FolderListing {
    let mut listing = FolderListing {
        subdirs: Vec::new(),
        has_element: false,
    };
    let cannot_read = |e: std::io::Error| {
        LoadError::new(LoadErrorKind::Io, dir, format!("cannot read folder: {e}"))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(cannot_read(e));
            return listing;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(cannot_read(e));
                continue;
            }
        };
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.to_string_lossy().starts_with('.') {
                listing.subdirs.push(entry.path());
            }
        } else if kind.is_file() && name == "e.json" {
            listing.has_element = true;
        }
    }
    listing
}

/// Walks a layer folder and hands every element in it to `parse`, on up to four threads:
/// the work is mostly system calls (one directory read per folder, one file read per
/// e.json and config file), which overlap well. Results come back sorted by e.json path,
/// so output is stable.
pub(super) fn read_disk_layer<T: Send>(
    root: &Path,
    parse: impl Fn(Found, &mut Vec<LoadError>) -> T + Sync,
    errors: &mut Vec<LoadError>,
) -> Vec<T> {
    if !root.is_dir() {
        return Vec::new();
    }
    let queue = WorkQueue::new(root.to_path_buf());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut results: Vec<(PathBuf, T)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    let mut problems = Vec::new();
                    while let Some(dir) = queue.next() {
                        let listing = list_folder(&dir, &mut problems);
                        queue.finish(listing.subdirs);
                        if listing.has_element {
                            let found = found_on_disk(root, dir);
                            let source = found.source.clone();
                            outcomes.push((source, parse(found, &mut problems)));
                        }
                    }
                    (outcomes, problems)
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok((outcomes, problems)) => {
                    results.extend(outcomes);
                    errors.extend(problems);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results.into_iter().map(|(_, outcome)| outcome).collect()
}

/// The element in folder `dir` of the layer rooted at `root`, its e.json read.
fn found_on_disk(root: &Path, dir: PathBuf) -> Found {
    let source = dir.join("e.json");
    let segments = dir
        .strip_prefix(root)
        .unwrap_or(&dir)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Found {
        segments,
        text: read_small_file(&source).map_err(|e| format!("cannot read e.json: {e}")),
        source,
        dir: Some(dir),
        embedded_dir: None,
    }
}

/// Every element of an embedded tree, in path order; hidden folders are left out.
pub(super) fn walk_embedded(dir: &'static Dir<'static>, out: &mut Vec<Found>) {
    let e_json = dir.path().join("e.json");
    if let Some(file) = dir.get_file(&e_json) {
        let segments = dir
            .path()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.push(Found {
            segments,
            source: Path::new(FRAMEWORK_PREFIX).join(&e_json),
            dir: None,
            text: file
                .contents_utf8()
                .map(str::to_owned)
                .ok_or_else(|| "e.json is not UTF-8".to_owned()),
            embedded_dir: Some(dir),
        });
    }
    let mut subdirs: Vec<_> = dir.dirs().collect();
    subdirs.sort_by_key(|d| d.path());
    for sub in subdirs {
        if !sub
            .path()
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            walk_embedded(sub, out);
        }
    }
}
