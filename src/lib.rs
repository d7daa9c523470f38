//! The jit host: CLI, HTTP server and host builder.
