//! A cpio "newc" archive writer (the format the Linux kernel unpacks as an
//! initramfs; `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry: the magic `070701`, thirteen 8-digit hex fields (inode, mode, uid,
//! gid, nlink, mtime, file size, dev major/minor, rdev major/minor, name size with
//! its NUL, check = 0), the name, padding to 4 bytes, the data, padding to 4 bytes;
//! the archive ends with the entry `TRAILER!!!`.

/// File type bits of a directory.
pub const S_IFDIR: u32 = 0o040000;
/// File type bits of a regular file.
pub const S_IFREG: u32 = 0o100000;
/// File type bits of a character device.
pub const S_IFCHR: u32 = 0o020000;

/// An archive being built.
#[derive(Debug, Default)]
pub struct Archive {
    bytes: Vec<u8>,
    next_inode: u32,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_inode: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_inode;
        self.next_inode += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        pad4(&mut self.bytes);
        self.bytes.extend_from_slice(data);
        pad4(&mut self.bytes);
    }

    /// A directory (`name` without a leading `/`).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data);
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | 0o600, (major, minor), &[]);
    }

    /// The finished archive (trailer appended).
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"abc");
        let bytes = a.finish();
        assert_eq!(&bytes[..6], b"070701");
        let field = |entry: usize, i: usize| {
            let at = entry + 6 + i * 8;
            u32::from_str_radix(std::str::from_utf8(&bytes[at..at + 8]).unwrap(), 16).unwrap()
        };
        assert_eq!(field(0, 1), S_IFREG | 0o755);
        assert_eq!(field(0, 6), 3, "file size");
        assert_eq!(field(0, 11), 5, "name size with NUL");
        // 110-byte header + "init\0" = 115, padded to 116; data 3 padded to 4.
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        assert_eq!(&bytes[120..126], b"070701");
        assert_eq!(&bytes[230..241], b"TRAILER!!!\0");
        assert_eq!(bytes.len() % 4, 0);
    }
}
