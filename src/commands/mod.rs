//! The subcommands that need no server: `check`, `ls`, `show`, and `sim`.

mod definitions;
mod sim;

pub(crate) use definitions::{check, ls, show};
pub(crate) use sim::sim;
