//! `jit openapi`: the app's OpenAPI document on standard output, from its definitions and
//! app.toml alone (no database, no network): the document `jit serve` answers at
//! `/api/{org}/{app}/openapi.json`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::error::HostError;
use crate::host::Host;
use crate::server::openapi::ApiDescription;

/// `jit openapi [--app DIR]`.
pub(crate) fn openapi(host: &Host, app_dir: &Path) -> Result<ExitCode, HostError> {
    let definitions = host.load_definitions(app_dir)?;
    // `servers` is where `jit serve` would be reached: its `[server] public_base_url`. The
    // rest of the configuration is `jit check`'s business, but a broken one fails here too
    // rather than describe a server that would not start.
    let (_, config, _) = host.resolve_serve_config(app_dir, &Default::default())?;
    let document = ApiDescription::of(&definitions, config.public_base_url.as_deref()).to_openapi();
    let text = serde_json::to_string_pretty(&document)
        .map_err(|err| HostError::command_caused("cannot print the OpenAPI document", err))?;
    // A reader that stops early (`jit openapi | head`) is not an error of ours.
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(HostError::command_caused(
            "cannot print the OpenAPI document",
            err,
        )),
        _ => Ok(ExitCode::SUCCESS),
    }
}
