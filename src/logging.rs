//! Process-wide tracing set-up: text by default, JSON lines with `--log-json` or
//! `JIT_LOG_FORMAT=json`; the level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// JSON when asked by flag or by `JIT_LOG_FORMAT=json`.
    pub fn from_flag_and_env(json_flag: bool) -> Self {
        let env_json =
            std::env::var("JIT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
        if json_flag || env_json {
            Self::Json
        } else {
            Self::Text
        }
    }
}

/// Installs the global subscriber; a second call (tests, embedded hosts) is a no-op.
pub fn init(format: LogFormat) {
    // Database drivers log every statement at info; that is noise at 10k requests/s.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
