//! The zip container `archive` writes: files deflated (stored when deflate would not
//! make them smaller, as `git archive` does), Unix modes in the external attributes,
//! one DOS time computed from the archive's time in UTC, no extra fields (none carries
//! a local time or an owner), and Zip64 records only when the entries or offsets need
//! them.

use super::{Counted, Kind};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use std::io::{self, Write};

/// A zip stream being written to `out`.
pub struct Zip<W: Write> {
    out: Counted<W>,
    /// DOS time and date of every entry.
    time: u16,
    date: u16,
    /// Each entry's central directory record, written at the end.
    central: Vec<u8>,
    entries: u64,
}

/// Bytes 4.5 of the specification (Zip64) needs; 2.0 (deflate, directories) otherwise.
const VERSION_ZIP64: u16 = 45;
const VERSION_DEFLATE: u16 = 20;
/// "Made by" Unix: the external attributes carry Unix modes.
const MADE_BY_UNIX: u16 = 3 << 8;

impl<W: Write> Zip<W> {
    /// A zip stream whose entries all carry `mtime` (seconds since the Unix epoch, shown
    /// in UTC and clamped to the years DOS times hold, 1980 to 2107).
    pub fn new(out: W, mtime: i64) -> Self {
        let (time, date) = dos_time(mtime);
        Self { out: Counted::new(out), time, date, central: Vec::new(), entries: 0 }
    }

    /// Appends one entry: `path` as it goes in the archive (a directory's ends with
    /// `/`), and `data`, a file's content or a link's target.
    pub fn add(&mut self, path: &[u8], kind: Kind, data: &[u8]) -> io::Result<()> {
        let mode: u32 = match kind {
            Kind::Dir => 0o040755,
            Kind::File { executable: false } => 0o100644,
            Kind::File { executable: true } => 0o100755,
            Kind::Link => 0o120777,
        };
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let deflated = if data.is_empty() {
            None
        } else {
            let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(data)?;
            Some(encoder.finish()?).filter(|deflated| deflated.len() < data.len())
        };
        let (method, stored): (u16, &[u8]) = match &deflated {
            Some(deflated) => (8, deflated),
            None => (0, data),
        };
        let too_large = || io::Error::other("an entry is larger than a zip entry holds (4 GiB)");
        let compressed = u32::try_from(stored.len()).map_err(|_| too_large())?;
        let size = u32::try_from(data.len()).map_err(|_| too_large())?;
        let name_len = u16::try_from(path.len()).map_err(|_| io::Error::other("a path is longer than 65,535 bytes"))?;
        // Bit 11: the name is UTF-8 (set only when it is not plain ASCII, as zip tools do).
        let flags: u16 = if !path.is_ascii() && std::str::from_utf8(path).is_ok() { 1 << 11 } else { 0 };
        let offset = self.out.written();
        // 0xFFFFFFFF itself means "see the Zip64 record".
        let zip64 = offset >= u64::from(u32::MAX);

        let mut local = Vec::with_capacity(30 + path.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&VERSION_DEFLATE.to_le_bytes());
        local.extend_from_slice(&flags.to_le_bytes());
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&self.time.to_le_bytes());
        local.extend_from_slice(&self.date.to_le_bytes());
        local.extend_from_slice(&crc.sum().to_le_bytes());
        local.extend_from_slice(&compressed.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&name_len.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(path);
        self.write(&local)?;
        self.write(stored)?;

        let central = &mut self.central;
        let version = if zip64 { VERSION_ZIP64 } else { VERSION_DEFLATE };
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&(MADE_BY_UNIX | version).to_le_bytes());
        central.extend_from_slice(&version.to_le_bytes());
        central.extend_from_slice(&flags.to_le_bytes());
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&self.time.to_le_bytes());
        central.extend_from_slice(&self.date.to_le_bytes());
        central.extend_from_slice(&crc.sum().to_le_bytes());
        central.extend_from_slice(&compressed.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&(if zip64 { 12u16 } else { 0 }).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        // MS-DOS's directory bit as well, for tools that read only that.
        let external = (mode << 16) | if kind == Kind::Dir { 0x10 } else { 0 };
        central.extend_from_slice(&external.to_le_bytes());
        central.extend_from_slice(&(if zip64 { u32::MAX } else { offset as u32 }).to_le_bytes());
        central.extend_from_slice(path);
        if zip64 {
            central.extend_from_slice(&1u16.to_le_bytes());
            central.extend_from_slice(&8u16.to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
        }
        self.entries += 1;
        Ok(())
    }

    /// Writes the central directory and its end records, and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.out.written();
        let central = std::mem::take(&mut self.central);
        self.write(&central)?;
        let size = central.len() as u64;
        let zip64 = self.entries >= 0xffff || start >= u64::from(u32::MAX) || size >= u64::from(u32::MAX);
        let mut end = Vec::new();
        if zip64 {
            let record = self.out.written();
            end.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            end.extend_from_slice(&44u64.to_le_bytes());
            end.extend_from_slice(&(MADE_BY_UNIX | VERSION_ZIP64).to_le_bytes());
            end.extend_from_slice(&VERSION_ZIP64.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&self.entries.to_le_bytes());
            end.extend_from_slice(&self.entries.to_le_bytes());
            end.extend_from_slice(&size.to_le_bytes());
            end.extend_from_slice(&start.to_le_bytes());
            // The locator.
            end.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&record.to_le_bytes());
            end.extend_from_slice(&1u32.to_le_bytes());
        }
        // With Zip64 records, the old fields say "see there".
        let (entries, size, start) =
            if zip64 { (u16::MAX, u32::MAX, u32::MAX) } else { (self.entries as u16, size as u32, start as u32) };
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&entries.to_le_bytes());
        end.extend_from_slice(&entries.to_le_bytes());
        end.extend_from_slice(&size.to_le_bytes());
        end.extend_from_slice(&start.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.write(&end)?;
        self.out.finish()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.put(bytes)
    }
}

