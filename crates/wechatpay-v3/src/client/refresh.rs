//! Keeping platform certificates fresh: when to download `/v3/certificates` again, and how
//! a downloaded list is checked before its certificates are trusted.
//!
//! One download runs at a time (the clones of a client share the schedule). A download is
//! due when none was made yet, after [`CertificateRefresh::interval`](super::CertificateRefresh),
//! or, at most once per `min_gap`, when every certificate held ends within `before_expiry`.
//! A serial not held, or a certificate no longer valid, triggers one download too, again at
//! most once per `min_gap`. A scheduled download that fails is logged and the certificates
//! held are kept; only a verification that cannot proceed without it fails.
//!
//! The list is decrypted with the APIv3 key first; then its own signature is verified with
//! the certificates held and those just decrypted (and the public key during a switchover);
//! only then are they added. Expired certificates are dropped.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::Client;
use crate::Error;
use crate::calls::certificates::{self, CertificateList};
use crate::certificates::{PlatformCertificate, PlatformCertificates};
use crate::json::parse_object;
use crate::verify::Verifier;

/// The cap on the certificate list (a few certificates of about 2 KiB).
const MAX_CERTIFICATE_LIST_BYTES: usize = 1024 * 1024;

impl Client {
    fn store(&self) -> Option<&Arc<PlatformCertificates>> {
        self.inner.verifier.certificates()
    }

    /// Downloads the platform certificates now (whatever the schedule), verifies the list and
    /// adds them. Returns the certificates the list carried. Fails with
    /// [`Error::Config`] in public-key mode, which has no certificates to download.
    pub async fn download_platform_certificates(&self) -> Result<Vec<PlatformCertificate>, Error> {
        if self.store().is_none() {
            return Err(Error::Config(
                "platform certificates are not used in public-key mode".into(),
            ));
        }
        let mut last = self.inner.last_download.lock().await;
        *last = Some(Instant::now());
        self.download_and_store().await
    }

    /// Downloads when the schedule says so; a failure is logged, not returned.
    pub(super) async fn refresh_certificates_if_due(&self) {
        let Some(store) = self.store() else { return };
        let policy = self.inner.config.certificate_refresh;
        let due = |last: Option<Instant>| match last {
            None => true,
            Some(at) => {
                let elapsed = at.elapsed();
                let now = Utc::now();
                let ending = store.valid_until(now).is_none_or(|until| {
                    (until - now).to_std().unwrap_or_default() < policy.before_expiry
                });
                elapsed >= policy.interval || (ending && elapsed >= policy.min_gap)
            }
        };
        // Waiting for the lock also waits for a download another task is making.
        let mut last = self.inner.last_download.lock().await;
        if !due(*last) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.download_and_store().await {
            tracing::warn!(
                error = %error.log_label(),
                "downloading WeChat Pay platform certificates failed; keeping those held"
            );
        }
    }

    /// Downloads because a serial was not held (or its certificate not valid), unless a
    /// download happened within `min_gap`. A failed download is returned: the verification
    /// waiting on it cannot go on.
    pub(super) async fn refresh_certificates_for_serial(&self) -> Result<(), Error> {
        let min_gap = self.inner.config.certificate_refresh.min_gap;
        let mut last = self.inner.last_download.lock().await;
        if last.is_some_and(|at| at.elapsed() < min_gap) {
            return Ok(());
        }
        *last = Some(Instant::now());
        self.download_and_store().await.map(|_| ())
    }

    /// The download itself; the caller holds the schedule's lock.
    async fn download_and_store(&self) -> Result<Vec<PlatformCertificate>, Error> {
        let store = self
            .store()
            .ok_or_else(|| Error::Config("platform certificates are not used".into()))?;
        let call = certificates::call();
        let answer = self
            .execute_unsigned(
                call.endpoint,
                self.url_of(&call)?,
                MAX_CERTIFICATE_LIST_BYTES,
            )
            .await?;
        let list = CertificateList::try_from(parse_object(&answer.body, certificates::ENDPOINT)?)?;
        let downloaded = list.decrypt(&self.inner.config.api_v3_key)?;

        let candidates = Arc::new(PlatformCertificates::with(
            store.all().into_iter().chain(downloaded.iter().cloned()),
        ));
        let verifier = match self.inner.verifier.wechatpay_public_key() {
            Some(key) => Verifier::both(key.clone(), candidates),
            None => Verifier::platform_certificates(candidates),
        }
        .with_window(self.inner.config.timestamp_window);
        let signed = Client::signed_headers(certificates::ENDPOINT, &answer.headers)?;
        verifier
            .verify(&signed, &answer.body)
            .map_err(|source| Error::InvalidSignature {
                context: certificates::ENDPOINT,
                source,
            })?;

        store.insert_all(downloaded.iter().cloned());
        store.remove_expired(Utc::now());
        tracing::info!(
            certificates = downloaded.len(),
            "downloaded WeChat Pay platform certificates"
        );
        Ok(downloaded)
    }
}
