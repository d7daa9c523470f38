//! The console's login state: sessions kept server-side, the cookie that names one, the
//! CSRF token of each, and the limit on wrong tokens per peer.
//!
//! A session is created by entering one of the app's API tokens ([`crate::server::auth::TokenSet`],
//! compared in constant time); the browser then holds only an opaque random session id in
//! an HttpOnly, SameSite=Strict cookie scoped to the console's path — never the token. The
//! server keeps sessions by the SHA-256 of their id (a memory dump or a `Debug` print shows
//! no usable id), each with its CSRF token and its expiry: idle for [`IDLE_TIMEOUT`] or
//! older than [`MAX_AGE`], it is gone. At most [`MAX_SESSIONS`] live at once; the oldest
//! goes first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use std::sync::{Mutex, MutexGuard, PoisonError};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "jit_console";

/// A session unused this long is gone.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A session this old is gone, used or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(8 * 60 * 60);

/// Sessions alive at once; a new one beyond this ends the oldest.
pub(crate) const MAX_SESSIONS: usize = 1024;

/// Wrong tokens a peer may enter per [`ATTEMPT_WINDOW`] before it is refused without a
/// check until the window ends.
pub(crate) const MAX_FAILED_ATTEMPTS: u32 = 5;

/// The window of [`MAX_FAILED_ATTEMPTS`].
pub(crate) const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);

/// Peers tracked by the attempt limiter at once (memory stays bounded under a flood).
const MAX_TRACKED_PEERS: usize = 4096;

/// 256 random bits, hex: two v4 UUIDs' random bits (the operating system's generator).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A lock that a panicking holder did not poison for good: every holder leaves the map
/// consistent at each step.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// One logged-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// The token every state-changing form of this session carries.
    pub(crate) csrf: String,
    created: Instant,
    last_used: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token, in constant time.
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        digest(&self.csrf).ct_eq(&digest(presented)).into()
    }

    fn alive(&self, now: Instant) -> bool {
        now.duration_since(self.last_used) < IDLE_TIMEOUT
            && now.duration_since(self.created) < MAX_AGE
    }
}

/// The sessions of one console.
#[derive(Default)]
pub(crate) struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sessions({} live, ids masked)",
            locked(&self.by_digest).len()
        )
    }
}

impl Sessions {
    /// A new session: its id (for the cookie, shown nowhere else) and the session.
    pub(crate) fn create(&self) -> (String, Session) {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            csrf: random_token(),
            created: now,
            last_used: now,
        };
        let mut sessions = locked(&self.by_digest);
        sessions.retain(|_, session| session.alive(now));
        while sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.created)
                .map(|(key, _)| *key)
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The live session the cookie value `id` names, its idle time restarted.
    pub(crate) fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let key = digest(id);
        let mut sessions = locked(&self.by_digest);
        let session = sessions.get_mut(&key)?;
        if !session.alive(now) {
            sessions.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session `id` names (logout).
    pub(crate) fn end(&self, id: &str) {
        locked(&self.by_digest).remove(&digest(id));
    }
}

/// The console session cookie of a request's `Cookie` headers, if any.
pub(crate) fn cookie_value(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
}

/// The `Set-Cookie` value that gives the browser session `id` for the console under
/// `path`; `Secure` when the shop's public URL is HTTPS.
pub(crate) fn set_cookie(id: &str, path: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path={path}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie (logout).
pub(crate) fn clear_cookie(path: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Wrong tokens per peer: after [`MAX_FAILED_ATTEMPTS`] in [`ATTEMPT_WINDOW`], the peer's
/// logins are refused unchecked until the window ends. Memory is bounded: when
/// [`MAX_TRACKED_PEERS`] are tracked, those whose window ended go first, then everyone
/// else shares one budget.
#[derive(Default)]
pub(crate) struct AttemptLimiter {
    peers: Mutex<HashMap<Option<IpAddr>, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
}

/// The key peers share once the table is full.
const OVERFLOW: Option<IpAddr> = None;

impl AttemptLimiter {
    /// `None` when `peer` may try a token now; else how long until it may.
    pub(crate) fn blocked_for(&self, peer: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let peers = locked(&self.peers);
        let failures = peers.get(&peer).or_else(|| peers.get(&OVERFLOW))?;
        let elapsed = now.duration_since(failures.window_start);
        (failures.count >= MAX_FAILED_ATTEMPTS && elapsed < ATTEMPT_WINDOW)
            .then(|| ATTEMPT_WINDOW - elapsed)
    }

    /// Counts a wrong token from `peer`.
    pub(crate) fn failed(&self, peer: Option<IpAddr>) {
        let now = Instant::now();
        let mut peers = locked(&self.peers);
        if !peers.contains_key(&peer) && peers.len() >= MAX_TRACKED_PEERS {
            peers.retain(|_, failures| now.duration_since(failures.window_start) < ATTEMPT_WINDOW);
        }
        let key = if peers.contains_key(&peer) || peers.len() < MAX_TRACKED_PEERS {
            peer
        } else {
            OVERFLOW
        };
        let failures = peers.entry(key).or_insert(Failures {
            window_start: now,
            count: 0,
        });
        if now.duration_since(failures.window_start) >= ATTEMPT_WINDOW {
            *failures = Failures {
                window_start: now,
                count: 0,
            };
        }
        failures.count += 1;
    }

    /// Forgets `peer`'s failures (it entered a right token).
    pub(crate) fn succeeded(&self, peer: Option<IpAddr>) {
        locked(&self.peers).remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn sessions_are_found_by_their_id_only_and_end() {
        let sessions = Sessions::default();
        let (id, session) = sessions.create();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert!(sessions.touch(&id).is_some());
        assert!(sessions.touch(&id[1..]).is_none());
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&id));
        assert!(!format!("{sessions:?}").contains(&id));
        sessions.end(&id);
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; jit_console=abc ; b=2"),
        );
        assert_eq!(cookie_value(&headers).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&HeaderMap::new()), None);
        let set = set_cookie("abc", "/admin/demo/shop/", true);
        assert_eq!(
            set,
            "jit_console=abc; Path=/admin/demo/shop/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie("abc", "/", false).contains("Secure"));
        assert!(clear_cookie("/", false).contains("Max-Age=0"));
    }

    #[test]
    fn wrong_tokens_block_their_peer_only() {
        let limiter = AttemptLimiter::default();
        let one: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let two: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILED_ATTEMPTS {
            assert!(limiter.blocked_for(one).is_none());
            limiter.failed(one);
        }
        assert!(limiter.blocked_for(one).is_some());
        assert!(limiter.blocked_for(two).is_none());
        limiter.succeeded(one);
        assert!(limiter.blocked_for(one).is_none());
    }
}
