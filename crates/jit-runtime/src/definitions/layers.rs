//! The layers of an app and overriding between them: which apps `extends` stacks below
//! the app's own elements, and how a higher layer's element replaces, shadows or is
//! refused over a lower one with the same fullName (`accessModifier`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use include_dir::Dir;

use super::parse::ParseOutcome;
use super::walk::LayerSource;
use super::{FRAMEWORK_LAYER, FRAMEWORK_PREFIX, Layer};
use crate::element_def::{AccessModifier, ElementDef};
use crate::error::{LoadError, LoadErrorKind};
use crate::name::FullName;
use crate::settings::AppSettings;

/// A layer and where its files come from.
pub(super) struct AppLayer {
    pub(super) layer: Layer,
    pub(super) source: LayerSource,
}

/// The app's layers, lowest first: the embedded framework, the extended apps (see
/// [`extended_apps`]), then the app's own `elements/`.
pub(super) fn app_layers(
    app_dir: &Path,
    settings: &AppSettings,
    framework: &[&'static Dir<'static>],
    errors: &mut Vec<LoadError>,
) -> Vec<AppLayer> {
    let mut layers = vec![AppLayer {
        layer: Layer {
            name: FRAMEWORK_LAYER.to_owned(),
            root: PathBuf::from(FRAMEWORK_PREFIX),
        },
        source: LayerSource::Embedded(framework.to_vec()),
    }];
    let on_disk = |name: String, app_dir: &Path| {
        let root = app_dir.join("elements");
        AppLayer {
            layer: Layer {
                name,
                root: root.clone(),
            },
            source: LayerSource::Disk(root),
        }
    };
    for app in extended_apps(settings, errors) {
        layers.push(on_disk(app.name, &app.dir));
    }
    layers.push(on_disk(settings.name.clone(), app_dir));
    layers
}

/// An app another app extends.
struct ExtendedApp {
    /// Its app.toml name, or its folder name when it has none.
    name: String,
    /// Its folder, as `extends` spells it.
    dir: PathBuf,
}

/// An app on the path of `extends` being followed, for finding cycles.
struct AppOnPath {
    /// Its real path, which tells apps apart.
    identity: PathBuf,
    /// Its path as written, for messages.
    shown: PathBuf,
}

/// The apps `settings` extends, as layers from the lowest up: each extended app's own
/// `extends` come below it, and an app reached along two paths is one layer, at the place
/// of its first use (apps are told apart by their real paths). Returns each app's name
/// (its folder name when it has no app.toml) and dir. A missing dir and an `extends` cycle
/// are errors naming the app.toml that says so.
fn extended_apps(settings: &AppSettings, errors: &mut Vec<LoadError>) -> Vec<ExtendedApp> {
    fn visit(
        app: &AppSettings,
        path: &mut Vec<AppOnPath>,
        placed: &mut HashSet<PathBuf>,
        out: &mut Vec<ExtendedApp>,
        errors: &mut Vec<LoadError>,
    ) {
        let file = app.dir.join("app.toml");
        for (i, dir) in app.extends.iter().enumerate() {
            let at = format!("app.extends[{i}]");
            // The same app can be spelled `.`, `../shop` or a symlink: compare real paths.
            let identity = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            if let Some(start) = path.iter().position(|app| app.identity == identity) {
                let cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|app| &app.shown)
                    .chain([dir])
                    .map(|p| p.display().to_string())
                    .collect();
                errors.push(
                    LoadError::new(
                        LoadErrorKind::Settings,
                        &file,
                        format!("apps extend each other in a cycle: {}", cycle.join(" → ")),
                    )
                    .at(at),
                );
                continue;
            }
            if placed.contains(&identity) {
                continue;
            }
            if !dir.is_dir() {
                errors.push(
                    LoadError::new(
                        LoadErrorKind::Settings,
                        &file,
                        format!("extended app dir {} does not exist", dir.display()),
                    )
                    .at(at),
                );
                continue;
            }
            let name = if dir.join("app.toml").is_file() {
                match AppSettings::load(dir, false) {
                    Ok(extended) => {
                        path.push(AppOnPath {
                            identity: identity.clone(),
                            shown: dir.clone(),
                        });
                        visit(&extended, path, placed, out, errors);
                        path.pop();
                        extended.name
                    }
                    Err(e) => {
                        errors.extend(e);
                        continue;
                    }
                }
            } else {
                dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            };
            placed.insert(identity);
            out.push(ExtendedApp {
                name,
                dir: dir.clone(),
            });
        }
    }
    let mut out = Vec::new();
    let own = settings
        .dir
        .canonicalize()
        .unwrap_or_else(|_| settings.dir.clone());
    visit(
        settings,
        &mut vec![AppOnPath {
            identity: own,
            shown: settings.dir.clone(),
        }],
        &mut HashSet::new(),
        &mut out,
        errors,
    );
    out
}

