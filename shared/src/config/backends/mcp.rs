//! `mcp` backends: MCP servers (stdio children, streamable HTTP, legacy SSE, REST APIs
//! described by OpenAPI) behind one endpoint, their tools prefixed by target name.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::policies::Secret;
use crate::config::raw::Lenient;
use crate::config::redact;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, enum_value, missing, path_string};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcp {
    pub targets: Vec<Lenient<RawMcpTarget>>,
    pub prefix_mode: Option<PrefixMode>,
    pub failure_mode: Option<FailureMode>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcpTarget {
    pub name: String,
    pub stdio: Option<RawStdio>,
    pub sse: Option<RawRemoteTarget>,
    pub mcp: Option<RawRemoteTarget>,
    pub openapi: Option<RawOpenApiTarget>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStdio {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Tollgate extension: gateway variables the child may see besides the minimal set.
    #[serde(default)]
    pub inherit_env: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRemoteTarget {
    pub host: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOpenApiTarget {
    pub host: String,
    pub schema: RawOpenApiSchema,
}

/// `schema`: the spec's text inline, or `{file}` / `{url}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawOpenApiSchema {
    Inline(String),
    Source(RawOpenApiSource),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOpenApiSource {
    pub file: Option<String>,
    pub url: Option<String>,
}

/// `mcp`: the targets one MCP session fans out to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpBackend {
    /// Never empty; names unique.
    pub targets: Vec<McpTarget>,
    /// When tool names get their `target_` prefix.
    pub prefix_mode: PrefixMode,
    /// What a session does when a target fails.
    pub failure_mode: FailureMode,
}

impl McpBackend {
    /// At least one target, each with a valid name used once.
    pub(crate) fn new(
        targets: Vec<McpTarget>,
        prefix_mode: PrefixMode,
        failure_mode: FailureMode,
    ) -> Result<McpBackend, Vec<Invalid>> {
        let mut problems = Vec::new();
        if targets.is_empty() {
            problems.push(Invalid::at(
                "targets",
                "an mcp backend needs at least one target",
            ));
        }
        let mut names = HashSet::new();
        for (i, t) in targets.iter().enumerate() {
            let field = format!("targets[{i}].name");
            problems.extend(McpTarget::check_name(&t.name).map(|m| Invalid::at(&field, m)));
            if !names.insert(t.name.as_str()) {
                problems.push(Invalid::at(&field, McpTarget::used_twice(&t.name)));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(McpBackend {
            targets,
            prefix_mode,
            failure_mode,
        })
    }
}

/// `prefixMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PrefixMode {
    /// Only when the backend has more than one target.
    Conditional,
    /// Always.
    Always,
}

/// `failureMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// A failed target is left out; the others serve.
    FailOpen,
    /// A failed target fails the request.
    FailClosed,
}

/// `targets[]`: one MCP server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpTarget {
    /// Unique in the backend; a-z, 0-9, `-` and `.`; the tool name prefix.
    pub name: String,
    /// How the server is reached.
    #[serde(flatten)]
    pub kind: McpTargetKind,
}

impl McpTarget {
    /// Why `name` cannot name a target, if it cannot.
    fn check_name(name: &str) -> Option<String> {
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        (!valid).then(|| format!("target name `{name}` must use only a-z, 0-9, `-` and `.`"))
    }

    fn used_twice(name: &str) -> String {
        format!("target name `{name}` is used twice")
    }
}

/// Exactly one of `stdio`, `sse`, `mcp` or `openapi`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum McpTargetKind {
    /// A child process per session, spoken to over stdin/stdout.
    Stdio {
        /// Program run.
        cmd: String,
        /// Its arguments, secrets (one may be a token); dumps redact credential-looking ones.
        #[serde(serialize_with = "shown_args")]
        args: Vec<Secret>,
        /// Its environment; values are secrets.
        env: IndexMap<String, Secret>,
        /// `inheritEnv` (Tollgate extension): the gateway's variables passed on by name, on top
        /// of `PATH`, `HOME`, the locale and the temp dir; nothing else is inherited.
        inherit_env: Vec<String>,
    },
    /// Legacy SSE server at this URL.
    Sse {
        /// Full URL (`host:port` gets `/sse`); a secret, as it may carry credentials.
        #[serde(serialize_with = "shown_url")]
        url: Secret,
    },
    /// Streamable HTTP server at this URL.
    Mcp {
        /// Full URL (`host:port` gets `/mcp`); a secret, as it may carry credentials.
        #[serde(serialize_with = "shown_url")]
        url: Secret,
    },
    /// A REST API whose OpenAPI operations are served as tools.
    #[serde(rename = "openapi")]
    OpenApi {
        /// Where the spec comes from.
        schema: OpenApiSchema,
        /// The API's base URL (`host:port` gets `http://`); a secret, as it may carry
        /// credentials. The spec's server path and each operation's path follow it.
        #[serde(serialize_with = "shown_url")]
        url: Secret,
    },
}

/// An OpenAPI 3 document (JSON or YAML).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OpenApiSchema {
    /// A file, read by the proxy when the config is applied (relative to its working
    /// directory).
    File(PathBuf),
    /// The document written in the config.
    Inline(String),
}

