//! The paths of scheme `dsmil` (DESIGN.md §4) and what each one is.

/// A node of the `dsmil` namespace.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Node {
    /// The root directory.
    Root,
    /// `control`: request/response channel.
    Control,
    /// A read-only text file.
    Text(TextFile),
}

/// The human-readable files.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TextFile {
    /// `version`
    Version,
    /// `status`
    Status,
}

/// Entries of the root directory, in listing order.
pub const ROOT_ENTRIES: &[(&str, Node)] = &[
    ("control", Node::Control),
    ("version", Node::Text(TextFile::Version)),
    ("status", Node::Text(TextFile::Status)),
];

impl Node {
    /// Resolves a path relative to the scheme root; `None` is `ENOENT`.
    pub fn parse(path: &str) -> Option<Node> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Some(Node::Root);
        }
        ROOT_ENTRIES
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, node)| *node)
    }

    /// The path of the node, relative to the scheme root.
    pub fn path(self) -> &'static str {
        match self {
            Node::Root => "",
            other => ROOT_ENTRIES
                .iter()
                .find(|(_, n)| *n == other)
                .map(|(name, _)| *name)
                .unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_back() {
        for (name, node) in ROOT_ENTRIES {
            assert_eq!(Node::parse(name), Some(*node));
            assert_eq!(node.path(), *name);
        }
        assert_eq!(Node::parse(""), Some(Node::Root));
        assert_eq!(Node::parse("/"), Some(Node::Root));
        assert_eq!(Node::parse("nope"), None);
        assert_eq!(Node::parse("control/x"), None);
    }
}
