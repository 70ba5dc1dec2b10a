//! The signing identity, from the SDK's credentials provider chain, kept until shortly before
//! it expires.
//!
//! The SDK's clients cache credentials inside their orchestrator; a caller that signs its own
//! requests must do it itself. In Lambda the chain reads the function's environment (no
//! expiry); elsewhere it may be SSO, a profile or instance metadata, whose credentials expire
//! and are refreshed here before they do.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::identity::Identity;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

/// Refresh this long before the credentials expire, so no request is signed with credentials
/// that lapse in flight.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// A provider that hangs (instance metadata on a broken network) fails the post instead.
const PROVIDE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct CredentialsCache {
    provider: Option<SharedCredentialsProvider>,
    current: RwLock<Option<Identity>>,
    /// One refresh at a time: concurrent posts that find the credentials stale wait for it.
    refresh: tokio::sync::Mutex<()>,
}

impl CredentialsCache {
    pub(super) fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Credentials to sign with now, or why there are none.
    pub(super) async fn identity(&self) -> Result<Identity, String> {
        if let Some(identity) = self.cached(|identity| fresh(identity, SystemTime::now())) {
            return Ok(identity);
        }
        let Some(provider) = &self.provider else {
            return Err("no AWS credentials provider is configured".into());
        };
        // The wait is bounded: whoever holds the lock gives up after PROVIDE_TIMEOUT.
        let _refreshing = self.refresh.lock().await;
        if let Some(identity) = self.cached(|identity| fresh(identity, SystemTime::now())) {
            return Ok(identity);
        }
        let provided = tokio::time::timeout(PROVIDE_TIMEOUT, provider.provide_credentials()).await;
        match provided {
            Ok(Ok(credentials)) => {
                let identity = Identity::from(credentials);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(identity.clone());
                Ok(identity)
            }
            failed => {
                let why = match failed {
                    Ok(Err(error)) => crate::adapters::aws::describe(&error),
                    _ => format!("no answer in {PROVIDE_TIMEOUT:?}"),
                };
                // Credentials that are about to expire still sign until they have.
                self.cached(|identity| unexpired(identity, SystemTime::now()))
                    .ok_or_else(|| format!("could not load AWS credentials: {why}"))
            }
        }
    }

    fn cached(&self, usable: impl Fn(&Identity) -> bool) -> Option<Identity> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|identity| usable(identity))
            .cloned()
    }
}

fn fresh(identity: &Identity, now: SystemTime) -> bool {
    identity
        .expiration()
        .is_none_or(|expiry| now + REFRESH_BEFORE_EXPIRY < expiry)
}

fn unexpired(identity: &Identity, now: SystemTime) -> bool {
    identity.expiration().is_none_or(|expiry| now < expiry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::future::ProvideCredentials as ProvideFuture;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers from a script, one step per call (the last repeats), and counts the calls.
    #[derive(Debug, Clone)]
    enum Step {
        ExpiresIn(Duration),
        Expired,
        Fails,
        Hangs,
    }

    #[derive(Debug)]
    struct Scripted {
        steps: Vec<Step>,
        calls: AtomicUsize,
    }

    impl ProvideCredentials for Scripted {
        fn provide_credentials<'a>(&'a self) -> ProvideFuture<'a>
        where
            Self: 'a,
        {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            let step = self.steps[call.min(self.steps.len() - 1)].clone();
            ProvideFuture::new(async move {
                let now = SystemTime::now();
                let expiry = match step {
                    Step::ExpiresIn(after) => now + after,
                    Step::Expired => now - Duration::from_secs(1),
                    Step::Fails => return Err(CredentialsError::not_loaded("no profile")),
                    Step::Hangs => std::future::pending().await,
                };
                let key = format!("AKID{call}");
                Ok(Credentials::new(
                    key,
                    "secret",
                    None,
                    Some(expiry),
                    "script",
                ))
            })
        }
    }

    fn cache(steps: Vec<Step>) -> (CredentialsCache, Arc<Scripted>) {
        let provider = Arc::new(Scripted {
            steps,
            calls: AtomicUsize::new(0),
        });
        let shared = SharedCredentialsProvider::new(ScriptedRef(provider.clone()));
        (CredentialsCache::new(Some(shared)), provider)
    }

    #[derive(Debug)]
    struct ScriptedRef(Arc<Scripted>);

    impl ProvideCredentials for ScriptedRef {
        fn provide_credentials<'a>(&'a self) -> ProvideFuture<'a>
        where
            Self: 'a,
        {
            self.0.provide_credentials()
        }
    }

    fn key(identity: &Identity) -> String {
        identity
            .data::<Credentials>()
            .expect("credentials")
            .access_key_id()
            .to_owned()
    }

    #[tokio::test]
    async fn concurrent_posts_share_one_load_and_reuse_it_until_near_expiry() {
        let (cache, provider) = cache(vec![Step::ExpiresIn(Duration::from_secs(3600))]);
        let loads = (0..50).map(|_| cache.identity());
        for identity in futures::future::join_all(loads).await {
            assert_eq!(key(&identity.unwrap()), "AKID0");
        }
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID0");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_refreshed_and_still_used_if_the_refresh_fails() {
        let soon = Duration::from_secs(60);
        let (cache, provider) = cache(vec![
            Step::ExpiresIn(soon),
            Step::ExpiresIn(soon),
            Step::Fails,
        ]);
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID0");
        // Within REFRESH_BEFORE_EXPIRY: loaded again.
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID1");
        // The refresh fails; the current ones have a minute left and still sign.
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID1");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn expired_credentials_and_a_failing_provider_fail_the_post_with_the_reason() {
        let (cache, _) = cache(vec![Step::Expired, Step::Fails]);
        let _ = cache.identity().await;
        let error = cache.identity().await.unwrap_err();
        assert!(error.contains("no profile"), "{error}");

        let error = CredentialsCache::new(None).identity().await.unwrap_err();
        assert!(error.contains("no AWS credentials provider"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_hangs_fails_the_post_after_a_bounded_wait() {
        let (cache, _) = cache(vec![Step::Hangs]);
        let started = tokio::time::Instant::now();
        let error = cache.identity().await.unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        assert_eq!(started.elapsed(), PROVIDE_TIMEOUT);
    }
}
