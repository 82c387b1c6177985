//! Signature schemes shared by several forges: HMAC digests in hex, compared in
//! constant time against every active secret (several secrets allow rotation).

use super::VerifyError;
use crate::secret::Secret;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// The hash under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256: every current scheme.
    Sha256,
    /// SHA-1: GitHub's and Bitbucket's legacy `X-Hub-Signature`, only when opted in.
    Sha1,
}

impl Hash {
    fn digest_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha1 => 20,
        }
    }
}

/// HMAC of the concatenated `parts` under `key`.
pub fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match hash {
        Hash::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, parts),
        Hash::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, parts),
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Checks a header holding `<prefix><hex HMAC of body>` against every secret.
pub fn check_hex(
    header: &str,
    value: Option<&str>,
    prefix: &str,
    hash: Hash,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), VerifyError> {
    let value = value.ok_or_else(|| VerifyError::MissingSignature { header: header.to_owned() })?;
    let malformed = |reason: String| VerifyError::MalformedSignature { header: header.to_owned(), reason };
    let digest =
        value.trim().strip_prefix(prefix).ok_or_else(|| malformed(format!("expected `{prefix}<hex digest>`")))?;
    let expected = hex::decode(digest).map_err(|_| malformed("the digest is not hexadecimal".into()))?;
    if expected.len() != hash.digest_len() {
        return Err(malformed(format!("the digest is not {} bytes", hash.digest_len())));
    }
    let matches =
        secrets.iter().any(|secret| constant_time_eq(&hmac(hash, secret.expose().as_bytes(), &[body]), &expected));
    if matches { Ok(()) } else { Err(VerifyError::Mismatch { header: header.to_owned() }) }
}

/// `<prefix><hex HMAC of body>`, as a forge would send it.
pub fn sign_hex(prefix: &str, hash: Hash, body: &[u8], secret: &Secret) -> String {
    format!("{prefix}{}", hex::encode(hmac(hash, secret.expose().as_bytes(), &[body])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hmac_vectors() {
        // RFC 4231 test case 2 and RFC 2202 test case 2.
        let sha256 = hmac(Hash::Sha256, b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(sha256), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let sha1 = hmac(Hash::Sha1, b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(sha1), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn comparison_needs_equal_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
