//! The signing identity, from the SDK's credentials provider chain, kept until shortly before
//! it expires.
//!
//! The SDK's clients cache credentials inside their orchestrator; a caller that signs its own
//! requests must do it itself. In Lambda the chain reads the function's environment (no
//! expiry); elsewhere it may be SSO, a profile or instance metadata, whose credentials expire
//! and are refreshed here before they do.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::identity::Identity;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Refresh this long before the credentials expire, so no request is signed with credentials
/// that lapse in flight. Until then, and while a refresh runs, the current ones sign.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// A provider that hangs (instance metadata on a broken network) fails the refresh instead.
const PROVIDE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed refresh, the next waits this long: a broken provider is not asked once per
/// post.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

pub(super) struct CredentialsCache {
    provider: Option<SharedCredentialsProvider>,
    state: Arc<Mutex<State>>,
    /// A refresh ended.
    refreshed: Arc<Notify>,
}

#[derive(Default)]
struct State {
    current: Option<Identity>,
    refreshing: bool,
    /// When the last refresh failed, and why.
    failed: Option<(Instant, String)>,
}

impl CredentialsCache {
    pub(super) fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            state: Arc::default(),
            refreshed: Arc::new(Notify::new()),
        }
    }

    /// Credentials to sign with now, or why there are none. Waits only when there are no
    /// unexpired ones, and then at most for one refresh (bounded by `PROVIDE_TIMEOUT`). The
    /// refresh runs in a task of its own: a post that gives up waiting (its own timeout) does
    /// not cancel it.
    pub(super) async fn identity(&self) -> Result<Identity, String> {
        let Some(provider) = &self.provider else {
            return Err("no AWS credentials provider is configured".into());
        };
        loop {
            let refreshed = self.refreshed.notified();
            tokio::pin!(refreshed);
            // Registered before the state is read, so a refresh ending in between still wakes.
            refreshed.as_mut().enable();
            {
                let mut state = lock(&self.state);
                let now = SystemTime::now();
                if let Some(identity) = state.current.as_ref().filter(|i| fresh(i, now)) {
                    return Ok(identity.clone());
                }
                let backing_off = state
                    .failed
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() < RETRY_AFTER_FAILURE);
                if !state.refreshing && !backing_off {
                    state.refreshing = true;
                    tokio::spawn(refresh(
                        provider.clone(),
                        self.state.clone(),
                        self.refreshed.clone(),
                    ));
                }
                // Credentials about to expire still sign until they have.
                if let Some(identity) = state.current.as_ref().filter(|i| unexpired(i, now)) {
                    return Ok(identity.clone());
                }
                if !state.refreshing {
                    let why = state.failed.as_ref().map_or("", |(_, why)| why.as_str());
                    return Err(format!("could not load AWS credentials: {why}"));
                }
            }
            // The refresh ends within PROVIDE_TIMEOUT; the bound is only a guard.
            if tokio::time::timeout(PROVIDE_TIMEOUT * 2, refreshed)
                .await
                .is_err()
            {
                return Err("could not load AWS credentials: the refresh did not end".into());
            }
        }
    }
}

/// Asks the provider once, keeps what it answers if it is not already expired, and wakes the
/// posts waiting for it.
async fn refresh(provider: SharedCredentialsProvider, state: Arc<Mutex<State>>, done: Arc<Notify>) {
    let provided = tokio::time::timeout(PROVIDE_TIMEOUT, provider.provide_credentials()).await;
    let outcome = match provided {
        Ok(Ok(credentials)) => {
            let identity = Identity::from(credentials);
            if unexpired(&identity, SystemTime::now()) {
                Ok(identity)
            } else {
                Err("the provider answered with credentials that have expired".to_owned())
            }
        }
        Ok(Err(error)) => Err(crate::adapters::aws::describe(&error)),
        Err(_) => Err(format!("no answer in {PROVIDE_TIMEOUT:?}")),
    };
    {
        let mut state = lock(&state);
        state.refreshing = false;
        match outcome {
            Ok(identity) => {
                state.current = Some(identity);
                state.failed = None;
            }
            Err(why) => {
                tracing::warn!(%why, "could not refresh the AWS credentials");
                state.failed = Some((Instant::now(), why));
            }
        }
    }
    done.notify_waiters();
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every critical section leaves the state consistent: a poisoned lock is still usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
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
        /// An hour's credentials, after this long.
        Slow(Duration),
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
                    Step::Slow(delay) => {
                        tokio::time::sleep(delay).await;
                        now + Duration::from_secs(3600)
                    }
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

    #[tokio::test(start_paused = true)]
    async fn credentials_near_expiry_sign_while_they_refresh_and_if_the_refresh_fails() {
        let soon = Duration::from_secs(60);
        let (cache, provider) = cache(vec![
            Step::ExpiresIn(soon),
            Step::ExpiresIn(soon),
            Step::Fails,
            Step::ExpiresIn(Duration::from_secs(3600)),
        ]);
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID0");
        // Within REFRESH_BEFORE_EXPIRY: refreshed in the background, the current ones sign.
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID0");
        tokio::task::yield_now().await;
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID1");
        // The next refresh fails: the current ones have a minute left and still sign, and the
        // provider is not asked again for a while.
        tokio::task::yield_now().await;
        for _ in 0..20 {
            assert_eq!(key(&cache.identity().await.unwrap()), "AKID1");
            tokio::task::yield_now().await;
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        let _ = cache.identity().await;
        tokio::task::yield_now().await;
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID3");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_answers_and_a_failing_provider_fail_the_post_with_the_reason() {
        let (cache, provider) = cache(vec![Step::Expired, Step::Fails]);
        let error = cache.identity().await.unwrap_err();
        assert!(error.contains("expired"), "{error}");
        // Backing off: refused at once, without asking again.
        let error = cache.identity().await.unwrap_err();
        assert!(error.contains("expired"), "{error}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
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

    #[tokio::test(start_paused = true)]
    async fn a_post_that_gives_up_waiting_does_not_cancel_the_refresh() {
        let (cache, provider) = cache(vec![Step::Slow(Duration::from_secs(4))]);
        // The post's own timeout (the engine's POST_TIMEOUT_MS) is shorter than the provider.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.identity()).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_secs(4)).await;
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        assert_eq!(key(&cache.identity().await.unwrap()), "AKID0");
        assert_eq!(started.elapsed(), Duration::ZERO, "loaded already");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    }
}
