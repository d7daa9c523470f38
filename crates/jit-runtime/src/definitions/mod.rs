//! An app's loaded definitions ([`Definitions`]: every element, overrides applied and
//! chains resolved) and how they are loaded, one step a module:
//!
//! - [`walk`]: find every `e.json` of a layer (on disk in parallel, or embedded);
//! - [`parse`]: read one element's e.json and config file;
//! - [`layers`]: the app's layers (`extends`) and overriding between them;
//! - [`resolve`]: follow each `type` to its Meta and build the chains.
//!
//! Every step collects its problems; [`load`] reports them all at once, sorted by file.

mod layers;
mod parse;
mod resolve;
mod walk;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use include_dir::Dir;

use crate::chain::Chain;
use crate::element_def::{AccessModifier, ElementDef};
use crate::error::{LoadError, LoadErrors, PlaceholderError};
use crate::name::FullName;
use crate::selector::Selector;
use crate::settings::{AppSettings, EnvSource};
use layers::{AppLayer, Placement};
use parse::{ParseOutcome, parse_found};
use walk::{LayerSource, read_disk_layer, walk_embedded};

/// How JitAi ends the name of every Type (`services.NormalType`, `pays.WechatPayType`).
const TYPE_NAME_SUFFIX: &str = "Type";

/// What an element is on its chain (see [`Definitions::kind`] for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// The root of a family: it names no `type`.
    Meta,
    /// An element other elements are (or are meant to be) of: it declares functions and
    /// settings for its instances and serves no calls itself.
    Type,
    /// An element that is built and serves calls.
    Instance,
}

impl ElementKind {
    /// `meta`, `type` or `instance`: the `kind` selector attribute's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::Meta => "meta",
            ElementKind::Type => "type",
            ElementKind::Instance => "instance",
        }
    }

    /// `Meta`, `Type` or `instance`: how `jit ls` labels it.
    pub fn label(self) -> &'static str {
        match self {
            ElementKind::Meta => "Meta",
            ElementKind::Type => "Type",
            ElementKind::Instance => "instance",
        }
    }
}

/// The layer name of the embedded framework layer.
pub const FRAMEWORK_LAYER: &str = "framework";

/// How embedded framework files are shown in errors and `source`.
pub const FRAMEWORK_PREFIX: &str = "<framework>";

/// One layer of the app, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `"framework"`, an extended app's name, or the app's name.
    pub name: String,
    /// Where its elements live (`<framework>` for the embedded layer).
    pub root: PathBuf,
}

/// One effective definition's chain and the layer it comes from.
struct Resolved {
    chain: Chain,
    layer_index: usize,
}

/// Every element of an app, with overrides applied and chains resolved. Immutable.
///
/// Produced by [`crate::AppBuilder::load_definitions`] (what `jit check`, `jit ls` and
/// `jit show` need) and held by a built [`crate::App`].
pub struct Definitions {
    settings: AppSettings,
    env: EnvSource,
    layers: Vec<Layer>,
    /// Every effective definition: the visible ones plus private lower-layer ones that a
    /// higher layer's same-named element hides (still on lower-layer chains).
    resolved: Vec<Resolved>,
    /// Visible elements by fullName (what `get_element` sees).
    by_name: HashMap<FullName, usize>,
    /// Visible elements sorted by fullName.
    sorted: Vec<usize>,
    /// fullNames some element names as its `type`.
    used_as_type: HashSet<FullName>,
    /// Visible elements by first name segment, for suggestions.
    families: HashMap<Box<str>, Vec<usize>>,
}

impl std::fmt::Debug for Definitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definitions")
            .field("app", &self.settings.name)
            .field("layers", &self.layers)
            .field("elements", &self.sorted.len())
            .finish()
    }
}

impl Definitions {
    /// The app's settings (app.toml).
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The environment used for `{{VAR}}` placeholders.
    pub fn env(&self) -> &EnvSource {
        &self.env
    }

    /// The layers, lowest (framework) first, the app's own last.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The visible definition named `full_name`.
    pub fn get(&self, full_name: &str) -> Option<&Arc<ElementDef>> {
        self.chain(full_name).map(Chain::element)
    }

