//! `authorization`, `mcpAuthorization` and `networkAuthorization`: CEL rule sets compiled once
//! per apply and decided per request (or per MCP tool, prompt or resource, or per connection) with agentgateway's semantics, plus the
//! IP and CIDR functions its rules use (`cidr("10.0.0.0/8").containsIP(source.address)`).

use std::net::IpAddr;
use std::sync::Arc;

use cel::objects::{Opaque, Value};
use cel::{ExecutionError, Program};
use serde_json::json;
use tollgate_shared::config::model::{Rule, RuleSet};

use crate::telemetry::fields::{self, Ctx};
use crate::telemetry::record::{LlmFacts, RequestRecord};

/// One compiled rule set.
pub struct Rules {
    allow: Vec<Program>,
    /// Each with whether it reads `llm`.
    deny: Vec<(Program, bool)>,
    require: Vec<Program>,
    /// The identity members the rules read (`jwt.sub`: null when absent).
    identity_members: Vec<String>,
    reads_llm: bool,
}

impl Rules {
    /// `RuleSet::new` (validation and pushed configs alike) compiled every rule.
    pub fn compile(set: &RuleSet) -> Rules {
        let (mut allow, mut deny, mut require) = (Vec::new(), Vec::new(), Vec::new());
        let mut reads_llm = false;
        for rule in &set.rules {
            let program =
                Program::compile(rule.expression()).expect("a validated CEL rule compiles");
            let references = program.references();
            let reads = references.has_variable("llm");
            reads_llm |= reads;
            match rule {
                Rule::Allow(_) => allow.push(program),
                Rule::Deny(_) => deny.push((program, reads)),
                Rule::Require(_) => require.push(program),
            }
        }
        Rules {
            allow,
            deny,
            require,
            identity_members: fields::identity_members_read(set.rules.iter().map(Rule::expression)),
            reads_llm,
        }
    }

    /// Whether a rule reads `llm.*`: the set is then decided once the LLM request is parsed.
    pub fn reads_llm(&self) -> bool {
        self.reads_llm
    }

    /// The request's variables (`request`, `source`, `jwt`, ...): built once per request,
    /// then shared by every decision about it.
    pub fn context(&self, record: &RequestRecord) -> Ctx {
        fields::request_context(record, &self.identity_members)
    }

    /// The decision for the request itself, with `llm` when the LLM request is known.
    pub fn allows_request(&self, record: &RequestRecord, llm: Option<&LlmFacts>) -> bool {
        let mut ctx = self.context(record);
        if let Some(llm) = llm {
            fields::add_llm_facts(&mut ctx, llm);
        }
        self.allows(&ctx, llm.is_some())
    }

    /// The decision for a new connection (`networkAuthorization`): the rules see only
    /// `source` (`address`, `port`, `rawAddress`, `rawPort`).
    pub fn allows_connection(&self, source: &fields::Source) -> bool {
        self.allows(&fields::connection_context(source), false)
    }

    /// The decision for one MCP tool, prompt or resource (`kind`) of target `target`, in the
    /// request's `ctx` from [`Rules::context`].
    pub fn allows_mcp(&self, ctx: &Ctx, kind: &str, target: &str, name: &str) -> bool {
        let mut scope = ctx.new_inner_scope();
        let item = match kind {
            "resource" => json!({"target": target, "name": name, "uri": name}),
            _ => json!({"target": target, "name": name}),
        };
        let mut mcp = json!({"tool": null, "prompt": null, "resource": null});
        mcp[kind] = item;
        let _ = scope.add_variable("mcp", mcp);
        self.allows(&scope, false)
    }

    /// agentgateway's order: any deny refuses; every require must hold; then any allow
    /// allows; with no allow rule (only deny or require rules) the request is allowed. A rule
    /// that fails to evaluate (a missing field, a wrong type) is false; but a deny rule that
    /// reads `llm` where there is no LLM request (`llm_known` false: passthrough and model
    /// lists, MCP) refuses, so a model deny-list cannot be dodged by another path.
    fn allows(&self, ctx: &cel::Context<'_, '_>, llm_known: bool) -> bool {
        let holds = |p: &Program| matches!(p.execute(ctx), Ok(Value::Bool(true)));
        let denies = |(p, reads_llm): &(Program, bool)| (*reads_llm && !llm_known) || holds(p);
        if self.deny.iter().any(denies) || !self.require.iter().all(holds) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(holds)
    }
}

