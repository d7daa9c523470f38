//! Bearer-token access for element functions declared `loginRequired`.
//!
//! Tokens are kept only as SHA-256 digests, so comparing fixed-length digests in constant
//! time hides both the content and the length of every configured token, and a token never
//! sits in memory where a `Debug` print could reach it.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The set of accepted bearer tokens.
#[derive(Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenSet({} token(s), values masked)",
            self.digests.len()
        )
    }
}

impl TokenSet {
    /// Accepts exactly these tokens; empty strings are ignored so an unset variable cannot
    /// turn into "the empty token opens everything".
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let digests = tokens
            .into_iter()
            .filter(|token| !token.as_ref().is_empty())
            .map(|token| digest(token.as_ref()))
            .collect();
        Self { digests }
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no token is accepted (every `loginRequired` function is then refused).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens, in time independent of where it differs.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        // Fold over every token without short-circuiting.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, candidate| {
                found | candidate.ct_eq(&presented)
            })
            .into()
    }

    /// Checks the request's `Authorization: Bearer …` header.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "MISSING_TOKEN",
                "this function requires `Authorization: Bearer <token>`",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "INVALID_TOKEN",
                    "the Authorization header is not of the form `Bearer <token>`",
                )
            })?;
        if self.accepts(presented) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "INVALID_TOKEN",
                "the bearer token is not one of the configured tokens",
            ))
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = TokenSet::new(["alpha", "", "beta"]);
        assert_eq!(tokens.len(), 2);
        assert!(tokens.accepts("alpha"));
        assert!(tokens.accepts("beta"));
        assert!(!tokens.accepts(""));
        assert!(!tokens.accepts("alph"));
        assert!(!tokens.accepts("alphaa"));
    }

    #[test]
    fn header_forms() {
        let tokens = TokenSet::new(["alpha"]);
        assert!(tokens.authorize(&headers("Bearer alpha")).is_ok());
        assert!(tokens.authorize(&headers("bearer alpha")).is_ok());
        let wrong = tokens.authorize(&headers("Bearer beta")).unwrap_err();
        assert_eq!(wrong.code(), "INVALID_TOKEN");
        let basic = tokens.authorize(&headers("Basic alpha")).unwrap_err();
        assert_eq!(basic.code(), "INVALID_TOKEN");
        let missing = tokens.authorize(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.code(), "MISSING_TOKEN");
    }

    #[test]
    fn debug_masks_tokens() {
        let printed = format!("{:?}", TokenSet::new(["secret-token"]));
        assert!(!printed.contains("secret-token"));
    }
}
