//! Hot reload for `jit serve`: the app's `elements/` tree and app.toml's `[env]` go live
//! without a restart.
//!
//! A reload is asked for by a change on disk (a polling watcher over `elements/` and
//! app.toml, debounced), by SIGHUP, by `jit reload` (which finds the server through
//! `<app>/.jit/serve.json` and sends it SIGHUP), or by [`crate::ServerHandle::reload`].
//! Reloads run one at a time. Each one:
//!
//! 1. runs exactly the checks `jit check` runs (`commands::check_app`, their one owner) on
//!    the tree as it is now: definitions, plugin headers, merchant settings, app.toml and
//!    the start-up rules;
//! 2. refuses a change of app.toml other than `[env]` (those settings were applied at start:
//!    applying part of them would leave the server half old, half new), saying a restart
//!    applies it;
//! 3. teaches the in-process simulator new merchants, loads the plugins (from their
//!    content-addressed copies: an unchanged library keeps its loaded plugin) and builds the
//!    next generation beside the running one (`AppBuilder::build_next`: elements whose
//!    definitions and loaders did not change keep their built instances);
//! 4. swaps it in atomically: requests in flight finish on the old generation, new ones get
//!    the new one, and background work (outbox, reconciler, bill download) reaches it
//!    through its `WeakApp`.
//!
//! When any step fails the running app keeps serving, and every problem is logged as
//! `jit check` prints it (`file: JSON path: message`). Each reload is counted by outcome
//! (`jit_reloads_total`) and logged with what changed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jit_runtime::{AppSettings, BackendLoadTime, EnvSource, GenerationChanges, LiveApp, log_safe};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::HostError;
use crate::host::Host;
use crate::official::Official;
use crate::server::shutdown::ShutdownSignal;

/// The metric counting reloads, labelled by [`ReloadOutcome::label`].
pub(crate) const RELOADS: &str = "jit_reloads_total";

/// Every [`ReloadOutcome::label`], so the counter's series exist from the start.
pub(crate) const OUTCOME_LABELS: [&str; 4] =
    ["applied", "unchanged", "refused", "restart_required"];

/// How often the watcher looks at the tree.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How long the tree must stay unchanged before a change is reloaded: an editor saving
/// several files, or a folder being copied, is one reload.
const DEBOUNCE: Duration = Duration::from_millis(400);

/// What a reload came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new generation is served.
    Applied {
        /// Its number (the first build is 1).
        generation: u64,
        /// What changed, by element.
        changes: GenerationChanges,
    },
    /// The tree is valid and nothing in it changed: the running generation stays.
    Unchanged,
    /// The new tree has problems; the running app keeps serving. Each problem is a line
    /// as `jit check` prints it.
    Refused {
        /// The problems.
        problems: Vec<String>,
    },
    /// app.toml changed outside `[env]`: nothing was applied; a restart applies it.
    RestartRequired {
        /// The changed sections (`server`, `database`, ...).
        sections: Vec<String>,
    },
}

impl ReloadOutcome {
    /// The metric label: one of a fixed few.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::Unchanged => "unchanged",
            Self::Refused { .. } => "refused",
            Self::RestartRequired { .. } => "restart_required",
        }
    }
}

/// One reload asked for; the answer goes back when someone waits for it.
type ReloadRequest = Option<oneshot::Sender<ReloadOutcome>>;

/// Asks the running server's reloader for a reload.
#[derive(Debug, Clone)]
pub(crate) struct ReloadHandle {
    requests: mpsc::Sender<ReloadRequest>,
}

impl ReloadHandle {
    /// Reloads now and waits for the outcome.
    pub(crate) async fn reload_now(&self) -> ReloadOutcome {
        let (answer, outcome) = oneshot::channel();
        if self.requests.send(Some(answer)).await.is_err() {
            return stopped();
        }
        outcome.await.unwrap_or_else(|_| stopped())
    }

    /// Asks for a reload without waiting. Asked again while one is pending, the requests
    /// are one reload: the pending one will see the tree as it is then.
    fn request(&self) {
        let _ = self.requests.try_send(None);
    }
}

fn stopped() -> ReloadOutcome {
    ReloadOutcome::Refused {
        problems: vec!["the server is stopping; nothing was reloaded".to_owned()],
    }
}

