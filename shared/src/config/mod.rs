//! Loading a config: text -> YAML -> env expansion -> raw types -> validated model -> snapshot.

mod backends;
mod env;
mod error;
mod frontend;
mod listeners;
pub mod model;
mod path;
mod policies;
mod raw;
pub mod redact;
mod route_groups;
mod settings;
mod snapshot;
mod tls;
mod validate;
mod yaml;

use std::path::Path;

pub use env::{Env, ProcessEnv, expand};
pub use error::{ConfigError, ConfigErrors};
pub use model::Config;
pub use snapshot::{Snapshot, SnapshotSource, version_of};

use path::YamlPath;
use raw::RawConfig;
use validate::Validator;
use yaml::Document;

/// How environment references are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Expand every reference (a standalone proxy, `tollgate check`).
    ExpandAll,
    /// Keep references in secret fields (`backendAuth.key`, `apiKey` keys, stdio `env` values,
    /// header-modifier values) as written, for each proxy to resolve: the control plane never
    /// holds or sends a key.
    DeferSecrets,
}

/// Reads and validates a config file. `file` names it in errors.
pub fn load_file(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    load_file_with(path, env, LoadMode::ExpandAll)
}

/// [`load_file`] with a [`LoadMode`].
pub fn load_file_with(path: &Path, env: &dyn Env, mode: LoadMode) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match crate::files::read_to_string(path, crate::files::MAX_CONFIG) {
        Ok(text) => load_str_with(&text, &name, env, mode),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// Validates config text, reporting every error at once.
pub fn load_str(text: &str, file: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
    load_str_with(text, file, env, LoadMode::ExpandAll)
}

/// Files larger than this have their parse trees freed on a thread of their own.
const FREE_APART_ABOVE: usize = 64 * 1024;

/// Frees `garbage` on a thread of its own: for a 10,000-route file, the parse trees take
/// milliseconds to free that a reload need not wait for.
fn free_apart<T: Send + 'static>(garbage: T) {
    // Without a thread, the closure and the garbage are dropped here instead.
    let _ = std::thread::Builder::new()
        .name("tollgate-free".into())
        .spawn(move || drop(garbage));
}

/// [`load_str`] with a [`LoadMode`].
pub fn load_str_with(
    text: &str,
    file: &str,
    env: &dyn Env,
    mode: LoadMode,
) -> Result<Config, ConfigErrors> {
    let mut doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line: e.mark.line,
                column: e.mark.column,
                path: String::new(),
                message: format!("invalid YAML: {}", e.message),
            }]));
        }
    };
    let mut templates = env::Templates::new();
    let mut missing = Vec::new();
    let mut value = std::mem::take(&mut doc.value);
    let defer = mode == LoadMode::DeferSecrets;
    env::expand_tree(
        &mut value,
        &mut YamlPath::root(),
        env,
        defer,
        &mut templates,
        &mut missing,
    );

    let mut v = Validator::new(&doc, file, &templates, defer);
    for (path, name) in missing {
        v.error(&path, format!("environment variable `{name}` is not set (write ${{{name}:-default}} for a fallback)"));
    }
    let (config, raw) = match &value {
        // An editor writing in place, or a failed copy, leaves an empty file: taken as a
        // config, it would remove every listener.
        yaml_serde::Value::Null => {
            v.error(
                &YamlPath::root(),
                "the file is empty (or holds only comments): refused, since it would remove every listener; write `binds: []` to mean no listeners",
            );
            (None, None)
        }
        value => {
            let raw = raw::decode::<RawConfig>(value);
            let config = v.lenient(&raw, &YamlPath::root()).map(|raw| v.config(raw));
            (config, Some(raw))
        }
    };
    let garbage = (value, raw);
    if text.len() > FREE_APART_ABOVE {
        free_apart(garbage);
    } else {
        drop(garbage);
    }
    let mut errors = v.errors;
    if errors.is_empty()
        && let Some(config) = config
    {
        return Ok(config);
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    Err(ConfigErrors(errors))
}

/// The JSON Schema of a config file, from the raw types (what `tollgate schema` prints and
/// `schema/config.json` holds), for editors: `# yaml-language-server: $schema=...`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.insert("title".into(), "Tollgate config".into());
    schema.insert(
        "description".into(),
        "A Tollgate (or agentgateway local) config file; see examples/kitchen-sink.yaml.".into(),
    );
    schema.to_value()
}

#[cfg(test)]
mod kitchen_sink;
#[cfg(test)]
pub(crate) mod tests;
