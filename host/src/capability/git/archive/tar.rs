//! The tar container `archive` writes: POSIX ustar headers, with a pax extended header
//! only for what ustar cannot hold (a long path or link target, a time out of its
//! range); owner 0, no user or group names, the same time on every entry, two zero
//! blocks and padding to 10,240 bytes at the end, as `git archive` and GNU tar leave it.

use super::{Counted, Kind};
use git2::Oid;
use std::io::{self, Write};

const BLOCK: usize = 512;
/// Tar files are written in records of 20 blocks.
const RECORD: u64 = 20 * BLOCK as u64;
/// The largest time a ustar header holds: 11 octal digits.
const MAX_OCTAL_TIME: i64 = 0o77777777777;

/// A tar stream being written to `out`.
pub struct Tar<W: Write> {
    out: Counted<W>,
    mtime: i64,
}

impl<W: Write> Tar<W> {
    /// A tar stream whose entries all carry `mtime` (seconds since the Unix epoch).
    pub fn new(out: W, mtime: i64) -> Self {
        Self { out: Counted::new(out), mtime }
    }

    /// Appends one entry: `path` as it goes in the archive (a directory's ends with
    /// `/`), `data`, a file's content or a link's target, and `id`, its object's.
    pub fn add(&mut self, path: &[u8], kind: Kind, data: &[u8], id: Oid) -> io::Result<()> {
        let (mode, flag, size, link): (u32, u8, usize, &[u8]) = match kind {
            Kind::Dir => (0o755, b'5', 0, b""),
            Kind::File { executable: false } => (0o644, b'0', data.len(), b""),
            Kind::File { executable: true } => (0o755, b'0', data.len(), b""),
            Kind::Link => (0o777, b'2', 0, data),
        };
        let mut pax = Vec::new();
        // As git names it: a reader that skips pax headers (PHP's Archive_Tar, which
        // Drupal uses) then extracts `<id>.data` rather than stopping at an empty name.
        let fallback = format!("{id}.data");
        let (name, prefix) = match split(path) {
            Some(split) => split,
            None => {
                record(&mut pax, "path", path);
                (fallback.as_bytes(), &path[..0])
            }
        };
        if link.len() > 100 {
            record(&mut pax, "linkpath", link);
        }
        let header_time = if (0..=MAX_OCTAL_TIME).contains(&self.mtime) {
            self.mtime
        } else {
            record(&mut pax, "mtime", self.mtime.to_string().as_bytes());
            0
        };
        if !pax.is_empty() {
            let header = header(b"pax_header", b"", 0o644, b'x', pax.len(), header_time, b"");
            self.write(&header)?;
            self.write(&pax)?;
            self.pad(pax.len())?;
        }
        let link = if link.len() > 100 { b"" } else { link };
        let header = header(name, prefix, mode, flag, size, header_time, link);
        self.write(&header)?;
        if size > 0 {
            self.write(data)?;
            self.pad(size)?;
        }
        Ok(())
    }

    /// Ends the archive and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&[0; 2 * BLOCK])?;
        let rest = (RECORD - self.out.written() % RECORD) % RECORD;
        self.write(&vec![0; rest as usize])?;
        self.out.finish()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.put(bytes)
    }

    /// Zeros up to the end of the block `len` bytes of content started.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        let rest = (BLOCK - len % BLOCK) % BLOCK;
        self.write(&[0; BLOCK][..rest])
    }
}

/// `path` as ustar's `name` (at most 100 bytes) and `prefix` (at most 155, joined
/// with a `/`); `None` when it fits neither way.
fn split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((path, b""));
    }
    // The name part may not be empty: a directory's trailing slash is not a split.
    let body = path.strip_suffix(b"/").unwrap_or(path);
    let at = body
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(at, _)| at)
        .find(|&at| path.len() - at - 1 <= 100)?;
    (at <= 155).then(|| (&path[at + 1..], &path[..at]))
}

/// Appends a pax record `LEN key=value\n`, where LEN counts the whole record.
fn record(pax: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() != base.to_string().len() {
        len = base + len.to_string().len();
    }
    pax.extend_from_slice(format!("{len} {key}=").as_bytes());
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

/// One ustar header block.
fn header(name: &[u8], prefix: &[u8], mode: u32, flag: u8, size: usize, mtime: i64, link: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let octal = |block: &mut [u8; BLOCK], at: usize, width: usize, value: u64| {
        let digits = format!("{value:0width$o}", width = width - 1);
        block[at..at + width - 1].copy_from_slice(digits.as_bytes());
    };
    block[..name.len()].copy_from_slice(name);
    octal(&mut block, 100, 8, u64::from(mode));
    octal(&mut block, 108, 8, 0);
    octal(&mut block, 116, 8, 0);
    octal(&mut block, 124, 12, size as u64);
    octal(&mut block, 136, 12, u64::try_from(mtime).unwrap_or(0));
    block[156] = flag;
    block[157..157 + link.len()].copy_from_slice(link);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    octal(&mut block, 329, 8, 0);
    octal(&mut block, 337, 8, 0);
    block[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum is computed with its own field as spaces.
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(digits.as_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22 (pax-unaware readers): an entry whose path ustar cannot hold carries
    /// the path in a pax record and, in the ustar header a reader without pax support
    /// sees, `<id>.data` (as `git archive` writes), never an empty name.
    #[test]
    fn a_path_too_long_for_ustar_has_a_fallback_name() {
        let id = Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        let long = format!("{}/{}", "d".repeat(200), "f".repeat(120));
        let mut tar = Tar::new(Vec::new(), 0);
        tar.add(long.as_bytes(), Kind::File { executable: false }, b"x", id).unwrap();
        let bytes = tar.finish().unwrap();
        assert_eq!(bytes[156], b'x', "a pax header first");
        let entry = &bytes[2 * BLOCK..3 * BLOCK];
        assert_eq!(entry[156], b'0');
        let name_end = entry[..100].iter().position(|&b| b == 0).unwrap_or(100);
        assert_eq!(&entry[..name_end], format!("{id}.data").as_bytes());
        let pax = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]);
        assert!(pax.contains(&format!(" path={long}\n")), "{pax}");
    }
}