/// What a reload needs of the running server.
pub(crate) struct Reloader {
    pub(crate) host: Host,
    pub(crate) app_dir: PathBuf,
    pub(crate) live: LiveApp,
    pub(crate) official: Option<Arc<Official>>,
    /// How long a replaced generation may still serve requests that started on it before
    /// its elements are stopped anyway (the request timeout bounds them).
    pub(crate) grace: Duration,
    /// app.toml's sections other than `[env]`, placeholders filled, as the server applied
    /// them at start.
    pub(crate) fixed_sections: BTreeMap<String, toml::Value>,
}

impl Reloader {
    /// Starts the reloader: it serves reload requests one at a time until `shutdown`;
    /// with `watch` it also watches the tree, with `sighup` it listens for SIGHUP. The task
    /// ends (dropping what it holds of the server) once `shutdown` fires.
    pub(crate) fn start(
        self,
        shutdown: ShutdownSignal,
        watch: bool,
        sighup: bool,
    ) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
        let (requests, mut pending) = mpsc::channel::<ReloadRequest>(4);
        let handle = ReloadHandle { requests };
        if watch {
            spawn_watcher(self.app_dir.clone(), handle.clone(), shutdown.clone());
        }
        if sighup {
            spawn_sighup(handle.clone(), shutdown.clone());
        }
        let task = tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    () = shutdown.fired() => break,
                    request = pending.recv() => match request {
                        Some(request) => request,
                        None => break,
                    },
                };
                let outcome = self.reload().await;
                metrics::counter!(RELOADS, "outcome" => outcome.label()).increment(1);
                if let Some(answer) = request {
                    let _ = answer.send(outcome);
                }
            }
        });
        (handle, task)
    }

    /// One reload, logged.
    async fn reload(&self) -> ReloadOutcome {
        let outcome = self.try_reload().await;
        match &outcome {
            ReloadOutcome::Applied {
                generation,
                changes,
            } => tracing::info!(
                generation,
                added = %changes.added.join(", "),
                removed = %changes.removed.join(", "),
                changed = %changes.changed.join(", "),
                kept = changes.kept.len(),
                "reload: the new app is live"
            ),
            ReloadOutcome::Unchanged => {
                tracing::info!("reload: no element changed; the running app stays")
            }
            ReloadOutcome::Refused { problems } => {
                for problem in problems {
                    tracing::error!("reload refused: {}", log_safe(problem));
                }
                tracing::warn!(
                    problems = problems.len(),
                    "reload refused; the running app keeps serving (`jit check` lists the same problems)"
                );
            }
            ReloadOutcome::RestartRequired { sections } => tracing::warn!(
                sections = %sections.join(", "),
                "reload: app.toml changed outside [env]; nothing was applied, restart `jit serve` to apply it"
            ),
        }
        outcome
    }

    async fn try_reload(&self) -> ReloadOutcome {
        let refused = |problems: Vec<String>| ReloadOutcome::Refused { problems };
        // The same checks as `jit check`, on the tree as it is now (file reads: off the
        // async workers).
        let host = self.host.clone();
        let app_dir = self.app_dir.clone();
        let checked =
            tokio::task::spawn_blocking(move || crate::commands::check_app(&host, &app_dir)).await;
        let (problems, definitions) = match checked {
            Ok(checked) => checked,
            Err(join) => return refused(vec![format!("the checks did not finish: {join}")]),
        };
        let definitions = match definitions {
            Some(definitions) if problems.is_empty() => definitions,
            _ => return refused(problems),
        };
        let sections = match fixed_sections(definitions.settings(), &self.app_dir) {
            Ok(sections) => sections,
            Err(err) => return refused(vec![err.to_string()]),
        };
        let changed = changed_sections(&self.fixed_sections, &sections);
        if !changed.is_empty() {
            return ReloadOutcome::RestartRequired { sections: changed };
        }
        if let Some(official) = &self.official {
            match official.learn_merchants(&definitions) {
                Ok(learned) => {
                    for fact in learned {
                        tracing::info!("reload: {fact}");
                    }
                }
                Err(problems) => return refused(problems),
            }
        }
        let plugins = match jit_plugin_host::load_plugins(&definitions) {
            Ok(plugins) => plugins,
            Err(errors) => {
                let errors: jit_runtime::LoadErrors = errors.into();
                return refused(errors.iter().map(ToString::to_string).collect());
            }
        };
        let builder = self
            .host
            .app_builder(&self.app_dir, |builder| match &self.official {
                Some(official) => official.register(builder),
                None => builder,
            });
        let builder =
            jit_plugin_host::add_plugin_loaders(builder, plugins).definitions(definitions);
        let next = match builder.build_next(&self.live.current()).await {
            Ok(next) => next,
            Err(errors) => return refused(errors.iter().map(ToString::to_string).collect()),
        };
        if let Err(errors) = next
            .app
            .build_elements(BackendLoadTime::BeforeHandleRequest)
            .await
        {
            next.abandon().await;
            return refused(errors.iter().map(ToString::to_string).collect());
        }
        // Definitions that are the same in every way (an [env] change reaches them through
        // their config files) and the same [env] (which `App::fill_placeholders` serves)
        // leave nothing to serve anew.
        if next.changes.is_empty() && next.app.settings().env == self.live.current().settings().env
        {
            next.abandon().await;
            return ReloadOutcome::Unchanged;
        }
        let generation = next.app.generation();
        match next.make_current(self.grace) {
            Ok(changes) => ReloadOutcome::Applied {
                generation,
                changes,
            },
            Err(err) => refused(vec![err.to_string()]),
        }
    }
}