/// agentgateway's IP and CIDR functions (the Kubernetes CEL libraries): `ip`, `isIP`,
/// `cidr`, `containsIP`, `containsCIDR`, `prefixLength`, `family`, `isLoopback`,
/// `isUnspecified`.
pub fn add_functions(ctx: &mut Ctx) {
    let _ = ctx.add_function("ip", |s: Arc<String>| -> Result<Value, ExecutionError> {
        let ip = parse_ip("ip", &s)?;
        Ok(Value::Opaque(Arc::new(Ip(ip))))
    });
    let _ = ctx.add_function("isIP", |s: Arc<String>| s.parse::<IpAddr>().is_ok());
    let _ = ctx.add_function("cidr", |s: Arc<String>| -> Result<Value, ExecutionError> {
        let cidr =
            Cidr::parse(&s).ok_or_else(|| ExecutionError::function_error("cidr", "not a CIDR"))?;
        Ok(Value::Opaque(Arc::new(cidr)))
    });
    let _ = ctx.add_function(
        "containsIP",
        |cel::extractors::This(this): cel::extractors::This<Value>,
         ip: Value|
         -> Result<bool, ExecutionError> {
            let ip = match &ip {
                Value::String(s) => parse_ip("containsIP", s)?,
                other => opaque::<Ip>("containsIP", other)?.0,
            };
            Ok(opaque::<Cidr>("containsIP", &this)?.contains(ip))
        },
    );
    let _ = ctx.add_function(
        "containsCIDR",
        |cel::extractors::This(this): cel::extractors::This<Value>,
         other: Value|
         -> Result<bool, ExecutionError> {
            let outer = opaque::<Cidr>("containsCIDR", &this)?;
            let inner = match &other {
                Value::String(s) => Cidr::parse(s)
                    .ok_or_else(|| ExecutionError::function_error("containsCIDR", "not a CIDR"))?,
                other => *opaque::<Cidr>("containsCIDR", other)?,
            };
            Ok(inner.prefix >= outer.prefix && outer.contains(inner.addr))
        },
    );
    let _ = ctx.add_function(
        "prefixLength",
        |cel::extractors::This(this): cel::extractors::This<Value>| {
            opaque::<Cidr>("prefixLength", &this).map(|c| i64::from(c.prefix))
        },
    );
    let _ = ctx.add_function(
        "family",
        |cel::extractors::This(this): cel::extractors::This<Value>| {
            opaque::<Ip>("family", &this).map(|ip| if ip.0.is_ipv4() { 4i64 } else { 6 })
        },
    );
    let _ = ctx.add_function(
        "isLoopback",
        |cel::extractors::This(this): cel::extractors::This<Value>| {
            opaque::<Ip>("isLoopback", &this).map(|ip| ip.0.is_loopback())
        },
    );
    let _ = ctx.add_function(
        "isUnspecified",
        |cel::extractors::This(this): cel::extractors::This<Value>| {
            opaque::<Ip>("isUnspecified", &this).map(|ip| ip.0.is_unspecified())
        },
    );
}

fn parse_ip(function: &str, text: &str) -> Result<IpAddr, ExecutionError> {
    text.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| ExecutionError::function_error(function, "not an IP address"))
}

fn opaque<'v, T: Opaque>(function: &str, value: &'v Value) -> Result<&'v T, ExecutionError> {
    match value {
        Value::Opaque(o) => o.downcast_ref::<T>(),
        _ => None,
    }
    .ok_or_else(|| ExecutionError::function_error(function, "wrong argument type"))
}

/// `ip("...")`.
#[derive(Debug, PartialEq, Eq)]
struct Ip(IpAddr);

impl Opaque for Ip {
    fn runtime_type_name(&self) -> &str {
        "net.IP"
    }
}

