//! Hostile bytes: every decoder returns a value or `EINVAL` and never
//! panics, and whatever decodes re-encodes to a canonical form that
//! decodes to the same value.

use super::*;

/// xorshift64*: deterministic, so a failure reproduces.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, len: usize, sparse: bool) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let r = self.next();
                // Mostly-small bytes hit the valid enum/flag values often.
                if sparse { (r % 7) as u8 } else { r as u8 }
            })
            .collect()
    }
}

macro_rules! check_codec {
    ($ty:ty, $bytes:expr) => {{
        if let Ok(value) = <$ty>::decode($bytes) {
            let mut out = vec![0u8; <$ty>::SIZE];
            assert_eq!(value.encode(&mut out), Ok(<$ty>::SIZE));
            assert_eq!(<$ty>::decode(&out), Ok(value));
            1usize
        } else {
            0usize
        }
    }};
}

#[test]
fn decoders_survive_random_input() {
    let mut rng = Bytes(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for round in 0..20_000 {
        let sizes = [16, 24, 32, 36, 40, 256];
        let len = if round % 3 == 0 {
            (rng.next() % 300) as usize
        } else {
            sizes[(rng.next() % sizes.len() as u64) as usize]
        };
        let bytes = rng.fill(len, round % 2 == 0);
        decoded += check_codec!(ControlRequest, &bytes);
        decoded += check_codec!(DeviceInfo, &bytes);
        decoded += check_codec!(ScanChunkHeader, &bytes);
        decoded += check_codec!(ScanChunk, &bytes);
        decoded += check_codec!(ReadChunkHeader, &bytes);
        decoded += check_codec!(ReadChunk, &bytes);
        decoded += check_codec!(VersionInfo, &bytes);
        decoded += check_codec!(SystemStatus, &bytes);
        decoded += check_codec!(ThermalReply, &bytes);
        decoded += check_codec!(SessionStart, &bytes);
        decoded += check_codec!(SessionSummary, &bytes);
        let _ = decode_device_list(&bytes);
        let words: Vec<u64> = (0..(len % 5)).map(|_| rng.next() % 16).collect();
        let _ = ControlRequest::from_metadata(&words);
        let text: String = bytes
            .iter()
            .map(|&b| char::from(b'0' + b % 75))
            .take(8)
            .collect();
        let _ = Token::parse(&text);
    }
    // The round-trip branch must actually run, not only the rejections.
    assert!(decoded > 1000, "only {decoded} inputs decoded");
}
