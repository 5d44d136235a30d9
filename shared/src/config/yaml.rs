//! Text -> YAML value plus a position index, so later stages can say where a path is.
//!
//! `yaml_serde` gives the values serde decodes; a second pass with `saphyr-parser` records
//! the line and column of every key and value by path, which serde cannot report. That pass
//! runs only when a position is first asked for (an error to report): a valid file never
//! needs one, and it was half the time of loading a large config.

use std::cell::OnceCell;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};

use super::path::YamlPath;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

/// A parsed document and, once asked for, where each of its nodes starts.
pub struct Document<'t> {
    pub value: yaml_serde::Value,
    text: &'t str,
    positions: OnceCell<Positions>,
}

/// A YAML syntax error.
#[derive(Debug)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

impl<'t> Document<'t> {
    pub fn parse(text: &'t str) -> Result<Document<'t>, SyntaxError> {
        let value = match yaml_serde::from_str::<yaml_serde::Value>(text) {
            Ok(v) => v,
            Err(e) => {
                let mark = e
                    .location()
                    .map(|l| Mark {
                        line: l.line(),
                        column: l.column(),
                    })
                    .unwrap_or_default();
                return Err(SyntaxError {
                    mark,
                    message: strip_location(&e.to_string()),
                });
            }
        };
        Ok(Document {
            value,
            text,
            positions: OnceCell::new(),
        })
    }

    fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| {
            let mut positions = Positions::default();
            // yaml_serde accepted the text; a disagreement here only costs positions.
            let _ = Parser::new_from_str(self.text).load(&mut positions, false);
            positions
        })
    }

    /// Where the value at `path` starts, or its nearest ancestor's position.
    pub fn value_mark(&self, path: &YamlPath) -> Mark {
        self.lookup(path, &self.positions().values)
    }

    /// Where the key of the entry at `path` starts (falls back to the value).
    pub fn key_mark(&self, path: &YamlPath) -> Mark {
        self.positions()
            .keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value_mark(path))
    }

    fn lookup(&self, path: &YamlPath, map: &HashMap<YamlPath, Mark>) -> Mark {
        let mut cur = Some(path.clone());
        while let Some(p) = cur {
            if let Some(m) = map.get(&p) {
                return *m;
            }
            cur = p.parent();
        }
        Mark { line: 1, column: 1 }
    }
}

/// yaml_serde appends " at line L column C"; the caller prints the position itself.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

enum Frame {
    Map { path: YamlPath, key: Option<String> },
    Seq { path: YamlPath, next: usize },
}

#[derive(Default)]
struct Positions {
    values: HashMap<YamlPath, Mark>,
    keys: HashMap<YamlPath, Mark>,
    stack: Vec<Frame>,
}

impl Positions {
    /// Path of the node that starts now; `None` when it is a mapping key.
    fn place(&mut self, key_text: Option<&str>, mark: Mark) -> Option<YamlPath> {
        match self.stack.last_mut() {
            None => Some(YamlPath::root()),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(path.key(k)),
                None => {
                    // A key: complex keys get a placeholder so the value still pairs up.
                    let k = key_text.unwrap_or("?").to_string();
                    self.keys.insert(path.key(k.clone()), mark);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Positions {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let mark = Mark {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(p) = self.place(Some(&text), mark) {
                    self.values.insert(p, mark);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.place(None, mark) {
                    self.values.insert(p, mark);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                match self.place(None, mark) {
                    Some(path) => {
                        self.values.insert(path.clone(), mark);
                        self.stack.push(if is_map {
                            Frame::Map { path, key: None }
                        } else {
                            Frame::Seq { path, next: 0 }
                        });
                    }
                    // A collection used as a key: track it under a throwaway path.
                    None => {
                        let path = YamlPath::root().key("?");
                        self.stack.push(if is_map {
                            Frame::Map { path, key: None }
                        } else {
                            Frame::Seq { path, next: 0 }
                        });
                    }
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_paths() {
        let doc = Document::parse("a:\n  b:\n  - x: 1\n    y: two\n").unwrap();
        let p = YamlPath::root().key("a").key("b").index(0).key("y");
        assert_eq!(doc.value_mark(&p), Mark { line: 4, column: 8 });
        assert_eq!(doc.key_mark(&p), Mark { line: 4, column: 5 });
    }

    #[test]
    fn syntax_error_has_location() {
        let err = Document::parse("a:\n  b: 1\n c: 2\n").err().unwrap();
        assert_eq!(err.mark.line, 3);
        assert!(!err.message.contains("at line"), "{}", err.message);
    }
}
