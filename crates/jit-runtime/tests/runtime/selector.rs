//! `findElements` selectors: the parser (errors, canonical printing, never panicking) and
//! what each form selects; the element kinds; private elements of lower layers.

use jit_runtime::{Definitions, ElementKind, Selector};
use proptest::prelude::*;

use crate::common::{Tree, app_toml};

/// framework (`pays.*`, `models.*`) < base (extended app) < shop.
fn shop() -> Tree {
    Tree::new(&[
        (
            "app/app.toml",
            "[app]\nname = \"shop\"\norg = \"acme\"\nextends = [\"../base\"]\n",
        ),
        ("base/app.toml", &app_toml("base")),
        (
            "base/elements/lib/Secret/e.json",
            r#"{"type": "pays.Meta", "accessModifier": "private"}"#,
        ),
        (
            "base/elements/lib/secretUser/e.json",
            r#"{"type": "lib.Secret", "functionList": [{"name": "go", "args": []}]}"#,
        ),
        (
            "base/elements/lib/OpenType/e.json",
            r#"{"type": "pays.Meta"}"#,
        ),
        (
            "app/elements/pays/myPay/e.json",
            r#"{"type": "pays.TestPayType", "mchId": "10000100", "apiKey": "k1", "tags": ["cn", "main"]}"#,
        ),
        (
            "app/elements/pays/otherPay/e.json",
            r#"{"type": "shop.DiscountPayType", "mchId": 10000200, "note": "second shop"}"#,
        ),
        (
            "app/elements/shop/DiscountPayType/e.json",
            r#"{"type": "pays.TestPayType", "title": "Discount"}"#,
        ),
        (
            "app/elements/shop/LonelyType/e.json",
            r#"{"type": "pays.TestPayType"}"#,
        ),
        (
            "app/elements/shop/services/checkout/e.json",
            r#"{"type": "models.Base", "accessModifier": "private"}"#,
        ),
        (
            "app/elements/shop/services/checkout/inner/e.json",
            r#"{"type": "models.Base"}"#,
        ),
        (
            "app/elements/shop/services/deep/down/e.json",
            r#"{"type": "models.Base", "functionList": [{"name": "create", "args": []}]}"#,
        ),
    ])
}

fn defs(tree: &Tree) -> Definitions {
    tree.builder("app").load_definitions().expect("loads")
}

fn select(defs: &Definitions, selector: &str) -> Vec<String> {
    let selector = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
    defs.select(&selector)
        .iter()
        .map(|chain| chain.element().full_name.to_string())
        .collect()
}

#[test]
fn by_full_name_and_globs() {
    let tree = shop();
    let defs = defs(&tree);
    assert_eq!(select(&defs, "pays.myPay"), ["pays.myPay"]);
    assert!(select(&defs, "pays.nothing").is_empty());
    assert_eq!(
        select(&defs, "pays.*"),
        [
            "pays.Locked",
            "pays.Meta",
            "pays.TestPayType",
            "pays.internalUser",
            "pays.myPay",
            "pays.otherPay"
        ]
    );
    assert_eq!(select(&defs, "pays.*Pay"), ["pays.myPay", "pays.otherPay"]);
    assert_eq!(select(&defs, "pays.m*P*y"), ["pays.myPay"]);
    assert_eq!(
        select(&defs, "shop.**"),
        [
            "shop.DiscountPayType",
            "shop.LonelyType",
            "shop.services.checkout",
            "shop.services.checkout.inner",
            "shop.services.deep.down"
        ]
    );
    assert_eq!(
        select(&defs, "**.down, shop.*.checkout"),
        ["shop.services.checkout", "shop.services.deep.down"]
    );
    assert_eq!(select(&defs, "*").len(), defs.listed().count());
}

