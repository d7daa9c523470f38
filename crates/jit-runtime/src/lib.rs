//! The element runtime: loads an app's element tree, resolves Meta → Type → Instance chains and serves elements to hosted code.