/// Arguments as dumps show them: references or values, credential-looking ones redacted.
fn shown_args<S: serde::Serializer>(args: &[Secret], s: S) -> Result<S::Ok, S::Error> {
    let written: Vec<String> = args
        .iter()
        .map(|a| match a.reference() {
            Some(_) => a.shown().into_owned(),
            None => a.expose().to_string(),
        })
        .collect();
    redact::serialize_args(&written, s)
}

/// A target URL as dumps show it: its reference or value, without user info and keys.
fn shown_url<S: serde::Serializer>(url: &Secret, s: S) -> Result<S::Ok, S::Error> {
    match url.reference() {
        Some(_) => s.serialize_str(&redact::url(&url.shown())),
        None => s.serialize_str(&redact::url(url.expose())),
    }
}

impl McpTargetKind {
    /// Why `name` cannot name an environment variable to inherit, if it cannot.
    fn check_env_name(name: &str) -> Option<String> {
        let valid = !name.is_empty() && !name.contains(['=', '\0']);
        (!valid).then(|| format!("inheritEnv: `{name}` is not an environment variable name"))
    }
}

impl Validator<'_> {
    pub fn mcp(&mut self, raw: &RawMcp, path: &YamlPath) -> Option<McpBackend> {
        let mut names = HashSet::new();
        let targets = self.list(&raw.targets, path, "targets", |v, t, _, tp| {
            // Names are checked here, at the position written, even when the target is not
            // usable; the backend's constructor checks the same for a proto.
            if let Some(message) = McpTarget::check_name(&t.name) {
                v.error(&tp.key("name"), message);
            }
            if !names.insert(t.name.clone()) {
                v.error(&tp.key("name"), McpTarget::used_twice(&t.name));
            }
            let kind = v.mcp_target_kind(t, tp)?;
            Some(McpTarget {
                name: t.name.clone(),
                kind,
            })
        });
        let prefix_mode = raw.prefix_mode.unwrap_or(PrefixMode::Conditional);
        let failure_mode = raw.failure_mode.unwrap_or(FailureMode::FailOpen);
        let written = !raw.targets.is_empty();
        let built = McpBackend::new(targets, prefix_mode, failure_mode).map_err(|problems| {
            // Names were reported above where written; so were targets that failed.
            problems
                .into_iter()
                .filter(|p| !written && p.is_at("targets"))
                .collect()
        });
        self.checked(built, path)
    }

    fn mcp_target_kind(&mut self, t: &RawMcpTarget, path: &YamlPath) -> Option<McpTargetKind> {
        let options = [
            ("stdio", t.stdio.is_some()),
            ("sse", t.sse.is_some()),
            ("mcp", t.mcp.is_some()),
            ("openapi", t.openapi.is_some()),
        ];
        if !self.exactly_one(path, "a target", &options) {
            return None;
        }
        if let Some(s) = &t.stdio {
            let ep = path.key("stdio").key("env");
            for (i, name) in s.inherit_env.iter().enumerate() {
                if let Some(problem) = McpTargetKind::check_env_name(name) {
                    self.error(&path.key("stdio").key("inheritEnv").index(i), problem);
                }
            }
            Some(McpTargetKind::Stdio {
                cmd: s.cmd.clone(),
                args: s
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.secret(a, &path.key("stdio").key("args").index(i)))
                    .collect(),
                env: s
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), self.secret(v, &ep.key(k.clone()))))
                    .collect(),
                inherit_env: s.inherit_env.clone(),
            })
        } else if let Some(s) = &t.sse {
            Some(McpTargetKind::Sse {
                url: self.target_url(&s.host, "/sse", &path.key("sse").key("host"))?,
            })
        } else if let Some(m) = &t.mcp {
            Some(McpTargetKind::Mcp {
                url: self.target_url(&m.host, "/mcp", &path.key("mcp").key("host"))?,
            })
        } else {
            let o = t.openapi.as_ref()?;
            let at = path.key("openapi");
            let schema = self.openapi_schema(&o.schema, &at.key("schema"));
            let url = self.target_url(&o.host, "", &at.key("host"));
            Some(McpTargetKind::OpenApi {
                schema: schema?,
                url: url?,
            })
        }
    }

    fn openapi_schema(&mut self, raw: &RawOpenApiSchema, path: &YamlPath) -> Option<OpenApiSchema> {
        match raw {
            RawOpenApiSchema::Inline(text) => Some(OpenApiSchema::Inline(text.clone())),
            RawOpenApiSchema::Source(RawOpenApiSource {
                file: Some(file),
                url: None,
            }) => Some(OpenApiSchema::File(PathBuf::from(file))),
            RawOpenApiSchema::Source(RawOpenApiSource {
                file: None,
                url: Some(_),
            }) => {
                self.error(
                    &path.key("url"),
                    "fetching the spec (`schema.url`) is an agentgateway feature Tollgate does not support (yet); download it and use `schema.file`",
                );
                None
            }
            RawOpenApiSchema::Source(_) => {
                self.error(
                    path,
                    "`schema` needs exactly one of `file` or the spec inline",
                );
                None
            }
        }
    }

    /// A remote MCP server: a full URL (kept as written, so proxies resolve its `$VAR`s), or
    /// `host:port` with the transport's default path.
    fn target_url(&mut self, host: &str, default_path: &str, path: &YamlPath) -> Option<Secret> {
        if host.starts_with("http://") || host.starts_with("https://") {
            match host.parse::<http::Uri>() {
                Ok(_) => Some(self.validated_secret(host, path)),
                Err(e) => {
                    self.error(path, format!("invalid URL `{}`: {e}", redact::url(host)));
                    None
                }
            }
        } else {
            let authority = self.authority(host, path)?;
            Some(Secret::new(
                format!("http://{authority}{default_path}"),
                None,
            ))
        }
    }
}

