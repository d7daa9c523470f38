//! [`HostError`]: why a host could not start or a command could not run, with the cause
//! chain the command line prints (`error: …`, then a `caused by: …` line a cause).

use jit_runtime::LoadErrors;

use crate::server::config::ConfigError;

/// Any error a service or a command fails with, kept as the cause of a [`HostError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a host could not start or a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The app's definitions have problems (each printed `file: json.path: message`).
    #[error("{count} problem(s) in the app:\n{errors}", count = .0.len(), errors = .0)]
    Load(LoadErrors),
    /// app.toml's server configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration breaks start-up rules that keep a shop from failing open (no
    /// gateway chosen, a simulated shop beyond loopback, no token or a published one).
    #[error("{count} problem(s) in the configuration:\n{list}", count = .0.len(), list = ProblemList(.0))]
    StartupRules(Vec<ConfigError>),
    /// A `{{VAR}}` placeholder in app.toml could not be filled.
    #[error(transparent)]
    Placeholder(#[from] jit_runtime::PlaceholderError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// A service the app needs (database, gateway, plugin) could not be set up.
    #[error("cannot set up the {what}")]
    Service {
        /// Which service.
        what: &'static str,
        /// Why, without secrets.
        #[source]
        source: BoxError,
    },
    /// A command's own failure (unknown element for `show`, a payer call refused, ...).
    #[error("{message}")]
    Command {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Reading or writing a file or the terminal failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl HostError {
    /// A service that could not be set up, and why.
    pub(crate) fn service(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Service {
            what,
            source: source.into(),
        }
    }

    /// A command's failure that has no underlying error.
    pub(crate) fn command(message: impl Into<String>) -> Self {
        Self::Command {
            message: message.into(),
            source: None,
        }
    }

    /// A command's failure caused by `source`.
    pub(crate) fn command_caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Command {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl From<LoadErrors> for HostError {
    fn from(errors: LoadErrors) -> Self {
        Self::Load(errors)
    }
}

/// One problem a line, as `jit check` prints them.
struct ProblemList<'a>(&'a [ConfigError]);

impl std::fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// An error chain rewritten level by level (e.g. with a database URL's secrets hidden),
/// keeping its shape: each level's message, then its cause.
#[derive(Debug)]
pub(crate) struct RewrittenError {
    message: String,
    source: Option<Box<RewrittenError>>,
}

impl RewrittenError {
    /// `error` and each of its causes, each message passed through `rewrite`.
    pub(crate) fn of(
        error: &(dyn std::error::Error + 'static),
        rewrite: &dyn Fn(&str) -> String,
    ) -> Self {
        Self {
            message: rewrite(&error.to_string()),
            source: error
                .source()
                .map(|cause| Box::new(Self::of(cause, rewrite))),
        }
    }
}

impl std::fmt::Display for RewrittenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RewrittenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer at postgres://jit:s3cret@db/shop")]
    struct Outer(#[source] std::io::Error);

    /// A rewritten chain keeps every cause, each rewritten.
    #[test]
    fn rewritten_errors_keep_their_causes() {
        let error = Outer(std::io::Error::other("inner s3cret"));
        let rewritten = RewrittenError::of(&error, &|text| text.replace("s3cret", "***"));
        let service = HostError::service("database", rewritten);
        let mut lines = vec![service.to_string()];
        let mut source = std::error::Error::source(&service);
        while let Some(cause) = source {
            lines.push(cause.to_string());
            source = cause.source();
        }
        assert_eq!(
            lines,
            [
                "cannot set up the database",
                "outer at postgres://jit:***@db/shop",
                "inner ***"
            ]
        );
    }
}
