//! `policies.a2a` (agentgateway's spelling, no fields): the route carries the agent-to-agent
//! protocol. Calls are counted and traced as A2A with their JSON-RPC method, and an agent
//! card's `url` is rewritten to the gateway's address so clients keep coming through it.

use serde::Deserialize;

use crate::config::path::YamlPath;
use crate::config::validate::Validator;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawA2a {}

impl Validator<'_> {
    /// `Some` when written (and well-formed): the model holds it as a flag.
    pub fn a2a(&mut self, _raw: &RawA2a, _path: &YamlPath) -> Option<()> {
        Some(())
    }
}
