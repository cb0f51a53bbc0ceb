use std::fmt;

/// 1-based line and column of a character in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A parsed S-expression with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Atom(String),
    List(Vec<Node>),
}

impl Node {
    pub fn atom(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Atom(s) => Some(s),
            NodeKind::List(_) => None,
        }
    }

    pub fn list(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::List(items) => Some(items),
            NodeKind::Atom(_) => None,
        }
    }

    /// xend's `sxp.name`: the head atom of a list.
    pub fn name(&self) -> Option<&str> {
        self.list()?.first()?.atom()
    }

    /// The elements after the head, skipping an `(@ …)` attribute list.
    pub fn children(&self) -> &[Node] {
        match self.list() {
            Some([_, rest @ ..]) => match rest.first() {
                Some(first) if first.name() == Some("@") => &rest[1..],
                _ => rest,
            },
            _ => &[],
        }
    }

    /// Child lists whose head is `name` (xend's `sxp.children(x, name)`).
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children()
            .iter()
            .filter(move |c| c.name() == Some(name))
    }

    /// xend's `sxp.child_value`: the first value of the first child named `name`.
    pub fn child_value<'a>(&'a self, name: &'a str) -> Option<&'a Node> {
        self.children_named(name).next()?.children().first()
    }

    /// xend's `sxp.attribute`: a value from the `(@ (key val) …)` list.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        let attrs = self.list()?.get(1)?;
        if attrs.name() != Some("@") {
            return None;
        }
        attrs.list()?[1..]
            .iter()
            .find(|a| a.name() == Some(key))?
            .list()?
            .get(1)?
            .atom()
    }

    /// The position-free value: atoms become strings, lists proper lists.
    pub fn to_value(&self) -> lexpr::Value {
        match &self.kind {
            NodeKind::Atom(s) => lexpr::Value::string(s.as_str()),
            NodeKind::List(items) => lexpr::Value::list(items.iter().map(Node::to_value)),
        }
    }
}
