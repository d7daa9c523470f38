//! Element selectors: the small CSS-like query language of `findElements`
//! ([`Definitions::select`], [`crate::App::find_elements`], `jit ls --find`).
//!
//! This module owns the grammar, its parser (errors name the column and what was
//! expected), its canonical printing ([`Selector`]'s `Display`, which parses back to the
//! same selector) and the matching of one element against a selector.
//!
//! # Grammar
//!
//! ```text
//! selector  = complex { "," complex }                 union, results sorted by fullName
//! complex   = compound { combinator compound }
//! combinator= ">"                                     child in the folder tree
//!           | whitespace                              descendant in the folder tree
//! compound  = head { filter } | filter { filter }
//! head      = "*"                                     any element
//!           | name                                    fullName pattern
//!           | "." name                                type: on the chain, below the element
//! filter    = "[" key [ op value ] "]"                attribute
//!           | ":type(" name ")"                       type, as a further filter
//! name      = segment { "." segment }
//! segment   = "**"                                    zero or more segments
//!           | [A-Za-z0-9_*]+                          a segment; each `*` any run of characters
//! op        = "=" | "~=" | "^=" | "$=" | "*="
//! value     = bare | '"' { char | '\"' | '\\' } '"'   bare: no space, quote, `[]()>,\`
//! ```
//!
//! - `pays.myWechatPay` is that element; `pays.*` every element exactly one segment below
//!   `pays`; `pays.**` `pays` and every element below it; `pays.my*` a glob on one segment.
//! - `.pays.WechatPayType` every element whose chain contains `pays.WechatPayType` below
//!   the element itself: its instances, and those of Types that extend it. `.pays.Meta` is
//!   the whole `pays` family but its Meta. `pays.*:type(pays.WechatPayType)` combines both.
//! - `[key]` the attribute is present (not null); `[key=value]` equals (a number or boolean
//!   compares by its JSON text); `[key~=value]` a list holding `value` (or a string holding
//!   the word `value`); `^=`, `$=`, `*=` a string starting with, ending with, containing it.
//! - `a > b` an element matching `b` whose parent folder matches `a`; `a b` one with some
//!   ancestor folder matching `a`. A folder that is not an element matches a plain name or
//!   `*` only: filters and types need an element.
//!
//! # Attributes
//!
//! An attribute key is looked up in this order: `fullName`, `type` (the element's own,
//! null for a Meta), `kind` (`meta`, `type` or `instance`, [`crate::ElementKind`]),
//! `layer`, `chain` (the fullNames, element first), `accessModifier` (`public` when unset),
//! `title`, `backendBundleEntry`, `frontBundleEntry`, `backendLoadTime`, `functionList`
//! (the names of every function callable on the element, from anywhere on its chain),
//! `secretKeys` (the chain's); then the settings merged along the chain
//! ([`crate::Chain::setting`]: config files and unknown e.json keys, nearest wins).
//! A secret setting answers `[key]` only: a value test on it never matches, so a selector
//! cannot be used to guess a secret.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::chain::Chain;
use crate::definitions::Definitions;

/// The longest selector accepted, in bytes.
pub const SELECTOR_MAX_LEN: usize = 4096;

/// A parsed element selector. Parse with [`Selector::parse`] (or `str::parse`); `Display`
/// prints its canonical form, which parses back to an equal selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    alternatives: Vec<Complex>,
}

/// Why a selector does not parse: where (1-based column, in characters), what the parser
/// expected there, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector at column {column}: expected {expected}, found {found}")]
pub struct SelectorError {
    /// 1-based column of the problem, counted in characters.
    pub column: usize,
    /// What the grammar allows there.
    pub expected: String,
    /// What is there instead (`end of selector` at the end).
    pub found: String,
}

