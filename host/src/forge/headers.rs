//! A delivery's headers as plain data, so that verifying and parsing need no HTTP types:
//! the webhook server, a redelivery from the record and a delivery fetched from a
//! forge's API all hand the forge the same thing.

/// Request headers in arrival order: lowercase names, raw values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header after the ones already there (a repeated name keeps every value).
    pub fn append(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The first value of `name` (any case), when it is text: visible ASCII, spaces and
    /// tabs only, as HTTP allows. Anything else reads as absent, so a signature header
    /// with stray bytes fails as a missing one would.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (_, value) = self.0.iter().find(|(have, _)| have.eq_ignore_ascii_case(name))?;
        if value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            std::str::from_utf8(value).ok()
        } else {
            None
        }
    }

    /// Every header, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_slice()))
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in pairs {
            headers.append(name.as_ref(), value.as_ref().as_bytes());
        }
        headers
    }
}

/// Whether `name` can be a header name (an HTTP token), for configured header names.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_the_first_value_wins() {
        let headers: Headers = [("X-GitHub-Event", "push"), ("x-github-event", "ping")].into_iter().collect();
        assert_eq!(headers.get("x-github-event"), Some("push"));
        assert_eq!(headers.get("X-GITHUB-EVENT"), Some("push"));
        assert_eq!(headers.get("x-missing"), None);
    }

    #[test]
    fn values_that_are_not_plain_text_read_as_absent() {
        let mut headers = Headers::new();
        headers.append("x-hub-signature-256", b"sha256=ab\xffcd".to_vec());
        headers.append("x-control", b"a\x01b".to_vec());
        headers.append("x-tab", b"a\tb".to_vec());
        assert_eq!(headers.get("x-hub-signature-256"), None);
        assert_eq!(headers.get("x-control"), None);
        assert_eq!(headers.get("x-tab"), Some("a\tb"));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("X-Signature"));
        for bad in ["", "x sig", "x:y", "é", "x\ny"] {
            assert!(!is_header_name(bad), "{bad:?}");
        }
    }
}
