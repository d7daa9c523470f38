//! The subcommands that need no server: `check`, `ls`, `show`, `sim`, `events`, `bills`,
//! `reconcile`, `openapi` and `new`.

mod bills;
mod definitions;
mod events;
mod new;
mod openapi;
mod sim;

pub(crate) use bills::{bills, reconcile};
pub(crate) use definitions::{check, check_app, ls, show};
pub(crate) use events::events;
pub(crate) use new::new;
pub(crate) use openapi::openapi;
pub(crate) use sim::sim;
