//! The HTTP rules both protocol clients share (this crate's and wechatpay-v3's): which extra
//! roots a client trusts, how much of an answer is read, and the retry schedule of a
//! [`RetryPolicy`]. What a request carries and how an answer is checked stay with each
//! protocol's client.

use std::time::Duration;

use crate::RetryPolicy;

/// Reads `trusted_roots_pem` (a PEM bundle of extra root certificates). `None` trusts only
/// the system roots. The error is the configuration message: unusable PEM, or a bundle with
/// no certificate in it.
pub fn trusted_roots(pem: Option<&[u8]>) -> Result<Vec<reqwest::Certificate>, String> {
    let Some(pem) = pem else {
        return Ok(Vec::new());
    };
    let roots = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| format!("trusted_roots_pem is not usable PEM: {e}"))?;
    if roots.is_empty() {
        return Err("trusted_roots_pem holds no certificate".into());
    }
    Ok(roots)
}

/// Why an answer's body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Reading failed (connection dropped, timeout).
    Read(reqwest::Error),
    /// The body is larger than the limit; reading stopped there.
    TooLarge,
}

/// Reads an answer's body, refusing one larger than `limit` bytes as soon as it passes the
/// limit (nothing beyond it is buffered).
pub async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if bytes.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The retry schedule of one call under a [`RetryPolicy`]: at most `max_attempts` attempts;
/// before each retry the longer of the doubling delay (from `base_delay`) and the error's own
/// hint, neither beyond `max_delay`.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    delay: Duration,
    attempts: u32,
}

impl Backoff {
    /// The schedule of a call whose first attempt is under way.
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            delay: policy.base_delay,
            attempts: 1,
        }
    }

    /// After a failed attempt that may be retried: the failed attempt's number and the pause
    /// before the next one, or `None` when the policy allows no more attempts.
    pub fn next_retry(&mut self, hint: Option<Duration>) -> Option<(u32, Duration)> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let pause = self
            .delay
            .max(hint.unwrap_or_default().min(self.policy.max_delay));
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        let failed = self.attempts;
        self.attempts += 1;
        Some((failed, pause))
    }
}

/// Runs `attempt` until it succeeds, until `retryable` refuses its error, or until the
/// policy's attempts are spent, sleeping the [`Backoff`] pause (given the error's
/// `delay_hint`) between attempts. `before_retry(error, failed_attempt, pause)` runs before
/// each pause, for the caller's log line. The error returned is the last attempt's.
pub async fn with_retries<T, E, F, Fut>(
    policy: RetryPolicy,
    mut attempt: F,
    retryable: impl Fn(&E) -> bool,
    delay_hint: impl Fn(&E) -> Option<Duration>,
    before_retry: impl Fn(&E, u32, Duration),
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !retryable(&error) {
            return Err(error);
        }
        let Some((failed, pause)) = backoff.next_retry(delay_hint(&error)) else {
            return Err(error);
        };
        before_retry(&error, failed, pause);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_takes_longer_hints_and_stops_at_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let mut backoff = Backoff::new(policy);
        assert_eq!(
            backoff.next_retry(None),
            Some((1, Duration::from_millis(100)))
        );
        // A hint longer than the delay wins, but never beyond max_delay.
        assert_eq!(
            backoff.next_retry(Some(Duration::from_secs(5))),
            Some((2, Duration::from_millis(300)))
        );
        assert_eq!(
            backoff.next_retry(Some(Duration::from_millis(1))),
            Some((3, Duration::from_millis(300)))
        );
        assert_eq!(backoff.next_retry(None), None);
        let never = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(Backoff::new(never).next_retry(None), None);
    }

    #[tokio::test]
    async fn with_retries_stops_at_success_refusal_or_max_attempts() {
        use std::cell::Cell;
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        };
        let calls = &Cell::new(0);
        let retried = &Cell::new(Vec::new());
        let run = |fail_until: u32, retryable: bool| {
            calls.set(0);
            retried.set(Vec::new());
            with_retries(
                policy,
                move || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move { if n < fail_until { Err(n) } else { Ok(n) } }
                },
                move |_: &u32| retryable,
                |_| None,
                |error, failed, pause| {
                    let mut seen = retried.take();
                    seen.push((*error, failed, pause));
                    retried.set(seen);
                },
            )
        };
        assert_eq!(run(2, true).await, Ok(2));
        assert_eq!(retried.take(), vec![(1, 1, Duration::from_millis(10))]);
        assert_eq!(run(9, true).await, Err(3));
        assert_eq!(
            retried.take(),
            vec![
                (1, 1, Duration::from_millis(10)),
                (2, 2, Duration::from_millis(20))
            ]
        );
        assert_eq!(run(9, false).await, Err(1));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn trusted_roots_refuse_bad_or_empty_pem() {
        assert!(trusted_roots(None).unwrap().is_empty());
        let empty = trusted_roots(Some(b"no certificate here")).unwrap_err();
        assert!(empty.contains("trusted_roots_pem"), "{empty}");
    }
}
