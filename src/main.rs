//! The stock `jit` binary: every official element family, no app-specific Rust code.

/// mimalloc instead of the C library's allocator: a notify allocates and frees many small
/// buffers (the body, the parsed XML, the statements' values), on several threads at once;
/// glibc's malloc spent about a quarter of the server's time in its own bookkeeping under
/// notify load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jit::Host::new().run_cli()
}