/// app.toml's top-level entries other than `[env]`, placeholders filled: what the server
/// applied at start and a reload cannot change.
pub(crate) fn fixed_sections(
    settings: &AppSettings,
    app_dir: &Path,
) -> Result<BTreeMap<String, toml::Value>, HostError> {
    let env = EnvSource::new(Default::default(), settings.env.clone());
    let app_toml = app_dir.join("app.toml");
    let mut sections = BTreeMap::new();
    for (name, value) in &settings.raw {
        if name == "env" {
            continue;
        }
        let mut value = value.clone();
        crate::host::fill_value(&mut value, &env, &app_toml)?;
        sections.insert(name.clone(), value);
    }
    Ok(sections)
}

/// The sections whose value differs (added, removed or changed), sorted.
fn changed_sections(
    running: &BTreeMap<String, toml::Value>,
    now: &BTreeMap<String, toml::Value>,
) -> Vec<String> {
    let mut names: Vec<String> = running
        .keys()
        .chain(now.keys())
        .filter(|name| running.get(*name) != now.get(*name))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Watches `elements/` and app.toml by polling (portable, and cheap for an app's tree),
/// and asks for a reload once a change has settled.
fn spawn_watcher(app_dir: PathBuf, handle: ReloadHandle, shutdown: ShutdownSignal) {
    tokio::spawn(async move {
        let look = |dir: PathBuf| async move {
            tokio::task::spawn_blocking(move || fingerprint(&dir))
                .await
                .unwrap_or_default()
        };
        let mut served = look(app_dir.clone()).await;
        // A change seen but not settled yet: its fingerprint and since when it holds.
        let mut settling: Option<(u64, tokio::time::Instant)> = None;
        loop {
            tokio::select! {
                () = shutdown.fired() => break,
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            let now = look(app_dir.clone()).await;
            if now == served {
                settling = None;
                continue;
            }
            match settling {
                Some((seen, since)) if seen == now => {
                    if since.elapsed() >= DEBOUNCE {
                        tracing::info!("reload: a change in elements/ or app.toml");
                        served = now;
                        settling = None;
                        handle.request();
                    }
                }
                _ => settling = Some((now, tokio::time::Instant::now())),
            }
        }
    });
}

/// A digest of app.toml and every file under `elements/`: path, size and modification time.
fn fingerprint(app_dir: &Path) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut entries: Vec<(PathBuf, u64, Option<std::time::SystemTime>)> = Vec::new();
    let mut stamp = |path: &Path| {
        if let Ok(meta) = std::fs::metadata(path) {
            entries.push((path.to_owned(), meta.len(), meta.modified().ok()));
        }
    };
    stamp(&app_dir.join("app.toml"));
    let mut folders = vec![app_dir.join("elements")];
    while let Some(folder) = folders.pop() {
        let Ok(listing) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in listing.flatten() {
            // Symbolic links are not followed into folders (no loops); a linked file counts
            // through its target's size and time.
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => folders.push(entry.path()),
                Ok(_) => stamp(&entry.path()),
                Err(_) => {}
            }
        }
    }
    entries.sort();
    let mut hasher = DefaultHasher::new();
    entries.hash(&mut hasher);
    hasher.finish()
}

/// SIGHUP asks for a reload (what `jit reload` sends). Unix only.
#[cfg(not(unix))]
fn spawn_sighup(_handle: ReloadHandle, _shutdown: ShutdownSignal) {}

/// SIGHUP asks for a reload (what `jit reload` sends).
#[cfg(unix)]
fn spawn_sighup(handle: ReloadHandle, shutdown: ShutdownSignal) {
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; `jit reload` will not reach this server");
                return;
            }
        };
        loop {
            tokio::select! {
                () = shutdown.fired() => break,
                received = hangups.recv() => {
                    if received.is_none() {
                        break;
                    }
                    tracing::info!("reload: SIGHUP received");
                    handle.request();
                }
            }
        }
    });
}

