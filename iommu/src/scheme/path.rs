//! Paths of scheme `iommu`.

use crate::bdf::Bdf;

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The root directory.
    Root,
    /// `control`: QUERY, CREATE/DESTROY_DOMAIN, INIT_UNITS, DRAIN_EVENTS.
    Control,
    /// `domain`: lists the domains.
    DomainDir,
    /// `domain/<id>` (decimal, 1..=65535): opening creates the domain.
    Domain(u16),
    /// `device`: lists the assigned devices.
    DeviceDir,
    /// `device/<bus:dev.fn>`.
    Device(Bdf),
    /// `stats` (text).
    Stats,
    /// `faults` (text).
    Faults,
}

/// Entries of the root directory, in listing order.
pub const ROOT_ENTRIES: [(&str, Node); 5] = [
    ("control", Node::Control),
    ("domain", Node::DomainDir),
    ("device", Node::DeviceDir),
    ("stats", Node::Stats),
    ("faults", Node::Faults),
];

impl Node {
    /// Parses a path relative to the scheme root (`None`: no such node).
    pub fn parse(path: &str) -> Option<Node> {
        let path = path.trim_matches('/');
        Some(match path.split_once('/') {
            None => match path {
                "" => Node::Root,
                "control" => Node::Control,
                "domain" => Node::DomainDir,
                "device" => Node::DeviceDir,
                "stats" => Node::Stats,
                "faults" => Node::Faults,
                _ => return None,
            },
            Some(("domain", id)) => {
                if id.is_empty() || id.len() > 5 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                match id.parse::<u16>() {
                    Ok(0) | Err(_) => return None,
                    Ok(id) => Node::Domain(id),
                }
            }
            Some(("device", bdf)) => Node::Device(bdf.parse().ok()?),
            _ => return None,
        })
    }

    /// The path (without the scheme).
    pub fn path(&self) -> String {
        match self {
            Node::Root => String::new(),
            Node::Control => "control".into(),
            Node::DomainDir => "domain".into(),
            Node::Domain(id) => format!("domain/{id}"),
            Node::DeviceDir => "device".into(),
            Node::Device(bdf) => format!("device/{bdf}"),
            Node::Stats => "stats".into(),
            Node::Faults => "faults".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_path_form() {
        assert_eq!(Node::parse(""), Some(Node::Root));
        assert_eq!(Node::parse("domain/7"), Some(Node::Domain(7)));
        assert_eq!(Node::parse("domain/"), Some(Node::DomainDir));
        assert_eq!(
            Node::parse("device/00:1f.3").map(|n| n.path()),
            Some("device/00:1f.3".into())
        );
        for bad in [
            "domain/0",
            "domain/65536",
            "domain/+1",
            "device/zz",
            "nope",
            "control/x",
            "domain/1/2",
        ] {
            assert_eq!(Node::parse(bad), None, "{bad}");
        }
    }
}