/// A definition that takes part in chains: the visible ones, and private lower-layer ones
/// that a higher layer's same-named element hides.
pub(super) struct Node {
    pub(super) def: Arc<ElementDef>,
    pub(super) layer_index: usize,
}

/// A run of definitions of one fullName where each overrides the previous; a `private`
/// top ends it and a higher layer's same name starts a new lineage.
pub(super) struct Lineage {
    /// The layer of the run's first definition: chains from lower layers cannot see it.
    pub(super) base_layer: usize,
    /// The run's highest definition, the one chains use.
    pub(super) top: Arc<ElementDef>,
    pub(super) top_layer: usize,
    /// The top's index in [`Placement::nodes`].
    pub(super) node: usize,
}

/// The definitions of every layer placed over each other, before chains are resolved.
#[derive(Default)]
pub(super) struct Placement {
    /// The lineages of each fullName, lowest first.
    pub(super) lineages: HashMap<FullName, Vec<Lineage>>,
    pub(super) nodes: Vec<Node>,
    /// fullNames whose e.json could not be read (in some layer).
    pub(super) broken: HashSet<FullName>,
}

impl Placement {
    /// Places the elements read from layer `layer_index` over the lower layers placed
    /// before it: a fullName twice in one layer and an override of a `protected`
    /// element are errors; a `private` element's same-named successor starts a new
    /// lineage.
    pub(super) fn place_layer(
        &mut self,
        layer_index: usize,
        layer: &Layer,
        outcomes: Vec<ParseOutcome>,
        errors: &mut Vec<LoadError>,
    ) {
        let mut in_layer: HashMap<FullName, PathBuf> = HashMap::new();
        for outcome in outcomes {
            let parsed = match outcome {
                ParseOutcome::Unnamed => continue,
                ParseOutcome::Broken(name) => {
                    self.broken.insert(name);
                    continue;
                }
                ParseOutcome::Parsed(parsed) => *parsed,
            };
            let name = parsed.full_name.clone();
            if let Some(first) = in_layer.get(&name) {
                errors.push(LoadError::new(
                    LoadErrorKind::Duplicate,
                    &parsed.found.source,
                    format!(
                        "`{name}` is defined twice in layer `{}` (also in {})",
                        layer.name,
                        first.display()
                    ),
                ));
                continue;
            }
            in_layer.insert(name.clone(), parsed.found.source.clone());
            let stack = self.lineages.entry(name.clone()).or_default();
            let overrides = match stack.last() {
                None => None,
                Some(last) => match last.top.access_modifier {
                    AccessModifier::Private => None,
                    AccessModifier::Protected => {
                        errors.push(LoadError::new(
                            LoadErrorKind::ProtectedOverride,
                            &parsed.found.source,
                            format!(
                                "`{name}` is protected in layer `{}` ({}) and cannot be overridden",
                                last.top.layer,
                                last.top.source.display()
                            ),
                        ));
                        continue;
                    }
                    AccessModifier::Public => Some(last.top.clone()),
                },
            };
            let def = Arc::new(parsed.into_def(&layer.name, overrides.clone()));
            match (overrides, stack.last_mut()) {
                (Some(_), Some(last)) => {
                    last.top = def.clone();
                    last.top_layer = layer_index;
                    self.nodes[last.node] = Node { def, layer_index };
                }
                _ => {
                    stack.push(Lineage {
                        base_layer: layer_index,
                        top: def.clone(),
                        top_layer: layer_index,
                        node: self.nodes.len(),
                    });
                    self.nodes.push(Node { def, layer_index });
                }
            }
        }
    }
}