impl From<&McpBackend> for pb::McpBackend {
    fn from(m: &McpBackend) -> Self {
        pb::McpBackend {
            targets: m.targets.iter().map(Into::into).collect(),
            prefix_mode: match m.prefix_mode {
                PrefixMode::Conditional => pb::PrefixMode::Conditional,
                PrefixMode::Always => pb::PrefixMode::Always,
            } as i32,
            failure_mode: match m.failure_mode {
                FailureMode::FailOpen => pb::FailureMode::FailOpen,
                FailureMode::FailClosed => pb::FailureMode::FailClosed,
            } as i32,
        }
    }
}

impl TryFrom<pb::McpBackend> for McpBackend {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::McpBackend) -> convert::Result<McpBackend> {
        let prefix_mode = match enum_value(m.prefix_mode, "prefixMode")? {
            pb::PrefixMode::Conditional => PrefixMode::Conditional,
            pb::PrefixMode::Always => PrefixMode::Always,
        };
        let failure_mode = match enum_value(m.failure_mode, "failureMode")? {
            pb::FailureMode::FailOpen => FailureMode::FailOpen,
            pb::FailureMode::FailClosed => FailureMode::FailClosed,
        };
        McpBackend::new(
            convert::each(m.targets, "targets")?,
            prefix_mode,
            failure_mode,
        )
        .map_err(InvalidSnapshot::from)
    }
}

impl From<&McpTarget> for pb::McpTarget {
    fn from(t: &McpTarget) -> Self {
        use pb::mcp_target::Kind;
        pb::McpTarget {
            name: t.name.clone(),
            kind: Some(match &t.kind {
                McpTargetKind::Stdio {
                    cmd,
                    args,
                    env,
                    inherit_env,
                } => Kind::Stdio(pb::Stdio {
                    cmd: cmd.clone(),
                    args: args.iter().map(Into::into).collect(),
                    env: env
                        .iter()
                        .map(|(n, v)| pb::EnvVar {
                            name: n.clone(),
                            value: Some(v.into()),
                        })
                        .collect(),
                    inherit_env: inherit_env.clone(),
                }),
                McpTargetKind::Sse { url } => Kind::Sse(url.into()),
                McpTargetKind::Mcp { url } => Kind::Mcp(url.into()),
                McpTargetKind::OpenApi { schema, url } => Kind::Openapi(pb::OpenApiTarget {
                    schema: Some(match schema {
                        OpenApiSchema::File(p) => pb::open_api_target::Schema::File(path_string(p)),
                        OpenApiSchema::Inline(text) => {
                            pb::open_api_target::Schema::Inline(text.clone())
                        }
                    }),
                    url: Some(url.into()),
                }),
            }),
        }
    }
}

impl TryFrom<pb::McpTarget> for McpTarget {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::McpTarget) -> convert::Result<McpTarget> {
        use pb::mcp_target::Kind;
        let kind = match t.kind {
            Some(Kind::Stdio(s)) => McpTargetKind::Stdio {
                cmd: s.cmd,
                args: s
                    .args
                    .into_iter()
                    .map(Secret::try_from)
                    .collect::<convert::Result<_>>()?,
                env: s
                    .env
                    .into_iter()
                    .map(|e| {
                        let value = convert::required(e.value, &format!("stdio.env.{}", e.name))?;
                        Ok((e.name, value))
                    })
                    .collect::<convert::Result<IndexMap<_, _>>>()?,
                inherit_env: s.inherit_env,
            },
            Some(Kind::Sse(url)) => McpTargetKind::Sse {
                url: url.try_into()?,
            },
            Some(Kind::Mcp(url)) => McpTargetKind::Mcp {
                url: url.try_into()?,
            },
            Some(Kind::Openapi(o)) => McpTargetKind::OpenApi {
                schema: match o.schema {
                    Some(pb::open_api_target::Schema::File(p)) => OpenApiSchema::File(p.into()),
                    Some(pb::open_api_target::Schema::Inline(text)) => OpenApiSchema::Inline(text),
                    None => return missing("openapi.schema"),
                },
                url: convert::required(o.url, "openapi.host")?,
            },
            None => return missing(""),
        };
        Ok(McpTarget { name: t.name, kind })
    }
}