/// `<app>/.jit/serve.json`: how `jit reload` finds the `jit serve` of an app folder.
pub(crate) const SERVE_FILE: &str = ".jit/serve.json";

/// What `jit serve` records while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServeRecord {
    /// The `jit serve` process.
    pub(crate) pid: u32,
    /// Its base URL.
    pub(crate) url: String,
}

/// A record this process wrote; [`WrittenServeRecord::remove`] takes it away again.
#[derive(Debug)]
pub(crate) struct WrittenServeRecord {
    path: PathBuf,
    record: ServeRecord,
}

impl ServeRecord {
    /// Writes the record for the app in `app_dir` (replacing one a crashed server left).
    pub(crate) fn write(self, app_dir: &Path) -> io::Result<WrittenServeRecord> {
        let path = app_dir.join(SERVE_FILE);
        let dir = path.parent().expect("the path has a folder");
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(&self).map_err(io::Error::other)?;
        // Written aside, then renamed: a reader never sees half a file.
        let partial = dir.join(format!("serve.json.{}.tmp", std::process::id()));
        std::fs::write(&partial, text + "\n")?;
        std::fs::rename(&partial, &path)?;
        Ok(WrittenServeRecord { path, record: self })
    }
}

impl WrittenServeRecord {
    /// Removes the record if it is still the one this process wrote.
    pub(crate) fn remove(self) {
        let still_ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| serde_json::from_str::<ServeRecord>(&text).ok())
            .is_some_and(|found| found == self.record);
        if still_ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(file = %self.path.display(), error = %err, "cannot remove the server record");
        }
    }
}

/// `jit reload`: finds the `jit serve` of the app in `app_dir` and sends it SIGHUP.
#[cfg(not(unix))]
pub(crate) fn signal_server(_app_dir: &Path) -> Result<String, HostError> {
    Err(HostError::command(
        "`jit reload` signals the server with SIGHUP, which this system does not have; \
         the server still reloads when its elements/ tree changes",
    ))
}