    /// The chain of the visible element named `full_name`.
    pub fn chain(&self, full_name: &str) -> Option<&Chain> {
        self.by_name
            .get(full_name)
            .map(|&i| &self.resolved[i].chain)
    }

    /// The chains of every visible element, sorted by fullName.
    pub fn iter(&self) -> impl Iterator<Item = &Chain> {
        self.sorted.iter().map(|&i| &self.resolved[i].chain)
    }

    /// The chains of every effective definition, including private lower-layer elements
    /// hidden by a same-named higher-layer element.
    pub fn iter_all(&self) -> impl Iterator<Item = &Chain> {
        self.resolved.iter().map(|r| &r.chain)
    }

    /// Number of visible elements.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the app has no element at all.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The index in [`Definitions::layers`] of the layer a visible element comes from.
    pub fn layer_index(&self, full_name: &str) -> Option<usize> {
        self.by_name
            .get(full_name)
            .map(|&i| self.resolved[i].layer_index)
    }

    /// Whether some element names `full_name` as its `type` (i.e. it acts as a Type or Meta).
    pub fn is_used_as_type(&self, full_name: &str) -> bool {
        self.used_as_type.contains(full_name)
    }

    /// What the element of `chain` is: the one rule for "is this an instance" (`jit ls`
    /// labels, `jit check` counts, which elements the builder must be able to build, which
    /// elements HTTP serves and OpenAPI lists).
    ///
    /// - **Meta**: it names no `type`.
    /// - **Type**: some element names it as its `type`. While nothing does yet (a Type
    ///   shipped or declared before any instance exists): its name ends in `Type`, as JitAi
    ///   names every Type (`services.NormalType`, `pays.WechatPayType`, an app's
    ///   `shop.DiscountPayType`); or its type is a Meta and it declares no function of its
    ///   own, so there is nothing it could serve (`models.Base`).
    /// - **Instance**: anything else: an element of a Type (`pays.myWechatPay`), or an
    ///   element of a Meta that declares functions of its own (`pays.services.PaySvc`,
    ///   `pays.models.PayLogModel`).
    pub fn kind(&self, chain: &Chain) -> ElementKind {
        let def = chain.element();
        let type_in_waiting = || {
            def.full_name.last_segment().ends_with(TYPE_NAME_SUFFIX)
                || (chain.len() == 2 && def.function_list.is_empty())
        };
        if def.is_meta() {
            ElementKind::Meta
        } else if self.is_used_as_type(def.full_name.as_str()) || type_in_waiting() {
            ElementKind::Type
        } else {
            ElementKind::Instance
        }
    }

    /// Whether the element of `chain` is an instance ([`Definitions::kind`]).
    pub fn is_instance(&self, chain: &Chain) -> bool {
        self.kind(chain) == ElementKind::Instance
    }

    /// Why the element of `chain` serves no calls, when it is a Meta or a Type (they
    /// declare functions for their instances and build nothing that answers them); `None`
    /// for an instance. The one wording of that refusal, for HTTP and for hosted code.
    pub fn serves_no_calls(&self, chain: &Chain) -> Option<String> {
        let kind = match self.kind(chain) {
            ElementKind::Instance => return None,
            ElementKind::Meta => "a Meta",
            ElementKind::Type => "a Type",
        };
        Some(format!(
            "`{}` is {kind}, not an element that serves calls: call one of its instances",
            chain.element().full_name
        ))
    }

    /// Whether code of the layer `viewer` (an index into [`Definitions::layers`]; `None`
    /// for code of no layer) sees the element of `chain`: every element but a `private`
    /// one of another layer, which is private to its own.
    pub fn is_visible_to_layer(&self, chain: &Chain, viewer: Option<usize>) -> bool {
        let def = chain.element();
        def.access_modifier != AccessModifier::Private
            || self.layer_index(def.full_name.as_str()) == viewer
    }

    /// Whether the app's own layer sees the element of `chain` when it lists or selects
    /// elements: every visible element but the `private` ones of a lower layer (the
    /// framework's or an extended app's), which are private to that layer. Such an element
    /// still takes part in the chains of its own layer's elements.
    pub fn is_listed(&self, chain: &Chain) -> bool {
        let own_layer = self.layers.len().saturating_sub(1);
        self.is_visible_to_layer(chain, Some(own_layer))
    }

