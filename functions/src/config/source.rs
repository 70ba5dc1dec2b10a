//! Where settings are read from, and the errors and parsers every setting shares.

use super::settings::Setting;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {var} is required: {what}")]
    Missing {
        var: &'static str,
        what: &'static str,
    },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    /// Exactly one of `vars` is required; none is set. (None of them is required on its own,
    /// so `Function::env_vars` lists each as optional.)
    #[error("one of the environment variables {} is required: {what}", vars.join(" or "))]
    MissingOneOf {
        vars: &'static [&'static str],
        what: &'static str,
    },
}

/// Where variables come from: the process environment, or a map in tests.
pub trait Source {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

pub(super) fn required(
    env: &impl Source,
    var: &'static str,
    what: &'static str,
) -> Result<String, ConfigError> {
    env.var(var).ok_or(ConfigError::Missing { var, what })
}

/// The setting's variable if set (its default is the caller's), refused outside the setting's
/// bounds.
pub(super) fn given(env: &impl Source, setting: &Setting) -> Result<Option<u64>, ConfigError> {
    let Some(value) = env.var(setting.var) else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        var: setting.var,
        value: value.clone(),
        reason,
    };
    let parsed: u64 = value.trim().parse().map_err(|_| {
        invalid(format!(
            "expected a whole number from {} to {}",
            setting.min, setting.max
        ))
    })?;
    if !setting.bounds().contains(&parsed) {
        return Err(invalid(format!(
            "must be from {} to {}",
            setting.min, setting.max
        )));
    }
    Ok(Some(parsed))
}

/// The setting's variable, or its default when unset, as the number type its component keeps.
pub(super) fn number<T: TryFrom<u64>>(
    env: &impl Source,
    setting: &Setting,
) -> Result<T, ConfigError> {
    let value = given(env, setting)?.unwrap_or_else(|| setting.default_value());
    // Within bounds, which every component's type holds.
    T::try_from(value).map_err(|_| ConfigError::Invalid {
        var: setting.var,
        value: value.to_string(),
        reason: "out of range".into(),
    })
}

/// A setting in seconds or milliseconds, as a duration.
pub(super) fn duration(env: &impl Source, setting: &Setting) -> Result<Duration, ConfigError> {
    number(env, setting).map(|value| setting.duration(value))
}

/// The management endpoint must be an absolute http(s) URL without a trailing slash.
pub(super) fn endpoint(
    env: &impl Source,
    var: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.var(var) else {
        return Ok(None);
    };
    let url = value.trim_end_matches('/');
    let authority = url.split("://").nth(1).unwrap_or("");
    // Signed as sent: no user info, query or fragment, which a signature over the path and host
    // would not cover as the client sends them.
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() <= "https://".len()
        || authority.contains(['@', '?', '#'])
    {
        return Err(ConfigError::Invalid {
            var,
            value: value.clone(),
            reason: "expected an http(s) URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod".into(),
        });
    }
    Ok(Some(url.to_owned()))
}