/// `cidr("...")`: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Opaque for Cidr {
    fn runtime_type_name(&self) -> &str {
        "net.CIDR"
    }
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let prefix: u8 = prefix.parse().ok()?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        host_bits == bits || (net >> host_bits) == (ip >> host_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str) -> Result<Value, ExecutionError> {
        let mut ctx = Ctx::default();
        add_functions(&mut ctx);
        let _ = ctx.add_variable("source", json!({"address": "10.1.2.3"}));
        Program::compile(expr).unwrap().execute(&ctx)
    }

    #[test]
    fn cidr_and_ip_functions() {
        let t = Ok(Value::Bool(true));
        let f = Ok(Value::Bool(false));
        assert_eq!(eval(r#"cidr("10.0.0.0/8").containsIP(source.address)"#), t);
        assert_eq!(eval(r#"cidr("10.2.0.0/16").containsIP(source.address)"#), f);
        assert_eq!(eval(r#"cidr("0.0.0.0/0").containsIP("192.168.1.1")"#), t);
        assert_eq!(eval(r#"cidr("10.1.2.3/32").containsIP(ip("10.1.2.3"))"#), t);
        assert_eq!(eval(r#"cidr("::/0").containsIP("10.1.2.3")"#), f);
        assert_eq!(eval(r#"cidr("fd00::/8").containsIP("fd12::1")"#), t);
        assert_eq!(
            eval(r#"cidr("10.0.0.0/8").containsIP("::ffff:10.9.9.9")"#),
            t
        );
        assert_eq!(eval(r#"cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16")"#), t);
        assert_eq!(
            eval(r#"cidr("10.1.0.0/16").containsCIDR(cidr("10.0.0.0/8"))"#),
            f
        );
        assert_eq!(
            eval(r#"cidr("10.0.0.0/8").prefixLength()"#),
            Ok(Value::Int(8))
        );
        assert_eq!(
            eval(r#"ip("::1").family() == 6 && ip("::1").isLoopback()"#),
            t
        );
        assert_eq!(eval(r#"isIP("1.2.3.4") && !isIP("nope")"#), t);
        assert!(eval(r#"cidr("10.0.0.0/33")"#).is_err());
        assert!(eval(r#"cidr("10.0.0.0/8").containsIP("x")"#).is_err());
    }

    fn rules(rules: Vec<Rule>) -> Rules {
        Rules::compile(&RuleSet { rules })
    }

    fn allows(r: &Rules, method: &str) -> bool {
        let mut ctx = Ctx::default();
        let _ = ctx.add_variable("request", json!({"method": method}));
        r.allows(&ctx, false)
    }

    #[test]
    fn deny_wins_requires_all_hold_then_any_allow() {
        let allow = |e: &str| Rule::Allow(e.into());
        let r = rules(vec![
            allow(r#"request.method == "GET""#),
            allow(r#"request.method == "PUT""#),
        ]);
        assert!(allows(&r, "GET") && allows(&r, "PUT") && !allows(&r, "POST"));
        let r = rules(vec![
            allow("true"),
            Rule::Deny(r#"request.method == "DELETE""#.into()),
        ]);
        assert!(allows(&r, "GET") && !allows(&r, "DELETE"));
        let r = rules(vec![Rule::Require(r#"request.method != "POST""#.into())]);
        assert!(
            allows(&r, "GET") && !allows(&r, "POST"),
            "no allow rule: allowed"
        );
        let r = rules(vec![Rule::Deny(r#"request.method == "POST""#.into())]);
        assert!(allows(&r, "GET") && !allows(&r, "POST"));
        let r = rules(vec![allow("request.missing.field == 1")]);
        assert!(!allows(&r, "GET"), "an error is false");
        let r = rules(vec![Rule::Deny("request.missing.field == 1".into())]);
        assert!(
            allows(&r, "GET"),
            "a deny that fails does not deny (as agentgateway)"
        );
        let r = rules(vec![Rule::Deny(r#"llm.requestModel == "o1""#.into())]);
        assert!(
            !allows(&r, "GET"),
            "a deny on `llm` refuses where no LLM request is known"
        );
    }

    #[test]
    fn llm_readers_are_found() {
        assert!(rules(vec![Rule::Allow(r#"llm.requestModel == "m""#.into())]).reads_llm());
        let plain = rules(vec![Rule::Allow(r#"jwt.sub == "llm""#.into())]);
        assert!(!plain.reads_llm());
    }
}
