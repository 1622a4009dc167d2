//! The paths of scheme `dsmil` (DESIGN.md §4) and what each one is.

use super::tunables::Tunable;
use crate::wire::Token;

/// A node of the `dsmil` namespace.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Node {
    /// The root directory.
    Root,
    /// `control`: request/response channel.
    Control,
    /// `scan`: a scan session per open.
    Scan,
    /// `device/`: one entry per token.
    DeviceDir,
    /// `device/<token>`: a read session per open; root writes set the value.
    Device(Token),
    /// `config/`: the tunables.
    ConfigDir,
    /// `config/<name>`.
    Config(Tunable),
    /// `events`: one record per read.
    Events,
    /// A read-only text file.
    Text(TextFile),
    /// `mmio`: the 360 MiB MMIO window, root only, read and written at offsets.
    Mmio,
}

/// The human-readable files.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TextFile {
    /// `version`
    Version,
    /// `status`
    Status,
    /// `thermal`
    Thermal,
    /// `health`
    Health,
    /// `devices`
    Devices,
    /// `stats`
    Stats,
    /// `log`
    Log,
}

/// Entries of the root directory, in listing order.
pub const ROOT_ENTRIES: &[(&str, Node)] = &[
    ("control", Node::Control),
    ("scan", Node::Scan),
    ("device", Node::DeviceDir),
    ("events", Node::Events),
    ("config", Node::ConfigDir),
    ("version", Node::Text(TextFile::Version)),
    ("status", Node::Text(TextFile::Status)),
    ("thermal", Node::Text(TextFile::Thermal)),
    ("health", Node::Text(TextFile::Health)),
    ("devices", Node::Text(TextFile::Devices)),
    ("stats", Node::Text(TextFile::Stats)),
    ("log", Node::Text(TextFile::Log)),
    ("mmio", Node::Mmio),
];

impl Node {
    /// Resolves a path relative to the scheme root; `None` is `ENOENT`.
    ///
    /// `device/<token>` takes the token in hex with or without `0x`
    /// (`device/0x8000`, `device/8000`); a token outside `0x8000..=0x806B`
    /// does not exist.
    pub fn parse(path: &str) -> Option<Node> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Some(Node::Root);
        }
        if let Some(token) = path.strip_prefix("device/") {
            return Token::parse(token).ok().map(Node::Device);
        }
        if let Some(name) = path.strip_prefix("config/") {
            return Tunable::parse(name).map(Node::Config);
        }
        ROOT_ENTRIES
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, node)| *node)
    }

    /// Whether the node is a directory.
    pub fn is_dir(self) -> bool {
        matches!(self, Node::Root | Node::DeviceDir | Node::ConfigDir)
    }

    /// The path of the node, relative to the scheme root.
    pub fn path(self) -> String {
        match self {
            Node::Root => String::new(),
            Node::Device(token) => format!("device/{token}"),
            Node::Config(t) => format!("config/{}", t.name()),
            other => ROOT_ENTRIES
                .iter()
                .find(|(_, n)| *n == other)
                .map(|(name, _)| (*name).to_string())
                .unwrap_or_default(),
        }
    }

    /// The entries of a directory node (name, is-directory), in order.
    pub fn entries(self) -> Vec<(String, bool)> {
        match self {
            Node::Root => ROOT_ENTRIES
                .iter()
                .map(|(name, node)| ((*name).to_string(), node.is_dir()))
                .collect(),
            Node::DeviceDir => Token::all().map(|t| (t.to_string(), false)).collect(),
            Node::ConfigDir => Tunable::ALL
                .iter()
                .map(|t| (t.name().to_string(), false))
                .collect(),
            _ => Vec::new(),
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
        assert_eq!(
            Node::parse("device/0x8001"),
            Token::new(0x8001).ok().map(Node::Device)
        );
        assert_eq!(
            Node::parse("device/806b"),
            Token::new(0x806B).ok().map(Node::Device)
        );
        assert_eq!(Node::parse("device/0x806c"), None);
        assert_eq!(Node::parse("device/"), Some(Node::DeviceDir));
        assert_eq!(
            Node::parse("config/session_limit"),
            Some(Node::Config(Tunable::SessionLimit))
        );
        assert_eq!(Node::parse("config/nope"), None);
        assert_eq!(
            Node::Device(Token::FIRST).path(),
            "device/0x8000",
            "paths name tokens in 0x-hex"
        );
        assert_eq!(Node::DeviceDir.entries().len(), 108);
        assert_eq!(Node::ConfigDir.entries().len(), Tunable::ALL.len());
    }
}
