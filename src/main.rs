//! The stock `jit` binary: every official element family, no app-specific Rust code.
fn main() -> std::process::ExitCode {
    jit::Host::new().run_cli()
}
