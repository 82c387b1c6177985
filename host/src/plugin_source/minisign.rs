//! minisign signatures (Ed25519): the public key's and the signature file's formats, and
//! verification as `minisign -V` does it, the trusted comment's global signature
//! included. Pure: where the key and the signature come from is the caller's business.
//!
//! A public key is `Ed` + key id (8 bytes) + Ed25519 key (32), base64 on the line after
//! an untrusted comment. A signature file is four lines: an untrusted comment, base64 of
//! the algorithm (`ED`: the BLAKE2b-512 of the file is signed; `Ed`, legacy: the file
//! itself) + key id + signature (64), `trusted comment: TEXT`, and base64 of the
//! signature of the first signature followed by TEXT.

use base64::Engine as _;
use ring::signature::{ED25519, UnparsedPublicKey};

/// A minisign public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: [u8; 8],
    key: [u8; 32],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature file cannot be read as one.
    #[error("not a minisign signature: {0}")]
    Malformed(String),
    /// Another key made it.
    #[error("signed by key {signed_by}, but the trusted key is {trusted}")]
    OtherKey {
        /// The id the signature names.
        signed_by: String,
        /// The configured key's id.
        trusted: String,
    },
    /// The content is not what was signed.
    #[error("the signature by key {key} does not match the content (changed after signing?)")]
    Content {
        /// The key's id.
        key: String,
    },
    /// The trusted comment is not what was signed.
    #[error("the trusted comment's signature by key {key} does not verify (the comment was changed)")]
    TrustedComment {
        /// The key's id.
        key: String,
    },
}

impl PublicKey {
    /// Reads a key as `minisign -G` writes it (an untrusted comment line, then the key),
    /// or the key's base64 line alone (`RW...`, as `minisign -P` takes it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with("untrusted comment:"))
            .ok_or("no key in it")?;
        let bytes = decode(line).map_err(|err| format!("the key is not base64: {err}"))?;
        let (algorithm, rest) = bytes.split_at_checked(2).ok_or("the key is too short")?;
        if algorithm != b"Ed" {
            return Err("not a minisign Ed25519 public key (it should start `RW`)".into());
        }
        let (id, key) = rest.split_at_checked(8).ok_or("the key is too short")?;
        Ok(Self {
            id: id.try_into().expect("split at 8"),
            key: key.try_into().map_err(|_| format!("the key is {} bytes, not 42", bytes.len()))?,
        })
    }

    /// The key's id as minisign prints it: upper-case hex, without leading zeros.
    pub fn id(&self) -> String {
        key_id(&self.id)
    }
}

/// A parsed signature file.
#[derive(Debug, Clone)]
pub struct Signature {
    prehashed: bool,
    key_id: [u8; 8],
    signature: [u8; 64],
    trusted_comment: String,
    global: [u8; 64],
}

impl Signature {
    /// Reads a `.minisig` file.
    pub fn parse(text: &str) -> Result<Self, VerifyError> {
        let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
        let mut lines = text.lines();
        let mut line = |what: &str| lines.next().map(|l| l.trim_end_matches('\r')).ok_or_else(|| malformed(what));
        if !line("it is empty")?.starts_with("untrusted comment:") {
            return Err(malformed("its first line is not `untrusted comment: ...`"));
        }
        let bytes = decode(line("it has no signature line")?).map_err(|err| malformed(&format!("{err}")))?;
        let trusted_comment = line("it has no trusted comment")?
            .strip_prefix("trusted comment: ")
            .ok_or_else(|| malformed("its third line is not `trusted comment: ...`"))?
            .to_owned();
        let global = decode(line("it has no global signature")?).map_err(|err| malformed(&format!("{err}")))?;
        if bytes.len() != 74 {
            return Err(malformed(&format!("its signature is {} bytes, not 74", bytes.len())));
        }
        let prehashed = match &bytes[..2] {
            b"ED" => true,
            b"Ed" => false,
            _ => return Err(malformed("unknown signature algorithm (expected Ed25519, `ED` or `Ed`)")),
        };
        Ok(Self {
            prehashed,
            key_id: bytes[2..10].try_into().expect("74 bytes"),
            signature: bytes[10..].try_into().expect("74 bytes"),
            trusted_comment,
            global: global.try_into().map_err(|_| malformed("its global signature is not 64 bytes"))?,
        })
    }

    /// The id of the key that made it.
    pub fn key_id(&self) -> String {
        key_id(&self.key_id)
    }

    /// Checks that `key` signed `message` and this signature's trusted comment; returns
    /// the trusted comment.
    pub fn verify(&self, key: &PublicKey, message: &[u8]) -> Result<&str, VerifyError> {
        if self.key_id != key.id {
            return Err(VerifyError::OtherKey { signed_by: self.key_id(), trusted: key.id() });
        }
        let ed25519 = UnparsedPublicKey::new(&ED25519, key.key);
        let signed = if self.prehashed {
            use blake2::Digest as _;
            ed25519.verify(&blake2::Blake2b512::digest(message), &self.signature)
        } else {
            ed25519.verify(message, &self.signature)
        };
        signed.map_err(|_| VerifyError::Content { key: key.id() })?;
        let global = [&self.signature[..], self.trusted_comment.as_bytes()].concat();
        ed25519.verify(&global, &self.global).map_err(|_| VerifyError::TrustedComment { key: key.id() })?;
        Ok(&self.trusted_comment)
    }
}

fn decode(line: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(line.trim())
}

