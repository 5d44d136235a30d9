//! Multiplexed names: tools and prompts become `<target>_<name>`, resource URIs `<target>+<uri>`.
//!
//! Target names cannot contain `_` or `+` (the config rejects them), so the first separator
//! always ends the target name. One target under `prefixMode: conditional` keeps its names.

use tollgate_shared::config::model::PrefixMode;

#[derive(Debug, Clone, Copy)]
pub struct Naming {
    prefixed: bool,
}

impl Naming {
    pub fn new(targets: usize, mode: PrefixMode) -> Naming {
        Naming {
            prefixed: targets > 1 || mode == PrefixMode::Always,
        }
    }

    /// The client-facing name of a tool or prompt.
    pub fn name(&self, target: &str, name: &str) -> String {
        if self.prefixed {
            format!("{target}_{name}")
        } else {
            name.to_string()
        }
    }

    /// The client-facing URI of a resource or resource template.
    pub fn uri(&self, target: &str, uri: &str) -> String {
        if self.prefixed {
            format!("{target}+{uri}")
        } else {
            uri.to_string()
        }
    }

    /// The target index and upstream name of a client-facing tool or prompt name.
    pub fn split_name<'a>(&self, targets: &[&str], name: &'a str) -> Option<(usize, &'a str)> {
        self.split(targets, name, '_')
    }

    /// The target index and upstream URI of a client-facing resource URI.
    pub fn split_uri<'a>(&self, targets: &[&str], uri: &'a str) -> Option<(usize, &'a str)> {
        self.split(targets, uri, '+')
    }

    fn split<'a>(&self, targets: &[&str], text: &'a str, sep: char) -> Option<(usize, &'a str)> {
        if !self.prefixed {
            return (!targets.is_empty()).then_some((0, text));
        }
        let (target, rest) = text.split_once(sep)?;
        let index = targets.iter().position(|t| *t == target)?;
        Some((index, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_keeps_names_unless_always() {
        let n = Naming::new(1, PrefixMode::Conditional);
        assert_eq!(n.name("fs", "read_file"), "read_file");
        assert_eq!(n.split_name(&["fs"], "read_file"), Some((0, "read_file")));
        let n = Naming::new(1, PrefixMode::Always);
        assert_eq!(n.name("fs", "read_file"), "fs_read_file");
        assert_eq!(
            n.split_name(&["fs"], "fs_read_file"),
            Some((0, "read_file"))
        );
    }

    #[test]
    fn several_targets_split_at_the_first_separator() {
        let n = Naming::new(2, PrefixMode::Conditional);
        let targets = ["fs", "k8s.tools"];
        assert_eq!(n.name("k8s.tools", "get_pods"), "k8s.tools_get_pods");
        assert_eq!(
            n.split_name(&targets, "k8s.tools_get_pods"),
            Some((1, "get_pods"))
        );
        assert_eq!(n.split_name(&targets, "other_get_pods"), None);
        assert_eq!(n.split_name(&targets, "nounderscore"), None);
        assert_eq!(n.uri("fs", "file:///a+b"), "fs+file:///a+b");
        assert_eq!(
            n.split_uri(&targets, "fs+file:///a+b"),
            Some((0, "file:///a+b"))
        );
    }
}
