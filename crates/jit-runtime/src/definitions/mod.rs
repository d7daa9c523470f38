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
use crate::element_def::ElementDef;
use crate::error::{LoadError, LoadErrors, PlaceholderError};
use crate::name::FullName;
use crate::settings::{AppSettings, EnvSource};
use layers::{AppLayer, Placement};
use parse::{ParseOutcome, parse_found};
use walk::{LayerSource, read_disk_layer, walk_embedded};

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

    /// Every visible element whose chain contains `type_name`, other than `type_name`
    /// itself, sorted by fullName.
    pub fn find_elements(&self, type_name: &str) -> Vec<&Arc<ElementDef>> {
        self.iter()
            .filter(|chain| {
                chain.element().full_name.as_str() != type_name && chain.contains(type_name)
            })
            .map(Chain::element)
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
