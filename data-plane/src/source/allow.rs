//! What a config pushed by the control plane may make this proxy do: whoever can push (or
//! stand in for the control plane) must not read arbitrary variables, run arbitrary commands
//! or name arbitrary files. The proxy's own flags decide; anything else is a NACK naming the
//! field. A local `-f FILE` is not checked: its author is the operator.

use std::path::{Component, Path, PathBuf};

use tollgate_shared::config::model::{Config, McpTargetKind};

/// `--allow-env`, `--allow-command`, `--allow-files-under`; empty by default.
#[derive(Debug, Clone, Default)]
pub struct PushAllowList {
    /// Variables a pushed `$VAR` (or `inheritEnv`) may name.
    pub env: Vec<String>,
    /// Stdio commands: an exact path, or a prefix when it ends with `/`.
    pub commands: Vec<String>,
    /// Directories files named in a config may come from.
    pub dirs: Vec<PathBuf>,
}

impl PushAllowList {
    /// `Err` names the first field that asks for something not allowed.
    pub fn check(&self, config: &Config) -> Result<(), String> {
        let mut refused = None;
        config.secrets(&mut |field, secret| {
            for name in secret.reference().map(variables).unwrap_or_default() {
                if refused.is_none() && !self.env.contains(&name) {
                    refused = Some(format!(
                        "{}: variable `{name}` is not allowed on this proxy (--allow-env)",
                        field.path
                    ));
                }
            }
        });
        if let Some(refused) = refused {
            return Err(refused);
        }
        for (at, target) in config.mcp_targets() {
            let McpTargetKind::Stdio {
                cmd, inherit_env, ..
            } = &target.kind
            else {
                continue;
            };
            if !self.allows_command(cmd) {
                return Err(format!(
                    "{at}.stdio.cmd: command `{cmd}` is not allowed on this proxy (--allow-command)"
                ));
            }
            if let Some(name) = inherit_env.iter().find(|n| !self.env.contains(n)) {
                return Err(format!(
                    "{at}.stdio.inheritEnv: variable `{name}` is not allowed on this proxy (--allow-env)"
                ));
            }
        }
        check_files(&config.referenced_files(), &self.dirs)
    }

    fn allows_command(&self, cmd: &str) -> bool {
        self.commands
            .iter()
            .any(|allowed| match allowed.strip_suffix('/') {
                Some(dir) => {
                    Path::new(cmd)
                        .parent()
                        .is_some_and(|p| p == Path::new(dir) || p.starts_with(dir))
                        && !has_parent_dir(Path::new(cmd))
                }
                None => cmd == allowed,
            })
    }
}

/// The variables a reference names (`$A-${B:-x}` -> A, B).
fn variables(reference: &str) -> Vec<String> {
    struct Names(std::cell::RefCell<Vec<String>>);
    impl tollgate_shared::Env for Names {
        fn var(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_string());
            None
        }
    }
    let names = Names(Default::default());
    let _ = tollgate_shared::config::expand(reference, &names);
    names.0.into_inner()
}

fn has_parent_dir(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

/// Every file must lie under one of `dirs` (relative paths resolve against the working
/// directory, symlinks are followed where the file exists); `Err` names the first that does not.
pub fn check_files(files: &[(String, PathBuf)], dirs: &[PathBuf]) -> Result<(), String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let resolve = |p: &Path| {
        let absolute = cwd.join(p);
        std::fs::canonicalize(&absolute).unwrap_or(absolute)
    };
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| resolve(d)).collect();
    for (field, path) in files {
        let resolved = resolve(path);
        let inside = !has_parent_dir(&resolved) && dirs.iter().any(|d| resolved.starts_with(d));
        if !inside {
            return Err(format!(
                "{field}: file `{}` is not under a directory allowed on this proxy (--allow-files-under)",
                path.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_variables() {
        assert_eq!(variables("$A-${B:-x}/$$C"), ["A", "B"]);
    }

    #[test]
    fn commands_match_exactly_or_under_a_prefix() {
        let allow = PushAllowList {
            commands: vec!["/usr/bin/node".into(), "/opt/mcp/".into()],
            ..Default::default()
        };
        assert!(allow.allows_command("/usr/bin/node"));
        assert!(allow.allows_command("/opt/mcp/server"));
        assert!(allow.allows_command("/opt/mcp/bin/server"));
        assert!(!allow.allows_command("/usr/bin/nodejs"));
        assert!(!allow.allows_command("/opt/mcp/../../bin/sh"));
        assert!(!allow.allows_command("/opt/mcpx/server"));
        assert!(!allow.allows_command("sh"));
    }

    #[test]
    fn files_must_lie_under_an_allowed_directory() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("certs");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("a.pem"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", allowed.join("link.pem")).unwrap();
        let dirs = [allowed.clone()];
        let field = |p: PathBuf| vec![("tls.cert".to_string(), p)];
        assert!(check_files(&field(allowed.join("a.pem")), &dirs).is_ok());
        assert!(check_files(&field(allowed.join("new.pem")), &dirs).is_ok());
        for outside in [
            PathBuf::from("/etc/passwd"),
            allowed.join("link.pem"),
            allowed.join("../certs/../../x.pem"),
        ] {
            let err = check_files(&field(outside.clone()), &dirs).unwrap_err();
            assert!(err.starts_with("tls.cert: file"), "{err}");
        }
        assert!(check_files(&field(allowed.join("a.pem")), &[]).is_err());
        assert!(check_files(&[], &[]).is_ok());
    }
}
