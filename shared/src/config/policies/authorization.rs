//! `policies.authorization` and `policies.mcpAuthorization`: CEL rule sets, in agentgateway's
//! spelling (a plain string is an `allow` rule; `{allow|deny|require: <expr>}` as newer
//! agentgateway writes them).

use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::settings::check_cel;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, missing};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRuleSet {
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawRule {
    Allow(String),
    Tagged(Rule),
}

/// One rule: a CEL expression and what its being true means.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Rule {
    /// Allows the request when true (a plain string in the config).
    Allow(String),
    /// Refuses the request when true, whatever else holds.
    Deny(String),
    /// Must be true for the request to be allowed.
    Require(String),
}

impl Rule {
    pub fn expression(&self) -> &str {
        match self {
            Rule::Allow(e) | Rule::Deny(e) | Rule::Require(e) => e,
        }
    }
}

/// `authorization` / `mcpAuthorization`: no deny rule true, every require rule true, and
/// (when there are allow rules) one allow rule true. A rule that fails at run time is false
/// (a deny rule that fails does not deny), except a deny rule reading `llm` where no LLM
/// request is known, which refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSet {
    /// The rules, in the order written; each compiles.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Every rule compiles (the proxy compiles them again and relies on it).
    fn new(rules: Vec<Rule>) -> Result<RuleSet, Vec<Invalid>> {
        let problems: Vec<Invalid> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                let expr = rule.expression();
                let e = check_cel(expr).err()?;
                Some(Invalid::at(
                    &format!("rules[{i}]"),
                    format!("invalid CEL expression `{expr}`: {e}"),
                ))
            })
            .collect();
        if problems.is_empty() {
            Ok(RuleSet { rules })
        } else {
            Err(problems)
        }
    }
}

impl Validator<'_> {
    pub fn rule_set(&mut self, raw: &RawRuleSet, path: &YamlPath) -> Option<RuleSet> {
        let rules: Vec<Rule> = raw
            .rules
            .iter()
            .map(|r| match r {
                RawRule::Allow(e) => Rule::Allow(e.clone()),
                RawRule::Tagged(rule) => rule.clone(),
            })
            .collect();
        self.checked(RuleSet::new(rules), path)
    }
}

impl From<&RuleSet> for pb::RuleSet {
    fn from(r: &RuleSet) -> Self {
        use pb::rule::Kind;
        pb::RuleSet {
            rules: r
                .rules
                .iter()
                .map(|rule| pb::Rule {
                    kind: Some(match rule {
                        Rule::Allow(e) => Kind::Allow(e.clone()),
                        Rule::Deny(e) => Kind::Deny(e.clone()),
                        Rule::Require(e) => Kind::Require(e.clone()),
                    }),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::RuleSet> for RuleSet {
    type Error = InvalidSnapshot;

    fn try_from(r: pb::RuleSet) -> convert::Result<RuleSet> {
        use pb::rule::Kind;
        let rules = r
            .rules
            .into_iter()
            .map(|rule| match rule.kind {
                Some(Kind::Allow(e)) => Ok(Rule::Allow(e)),
                Some(Kind::Deny(e)) => Ok(Rule::Deny(e)),
                Some(Kind::Require(e)) => Ok(Rule::Require(e)),
                None => missing("rules"),
            })
            .collect::<convert::Result<_>>()?;
        RuleSet::new(rules).map_err(InvalidSnapshot::from)
    }
}
