//! The subcommands that need no server: `check`, `ls`, `show`, `sim`, `events`, `bills`,
//! `reconcile` and `openapi`.

mod bills;
mod definitions;
mod events;
mod openapi;
mod sim;

pub(crate) use bills::{bills, reconcile};
pub(crate) use definitions::{check, check_app, is_instance, ls, show};
pub(crate) use events::events;
pub(crate) use openapi::openapi;
pub(crate) use sim::sim;