/// `jit reload`: finds the `jit serve` of the app in `app_dir` and sends it SIGHUP.
#[cfg(unix)]
pub(crate) fn signal_server(app_dir: &Path) -> Result<String, HostError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let path = app_dir.join(SERVE_FILE);
    let shown = crate::host::display_dir(&path);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(HostError::command(format!(
                "no `jit serve` is running for the app in {}: {} does not exist (`jit serve` \
                 writes it while it runs); start it, or pass --app DIR",
                crate::host::display_dir(app_dir).display(),
                shown.display()
            )));
        }
        Err(err) => {
            return Err(HostError::command(format!(
                "cannot read {}: {err}",
                shown.display()
            )));
        }
    };
    let record: ServeRecord = serde_json::from_str(&text).map_err(|err| {
        HostError::command(format!(
            "{}: not a server record ({err}); delete it and restart `jit serve`",
            shown.display()
        ))
    })?;
    // A record a crashed server left may name a pid the system has given to another
    // program since: SIGHUP would stop it. Where the system shows command lines, the
    // process must be a `serve`.
    if let Ok(command_line) = std::fs::read(format!("/proc/{}/cmdline", record.pid))
        && !command_line
            .split(|byte| *byte == 0)
            .any(|arg| arg == b"serve")
    {
        return Err(HostError::command(format!(
            "no `jit serve` is running for the app: {} names pid {}, which is another \
             program now (the server stopped without removing the file); delete the file",
            shown.display(),
            record.pid
        )));
    }
    let pid = i32::try_from(record.pid)
        .ok()
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| {
            HostError::command(format!(
                "{}: pid {} is not a process id",
                shown.display(),
                record.pid
            ))
        })?;
    kill(pid, Signal::SIGHUP).map_err(|err| {
        HostError::command(format!(
            "no `jit serve` is running for the app: {} names pid {} ({}), which cannot be \
             signalled ({err}); it may have stopped without removing the file",
            shown.display(),
            record.pid,
            record.url
        ))
    })?;
    Ok(format!(
        "asked `jit serve` (pid {}, {}) to reload; its log says what changed or what is wrong",
        record.pid, record.url
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(text: &str) -> BTreeMap<String, toml::Value> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.toml"), text).unwrap();
        let settings = AppSettings::load(dir.path(), true).unwrap();
        fixed_sections(&settings, dir.path()).unwrap()
    }

    const BASE: &str = "[app]\nname = \"shop\"\norg = \"acme\"\n";

    #[test]
    fn only_env_changes_are_reloadable() {
        let running = sections(&format!(
            "{BASE}[env]\nA = \"1\"\n[server]\nlisten = \"127.0.0.1:1\"\n"
        ));
        let env_changed = sections(&format!(
            "{BASE}[env]\nA = \"2\"\nB = \"3\"\n[server]\nlisten = \"127.0.0.1:1\"\n"
        ));
        assert!(changed_sections(&running, &env_changed).is_empty());
        let server_changed = sections(&format!(
            "{BASE}[env]\nA = \"1\"\n[server]\nlisten = \"127.0.0.1:2\"\n"
        ));
        assert_eq!(changed_sections(&running, &server_changed), ["server"]);
        let added = sections(&format!(
            "{BASE}[env]\nA = \"1\"\n[server]\nlisten = \"127.0.0.1:1\"\n[gateway]\nsimulator = true\n"
        ));
        assert_eq!(changed_sections(&running, &added), ["gateway"]);
    }

    #[test]
    fn a_section_reading_a_changed_env_value_needs_a_restart() {
        let running = sections(&format!(
            "{BASE}[env]\nDB = \"sqlite://a.db\"\n[database]\nurl = \"{{{{DB}}}}\"\n"
        ));
        let now = sections(&format!(
            "{BASE}[env]\nDB = \"sqlite://b.db\"\n[database]\nurl = \"{{{{DB}}}}\"\n"
        ));
        assert_eq!(changed_sections(&running, &now), ["database"]);
    }

    #[test]
    fn the_fingerprint_sees_added_changed_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.toml"), BASE).unwrap();
        std::fs::create_dir_all(dir.path().join("elements/a")).unwrap();
        let empty = fingerprint(dir.path());
        std::fs::write(dir.path().join("elements/a/e.json"), "{}").unwrap();
        let one = fingerprint(dir.path());
        assert_ne!(empty, one);
        assert_eq!(one, fingerprint(dir.path()), "stable while nothing changes");
        std::fs::write(dir.path().join("elements/a/e.json"), "{\"x\": 1}").unwrap();
        assert_ne!(one, fingerprint(dir.path()));
        std::fs::remove_file(dir.path().join("elements/a/e.json")).unwrap();
        assert_eq!(empty, fingerprint(dir.path()));
    }

    #[cfg(unix)]
    #[test]
    fn jit_reload_says_when_no_server_runs() {
        let dir = tempfile::tempdir().unwrap();
        let error = signal_server(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no `jit serve` is running"), "{error}");
        assert!(error.contains("serve.json"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn jit_reload_never_signals_a_process_that_is_not_a_server() {
        // A stale record naming a live process that is no `jit serve`.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let _written = ServeRecord {
            pid: other.id(),
            url: "http://127.0.0.1:1".to_owned(),
        }
        .write(dir.path())
        .unwrap();
        let refused = signal_server(dir.path());
        let alive = other.try_wait().unwrap().is_none();
        other.kill().unwrap();
        other.wait().unwrap();
        let error = refused.unwrap_err().to_string();
        assert!(error.contains("another program now"), "{error}");
        assert!(alive, "the other program was not signalled");
    }
}
