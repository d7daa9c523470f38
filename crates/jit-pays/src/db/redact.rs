//! How a database URL is shown: every log line, banner and error message (this crate's
//! own [`super::DbOpenError`] and the host's) shows it through [`redact_url`], and a
//! driver's message through [`scrub_database_url`]. One rule, so no rendering leaks what
//! another hides.

/// A database URL with every secret replaced by `***`, safe for a log, a banner or an
/// error: the password of `user:password@` (which may itself hold `@`, `/` or `?`), and the
/// value of every query parameter whose name suggests a secret (`password`, `sslpassword`,
/// `secret`, `token`, `key`...). A URL that does not parse as `scheme://…` is shown as
/// `<scheme>:***`, or `***` with no scheme.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // `sqlite::memory:` and the like carry no credentials; anything else unknown is
        // hidden whole.
        return match url.split_once(':') {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("sqlite") && !rest.contains(['@', '?']) =>
            {
                url.to_owned()
            }
            Some((scheme, _)) => format!("{scheme}:***"),
            None => "***".to_owned(),
        };
    };
    // The credentials end at the last `@` before the query: a password may hold `@`.
    let (authority_and_path, query) = split_query(rest);
    let shown_rest = match authority_and_path.rfind('@') {
        Some(at) => {
            let userinfo = &authority_and_path[..at];
            let host_and_path = &authority_and_path[at + 1..];
            match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host_and_path}"),
                None => format!("{userinfo}@{host_and_path}"),
            }
        }
        None => authority_and_path.to_owned(),
    };
    match query {
        None => format!("{scheme}://{shown_rest}"),
        Some(query) => format!("{scheme}://{shown_rest}?{}", redact_query(query)),
    }
}

/// `rest` split at the `?` that starts its query: the first `?` after the last `@`
/// (a password may hold `?`), or the first one when there is no `@`.
fn split_query(rest: &str) -> (&str, Option<&str>) {
    let search_from = match rest.find('@') {
        // Credentials present: the query starts after the host, which follows the last
        // `@` that comes before the first `/` following the credentials.
        Some(first_at) => {
            let path_start = rest[first_at..]
                .find('/')
                .map_or(rest.len(), |offset| first_at + offset);
            rest[..path_start].rfind('@').map_or(0, |at| at + 1)
        }
        None => 0,
    };
    match rest[search_from..].find('?') {
        Some(offset) => {
            let at = search_from + offset;
            (&rest[..at], Some(&rest[at + 1..]))
        }
        None => (rest, None),
    }
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|part| name.contains(part))
}

/// `text` (an error from the database layer) with `url` replaced by [`redact_url`]'s
/// rendering and its secrets (as written) by `***`. The host never relays a driver's
/// message without this.
pub fn scrub_database_url(text: &str, url: &str) -> String {
    let shown = redact_url(url);
    let mut scrubbed = text.replace(url, &shown);
    for secret in url_secrets(url) {
        // Very short secrets would blank out ordinary words; those are not passwords worth
        // the name anyway, and the URL forms above are already replaced.
        if secret.chars().count() >= 4 {
            scrubbed = scrubbed.replace(&secret, "***");
        }
    }
    scrubbed
}

/// The password and the secret query values of a URL, as written.
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (authority_and_path, query) = split_query(rest);
    let mut secrets = Vec::new();
    if let Some(at) = authority_and_path.rfind('@')
        && let Some((_, password)) = authority_and_path[..at].split_once(':')
        && !password.is_empty()
    {
        secrets.push(password.to_owned());
    }
    for pair in query.unwrap_or_default().split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && is_secret_name(name)
            && !value.is_empty()
        {
            secrets.push(value.to_owned());
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        for (url, shown) in [
            (
                "postgres://jit:secret@db/shop",
                "postgres://jit:***@db/shop",
            ),
            ("sqlite://x.db", "sqlite://x.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://jit@db/shop", "postgres://jit@db/shop"),
            // A password holding `@`, `/`, `?` or `:`.
            (
                "postgres://jit:p@ss@db:5432/shop",
                "postgres://jit:***@db:5432/shop",
            ),
            ("postgres://jit:a/b@c@db/shop", "postgres://jit:***@db/shop"),
            ("postgres://jit:x?y@db/shop", "postgres://jit:***@db/shop"),
            ("postgres://jit:x:y@db/shop", "postgres://jit:***@db/shop"),
            (
                "postgres://jit:s3cret@db/shop?sslmode=require&options=a@b",
                "postgres://jit:***@db/shop?sslmode=require&options=a@b",
            ),
            // Secrets in the query.
            (
                "postgres://db/shop?user=jit&password=s3cret&sslmode=require",
                "postgres://db/shop?user=jit&password=***&sslmode=require",
            ),
            (
                "postgres:///shop?host=/run/pg&PASSWORD=s3cret&sslpassword=k3y",
                "postgres:///shop?host=/run/pg&PASSWORD=***&sslpassword=***",
            ),
            ("jdbc-ish:user/s3cret@db", "jdbc-ish:***"),
            ("s3cret", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn database_errors_are_scrubbed_of_every_rendering() {
        let url = "postgres://jit:p@ss-w0rd@db.internal/shop?password=q7zzz";
        let message = format!(
            "database: cannot connect: password authentication failed; url {url}; p@ss-w0rd q7zzz"
        );
        let scrubbed = scrub_database_url(&message, url);
        for secret in ["p@ss-w0rd", "ss-w0rd", "q7zzz"] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(
            scrubbed.contains("postgres://jit:***@db.internal/shop"),
            "{scrubbed}"
        );
    }

    /// The open errors show the URL by the same rule: a password holding `@` is hidden
    /// whole (this crate's own copy of the rule used to show what followed the first `@`).
    #[tokio::test]
    async fn open_errors_hide_a_password_holding_at() {
        let url = "mysql://jit:p@ss-w0rd@db.internal/shop";
        let Err(error) = super::super::connect(&super::super::DbConfig::new(url)).await else {
            panic!("mysql is not supported");
        };
        let message = error.to_string();
        assert!(!message.contains("ss-w0rd"), "{message}");
        assert!(
            message.contains("mysql://jit:***@db.internal/shop"),
            "{message}"
        );
    }
}