/// Compounds joined by combinators, left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Complex {
    first: Compound,
    rest: Vec<(Combinator, Compound)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combinator {
    Child,
    Descendant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Compound {
    head: Head,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Head {
    Any,
    Name(NamePattern),
    Type(NamePattern),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Type(NamePattern),
    Attr(AttrTest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrTest {
    key: String,
    test: Option<(Op, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    Includes,
    Prefix,
    Suffix,
    Substring,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "=",
            Op::Includes => "~=",
            Op::Prefix => "^=",
            Op::Suffix => "$=",
            Op::Substring => "*=",
        }
    }
}

/// A dotted fullName pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamePattern(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more segments.
    AnyDepth,
    /// One segment; `*` inside is any run of characters.
    Glob(String),
}

impl Selector {
    /// Parses `text` (see the module docs for the grammar).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.len() > SELECTOR_MAX_LEN {
            return Err(SelectorError {
                column: 1,
                expected: format!("a selector of at most {SELECTOR_MAX_LEN} bytes"),
                found: format!("{} bytes", text.len()),
            });
        }
        Parser::new(text).selector()
    }

    /// Whether the element of `chain` (one of `defs`) matches.
    pub(crate) fn matches(&self, defs: &Definitions, chain: &Chain) -> bool {
        let segments: Vec<&str> = chain.element().full_name.as_str().split('.').collect();
        self.alternatives
            .iter()
            .any(|complex| complex.matches(defs, chain, &segments))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

// ---------------------------------------------------------------------------------------
// Matching

/// What a compound is matched against: an element, or a folder that is not one (only
/// its path, which the caller passes alongside).
enum Target<'a> {
    Element(&'a Chain),
    Folder,
}

impl Complex {
    fn matches(&self, defs: &Definitions, chain: &Chain, segments: &[&str]) -> bool {
        let mut compounds: Vec<&Compound> = vec![&self.first];
        let mut combinators = Vec::new();
        for (combinator, compound) in &self.rest {
            combinators.push(*combinator);
            compounds.push(compound);
        }
        let last = compounds.len() - 1;
        if !compounds[last].matches(defs, &Target::Element(chain), segments) {
            return false;
        }
        // memo[j][len]: whether compounds[..=j] match with compounds[j] on the prefix of
        // `len` segments. Bounded by (compounds × segments), whatever the selector.
        let mut memo = vec![vec![None; segments.len() + 1]; compounds.len()];
        ancestors_match(
            defs,
            &compounds,
            &combinators,
            last,
            segments.len(),
            segments,
            &mut memo,
        )
    }
}

/// Whether `compounds[..j]` match the ancestors of the prefix of `len` segments, given
/// that `compounds[j]` matched that prefix.
fn ancestors_match(
    defs: &Definitions,
    compounds: &[&Compound],
    combinators: &[Combinator],
    j: usize,
    len: usize,
    segments: &[&str],
    memo: &mut [Vec<Option<bool>>],
) -> bool {
    if j == 0 {
        return true;
    }
    if let Some(known) = memo[j][len] {
        return known;
    }
    // The parent folder only, or every ancestor folder (at least one segment long).
    let candidates = match combinators[j - 1] {
        Combinator::Child => len.saturating_sub(1)..len,
        Combinator::Descendant => 1..len,
    };
    let mut found = false;
    for prefix in candidates {
        if prefix == 0 || prefix >= len {
            continue;
        }
        let path = &segments[..prefix];
        let joined = path.join(".");
        let target = match defs.listed_chain(&joined) {
            Some(chain) => Target::Element(chain),
            None => Target::Folder,
        };
        if compounds[j - 1].matches(defs, &target, path)
            && ancestors_match(defs, compounds, combinators, j - 1, prefix, segments, memo)
        {
            found = true;
            break;
        }
    }
    memo[j][len] = Some(found);
    found
}

impl Compound {
    fn matches(&self, defs: &Definitions, target: &Target<'_>, segments: &[&str]) -> bool {
        let chain = match target {
            Target::Element(chain) => Some(*chain),
            Target::Folder => None,
        };
        let head = match &self.head {
            Head::Any => true,
            Head::Name(pattern) => pattern.matches(segments),
            Head::Type(pattern) => chain.is_some_and(|c| has_type(c, pattern)),
        };
        if !head {
            return false;
        }
        if self.filters.is_empty() {
            return true;
        }
        let Some(chain) = chain else {
            return false;
        };
        self.filters.iter().all(|filter| match filter {
            Filter::Type(pattern) => has_type(chain, pattern),
            Filter::Attr(test) => test.matches(defs, chain),
        })
    }
}

/// Whether some entry of the chain below the element itself matches `pattern`.
fn has_type(chain: &Chain, pattern: &NamePattern) -> bool {
    chain.names().skip(1).any(|name| {
        let segments: Vec<&str> = name.split('.').collect();
        pattern.matches(&segments)
    })
}

impl NamePattern {
    fn matches(&self, segments: &[&str]) -> bool {
        fn go(pattern: &[Segment], segments: &[&str]) -> bool {
            match pattern.split_first() {
                None => segments.is_empty(),
                Some((Segment::AnyDepth, rest)) => {
                    (0..=segments.len()).any(|skip| go(rest, &segments[skip..]))
                }
                Some((Segment::Glob(glob), rest)) => match segments.split_first() {
                    Some((first, tail)) => glob_matches(glob, first) && go(rest, tail),
                    None => false,
                },
            }
        }
        go(&self.0, segments)
    }
}

/// `*` in `glob` matches any run of characters (none included); the rest literally.
fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, rest) = parts.split_first().expect("split yields a part");
    let (last, middle) = rest.split_last().expect("a `*` yields two parts");
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut inner = &text[first.len()..text.len() - last.len()];
    for part in middle {
        match inner.find(part) {
            Some(at) => inner = &inner[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl AttrTest {
    fn matches(&self, defs: &Definitions, chain: &Chain) -> bool {
        let Some(value) = attribute(defs, chain, &self.key) else {
            return false;
        };
        if value.is_null() {
            return false;
        }
        let Some((op, wanted)) = &self.test else {
            return true;
        };
        if chain.is_secret(&self.key) {
            return false;
        }
        match op {
            Op::Equals => scalar_text(&value).is_some_and(|text| text == *wanted),
            Op::Includes => match &value {
                Value::Array(items) => items
                    .iter()
                    .any(|item| scalar_text(item).is_some_and(|text| text == *wanted)),
                Value::String(text) => text.split_whitespace().any(|word| word == wanted),
                _ => false,
            },
            Op::Prefix => value
                .as_str()
                .is_some_and(|t| t.starts_with(wanted.as_str())),
            Op::Suffix => value.as_str().is_some_and(|t| t.ends_with(wanted.as_str())),
            Op::Substring => value.as_str().is_some_and(|t| t.contains(wanted.as_str())),
        }
    }
}

/// A string as itself, a number or boolean as its JSON text; nothing for the rest.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// The attribute `key` of the element of `chain` (see the module docs for the order).
fn attribute(defs: &Definitions, chain: &Chain, key: &str) -> Option<Value> {
    let def = chain.element();
    let text = |s: &str| Some(Value::String(s.to_owned()));
    let optional = |s: &Option<String>| s.as_deref().map(|s| Value::String(s.to_owned()));
    match key {
        "fullName" => text(def.full_name.as_str()),
        "type" => def.type_name.as_ref().map(|t| Value::String(t.to_string())),
        "kind" => text(defs.kind(chain).as_str()),
        "layer" => text(&def.layer),
        "chain" => Some(Value::Array(chain.names().map(Value::from).collect())),
        "accessModifier" => text(def.access_modifier.as_str()),
        "title" => optional(&def.title),
        "backendBundleEntry" => optional(&def.backend_bundle_entry),
        "frontBundleEntry" => optional(&def.front_bundle_entry),
        "backendLoadTime" => def.backend_load_time.map(|t| Value::from(t.as_str())),
        "functionList" => Some(Value::Array(
            chain
                .functions()
                .into_iter()
                .map(|f| Value::from(f.name.as_str()))
                .collect(),
        )),
        "secretKeys" => Some(Value::Array(
            chain
                .secret_keys()
                .iter()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )),
        _ => chain.setting(key).cloned(),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

struct Parser {
    chars: Vec<char>,
    at: usize,
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '*'
}

fn is_key_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_bare_value_char(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(c, '"' | '\'' | '\\' | '[' | ']' | '(' | ')' | '>' | ','))
}

const COMPOUND_START: &str =
    "an element selector (`*`, a fullName pattern, `.Type`, `[attribute]` or `:type(...)`)";

impl Parser {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn error(&self, expected: impl Into<String>) -> SelectorError {
        let found = match self.peek() {
            None => "end of selector".to_owned(),
            Some(c) if c.is_control() || c.is_whitespace() => format!("{:?}", c),
            Some(c) => format!("`{c}`"),
        };
        SelectorError {
            column: self.at + 1,
            expected: expected.into(),
            found,
        }
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
        self.at > start
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut alternatives = Vec::new();
        loop {
            self.skip_spaces();
            alternatives.push(self.complex()?);
            // `complex` stops at `,` or the end.
            if self.eat(',') {
                continue;
            }
            if self.peek().is_none() {
                return Ok(Selector { alternatives });
            }
            return Err(self.error("`,`, `>`, a space and another selector, or the end"));
        }
    }

    fn complex(&mut self) -> Result<Complex, SelectorError> {
        let first = self.compound()?;
        let mut rest = Vec::new();
        loop {
            let spaced = self.skip_spaces();
            let combinator = match self.peek() {
                Some('>') => {
                    self.at += 1;
                    self.skip_spaces();
                    Combinator::Child
                }
                None | Some(',') => break,
                Some(_) if spaced => Combinator::Descendant,
                Some(_) => {
                    return Err(self.error("`,`, `>`, a space and another selector, or the end"));
                }
            };
            rest.push((combinator, self.compound()?));
        }
        Ok(Complex { first, rest })
    }

    fn compound(&mut self) -> Result<Compound, SelectorError> {
        let head = match self.peek() {
            Some('*')
                if !self
                    .chars
                    .get(self.at + 1)
                    .is_some_and(|&c| is_segment_char(c) || c == '.') =>
            {
                self.at += 1;
                Head::Any
            }
            Some('.') => {
                self.at += 1;
                Head::Type(self.name()?)
            }
            Some(c) if is_segment_char(c) => Head::Name(self.name()?),
            Some('[' | ':') => Head::Any,
            _ => return Err(self.error(COMPOUND_START)),
        };
        let mut filters = Vec::new();
        loop {
            match self.peek() {
                Some('[') => {
                    self.at += 1;
                    filters.push(Filter::Attr(self.attribute()?));
                }
                Some(':') => {
                    self.at += 1;
                    for expected in "type(".chars() {
                        if !self.eat(expected) {
                            return Err(self.error("`:type(` (the only pseudo-filter)"));
                        }
                    }
                    self.skip_spaces();
                    let pattern = self.name()?;
                    self.skip_spaces();
                    if !self.eat(')') {
                        return Err(self.error("`)` closing `:type(`"));
                    }
                    filters.push(Filter::Type(pattern));
                }
                _ => break,
            }
        }
        Ok(Compound { head, filters })
    }

    fn name(&mut self) -> Result<NamePattern, SelectorError> {
        let mut segments = Vec::new();
        loop {
            let start = self.at;
            while self.peek().is_some_and(is_segment_char) {
                self.at += 1;
            }
            if self.at == start {
                return Err(
                    self.error("a name segment (letters, digits, `_`, `*` as a wildcard, or `**`)")
                );
            }
            let text: String = self.chars[start..self.at].iter().collect();
            let segment = if text == "**" {
                Segment::AnyDepth
            } else if text.contains("**") {
                return Err(SelectorError {
                    column: start + 1 + text.find("**").unwrap_or(0),
                    expected: "`**` as a whole segment, or a single `*` inside one".to_owned(),
                    found: format!("`{text}`"),
                });
            } else {
                let first = text.chars().next().unwrap_or('_');
                if first.is_ascii_digit() {
                    return Err(SelectorError {
                        column: start + 1,
                        expected: "a name segment starting with a letter, `_` or `*`".to_owned(),
                        found: format!("`{first}`"),
                    });
                }
                Segment::Glob(text)
            };
            segments.push(segment);
            if !self.eat('.') {
                return Ok(NamePattern(segments));
            }
        }
    }

    fn attribute(&mut self) -> Result<AttrTest, SelectorError> {
        self.skip_spaces();
        let start = self.at;
        if !self.peek().is_some_and(is_key_start) {
            return Err(
                self.error("an attribute name (a letter or `_`, then letters, digits, `_`, `-`)")
            );
        }
        while self.peek().is_some_and(is_key_char) {
            self.at += 1;
        }
        let key: String = self.chars[start..self.at].iter().collect();
        self.skip_spaces();
        let op = match (self.peek(), self.chars.get(self.at + 1)) {
            (Some(']'), _) => {
                self.at += 1;
                return Ok(AttrTest { key, test: None });
            }
            (Some('='), _) => Some(Op::Equals),
            (Some('~'), Some('=')) => Some(Op::Includes),
            (Some('^'), Some('=')) => Some(Op::Prefix),
            (Some('$'), Some('=')) => Some(Op::Suffix),
            (Some('*'), Some('=')) => Some(Op::Substring),
            _ => None,
        };
        let Some(op) = op else {
            return Err(self.error("`]`, `=`, `~=`, `^=`, `$=` or `*=`"));
        };
        self.at += op.as_str().chars().count();
        self.skip_spaces();
        let value = self.value()?;
        self.skip_spaces();
        if !self.eat(']') {
            return Err(self.error("`]` closing the attribute"));
        }
        Ok(AttrTest {
            key,
            test: Some((op, value)),
        })
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        if self.eat('"') {
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => return Err(self.error("`\"` closing the quoted value")),
                    Some('"') => {
                        self.at += 1;
                        return Ok(out);
                    }
                    Some('\\') => {
                        self.at += 1;
                        match self.peek() {
                            Some(c @ ('"' | '\\')) => {
                                out.push(c);
                                self.at += 1;
                            }
                            _ => return Err(self.error("`\\\"` or `\\\\` after `\\`")),
                        }
                    }
                    Some(c) => {
                        out.push(c);
                        self.at += 1;
                    }
                }
            }
        }
        let start = self.at;
        while self.peek().is_some_and(is_bare_value_char) {
            self.at += 1;
        }
        if self.at == start {
            return Err(self.error("a value (bare, or in double quotes)"));
        }
        Ok(self.chars[start..self.at].iter().collect())
    }
}

// ---------------------------------------------------------------------------------------
// Printing (canonical form)

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, complex) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", complex.first)?;
            for (combinator, compound) in &complex.rest {
                match combinator {
                    Combinator::Child => write!(f, " > {compound}")?,
                    Combinator::Descendant => write!(f, " {compound}")?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Compound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.head {
            Head::Any => f.write_str("*")?,
            Head::Name(pattern) => write!(f, "{pattern}")?,
            Head::Type(pattern) => write!(f, ".{pattern}")?,
        }
        for filter in &self.filters {
            match filter {
                Filter::Type(pattern) => write!(f, ":type({pattern})")?,
                Filter::Attr(AttrTest { key, test: None }) => write!(f, "[{key}]")?,
                Filter::Attr(AttrTest {
                    key,
                    test: Some((op, value)),
                }) => {
                    write!(f, "[{key}{}", op.as_str())?;
                    if !value.is_empty() && value.chars().all(is_bare_value_char) {
                        f.write_str(value)?;
                    } else {
                        f.write_str("\"")?;
                        for c in value.chars() {
                            if matches!(c, '"' | '\\') {
                                f.write_str("\\")?;
                            }
                            write!(f, "{c}")?;
                        }
                        f.write_str("\"")?;
                    }
                    f.write_str("]")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match segment {
                Segment::AnyDepth => f.write_str("**")?,
                Segment::Glob(text) => f.write_str(text)?,
            }
        }
        Ok(())
    }
}
