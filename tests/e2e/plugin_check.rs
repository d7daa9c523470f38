//! `jit check` validates native plugins from their files alone, through the real binary:
//! the test plugins have an initialiser that writes a marker file when the system's dynamic
//! loader maps them, so a library that check loaded (and so ran) leaves the marker behind.
//! `jit serve` loads an accepted plugin (the marker appears, which shows the marker works)
//! and never loads a refused one. A library must stay inside its element's folder with
//! every symbolic link resolved.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use test_support::library_file_name;

use crate::binary::{Served, jit, refused_to_start, text, use_simulator};
use crate::util::{client, copy_example_app};

/// The variable the test plugins' initialiser reads (see crates/test-probe-plugin).
const MARKER_VARIABLE: &str = "JIT_TEST_PLUGIN_INIT_MARKER";

/// The test plugins, built once per run of this test binary.
struct Libraries {
    /// `test-probe-plugin`: a valid header.
    probe: PathBuf,
    /// `test-bad-plugin`: a header claiming ABI version 999.
    wrong_abi: PathBuf,
}

fn libraries() -> &'static Libraries {
    static BUILT: OnceLock<Libraries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built = test_support::build_cdylibs(
            &["test-probe-plugin", "test-bad-plugin"],
            !cfg!(debug_assertions),
        );
        let mut take = |name: &str| built.remove(name).expect("built above");
        Libraries {
            probe: take("test_probe_plugin"),
            wrong_abi: take("test_bad_plugin"),
        }
    })
}

/// The example shop in a temporary folder, its gateway the simulator, with a Type
/// `pays.<folder>` extending `pays.WechatPayType` whose backendBundleEntry is `entry`,
/// configured with the shop's merchant (with no instance, it is served as one).
fn shop_with_plugin_type(folder: &str, entry: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_example_app(dir.path());
    use_simulator(dir.path());
    let type_folder = dir.path().join("elements/pays").join(folder);
    std::fs::create_dir_all(&type_folder).expect("create the Type's folder");
    let e_json = serde_json::json!({
        "title": "A plugin Type",
        "type": "pays.WechatPayType",
        "backendBundleEntry": entry,
    });
    std::fs::write(type_folder.join("e.json"), e_json.to_string()).expect("write e.json");
    std::fs::copy(
        dir.path()
            .join("elements/pays/myWechatPay/myWechatPay.json"),
        type_folder.join(format!("{folder}.json")),
    )
    .expect("copy the merchant configuration");
    (dir, type_folder)
}

/// Where the initialiser of a library loaded by a process of this test would write.
fn marker_in(app: &Path) -> PathBuf {
    app.join("plugin-was-loaded")
}

fn marker_env(marker: &Path) -> [(&'static str, &OsStr); 1] {
    [(MARKER_VARIABLE, marker.as_os_str())]
}

#[tokio::test]
async fn check_accepts_a_plugin_from_its_file_without_running_any_of_it() {
    let file_name = library_file_name("test_probe_plugin");
    let libraries = tokio::task::spawn_blocking(libraries)
        .await
        .expect("building the plugins");
    let (app, folder) = shop_with_plugin_type("ProbeType", &file_name);
    std::fs::copy(&libraries.probe, folder.join(&file_name)).expect("install the plugin");
    let marker = marker_in(app.path());

    let output = jit(&["check"], app.path())
        .envs(marker_env(&marker))
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(output.status.success(), "jit check refused it:\n{report}");
    assert!(report.starts_with("ok: app demo/shop"), "{report}");
    assert!(
        !marker.exists(),
        "jit check loaded the plugin library: its initialiser ran"
    );

    // jit serve does load it: the initialiser runs, as it would for any library.
    let mut served = Served::start(app.path(), &marker_env(&marker));
    served.ready(&client()).await;
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the marker jit serve's load left"),
        "test-probe-plugin was loaded"
    );
    served.stop().await;
}

#[test]
fn a_refused_header_is_read_from_the_file_by_check_and_serve_alike() {
    let file_name = library_file_name("test_bad_plugin");
    let (app, folder) = shop_with_plugin_type("WrongAbiType", &file_name);
    std::fs::copy(&libraries().wrong_abi, folder.join(&file_name)).expect("install the plugin");
    let marker = marker_in(app.path());
    let expected = format!(
        "{}: backendBundleEntry: pays.WrongAbiType: plugin `",
        folder.join("e.json").display()
    );

    let output = jit(&["check"], app.path())
        .envs(marker_env(&marker))
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    let line = report
        .lines()
        .find(|line| line.starts_with(&expected))
        .unwrap_or_else(|| panic!("no problem for pays.WrongAbiType:\n{report}"));
    assert!(
        line.ends_with("refused: header field `abi_version` is 999, expected 1 or 2"),
        "{line}"
    );
    assert!(!marker.exists(), "jit check loaded the refused library");

    let report = refused_to_start(app.path(), &marker_env(&marker));
    assert!(report.contains(line), "`{line}` not in:\n{report}");
    assert!(!marker.exists(), "jit serve loaded the refused library");
}

#[cfg(unix)]
#[test]
fn a_library_linked_from_outside_its_element_folder_is_refused() {
    let file_name = library_file_name("test_probe_plugin");
    let (app, folder) = shop_with_plugin_type("LinkedType", &file_name);
    // The library sits elsewhere in the app; the element's folder has a link to it.
    let outside = app.path().join("shared-libraries");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::copy(&libraries().probe, outside.join(&file_name)).expect("copy the library");
    std::os::unix::fs::symlink(outside.join(&file_name), folder.join(&file_name))
        .expect("link it into the element's folder");
    let marker = marker_in(app.path());
    let expected = [
        format!(
            "{}: backendBundleEntry: pays.LinkedType: `{file_name}` resolves to `",
            folder.join("e.json").display()
        ),
        "outside the element's folder".to_owned(),
    ];

    let output = jit(&["check"], app.path())
        .envs(marker_env(&marker))
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    for part in &expected {
        assert!(report.contains(part.as_str()), "`{part}` not in:\n{report}");
    }

    let report = refused_to_start(app.path(), &marker_env(&marker));
    for part in &expected {
        assert!(report.contains(part.as_str()), "`{part}` not in:\n{report}");
    }
    assert!(!marker.exists(), "a library outside its folder was loaded");
}
