//! How a delivery's body is stored: compressed as an LZ4 block when that saves room
//! (`body_encoding = 'lz4'`), else as received (`NULL`, as every row before schema 12).
//! Compressing happens where the record is built, on the request's own thread, so the
//! queue's single writer only copies bytes; reading decodes after the store answered.

use bytes::Bytes;

/// The `body_encoding` of an LZ4 block: the body's length (4 bytes, little-endian), then
/// the block (`lz4_flex`'s size-prepended format).
pub const LZ4: &str = "lz4";

/// Bodies smaller than this are stored as received: a row holds them in its own page.
const COMPRESS_FROM: usize = 512;

/// A delivery's body as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    /// The stored bytes.
    bytes: Bytes,
    /// `None`: the bytes are the body as received; else how they are encoded.
    encoding: Option<&'static str>,
}

impl StoredBody {
    /// `received`, compressed when that makes it smaller by at least an eighth.
    pub fn new(received: Bytes) -> Self {
        if received.len() >= COMPRESS_FROM {
            let compressed = lz4_flex::block::compress_prepend_size(&received);
            if compressed.len() < received.len() - received.len() / 8 {
                return Self { bytes: Bytes::from(compressed), encoding: Some(LZ4) };
            }
        }
        Self::raw(received)
    }

    /// `received`, stored as it is.
    pub fn raw(received: Bytes) -> Self {
        Self { bytes: received, encoding: None }
    }

    /// The bytes to store.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The `body_encoding` to store with them.
    pub fn encoding(&self) -> Option<&'static str> {
        self.encoding
    }

    /// The body as received.
    pub fn received(&self) -> anyhow::Result<Bytes> {
        match self.encoding {
            None => Ok(self.bytes.clone()),
            Some(encoding) => decode(self.bytes.to_vec(), Some(encoding)).map(Bytes::from),
        }
    }
}

/// A stored body back as received, given its `body_encoding`.
pub fn decode(stored: Vec<u8>, encoding: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match encoding {
        None => Ok(stored),
        Some(LZ4) => lz4_flex::block::decompress_size_prepended(&stored)
            .map_err(|err| anyhow::anyhow!("the stored body does not decompress (lz4): {err}")),
        Some(other) => anyhow::bail!("the stored body has an unknown encoding `{other}`; run a newer gitauto"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_compressed_only_when_it_saves_room() {
        let json = br#"{"commits":[{"id":"a","message":"fix"},{"id":"b","message":"fix"}]}"#.repeat(40);
        let cases: [(&[u8], Option<&str>); 4] =
            [(b"", None), (b"{}", None), (&json, Some(LZ4)), (&[0xff, 0x00, 0x7f, 0x80], None)];
        for (received, encoding) in cases {
            let stored = StoredBody::new(Bytes::copy_from_slice(received));
            assert_eq!(stored.encoding(), encoding, "{} bytes", received.len());
            assert_eq!(stored.received().unwrap(), received);
            assert_eq!(decode(stored.bytes().to_vec(), stored.encoding()).unwrap(), received);
        }
        let compressed = StoredBody::new(Bytes::from(json.clone()));
        assert!(compressed.bytes().len() < json.len() / 4, "{} of {}", compressed.bytes().len(), json.len());
    }

    #[test]
    fn random_bytes_that_do_not_shrink_are_stored_as_received() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let stored = StoredBody::new(Bytes::from(noise.clone()));
        assert_eq!(stored.encoding(), None);
        assert_eq!(stored.bytes(), &noise[..]);
    }

    #[test]
    fn an_unknown_or_damaged_encoding_is_an_error_naming_it() {
        let err = decode(b"x".to_vec(), Some("zstd")).unwrap_err();
        assert!(err.to_string().contains("unknown encoding `zstd`"), "{err}");
        let err = decode(vec![200, 0, 0, 0, 1, 2], Some(LZ4)).unwrap_err();
        assert!(err.to_string().contains("does not decompress"), "{err}");
    }
}
