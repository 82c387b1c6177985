//! `${VAR}` references in config strings, taken from the environment at load time.

/// A `${VAR}` whose variable is not set (or not valid UTF-8).
#[derive(Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// The variable is unset.
    Unset(String),
    /// `${` without a closing `}`, or an invalid name.
    Malformed(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unset(name) => write!(f, "environment variable `{name}` is not set"),
            Self::Malformed(why) => f.write_str(why),
        }
    }
}

/// Replaces every `${NAME}` in `text` with the variable's value, looked up by `lookup`.
/// `$${` stands for a literal `${`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| ExpandError::Malformed(format!("`${{` without a closing `}}` in {text:?}")))?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ExpandError::Malformed(format!(
                    "`${{{name}}}` is not a variable reference (names are letters, digits and `_`)"
                )));
            }
            out.push_str(&lookup(name).ok_or_else(|| ExpandError::Unset(name.to_owned()))?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand`] against the process environment.
pub fn expand_env(text: &str) -> Result<String, ExpandError> {
    expand(text, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_table() {
        let ok = [
            ("plain", "plain"),
            ("${SECRET}", "s3cr3t"),
            ("a-${SECRET}-b-${SECRET}", "a-s3cr3t-b-s3cr3t"),
            ("${EMPTY}x", "x"),
            ("$${SECRET}", "${SECRET}"),
            ("cost: $5", "cost: $5"),
            ("trailing $", "trailing $"),
        ];
        for (input, want) in ok {
            assert_eq!(expand(input, lookup).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(expand("${NOPE}", lookup), Err(ExpandError::Unset("NOPE".into())));
        assert!(matches!(expand("${SECRET", lookup), Err(ExpandError::Malformed(_))));
        assert!(matches!(expand("${A B}", lookup), Err(ExpandError::Malformed(_))));
        assert!(matches!(expand("${}", lookup), Err(ExpandError::Malformed(_))));
    }
}