/// The DOS time and date of `mtime` in UTC, clamped to 1980-01-01 … 2107-12-31.
fn dos_time(mtime: i64) -> (u16, u16) {
    let min = 315_532_800; // 1980-01-01T00:00:00Z
    let max = 4_354_819_199; // 2107-12-31T23:59:59Z
    let at = time::OffsetDateTime::from_unix_timestamp(mtime.clamp(min, max)).expect("clamped into range");
    let time = (u16::from(at.hour()) << 11) | (u16::from(at.minute()) << 5) | u16::from(at.second() / 2);
    let date = ((at.year() - 1980) as u16) << 9 | (u16::from(u8::from(at.month())) << 5) | u16::from(at.day());
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22: an entry that starts at exactly 0xFFFFFFFF (the value that means "see
    /// the Zip64 record") gets the Zip64 extra field with its real offset.
    #[test]
    fn an_entry_at_offset_0xffffffff_gets_a_zip64_record() {
        for (offset, zip64) in [(u64::from(u32::MAX) - 1, false), (u64::from(u32::MAX), true)] {
            let mut zip = Zip::new(io::sink(), 0);
            zip.out.written = offset;
            zip.add(b"f", Kind::File { executable: false }, b"").unwrap();
            let central = &zip.central;
            let extra = u16::from_le_bytes([central[30], central[31]]);
            let field = u32::from_le_bytes(central[42..46].try_into().unwrap());
            if zip64 {
                assert_eq!((extra, field), (12, u32::MAX));
                assert_eq!(&central[47..51], [1, 0, 8, 0]);
                assert_eq!(u64::from_le_bytes(central[51..59].try_into().unwrap()), offset);
            } else {
                assert_eq!((extra, u64::from(field)), (0, offset));
            }
        }
    }
}
