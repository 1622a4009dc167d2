//! Paths of scheme `iommu`.
//!
//! Every form Red Bear OS's `iommu` daemon (protocol v1) accepts is accepted:
//! `domain/<id>` in decimal, `0x` hex or bare hex (tried in that order, as
//! Red Bear does, so `domain/10` is 10 and `domain/1a` is 26), and
//! `device/` as `bb:dd.f`, `ssss:bb:dd.f`, a raw requester id `0xNNNN` or
//! bare hex `NNNN`. Ours alone: `domain/new` (iommud picks the id). Where we
//! refuse what Red Bear took (domain 0, a non-zero PCI segment, a device
//! number above 31), the README says why.

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
    /// `domain/<id>` (1..=65535): opening a free id creates the domain.
    Domain(u16),
    /// `domain/new`: opening creates a domain with an id iommud chooses.
    DomainNew,
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
            Some(("domain", "new")) => Node::DomainNew,
            Some(("domain", id)) => Node::Domain(parse_domain_id(id)?),
            Some(("device", bdf)) => Node::Device(parse_device(bdf)?),
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
            Node::DomainNew => "domain/new".into(),
            Node::DeviceDir => "device".into(),
            Node::Device(bdf) => format!("device/{bdf}"),
            Node::Stats => "stats".into(),
            Node::Faults => "faults".into(),
        }
    }
}

fn hex_u16(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

/// A domain id: `0x` hex, decimal, or bare hex; 0 is no domain.
fn parse_domain_id(text: &str) -> Option<u16> {
    let id = match text.strip_prefix("0x") {
        Some(hex) => hex_u16(hex)?,
        None if !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<u16>().ok()?
        }
        None => hex_u16(text)?,
    };
    (id != 0).then_some(id)
}

/// A device: `bb:dd.f`, `ssss:bb:dd.f` (segment 0), or a raw requester id
/// (`0xNNNN` or bare hex).
fn parse_device(text: &str) -> Option<Bdf> {
    if let Some(hex) = text.strip_prefix("0x") {
        return hex_u16(hex).map(Bdf::from_requester_id);
    }
    if !text.contains([':', '.']) {
        return hex_u16(text).map(Bdf::from_requester_id);
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_path_form() {
        assert_eq!(Node::parse(""), Some(Node::Root));
        assert_eq!(Node::parse("domain/7"), Some(Node::Domain(7)));
        assert_eq!(Node::parse("domain/0x0D5A"), Some(Node::Domain(0xD5A)));
        assert_eq!(Node::parse("domain/10"), Some(Node::Domain(10)));
        assert_eq!(Node::parse("domain/1a"), Some(Node::Domain(0x1a)));
        assert_eq!(Node::parse("domain/ffff"), Some(Node::Domain(0xffff)));
        assert_eq!(Node::parse("domain/new"), Some(Node::DomainNew));
        let dev = Node::Device(Bdf::new(0, 5, 0).unwrap());
        for form in [
            "device/00:05.0",
            "device/0000:00:05.0",
            "device/0x0028",
            "device/28",
        ] {
            assert_eq!(Node::parse(form), Some(dev), "{form}");
        }
        assert_eq!(Node::parse("domain/"), Some(Node::DomainDir));
        assert_eq!(
            Node::parse("device/00:1f.3").map(|n| n.path()),
            Some("device/00:1f.3".into())
        );
        for bad in [
            "domain/0",
            "domain/0x0",
            "domain/65536",
            "domain/0x10000",
            "domain/+1",
            "domain/0x",
            "domain/-1",
            "device/0x",
            "device/0x10000",
            "device/0001:00:05.0",
            "device/00:20.0",
            "device/zz",
            "nope",
            "control/x",
            "domain/1/2",
        ] {
            assert_eq!(Node::parse(bad), None, "{bad}");
        }
    }
}
