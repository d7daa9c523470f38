//! A resolved element: its definition plus the chain instance → Type → ... → Meta.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::element_def::{CacheLevel, ElementDef, FunctionDecl};
use crate::secret::Secret;

/// The `type` chain of an element: `chain[0]` is the element itself, the last entry is its
/// Meta. Every entry is the effective (highest-layer) definition of that fullName.
#[derive(Clone)]
pub struct Chain(pub(crate) Vec<Arc<ElementDef>>);

impl Chain {
    /// The element itself (`chain[0]`).
    pub fn element(&self) -> &Arc<ElementDef> {
        &self.0[0]
    }

    /// The Meta at the root of the chain.
    pub fn meta(&self) -> &Arc<ElementDef> {
        self.0.last().unwrap_or(&self.0[0])
    }

    /// All entries, element first.
    pub fn defs(&self) -> &[Arc<ElementDef>] {
        &self.0
    }

    /// Iterates entries, element first.
    pub fn iter(&self) -> std::slice::Iter<'_, Arc<ElementDef>> {
        self.0.iter()
    }

    /// Number of entries (1 for a Meta).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a chain holds at least the element itself.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `full_name` is on the chain (the element itself included).
    pub fn contains(&self, full_name: &str) -> bool {
        self.0.iter().any(|d| d.full_name.as_str() == full_name)
    }

    /// The fullNames, element first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|d| d.full_name.as_str())
    }

    /// `cacheLevel` as set nearest to the element on the chain (a Type's level holds for
    /// its instances unless they set their own); [`CacheLevel::Process`] when none does.
    pub fn cache_level(&self) -> CacheLevel {
        self.0
            .iter()
            .find_map(|def| def.cache_level)
            .unwrap_or_default()
    }

    /// Whether `other` is the same chain, entry by entry
    /// ([`ElementDef::same_definition`]).
    pub fn same_definitions(&self, other: &Chain) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a.same_definition(b))
    }

    /// Keys marked secret anywhere on the chain.
    pub fn secret_keys(&self) -> &[String] {
        self.element().effective_secret_keys()
    }

    /// Whether `key` is marked secret on the chain.
    pub fn is_secret(&self, key: &str) -> bool {
        self.secret_keys().iter().any(|k| k == key)
    }

    /// Looks `key` up along the chain: for each entry from the element to its Meta, first
    /// its config file, then the unknown keys of its e.json. The nearest wins.
    ///
    /// The value is returned as is, secret or not: wrap it with [`Chain::secret`] (or check
    /// [`Chain::is_secret`]) before it can reach a log.
    pub fn setting(&self, key: &str) -> Option<&Value> {
        self.0.iter().find_map(|def| {
            def.config
                .as_ref()
                .and_then(|c| c.get(key))
                .or_else(|| def.extra.get(key))
        })
    }

    /// [`Chain::setting`] as a string, when it is one.
    pub fn setting_str(&self, key: &str) -> Option<&str> {
        self.setting(key).and_then(Value::as_str)
    }

    /// [`Chain::setting`] wrapped as a [`Secret`], whatever the key's marking.
    pub fn secret(&self, key: &str) -> Option<Secret<&Value>> {
        self.setting(key).map(Secret::new)
    }

    /// [`Chain::setting`] as a secret string, when it is one.
    pub fn secret_str(&self, key: &str) -> Option<Secret<String>> {
        self.setting_str(key).map(|s| Secret::new(s.to_owned()))
    }

    /// All settings merged along the chain (nearest wins), with secret values masked:
    /// safe to show or log.
    pub fn settings_masked(&self) -> Map<String, Value> {
        let mut merged = Map::new();
        for def in self.0.iter().rev() {
            for (k, v) in &def.extra {
                merged.insert(k.clone(), v.clone());
            }
            if let Some(Value::Object(config)) = &def.config {
                for (k, v) in config {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        match crate::secret::mask_json(&Value::Object(merged), self.secret_keys()) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The function `name` as declared nearest to the element on the chain.
    pub fn function(&self, name: &str) -> Option<&FunctionDecl> {
        self.0.iter().find_map(|def| def.function(name))
    }

    /// Every function callable on the element, nearest declaration winning, in chain order
    /// (the element's own first).
    pub fn functions(&self) -> Vec<&FunctionDecl> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for def in &self.0 {
            for function in &def.function_list {
                if seen.insert(function.name.as_str()) {
                    out.push(function);
                }
            }
        }
        out
    }

    /// The resolved definition for display (`jit show`): the element's own definition, its
    /// chain, the merged settings and functions, with every secret masked.
    pub fn to_json_masked(&self) -> Value {
        let keys = self.secret_keys();
        let mut out = match self.element().to_json_masked(keys) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        out.insert(
            "chain".into(),
            Value::Array(self.names().map(|n| Value::String(n.into())).collect()),
        );
        out.insert(
            "secretKeys".into(),
            Value::Array(keys.iter().map(|k| Value::String(k.clone())).collect()),
        );
        out.insert("settings".into(), Value::Object(self.settings_masked()));
        out.insert(
            "functions".into(),
            Value::Array(
                self.functions()
                    .into_iter()
                    .map(FunctionDecl::to_json)
                    .collect(),
            ),
        );
        Value::Object(out)
    }
}

/// `a → b → c`.
impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({self})")
    }
}