    /// The chains of every element the app's own layer lists ([`Definitions::is_listed`]),
    /// sorted by fullName: what `jit ls` shows.
    pub fn listed(&self) -> impl Iterator<Item = &Chain> {
        self.iter().filter(|chain| self.is_listed(chain))
    }

    /// The chain of the listed element named `full_name`.
    pub(crate) fn listed_chain(&self, full_name: &str) -> Option<&Chain> {
        self.chain(full_name).filter(|chain| self.is_listed(chain))
    }

    /// Every listed element ([`Definitions::listed`]) that `selector` matches, sorted by
    /// fullName (see [`crate::selector`] for the language).
    pub fn select(&self, selector: &Selector) -> Vec<&Chain> {
        self.listed()
            .filter(|chain| selector.matches(self, chain))
            .collect()
    }

    /// The visible fullName closest to `name`, if any is close enough to suggest.
    ///
    /// Only names of the same family (first segment) and of similar length are compared,
    /// none when the family is very large: a miss must stay cheap.
    pub fn suggest(&self, name: &str) -> Option<String> {
        const MAX_CANDIDATES: usize = 2_000;
        let family = name.split('.').next().unwrap_or(name);
        let members = self.families.get(family)?;
        if members.len() > MAX_CANDIDATES {
            return None;
        }
        suggest(
            name,
            members
                .iter()
                .map(|&i| self.resolved[i].chain.element().full_name.as_str())
                .filter(|candidate| candidate.len().abs_diff(name.len()) <= 3),
        )
    }

    /// Fills `{{VAR}}` placeholders in `text` (from the process environment, then
    /// [`crate::AppBuilder::env`], then app.toml `[env]`); `source` names the file in errors.
    pub fn fill_placeholders(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        self.env.fill(text, source)
    }
}

/// The candidate closest to `name` by Jaro-Winkler similarity, if any is close enough.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c.to_owned())
}

/// Loads the definitions of the app in `app_dir` over the embedded `framework` trees;
/// `builder_env` fills `{{VAR}}` placeholders below the process environment.
pub(crate) fn load(
    app_dir: &Path,
    framework: &[&'static Dir<'static>],
    builder_env: HashMap<String, String>,
) -> Result<Definitions, LoadErrors> {
    let settings = AppSettings::load(app_dir, true).map_err(LoadErrors)?;
    let env = EnvSource::new(builder_env, settings.env.clone());
    let mut errors = Vec::new();

    let app_layers = layers::app_layers(app_dir, &settings, framework, &mut errors);
    let mut placement = Placement::default();
    for (layer_index, AppLayer { layer, source }) in app_layers.iter().enumerate() {
        let parse = |found, errors: &mut Vec<LoadError>| parse_found(found, &env, errors);
        let outcomes: Vec<ParseOutcome> = match source {
            LayerSource::Embedded(dirs) => {
                let mut found = Vec::new();
                for dir in dirs {
                    walk_embedded(dir, &mut found);
                }
                found
                    .into_iter()
                    .map(|item| parse(item, &mut errors))
                    .collect()
            }
            LayerSource::Disk(root) => read_disk_layer(root, parse, &mut errors),
        };
        placement.place_layer(layer_index, layer, outcomes, &mut errors);
    }
    let layers: Vec<Layer> = app_layers.into_iter().map(|l| l.layer).collect();

    let mut used_as_type = HashSet::new();
    let links = resolve::type_links(&placement, &layers, &mut used_as_type, &mut errors);
    resolve::check_chains(&placement.nodes, &links, &mut errors);
    if !errors.is_empty() {
        errors.sort_by(|a, b| {
            a.file
                .cmp(&b.file)
                .then_with(|| a.json_path.cmp(&b.json_path))
        });
        errors.dedup();
        return Err(LoadErrors(errors));
    }

    let resolution = resolve::resolve(&placement, &links);
    Ok(Definitions {
        settings,
        env,
        layers,
        resolved: resolution.resolved,
        by_name: resolution.by_name,
        sorted: resolution.sorted,
        used_as_type,
        families: resolution.families,
    })
}
