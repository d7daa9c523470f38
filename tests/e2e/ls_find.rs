//! The real `jit` binary: `jit ls` kinds (one rule), `jit ls --find SELECTOR`, and a parent
//! app's `private` elements in a child app's listing.

use std::path::Path;
use std::process::Output;

use crate::util::{TempApp, example_app, jit_command};

fn jit(args: &[&str]) -> Output {
    jit_command()
        .args(args)
        .output()
        .expect("the jit binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `jit ls` (with `extra` arguments) of the app in `dir`, which must succeed.
fn ls(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["ls", "--app", dir.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let output = jit(&args);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// The line of `listing` whose first word is `leaf`, without padding.
fn line<'a>(listing: &'a str, leaf: &str) -> &'a str {
    listing
        .lines()
        .find(|line| line.split_whitespace().next() == Some(leaf))
        .unwrap_or_else(|| panic!("no `{leaf}` line in:\n{listing}"))
}

#[test]
fn ls_labels_a_type_without_instances_as_a_type() {
    let shop = example_app();
    let listing = ls(shop.path(), &[]);
    // services.NormalType has no instance in the example shop: still a Type.
    assert!(
        line(&listing, "NormalType").ends_with("[Type; framework]"),
        "{listing}"
    );
    assert!(
        line(&listing, "PaySvc").ends_with("[instance; framework]"),
        "{listing}"
    );
    assert!(
        line(&listing, "myWechatPay").ends_with("[instance; shop]"),
        "{listing}"
    );
    // `jit check` counts instances by the same rule.
    let output = jit(&["check", "--app", shop.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("(4 instances)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn ls_find_filters_the_tree() {
    let shop = example_app();
    let dir = shop.path();

    // By type: the instances of WechatPayType, under their folder.
    let listing = ls(dir, &["--find", ".pays.WechatPayType"]);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert_eq!(listing.lines().next(), Some("pays"), "{listing}");
    assert!(
        line(&listing, "myWechatPay").contains("pays.myWechatPay → pays.WechatPayType → pays.Meta"),
        "{listing}"
    );

    // By parent folder: a folder row, then its children.
    let listing = ls(dir, &["--find", "pays.services > *"]);
    assert_eq!(
        listing.lines().map(str::trim_end).collect::<Vec<_>>()[..2],
        ["pays", "  services"],
        "{listing}"
    );
    assert!(
        line(&listing, "PaySvc").contains("pays.services.PaySvc"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 3, "{listing}");

    // By attribute, a union, and kinds.
    let listing = ls(dir, &["--find", "[mchId=10000100], services.*[kind=type]"]);
    let leaves: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains('['))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(leaves, ["myWechatPay", "NormalType"], "{listing}");

    // Nothing matches: an empty tree, and a note on stderr.
    let output = jit(&["ls", "--app", dir.to_str().unwrap(), "--find", "nothing.*"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("no element matches"),
        "{}",
        stderr(&output)
    );

    // A bad selector names the column and what was expected.
    let output = jit(&["ls", "--app", dir.to_str().unwrap(), "--find", "pays.[x"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("bad selector at column 6: expected a name segment"),
        "{error}"
    );
}

#[test]
fn a_parent_apps_private_element_is_not_in_the_childs_ls() {
    let parent = TempApp::new(
        "",
        &[
            ("elements/lib/Meta/e.json", r#"{"title": "lib"}"#),
            (
                "elements/lib/Hidden/e.json",
                r#"{"type": "lib.Meta", "accessModifier": "private"}"#,
            ),
            (
                "elements/lib/hiddenUser/e.json",
                r#"{"type": "lib.Hidden", "mchId": "1"}"#,
            ),
            ("elements/lib/Open/e.json", r#"{"type": "lib.Meta"}"#),
        ],
    );
    let child = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        child.path().join("app.toml"),
        format!(
            "[app]\norg = \"acme\"\nname = \"child\"\nextends = [{:?}]\n",
            parent.path().to_str().unwrap()
        ),
    )
    .expect("write app.toml");
    std::fs::create_dir_all(child.path().join("elements/shop/thing")).unwrap();
    std::fs::write(
        child.path().join("elements/shop/thing/e.json"),
        r#"{"type": "lib.Open"}"#,
    )
    .unwrap();

    // The parent's own ls shows its private element.
    let listing = ls(parent.path(), &[]);
    assert!(listing.contains("lib.Hidden → lib.Meta"), "{listing}");

    // The child's ls does not; the parent's element that uses it still works.
    let listing = ls(child.path(), &[]);
    assert!(
        !listing
            .lines()
            .any(|line| line.split_whitespace().next() == Some("Hidden")),
        "{listing}"
    );
    assert!(
        listing.contains("lib.hiddenUser → lib.Hidden → lib.Meta"),
        "{listing}"
    );
    assert!(
        listing.contains("shop.thing → lib.Open → lib.Meta"),
        "{listing}"
    );
    let listing = ls(child.path(), &["--find", "[accessModifier=private]"]);
    assert_eq!(listing, "", "selectors see what ls lists");
    let output = jit(&[
        "show",
        "lib.hiddenUser",
        "--app",
        child.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}