#[test]
fn by_type_anywhere_on_the_chain() {
    let tree = shop();
    let defs = defs(&tree);
    // Types further down included: otherPay is a DiscountPayType, itself a TestPayType.
    assert_eq!(
        select(&defs, ".pays.TestPayType"),
        [
            "pays.myPay",
            "pays.otherPay",
            "shop.DiscountPayType",
            "shop.LonelyType"
        ]
    );
    assert_eq!(select(&defs, ".shop.DiscountPayType"), ["pays.otherPay"]);
    assert!(
        select(&defs, ".pays.myPay").is_empty(),
        "an element is not its own type"
    );
    assert_eq!(
        select(&defs, "pays.*:type(pays.TestPayType)"),
        ["pays.myPay", "pays.otherPay"]
    );
    assert_eq!(
        select(&defs, ".pays.TestPayType[kind=instance]"),
        ["pays.myPay", "pays.otherPay"]
    );
    assert_eq!(select(&defs, ".shop.*Type"), ["pays.otherPay"]);
}

#[test]
fn by_attribute() {
    let tree = shop();
    let defs = defs(&tree);
    assert_eq!(select(&defs, "[mchId=10000100]"), ["pays.myPay"]);
    // A number compares by its JSON text; quotes allow any value.
    assert_eq!(select(&defs, r#"[mchId="10000200"]"#), ["pays.otherPay"]);
    assert_eq!(select(&defs, "[mchId]"), ["pays.myPay", "pays.otherPay"]);
    assert_eq!(select(&defs, "[tags~=main]"), ["pays.myPay"]);
    assert_eq!(select(&defs, "[note~=second]"), ["pays.otherPay"]);
    assert_eq!(select(&defs, "[note^=sec][note$=shop]"), ["pays.otherPay"]);
    assert!(
        Selector::parse("[note*=nd s]").is_err(),
        "bare values stop at spaces"
    );
    assert_eq!(select(&defs, r#"[note*="nd s"]"#), ["pays.otherPay"]);
    // Settings are merged down the chain: currency comes from the framework's Type.
    assert_eq!(
        select(&defs, "pays.*[currency=CNY]"),
        ["pays.TestPayType", "pays.myPay", "pays.otherPay"]
    );
    // functionList: every function callable on the element, from anywhere on its chain.
    assert_eq!(
        select(&defs, "[functionList~=create][kind=instance]"),
        ["pays.myPay", "pays.otherPay", "shop.services.deep.down"]
    );
    assert_eq!(select(&defs, "[accessModifier=protected]"), ["pays.Locked"]);
    assert_eq!(
        select(&defs, "[accessModifier=private]"),
        ["shop.services.checkout"]
    );
    assert_eq!(select(&defs, "[title=Discount]"), ["shop.DiscountPayType"]);
    assert_eq!(
        select(&defs, "[layer=base]"),
        ["lib.OpenType", "lib.secretUser"]
    );
    assert_eq!(
        select(&defs, "[type=shop.DiscountPayType]"),
        ["pays.otherPay"]
    );
    assert_eq!(
        select(&defs, "[chain~=lib.Secret]"),
        ["lib.secretUser"],
        "the private type is on its own layer's chains"
    );
}

#[test]
fn a_secret_answers_presence_only() {
    let tree = shop();
    let defs = defs(&tree);
    assert_eq!(select(&defs, "[apiKey]"), ["pays.myPay"]);
    for guess in ["[apiKey=k1]", "[apiKey^=k]", "[apiKey*=1]", "[apiKey~=k1]"] {
        assert!(select(&defs, guess).is_empty(), "{guess} must not match");
    }
}

#[test]
fn by_parent_and_ancestor_folders() {
    let tree = shop();
    let defs = defs(&tree);
    // `shop.services` is a folder, not an element: a plain name matches it.
    assert_eq!(
        select(&defs, "shop.services > *"),
        ["shop.services.checkout"]
    );
    assert_eq!(
        select(&defs, "shop.services *"),
        [
            "shop.services.checkout",
            "shop.services.checkout.inner",
            "shop.services.deep.down"
        ]
    );
    // An element parent, with filters.
    assert_eq!(
        select(&defs, "[accessModifier=private] > *"),
        ["shop.services.checkout.inner"]
    );
    // A folder has no attributes and no type.
    assert!(select(&defs, ".models.Meta > shop.services.deep.down").is_empty());
    assert!(select(&defs, "shop[kind=instance] *").is_empty());
    assert_eq!(
        select(&defs, "shop > shop.services > shop.*.deep > *"),
        ["shop.services.deep.down"]
    );
    assert!(select(&defs, "shop > shop.services.deep > *").is_empty());
    assert_eq!(
        select(&defs, "shop shop.services.deep *"),
        ["shop.services.deep.down"]
    );
    assert!(
        select(&defs, "deep *").is_empty(),
        "names are whole fullNames"
    );
    assert_eq!(select(&defs, "shop.**.deep *"), ["shop.services.deep.down"]);
}

#[test]
fn kinds_follow_one_rule() {
    let tree = shop();
    let defs = defs(&tree);
    let kind = |name: &str| defs.kind(defs.chain(name).expect(name));
    assert_eq!(kind("pays.Meta"), ElementKind::Meta);
    assert_eq!(kind("pays.TestPayType"), ElementKind::Type);
    assert_eq!(
        kind("shop.DiscountPayType"),
        ElementKind::Type,
        "used as a type"
    );
    // Nothing uses these yet: a Type by its name, or by having nothing to serve.
    assert_eq!(kind("shop.LonelyType"), ElementKind::Type);
    assert_eq!(kind("lib.OpenType"), ElementKind::Type);
    assert_eq!(kind("pays.Locked"), ElementKind::Type);
    assert_eq!(kind("pays.myPay"), ElementKind::Instance);
    assert_eq!(kind("shop.services.deep.down"), ElementKind::Instance);
    assert_eq!(kind("shop.services.checkout.inner"), ElementKind::Instance);
    assert!(defs.is_instance(defs.chain("pays.otherPay").expect("otherPay")));
    assert_eq!(
        select(&defs, "[kind=type]"),
        [
            "lib.OpenType",
            "models.Base",
            "pays.Locked",
            "pays.TestPayType",
            "shop.DiscountPayType",
            "shop.LonelyType"
        ]
    );
}

#[test]
fn private_elements_of_lower_layers_are_not_listed() {
    let tree = shop();
    let child = defs(&tree);
    let listed: Vec<String> = child
        .listed()
        .map(|c| c.element().full_name.to_string())
        .collect();
    assert!(!listed.iter().any(|n| n == "lib.Secret"), "{listed:?}");
    assert!(!listed.iter().any(|n| n == "pays.Internal"), "{listed:?}");
    // Still visible to the runtime, and on its own layer's chains.
    assert!(child.get("lib.Secret").is_some());
    assert_eq!(
        child.chain("lib.secretUser").expect("user").to_string(),
        "lib.secretUser → lib.Secret → pays.Meta"
    );
    // The app's own private element is listed.
    assert!(listed.iter().any(|n| n == "shop.services.checkout"));
    // The parent app lists its own private element.
    let parent = tree.builder("base").load_definitions().expect("base loads");
    assert!(
        parent
            .listed()
            .any(|c| c.element().full_name.as_str() == "lib.Secret")
    );
    assert!(
        !parent
            .listed()
            .any(|c| c.element().full_name.as_str() == "pays.Internal")
    );
}

#[test]
fn parse_errors_name_the_column_and_what_was_expected() {
    let cases = [
        ("", 1, "an element selector", "end of selector"),
        ("pays.", 6, "a name segment", "end of selector"),
        ("pays..x", 6, "a name segment", "`.`"),
        ("pays.**x", 6, "`**` as a whole segment", "`**x`"),
        ("pays.1x", 6, "a name segment starting with a letter", "`1`"),
        ("[mchId", 7, "`]`, `=`", "end of selector"),
        ("[mchId=]", 8, "a value", "`]`"),
        (
            "[mchId=1",
            9,
            "`]` closing the attribute",
            "end of selector",
        ),
        ("[=1]", 2, "an attribute name", "`=`"),
        (
            r#"[a="x]"#,
            7,
            "`\"` closing the quoted value",
            "end of selector",
        ),
        (r#"[a="\x"]"#, 6, "`\\\"` or `\\\\` after", "`x`"),
        (":kind(x)", 2, "`:type(`", "`k`"),
        (":type(a", 8, "`)` closing `:type(`", "end of selector"),
        ("a,", 3, "an element selector", "end of selector"),
        ("a > ,b", 5, "an element selector", "`,`"),
        ("a)", 2, "`,`, `>`", "`)`"),
    ];
    for (text, column, expected, found) in cases {
        let error = Selector::parse(text).expect_err(text);
        assert_eq!(error.column, column, "{text:?}: {error}");
        assert!(error.expected.starts_with(expected), "{text:?}: {error}");
        assert_eq!(error.found, found, "{text:?}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("bad selector at column {column}: expected "))
        );
    }
    let long = "a".repeat(jit_runtime::selector::SELECTOR_MAX_LEN + 1);
    assert!(Selector::parse(&long).is_err());
}

#[test]
fn display_is_canonical() {
    for (text, canonical) in [
        ("pays.myPay", "pays.myPay"),
        ("  pays.* ,.pays.Meta[ a = b ]", "pays.*, .pays.Meta[a=b]"),
        ("[a~=\"x y\"]", "*[a~=\"x y\"]"),
        ("a>b  c", "a > b c"),
        (":type( pays.Meta )", "*:type(pays.Meta)"),
        (r#"[a="q\"\\"]"#, r#"*[a="q\"\\"]"#),
    ] {
        let selector = Selector::parse(text).expect(text);
        assert_eq!(selector.to_string(), canonical);
        assert_eq!(Selector::parse(canonical).expect(canonical), selector);
    }
}

proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC{0,64}") {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_selector_like_text(text in "[a-z*.,> \\[\\]=~^$:()\"\\\\A-Z0-9_]{0,48}") {
        if let Ok(selector) = Selector::parse(&text) {
            let printed = selector.to_string();
            let again = Selector::parse(&printed).expect("the canonical form parses");
            prop_assert_eq!(again, selector);
        }
    }

    #[test]
    fn display_round_trips(selector in selector_text()) {
        let parsed = Selector::parse(&selector).expect("generated selectors are valid");
        let printed = parsed.to_string();
        prop_assert_eq!(Selector::parse(&printed).expect("printed parses"), parsed);
    }
}

/// Valid selectors built from the grammar.
fn selector_text() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        "[a-z]{0,3}\\*[a-z]{0,3}",
        Just("**".to_owned()),
    ];
    let name = prop::collection::vec(segment, 1..4).prop_map(|s| s.join("."));
    let value = prop_oneof![
        "[a-zA-Z0-9_.:-]{1,8}",
        "\\PC{0,8}".prop_map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))),
    ];
    let op = prop_oneof![Just("="), Just("~="), Just("^="), Just("$="), Just("*=")];
    let attr =
        ("[a-zA-Z_][a-zA-Z0-9_-]{0,5}", prop::option::of((op, value))).prop_map(|(key, test)| {
            match test {
                None => format!("[{key}]"),
                Some((op, value)) => format!("[ {key} {op} {value} ]"),
            }
        });
    let filter = prop_oneof![attr, name.clone().prop_map(|n| format!(":type({n})"))];
    let head = prop_oneof![
        Just(String::new()),
        Just("*".to_owned()),
        name.clone(),
        name.prop_map(|n| format!(".{n}")),
    ];
    let compound = (head, prop::collection::vec(filter, 0..3)).prop_map(|(head, filters)| {
        let head = if head.is_empty() && filters.is_empty() {
            "*".to_owned()
        } else {
            head
        };
        format!("{head}{}", filters.concat())
    });
    let combinator = prop_oneof![Just(" "), Just(" > "), Just(">")];
    let complex = (
        compound.clone(),
        prop::collection::vec((combinator, compound), 0..3),
    )
        .prop_map(|(first, rest)| {
            let mut out = first;
            for (c, compound) in rest {
                out.push_str(c);
                out.push_str(&compound);
            }
            out
        });
    prop::collection::vec(complex, 1..3).prop_map(|c| c.join(" , "))
}
