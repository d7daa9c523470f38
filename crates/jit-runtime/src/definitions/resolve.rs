//! Resolving `type` chains: links each placed definition to the definition its `type`
//! names (as seen from its layer), reports unknown, private and broken types and type
//! cycles, and builds each element's [`Chain`] down to its Meta.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::layers::{Node, Placement};
use super::{Layer, Resolved, suggest};
use crate::chain::Chain;
use crate::element_def::{AccessModifier, ElementDef};
use crate::error::{LoadError, LoadErrorKind};
use crate::name::FullName;

/// Where a placed definition's `type` leads.
pub(super) enum TypeLink {
    /// It names no type: a Meta.
    Meta,
    /// The index in [`Placement::nodes`] of the definition it names.
    Type(usize),
    /// Its `type` cannot be followed (unknown, private, or not loaded); `why` says so for
    /// the chains that run into it.
    Broken { why: String },
}

/// Each placed definition's [`TypeLink`], in [`Placement::nodes`] order, and the
/// fullNames some element names as its `type`. A type is looked up as seen from the
/// naming definition's layer: a lineage that starts higher up is not visible.
pub(super) fn type_links(
    placement: &Placement,
    layers: &[Layer],
    used_as_type: &mut HashSet<FullName>,
    errors: &mut Vec<LoadError>,
) -> Vec<TypeLink> {
    let all_names: Vec<&str> = placement.lineages.keys().map(FullName::as_str).collect();
    let layer_name = |i: usize| layers[i].name.as_str();
    placement
        .nodes
        .iter()
        .map(|Node { def, layer_index }| {
            let layer = *layer_index;
            let Some(type_name) = &def.type_name else {
                return TypeLink::Meta;
            };
            used_as_type.insert(type_name.clone());
            let problem = |kind, message: String| {
                LoadError::new(kind, &def.source, message).at("type")
            };
            let stack = placement.lineages.get(type_name);
            let candidate = stack.and_then(|s| s.iter().rev().find(|l| l.base_layer <= layer));
            match candidate {
                Some(lineage) => {
                    if lineage.top.access_modifier == AccessModifier::Private
                        && lineage.top_layer < layer
                    {
                        let message = format!(
                            "type `{type_name}` is private to layer `{}` and cannot be used from layer `{}`",
                            layer_name(lineage.top_layer),
                            layer_name(layer)
                        );
                        errors.push(problem(LoadErrorKind::PrivateType, message));
                        TypeLink::Broken {
                            why: format!("`{}` names the private type `{type_name}`", def.full_name),
                        }
                    } else {
                        TypeLink::Type(lineage.node)
                    }
                }
                None if placement.broken.contains(type_name) => {
                    let message = format!(
                        "chain `{} → {type_name}` ends nowhere: `{type_name}` could not be loaded (see its own errors)",
                        def.full_name
                    );
                    errors.push(problem(LoadErrorKind::ChainEndsNowhere, message));
                    TypeLink::Broken {
                        why: format!("`{type_name}` could not be loaded"),
                    }
                }
                None => {
                    let mut message = format!("unknown type `{type_name}`");
                    if stack.is_some() {
                        message.push_str(&format!(
                            " in layer `{}` (it is only defined in a higher layer)",
                            layer_name(layer)
                        ));
                    } else if let Some(s) = suggest(type_name.as_str(), all_names.iter().copied()) {
                        message.push_str(&format!(" (did you mean `{s}`?)"));
                    }
                    errors.push(problem(LoadErrorKind::UnknownType, message));
                    TypeLink::Broken {
                        why: format!("`{}` has the unknown type `{type_name}`", def.full_name),
                    }
                }
            }
        })
        .collect()
}

/// How far following one node's chain has got.
#[derive(Clone)]
enum Walk {
    /// Not visited yet.
    New,
    /// On the path being followed now (meeting it again is a cycle).
    OnPath,
    /// Its chain reaches a Meta.
    Ok,
    /// Its chain runs into `culprit`, which is broken for the reason `why`.
    Broken { culprit: usize, why: String },
}

