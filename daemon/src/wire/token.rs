//! DSMIL tokens: the 16-bit SMBIOS token numbers that name the 108 devices.

use core::fmt;

use syscall::error::{EINVAL, Error, Result};

/// First DSMIL token (device index 0).
pub const FIRST_TOKEN: u16 = 0x8000;
/// Last DSMIL token (device index 107).
pub const LAST_TOKEN: u16 = 0x806B;
/// Number of DSMIL devices, one per token.
pub const DEVICE_COUNT: usize = (LAST_TOKEN - FIRST_TOKEN) as usize + 1;
/// Devices per dependency group.
pub const GROUP_SIZE: usize = 12;
/// Number of dependency groups.
pub const GROUP_COUNT: usize = DEVICE_COUNT / GROUP_SIZE;

/// Tokens whose functions are destructive (data wipe, cascade wipe, hardware
/// sanitize, network kill, communications blackout).
///
/// They are never written and reads of them are refused with `EACCES`; the
/// check happens before anything reaches firmware.
pub const QUARANTINED_TOKENS: [u16; 5] = [0x8009, 0x800A, 0x800B, 0x8019, 0x8029];

const _: () = assert!(DEVICE_COUNT == 108);
const _: () = assert!(GROUP_COUNT * GROUP_SIZE == DEVICE_COUNT);

/// A validated DSMIL token in `0x8000..=0x806B`.
///
/// Holding a `Token` proves the number is in range; quarantine is a separate
/// question asked with [`Token::is_quarantined`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(u16);

impl Token {
    /// The first token, `0x8000`.
    pub const FIRST: Token = Token(FIRST_TOKEN);
    /// The last token, `0x806B`.
    pub const LAST: Token = Token(LAST_TOKEN);

    /// Validates a raw token number; outside `0x8000..=0x806B` is `EINVAL`.
    pub fn new(raw: u16) -> Result<Token> {
        if (FIRST_TOKEN..=LAST_TOKEN).contains(&raw) {
            Ok(Token(raw))
        } else {
            Err(Error::new(EINVAL))
        }
    }

    /// Validates a token carried in a 32-bit request argument.
    pub fn from_u32(raw: u32) -> Result<Token> {
        u16::try_from(raw)
            .map_err(|_| Error::new(EINVAL))
            .and_then(Token::new)
    }

    /// The token of device `index` (0-based, ascending token order).
    pub fn from_index(index: usize) -> Result<Token> {
        if index < DEVICE_COUNT {
            // In range by the check above, so the sum fits in u16.
            Ok(Token(FIRST_TOKEN + index as u16))
        } else {
            Err(Error::new(EINVAL))
        }
    }

    /// Parses a path component such as `0x8000` or `8000` (always hex, with
    /// or without the `0x` prefix, either case). Out of range is `EINVAL`.
    pub fn parse(text: &str) -> Result<Token> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        // from_str_radix accepts a leading '+', which is not a token spelling.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(EINVAL));
        }
        u16::from_str_radix(digits, 16)
            .map_err(|_| Error::new(EINVAL))
            .and_then(Token::new)
    }

    /// All 108 tokens in ascending order.
    pub fn all() -> impl Iterator<Item = Token> {
        (FIRST_TOKEN..=LAST_TOKEN).map(Token)
    }

    /// The raw token number.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// The device index, `0..108`, in ascending token order.
    pub const fn index(self) -> usize {
        (self.0 - FIRST_TOKEN) as usize
    }

    /// The dependency group, `0..9` (12 devices per group).
    pub const fn group(self) -> usize {
        self.index() / GROUP_SIZE
    }

    /// Whether this token is one of [`QUARANTINED_TOKENS`].
    pub fn is_quarantined(self) -> bool {
        QUARANTINED_TOKENS.contains(&self.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_enforced() {
        assert_eq!(Token::new(0x7FFF), Err(Error::new(EINVAL)));
        assert_eq!(Token::new(0x806C), Err(Error::new(EINVAL)));
        assert_eq!(Token::new(0x8000).map(Token::index), Ok(0));
        assert_eq!(Token::new(0x806B).map(Token::index), Ok(107));
        assert_eq!(Token::from_u32(0x1_8000), Err(Error::new(EINVAL)));
        assert_eq!(Token::from_index(108), Err(Error::new(EINVAL)));
        assert_eq!(Token::from_index(107), Ok(Token::LAST));
        assert_eq!(Token::all().count(), DEVICE_COUNT);
    }

    #[test]
    fn groups_of_twelve() {
        assert_eq!(Token::FIRST.group(), 0);
        assert_eq!(Token::new(0x800B).map(Token::group), Ok(0));
        assert_eq!(Token::new(0x800C).map(Token::group), Ok(1));
        assert_eq!(Token::LAST.group(), GROUP_COUNT - 1);
    }

    #[test]
    fn quarantine_list() {
        let quarantined: Vec<u16> = Token::all()
            .filter(|t| t.is_quarantined())
            .map(Token::raw)
            .collect();
        assert_eq!(quarantined, QUARANTINED_TOKENS);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(Token::parse("0x8009"), Token::new(0x8009));
        assert_eq!(Token::parse("806b"), Token::new(0x806B));
        assert_eq!(Token::parse("0X806B"), Token::new(0x806B));
        for bad in [
            "", "0x", "+8000", "0x8000x", "32768", "8000 ", "-1", "0x18000",
        ] {
            assert_eq!(Token::parse(bad), Err(Error::new(EINVAL)), "{bad:?}");
        }
        assert_eq!(Token::FIRST.to_string(), "0x8000");
    }
}
