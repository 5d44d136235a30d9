//! `policies.retry`: attempts again on connection errors and listed status codes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::model::{Invalid, as_opt_humantime};
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, invalid, nanos};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRetry {
    pub attempts: Option<u32>,
    pub codes: Vec<u16>,
    pub backoff: Option<String>,
}

/// `retry`: another backend (or provider) is tried while attempts remain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// Total attempts, the first one included.
    pub attempts: u32,
    /// Upstream statuses that are retried.
    pub codes: Vec<u16>,
    /// Pause between attempts.
    #[serde(serialize_with = "as_opt_humantime")]
    pub backoff: Option<Duration>,
}

impl Retry {
    /// At least one attempt; every code an HTTP status.
    pub(crate) fn new(
        attempts: u32,
        codes: Vec<u16>,
        backoff: Option<Duration>,
    ) -> Result<Retry, Vec<Invalid>> {
        if attempts == 0 {
            return Err(vec![Invalid::at(
                "attempts",
                "attempts counts the first try too, so it must be at least 1",
            )]);
        }
        let problems: Vec<Invalid> = codes
            .iter()
            .enumerate()
            .filter(|(_, c)| !(100..=599).contains(*c))
            .map(|(i, c)| {
                Invalid::at(
                    &format!("codes[{i}]"),
                    format!("{c} is not an HTTP status code"),
                )
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Retry {
            attempts,
            codes,
            backoff,
        })
    }
}

impl Validator<'_> {
    pub fn retry(&mut self, raw: &RawRetry, path: &YamlPath) -> Option<Retry> {
        let attempts = raw.attempts.unwrap_or(1);
        // With no attempt allowed the backoff is moot: only `attempts` is reported.
        let backoff = match &raw.backoff {
            Some(b) if attempts > 0 => self.duration(b, &path.key("backoff")).map(Some),
            _ => Some(None),
        };
        let built = Retry::new(attempts, raw.codes.clone(), backoff.flatten());
        let retry = self.checked(built, path)?;
        backoff.map(|_| retry)
    }
}

impl From<&Retry> for pb::Retry {
    fn from(r: &Retry) -> Self {
        pb::Retry {
            attempts: r.attempts,
            codes: r.codes.iter().map(|c| u32::from(*c)).collect(),
            backoff_nanos: r.backoff.map(nanos),
        }
    }
}

impl TryFrom<pb::Retry> for Retry {
    type Error = InvalidSnapshot;

    fn try_from(r: pb::Retry) -> convert::Result<Retry> {
        let codes = r
            .codes
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                u16::try_from(c).or_else(|_| {
                    invalid(
                        &format!("codes[{i}]"),
                        format!("{c} is not an HTTP status code"),
                    )
                })
            })
            .collect::<convert::Result<Vec<_>>>()?;
        Retry::new(r.attempts, codes, r.backoff_nanos.map(duration)).map_err(InvalidSnapshot::from)
    }
}