/// minisign prints a key id as the little-endian number its 8 bytes make, in hex without
/// leading zeros (`%PRIX64`).
fn key_id(bytes: &[u8; 8]) -> String {
    format!("{:X}", u64::from_le_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with minisign 0.11: `minisign -G -W`, then `-S -t "trusted: gitauto test"`
    // (prehashed) and `-S -l -t legacy` of MESSAGE.
    const KEY: &str = "untrusted comment: minisign public key ACB907952B79E4BD\n\
                       RWS95HkrlQe5rDm+k/x2rx3W5jmY0o2kVPBbzbdMeuAbZihYpX8wMVpH\n";
    const OTHER_KEY: &str = "RWS9YfD9fdVrrLNZJ97XlClj+sbZHMeBf8S1SNOcICwUeHS7+2A+tVq/";
    const MESSAGE: &[u8] = b"gitauto plugin bytes\n";
    const PREHASHED: &str = "untrusted comment: signature from minisign secret key\n\
        RUS95HkrlQe5rPE5VXE5WW1DYWzzZisaNGBQsatmY4z37qWEkoggQmaGxvUV1PYNdfZUdOC1wFGUnjTbF7zSJAt60Lk+qj7UOwQ=\n\
        trusted comment: trusted: gitauto test\n\
        ZqK16NX7cHkf9OoZyRKt8AaENpyn/sxJ9jaeA1sgdVEjrRZMk7raOTu7PUBi6d7teJHvEz//UT+q9jE0DgYCBA==\n";
    const LEGACY: &str = "untrusted comment: signature from minisign secret key\n\
        RWS95HkrlQe5rFQVKdyexzoVq3mW3bJdeaQYEOOdGsIlkWs83Dd4KHFrBzRZHTWYLsFiWn7H2DxMpgTa+nHyWXsPjaR8REB/BAM=\n\
        trusted comment: legacy\n\
        jFWLGl1sVGjewrFCVoL8qBbifYRF510EuUKeRjD6ERny+bu0ArMfTDKo2CfRgbGyoUisyNjdPAnLpTdFT1dUDQ==\n";

    #[test]
    fn keys_read_from_the_file_or_the_bare_line_and_show_minisigns_id() {
        let key = PublicKey::parse(KEY).unwrap();
        assert_eq!(key.id(), "ACB907952B79E4BD");
        assert_eq!(PublicKey::parse(KEY.lines().nth(1).unwrap()).unwrap(), key);
        assert_eq!(PublicKey::parse(OTHER_KEY).unwrap().id(), "AC6BD57DFDF061BD");
        // As minisign prints it: no leading zeros.
        assert_eq!(key_id(&[0x5a, 0xbf, 0xcf, 0xc8, 0x3f, 0xcd, 0xa6, 0x05]), "5A6CD3FC8CFBF5A");
        for (text, why) in [
            ("", "no key"),
            ("untrusted comment: x\n", "no key"),
            ("RWS95Hkr!!", "not base64"),
            ("RWS95HkrlQe5rDm+", "12 bytes, not 42"),
            // A signature line is no key.
            (PREHASHED.lines().nth(1).unwrap(), "not a minisign Ed25519 public key"),
        ] {
            let err = PublicKey::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn prehashed_and_legacy_signatures_verify_with_their_trusted_comment() {
        let key = PublicKey::parse(KEY).unwrap();
        assert_eq!(Signature::parse(PREHASHED).unwrap().verify(&key, MESSAGE), Ok("trusted: gitauto test"));
        assert_eq!(Signature::parse(LEGACY).unwrap().verify(&key, MESSAGE), Ok("legacy"));
        assert_eq!(
            Signature::parse(&PREHASHED.replace('\n', "\r\n")).unwrap().verify(&key, MESSAGE).unwrap().len(),
            21
        );
    }

    #[test]
    fn what_minisign_refuses_is_refused() {
        let key = PublicKey::parse(KEY).unwrap();
        let other = PublicKey::parse(OTHER_KEY).unwrap();
        let signature = Signature::parse(PREHASHED).unwrap();
        assert_eq!(
            signature.verify(&other, MESSAGE),
            Err(VerifyError::OtherKey { signed_by: "ACB907952B79E4BD".into(), trusted: "AC6BD57DFDF061BD".into() })
        );
        for (message, comment, expected) in [
            (&b"gitauto plugin bytes!\n"[..], "trusted: gitauto test", VerifyError::Content { key: key.id() }),
            (MESSAGE, "trusted: gitauto tesT", VerifyError::TrustedComment { key: key.id() }),
        ] {
            let text = PREHASHED.replace("trusted: gitauto test", comment);
            assert_eq!(Signature::parse(&text).unwrap().verify(&key, message), Err(expected));
        }
        // The legacy signature's bytes under the prehashed algorithm: not a signature of the hash.
        let relabelled = LEGACY.replace("RWS95HkrlQe5rFQV", "RUS95HkrlQe5rFQV");
        assert_eq!(
            Signature::parse(&relabelled).unwrap().verify(&key, MESSAGE),
            Err(VerifyError::Content { key: key.id() })
        );
        for (text, why) in [
            ("", "empty"),
            ("trusted comment: x\n", "first line"),
            ("untrusted comment: x\n", "no signature line"),
            ("untrusted comment: x\nRUS9\n", "no trusted comment"),
            ("untrusted comment: x\nRUS9\nuntrusted comment: y\nAAAA\n", "third line"),
            ("untrusted comment: x\nRUS9\ntrusted comment: y\n", "no global signature"),
            ("untrusted comment: x\nRUS95Hkr\ntrusted comment: y\nAAAA\n", "not 74"),
            (&PREHASHED.replace("ZqK16NX7", "ZqK1"), "global signature is not 64 bytes"),
        ] {
            let err = Signature::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