/// Follows every node to its Meta and reports type cycles and chains that run into a
/// broken link (each node on such a chain gets its own error naming the chain).
pub(super) fn check_chains(nodes: &[Node], links: &[TypeLink], errors: &mut Vec<LoadError>) {
    let name_of = |n: usize| nodes[n].def.full_name.as_str();
    let mut walk = vec![Walk::New; nodes.len()];
    for start in 0..nodes.len() {
        if !matches!(walk[start], Walk::New) {
            continue;
        }
        let mut path = Vec::new();
        let mut current = start;
        let outcome = loop {
            match &walk[current] {
                Walk::New => {
                    walk[current] = Walk::OnPath;
                    path.push(current);
                    match &links[current] {
                        TypeLink::Meta => break Walk::Ok,
                        TypeLink::Type(parent) => current = *parent,
                        TypeLink::Broken { why } => {
                            path.pop();
                            let broken = Walk::Broken {
                                culprit: current,
                                why: why.clone(),
                            };
                            walk[current] = broken.clone();
                            break broken;
                        }
                    }
                }
                Walk::OnPath => {
                    let at = path.iter().position(|&n| n == current).unwrap_or(0);
                    let mut cycle: Vec<usize> = path.split_off(at);
                    let first = (0..cycle.len())
                        .min_by(|&a, &b| name_of(cycle[a]).cmp(name_of(cycle[b])))
                        .unwrap_or(0);
                    cycle.rotate_left(first);
                    let mut text: Vec<&str> = cycle.iter().map(|&n| name_of(n)).collect();
                    text.push(text[0]);
                    let text = text.join(" → ");
                    errors.push(
                        LoadError::new(
                            LoadErrorKind::Cycle,
                            &nodes[cycle[0]].def.source,
                            format!("type cycle: {text}"),
                        )
                        .at("type"),
                    );
                    let broken = Walk::Broken {
                        culprit: cycle[0],
                        why: format!("it runs into the type cycle {text}"),
                    };
                    for &n in &cycle {
                        walk[n] = broken.clone();
                    }
                    break broken;
                }
                done @ (Walk::Ok | Walk::Broken { .. }) => break done.clone(),
            }
        };
        for &n in &path {
            if let Walk::Broken { culprit, why } = &outcome {
                let mut names = vec![name_of(n)];
                let mut at = n;
                while at != *culprit {
                    match &links[at] {
                        TypeLink::Type(parent) => {
                            at = *parent;
                            names.push(name_of(at));
                        }
                        _ => break,
                    }
                }
                errors.push(
                    LoadError::new(
                        LoadErrorKind::ChainEndsNowhere,
                        &nodes[n].def.source,
                        format!("chain `{}` ends nowhere: {why}", names.join(" → ")),
                    )
                    .at("type"),
                );
            }
            walk[n] = outcome.clone();
        }
    }
}

/// The resolved definitions and their indexes, as [`super::Definitions`] holds them.
pub(super) struct Resolution {
    pub(super) resolved: Vec<Resolved>,
    pub(super) by_name: HashMap<FullName, usize>,
    pub(super) sorted: Vec<usize>,
    pub(super) families: HashMap<Box<str>, Vec<usize>>,
}

/// Builds every node's chain (its secret keys merged down the chain) and the indexes by
/// name; `links` must have passed [`check_chains`] without an error.
pub(super) fn resolve(placement: &Placement, links: &[TypeLink]) -> Resolution {
    let nodes = &placement.nodes;
    let mut resolved = Vec::with_capacity(nodes.len());
    for (i, Node { def, layer_index }) in nodes.iter().enumerate() {
        let mut chain = vec![def.clone()];
        let mut current = i;
        while let TypeLink::Type(parent) = &links[current] {
            current = *parent;
            chain.push(nodes[current].def.clone());
        }
        let _ = def.chain_secret_keys.set(chain_secret_keys(&chain).into());
        resolved.push(Resolved {
            chain: Chain(chain),
            layer_index: *layer_index,
        });
    }
    let mut by_name = HashMap::with_capacity(placement.lineages.len());
    for (name, stack) in &placement.lineages {
        if let Some(last) = stack.last() {
            by_name.insert(name.clone(), last.node);
        }
    }
    let mut sorted: Vec<usize> = by_name.values().copied().collect();
    sorted.sort_by(|&a, &b| nodes[a].def.full_name.cmp(&nodes[b].def.full_name));

    let mut families: HashMap<Box<str>, Vec<usize>> = HashMap::new();
    for &i in &sorted {
        let name = nodes[i].def.full_name.as_str();
        let family = name.split('.').next().unwrap_or(name);
        families.entry(family.into()).or_default().push(i);
    }
    Resolution {
        resolved,
        by_name,
        sorted,
        families,
    }
}

/// The secret keys of every link of `chain`, each once, nearest first.
fn chain_secret_keys(chain: &[Arc<ElementDef>]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for link in chain {
        for key in &link.secret_keys {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    keys
}
