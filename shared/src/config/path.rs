//! YAML paths (`binds[0].listeners[0].routes`) name where in a document a value sits.
//!
//! The validator names the path of every field it walks but reads one only to report an
//! error, so a path is a shared link to its parent: naming a child costs one node, not a copy
//! of every segment above it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

struct Node {
    parent: YamlPath,
    segment: Segment,
    /// Segments from the root to this one.
    len: usize,
}

/// A path from the document root to a node.
#[derive(Clone, Default)]
pub struct YamlPath(Option<Arc<Node>>);

impl YamlPath {
    pub fn root() -> Self {
        Self::default()
    }

    fn child(&self, segment: Segment) -> Self {
        YamlPath(Some(Arc::new(Node {
            parent: self.clone(),
            segment,
            len: self.len() + 1,
        })))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |n| n.len)
    }

    /// Segments from the last to the first.
    fn rev(&self) -> impl Iterator<Item = &Segment> {
        std::iter::successors(self.0.as_deref(), |n| n.parent.0.as_deref()).map(|n| &n.segment)
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        self.child(Segment::Key(key.into()))
    }

    pub fn index(&self, index: usize) -> Self {
        self.child(Segment::Index(index))
    }

    /// A relative path written as text: `a.b[2].c`; empty for none.
    pub fn parse(text: &str) -> Self {
        let mut path = Self::root();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                path.push(Segment::Key(key.to_string()));
            }
            for index in indexes.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    path.push(Segment::Index(i));
                }
            }
        }
        path
    }

    pub fn join(&self, other: &YamlPath) -> Self {
        other
            .segments()
            .into_iter()
            .fold(self.clone(), |path, s| path.child(s.clone()))
    }

    pub fn parent(&self) -> Option<Self> {
        self.0.as_ref().map(|n| n.parent.clone())
    }

    /// The segments from the first to the last.
    pub fn segments(&self) -> Vec<&Segment> {
        let mut out: Vec<&Segment> = self.rev().collect();
        out.reverse();
        out
    }

    pub fn ends_with_key(&self, key: &str) -> bool {
        self.last_key() == Some(key)
    }

    /// The last key, if the path ends with one.
    pub fn last_key(&self) -> Option<&str> {
        match self.rev().next() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The path with every index written `[]` (`binds[].listeners[].name`): the field it
    /// names, whatever the element.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.segments().into_iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => out.push_str(k),
                Segment::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Index(_) => out.push_str("[]"),
            }
        }
        out
    }

    pub fn push(&mut self, segment: Segment) {
        *self = self.child(segment);
    }

    pub fn pop(&mut self) {
        if let Some(parent) = self.parent() {
            *self = parent;
        }
    }
}

impl PartialEq for YamlPath {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.len() == other.len() && self.rev().eq(other.rev()),
        }
    }
}

impl Eq for YamlPath {}

impl Hash for YamlPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        self.rev().for_each(|s| s.hash(state));
    }
}

impl fmt::Debug for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("YamlPath").field(&self.segments()).finish()
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments().into_iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_built_apart_are_equal_and_hash_alike() {
        use std::collections::HashSet;
        let built = YamlPath::root().key("a").index(2).key("c");
        let parsed = YamlPath::parse("a[2].c");
        assert_eq!(built, parsed);
        assert_eq!(built.to_string(), "a[2].c");
        assert_eq!(built.shape(), "a[].c");
        assert_eq!(built.last_key(), Some("c"));
        assert_ne!(built, YamlPath::parse("a[2]"));
        assert_ne!(built, YamlPath::parse("b[2].c"));
        let set: HashSet<YamlPath> = [built.clone()].into();
        assert!(set.contains(&parsed));
        let mut walked = YamlPath::parse("a[2]");
        walked.push(Segment::Key("c".into()));
        assert_eq!(walked, built);
        walked.pop();
        walked.pop();
        assert_eq!(walked.join(&YamlPath::parse("[2].c")), built);
        assert_eq!(built.parent().and_then(|p| p.parent()), Some(walked));
        assert_eq!(YamlPath::root().parent(), None);
    }
}
