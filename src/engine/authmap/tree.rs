//! A key's text parsed into a small tree that keeps what go-yaml's reading depends on and a YAML
//! 1.2 value would lose: scalar style, anchors, tags and positions.
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// Position of the node's first character in the text, in chars.
    pub(crate) index: usize,
    pub(crate) anchored: bool,
    pub(crate) tag: Option<Tag>,
    pub(crate) kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Scalar { value: String, style: TScalarStyle },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

#[derive(Default)]
pub(crate) struct TreeBuilder {
    stack: Vec<Node>,
    /// Pending keys of the open mappings, one slot per mapping on the stack.
    keys: Vec<Option<Node>>,
    pub(crate) documents: Vec<(usize, Option<Node>)>,
    doc_line: usize,
}

impl TreeBuilder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                let line = self.doc_line;
                self.documents.push((line, Some(node)));
            }
            Some(Node {
                kind: Kind::Seq(items),
                ..
            }) => items.push(node),
            Some(Node {
                kind: Kind::Map(pairs),
                ..
            }) => {
                let slot = self.keys.last_mut().expect("a key slot per open mapping");
                match slot.take() {
                    None => *slot = Some(node),
                    Some(key) => pairs.push((key, node)),
                }
            }
            Some(_) => unreachable!("only collections are pushed on the stack"),
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let node = |kind, anchor: usize, tag| Node {
            line: mark.line(),
            column: mark.col() + 1,
            index: mark.index(),
            anchored: anchor != 0,
            tag,
            kind,
        };
        match ev {
            Event::DocumentStart => self.doc_line = mark.line(),
            Event::Scalar(value, style, anchor, tag) => {
                self.push_value(node(Kind::Scalar { value, style }, anchor, tag))
            }
            Event::Alias(_) => self.push_value(node(Kind::Alias, 0, None)),
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(node(Kind::Seq(Vec::new()), anchor, tag))
            }
            Event::MappingStart(anchor, tag) => {
                self.stack.push(node(Kind::Map(Vec::new()), anchor, tag));
                self.keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = self.stack.pop() {
                    if matches!(done.kind, Kind::Map(_)) {
                        self.keys.pop();
                    }
                    self.push_value(done);
                }
            }
            Event::DocumentEnd => {
                if self.documents.last().map(|d| d.0) != Some(self.doc_line) {
                    self.documents.push((self.doc_line, None));
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// How deep collections may nest. aws-auth's entries nest three deep and a grant manifest five;
/// the limit keeps every walk over the tree (and its drop) within a small stack, whatever the
/// text: `- - - ... x` twenty thousand deep would otherwise overflow it and abort the process.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a text could not be built into a tree: its line, column (1-based) and what went wrong.
pub(crate) struct TreeError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Parses `text` into trees, one per document, refusing nesting past [`MAX_DEPTH`] as soon as
/// it is reached (the parser's own state lives on the heap).
pub(crate) fn build_tree(text: &str) -> Result<TreeBuilder, TreeError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = TreeBuilder::default();
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| TreeError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: format!("YAML syntax error ({})", e.info()),
        })?;
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if builder.stack.len() > MAX_DEPTH {
            return Err(TreeError {
                line: mark.line(),
                column: mark.col() + 1,
                message: format!(
                    "lists or mappings nested more than {MAX_DEPTH} deep; write the entries as a flat list"
                ),
            });
        }
        if end {
            return Ok(builder);
        }
    }
}
