//! The subcommands that need no server: `check`, `ls`, `show`, `sim` and `events`.

mod definitions;
mod events;
mod sim;

pub(crate) use definitions::{check, ls, show};
pub(crate) use events::events;
pub(crate) use sim::sim;
