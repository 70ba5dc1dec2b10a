//! Where settings are read from, and the errors and parsers every setting shares.

use std::str::FromStr;
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

/// Parses an optional variable, checking it against `range`.
pub(super) fn number<T>(
    env: &impl Source,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(value) = env.var(var) else {
        return Ok(default);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        var,
        value: value.clone(),
        reason,
    };
    let parsed: T = value.trim().parse().map_err(|_| {
        invalid(format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        ))
    })?;
    if !range.contains(&parsed) {
        return Err(invalid(format!(
            "must be from {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(parsed)
}

pub(super) fn seconds(
    env: &impl Source,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(env, var, default, range).map(Duration::from_secs)
}

pub(super) fn millis(
    env: &impl Source,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(env, var, default, range).map(Duration::from_millis)
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
