//! PCI requester identity: bus, device, function.
//!
//! The AMD-Vi device table is indexed by the 16-bit requester id, and the
//! scheme names devices `device/<bus:dev.fn>`; both forms live here so the
//! scheme, the device table and the fault log agree on one spelling.

use core::fmt;
use core::str::FromStr;

use syscall::error::{EINVAL, Error};

/// A PCI function address on segment 0: `bus:device.function`.
///
/// Formats as `00:1f.3` (two hex digits, two hex digits, one digit). Parsing
/// also accepts an explicit segment `0000:00:1f.3`, because that is how pcid
/// spells paths, but only segment 0 (AMD-Vi v1 device tables are per segment
/// and this daemon drives segment 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    bus: u8,
    device: u8,
    function: u8,
}

impl Bdf {
    /// Builds a BDF; `None` when the device is above 31 or the function above 7.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 0x1f || function > 7 {
            return None;
        }
        Some(Self {
            bus,
            device,
            function,
        })
    }

    /// Decodes a 16-bit requester id (`bus << 8 | device << 3 | function`).
    /// Every u16 is a valid requester id.
    pub const fn from_requester_id(id: u16) -> Self {
        Self {
            bus: (id >> 8) as u8,
            device: ((id >> 3) & 0x1f) as u8,
            function: (id & 7) as u8,
        }
    }

    /// The 16-bit requester id: the device table index.
    pub const fn requester_id(self) -> u16 {
        ((self.bus as u16) << 8) | ((self.device as u16) << 3) | self.function as u16
    }

    /// Bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// Device number (0..=31).
    pub const fn device(self) -> u8 {
        self.device
    }

    /// Function number (0..=7).
    pub const fn function(self) -> u8 {
        self.function
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

fn hex_field(text: &str, max_len: usize) -> Option<u8> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

impl FromStr for Bdf {
    type Err = Error;

    /// Parses `bb:dd.f` or `0000:bb:dd.f` (hex); anything else is `EINVAL`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = Error::new(EINVAL);
        let rest = match text.split_once(':') {
            Some((segment, rest)) if rest.contains(':') => {
                if segment.len() != 4 || segment.bytes().any(|b| b != b'0') {
                    return Err(invalid);
                }
                rest
            }
            _ => text,
        };
        let (bus, devfn) = rest.split_once(':').ok_or(invalid)?;
        let (device, function) = devfn.split_once('.').ok_or(invalid)?;
        let bus = hex_field(bus, 2).ok_or(invalid)?;
        let device = hex_field(device, 2).ok_or(invalid)?;
        let function = hex_field(function, 1).ok_or(invalid)?;
        Bdf::new(bus, device, function).ok_or(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_canonical_form() {
        let bdf = Bdf::new(0, 0x1f, 3).unwrap();
        assert_eq!(bdf.to_string(), "00:1f.3");
        assert_eq!("00:1f.3".parse::<Bdf>().unwrap(), bdf);
        assert_eq!("0000:00:1F.3".parse::<Bdf>().unwrap(), bdf);
    }

    #[test]
    fn requester_id_round_trips_for_every_id() {
        for id in 0..=u16::MAX {
            let bdf = Bdf::from_requester_id(id);
            assert_eq!(bdf.requester_id(), id);
            assert_eq!(bdf.to_string().parse::<Bdf>().unwrap(), bdf);
        }
        assert_eq!(Bdf::new(0x12, 0x1f, 7).unwrap().requester_id(), 0x12ff);
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "00",
            "00:1f",
            "00:1f.",
            "00:20.0",
            "00:1f.8",
            "100:00.0",
            "0001:00:00.0",
            "zz:00.0",
            "00:00.0.0",
            "00:+1.0",
            ":00.0",
        ] {
            assert_eq!(bad.parse::<Bdf>().unwrap_err().errno, EINVAL, "{bad:?}");
        }
        assert!(Bdf::new(0, 32, 0).is_none());
    }
}
