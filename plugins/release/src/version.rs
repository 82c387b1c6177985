//! Versions from tags: Drupal's `8.x-1.2` and `7.x-2.0-beta1`, semantic versions
//! (`1.2.0`, `v1.3.0-beta1`), development snapshots (`8.x-1.x-dev`, `1.2.x-dev`), the
//! stability each implies, and the order Drupal.org lists releases in. What a feed does
//! with them is `drupal.rs`'s.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How finished a release is, from least to most (Drupal's `version_extra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stability {
    /// A development snapshot of a branch (`8.x-1.x-dev`).
    Dev,
    /// `alpha1`, `alpha2`, ...
    Alpha,
    /// `beta1`, ...
    Beta,
    /// `rc1`, ...
    Rc,
    /// No extra: a stable release.
    Stable,
}

impl Stability {
    /// The word Drupal uses for it (`dev`, `alpha`, `beta`, `rc`, `stable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stability::Dev => "dev",
            Stability::Alpha => "alpha",
            Stability::Beta => "beta",
            Stability::Rc => "rc",
            Stability::Stable => "stable",
        }
    }
}

/// A version parsed from a tag. Its `Display` is the version as Drupal writes it (the
/// tag without a leading `v`); its order is the order of age within a project, so a
/// feed sorted newest first lists releases as Drupal.org does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The core API prefix of a legacy contrib version (`8.x`, `7.x`); `None` for a
    /// semantic version.
    pub api: Option<String>,
    /// Drupal's `version_major`.
    pub major: u64,
    /// Drupal's `version_minor`: only semantic versions have one (`1.2.0` → 2).
    pub minor: Option<u64>,
    /// Drupal's `version_patch`: `8.x-1.2` → 2, `1.2.3` → 3; `None` for a dev snapshot.
    pub patch: Option<u64>,
    /// Drupal's `version_extra`: `beta1`, `rc2`, `dev`; `None` for a stable release.
    pub extra: Option<String>,
    /// What the extra says about the release.
    pub stability: Stability,
}

impl Version {
    /// Whether this is a development snapshot (`…-dev`).
    pub fn is_dev(&self) -> bool {
        self.stability == Stability::Dev
    }

    /// The supported-branch prefix this version belongs to, as Drupal's
    /// `supported_branches` lists it: `8.x-1.` for `8.x-1.2`, `1.2.` for `1.2.0`.
    pub fn branch(&self) -> String {
        let api = self.api.as_deref().map(|api| format!("{api}-")).unwrap_or_default();
        match self.minor {
            Some(minor) => format!("{api}{}.{minor}.", self.major),
            None => format!("{api}{}.", self.major),
        }
    }

    /// The number after the extra's word (`beta2` → 2; 0 for stable and dev).
    fn extra_number(&self) -> u64 {
        self.extra
            .as_deref()
            .map(|extra| extra.trim_start_matches(|c: char| c.is_ascii_alphabetic()))
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(api) = &self.api {
            write!(f, "{api}-")?;
        }
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        match self.patch {
            Some(patch) => write!(f, ".{patch}")?,
            None => f.write_str(".x")?,
        }
        if let Some(extra) = &self.extra {
            write!(f, "-{extra}")?;
        }
        Ok(())
    }
}

impl Ord for Version {
    /// Drupal.org lists a project's releases by major version, then (within a major)
    /// by minor and patch level, the pre-releases of a level before the level's release
    /// (by date, which for well-formed tags is `alpha` < `beta` < `rc` < stable and by
    /// number), and the major's development snapshots after all of its releases
    /// (`update.compare.inc` relies on that). This is that order oldest first; the
    /// trailing fields only make it total.
    fn cmp(&self, other: &Self) -> Ordering {
        let key = |v: &Version| {
            (
                v.major,
                !v.is_dev(),
                v.minor.unwrap_or(0),
                v.patch.unwrap_or(0),
                v.stability,
                v.extra_number(),
                v.minor,
                v.api.clone(),
            )
        };
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses a tag as a version: `8.x-1.2`, `7.x-2.0-beta1`, `8.x-1.x-dev`, `1.2.0`,
/// `v1.3.0-beta1`, `2.0.0-rc2`, `1.2.x-dev`, `2.x-dev`, and two-part `7.98` (a core
/// style `major.patch`). Extras are `alphaN`, `betaN`, `rcN` (N ≥ 1) and `dev` (only on
/// a `.x` branch), as Drupal.org accepts them; anything else is refused.
pub fn parse(tag: &str) -> Result<Version, String> {
    let bad = |why: &str| format!("tag `{tag}` is not a release version: {why}");
    let (api, rest) = match split_api(tag) {
        Some((api, rest)) => (Some(api.to_owned()), rest),
        // `v1.2.0` and `V1.2.0` alike, as the version text drops either.
        None => (None, crate::version_text(tag)),
    };
    let (numbers, extra) = match rest.split_once('-') {
        Some((numbers, extra)) => (numbers, Some(extra)),
        None => (rest, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    let dev_branch = parts.last() == Some(&"x");
    let stability = match extra {
        None if dev_branch => return Err(bad("a `.x` branch needs `-dev`")),
        None => Stability::Stable,
        Some("dev") if dev_branch => Stability::Dev,
        Some("dev") => return Err(bad("`-dev` goes on a branch (`1.x-dev`, `1.2.x-dev`)")),
        Some(_) if dev_branch => return Err(bad("a `.x` branch can only be `-dev`")),
        Some(extra) => extra_stability(extra)
            .ok_or_else(|| bad("the extra must be `alphaN`, `betaN`, `rcN` or `dev` (e.g. `1.3.0-beta1`)"))?,
    };
    let number = |text: &str| -> Result<u64, String> {
        let plain =
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
        if !plain {
            return Err(bad(&format!("`{text}` is not a version number")));
        }
        text.parse().map_err(|_| bad(&format!("`{text}` is too large")))
    };
    let numeric = if dev_branch { &parts[..parts.len() - 1] } else { &parts[..] };
    let (major, minor, patch) = match (api.is_some(), dev_branch, numeric) {
        // 8.x-1.2, 7.98
        (_, false, [major, patch]) => (number(major)?, None, Some(number(patch)?)),
        // 1.2.0
        (false, false, [major, minor, patch]) => (number(major)?, Some(number(minor)?), Some(number(patch)?)),
        // 8.x-1.x-dev, 2.x-dev
        (_, true, [major]) => (number(major)?, None, None),
        // 1.2.x-dev
        (false, true, [major, minor]) => (number(major)?, Some(number(minor)?), None),
        _ if api.is_some() => return Err(bad("expected `<api>-<major>.<patch>` such as `8.x-1.2`")),
        _ => return Err(bad("expected `<major>.<minor>.<patch>` such as `1.2.0`")),
    };
    Ok(Version { api, major, minor, patch, extra: extra.map(str::to_owned), stability })
}

/// `8.x-1.2` → (`8.x`, `1.2`): a core API prefix is digits, `.x`, then `-` and more
/// than `dev` (`2.x-dev` is the development snapshot of a semantic major branch).
fn split_api(tag: &str) -> Option<(&str, &str)> {
    let (api, rest) = tag.split_once("-")?;
    let core = api.strip_suffix(".x")?;
    (!core.is_empty() && core.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() && rest != "dev")
        .then_some((api, rest))
}

fn extra_stability(extra: &str) -> Option<Stability> {
    let digits_at = extra.find(|c: char| c.is_ascii_digit())?;
    let (word, digits) = extra.split_at(digits_at);
    let numbered = digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if !numbered {
        return None;
    }
    match word {
        "alpha" => Some(Stability::Alpha),
        "beta" => Some(Stability::Beta),
        "rc" => Some(Stability::Rc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(
        api: Option<&str>,
        major: u64,
        minor: Option<u64>,
        patch: Option<u64>,
        extra: Option<&str>,
        stability: Stability,
    ) -> Version {
        Version { api: api.map(str::to_owned), major, minor, patch, extra: extra.map(str::to_owned), stability }
    }

    #[test]
    fn tags_parse_into_drupals_version_fields() {
        use Stability::*;
        let rows = [
            ("8.x-1.2", v(Some("8.x"), 1, None, Some(2), None, Stable)),
            ("7.x-2.0-beta1", v(Some("7.x"), 2, None, Some(0), Some("beta1"), Beta)),
            ("8.x-1.x-dev", v(Some("8.x"), 1, None, None, Some("dev"), Dev)),
            ("8.x-3.10-rc12", v(Some("8.x"), 3, None, Some(10), Some("rc12"), Rc)),
            ("1.2.0", v(None, 1, Some(2), Some(0), None, Stable)),
            ("v1.3.0-beta1", v(None, 1, Some(3), Some(0), Some("beta1"), Beta)),
            ("2.0.0-rc2", v(None, 2, Some(0), Some(0), Some("rc2"), Rc)),
            ("10.1.0-alpha3", v(None, 10, Some(1), Some(0), Some("alpha3"), Alpha)),
            ("1.2.x-dev", v(None, 1, Some(2), None, Some("dev"), Dev)),
            ("2.x-dev", v(None, 2, None, None, Some("dev"), Dev)),
            ("7.98", v(None, 7, None, Some(98), None, Stable)),
            ("0.0.1", v(None, 0, Some(0), Some(1), None, Stable)),
        ];
        for (tag, want) in rows {
            let got = parse(tag).unwrap_or_else(|err| panic!("{tag}: {err}"));
            assert_eq!(got, want, "{tag}");
            assert_eq!(got.to_string(), tag.trim_start_matches('v'), "{tag} written back");
        }
    }

    #[test]
    fn tags_that_are_not_release_versions_are_refused_naming_the_tag() {
        let rows = [
            "",
            "release",
            "v",
            "1",
            "1.2.3.4",
            "8.x-1.2.3",
            "8.x-",
            "x-1.2",
            "1.x",
            "1.2.x",
            "1.2.0-dev",
            "1.x-beta1",
            "1.2.0-beta",
            "1.2.0-beta01",
            "1.2.0-gamma1",
            "1.2.0-Beta1",
            "01.2.0",
            "1.02.0",
            "1.2.0-",
            "1..0",
            "1.2.0+build5",
            "v8.x-1.2",
            "8.x-1.2-",
            "99999999999999999999.0.0",
            "-1.2.0",
        ];
        for tag in rows {
            let err = parse(tag).expect_err(tag);
            assert!(err.contains(&format!("`{tag}`")), "{tag}: {err}");
        }
    }

    #[test]
    fn versions_order_as_drupal_org_lists_releases_oldest_first() {
        let ascending = [
            "8.x-1.x-dev",
            "8.x-1.0-alpha1",
            "8.x-1.0-alpha2",
            "8.x-1.0-beta1",
            "8.x-1.0-beta10",
            "8.x-1.0-rc1",
            "8.x-1.0",
            "8.x-1.1",
            "8.x-1.9",
            "8.x-1.10",
            "2.0.x-dev",
            "2.1.x-dev",
            "2.0.0-beta1",
            "2.0.0",
            "2.0.1",
            "2.1.0-rc1",
            "2.1.0",
            "2.10.0",
            "3.x-dev",
            "3.0.0",
        ];
        let parsed: Vec<Version> = ascending.iter().map(|tag| parse(tag).unwrap()).collect();
        for pair in parsed.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        let mut shuffled = parsed.clone();
        shuffled.reverse();
        shuffled.swap(3, 11);
        shuffled.sort();
        assert_eq!(shuffled, parsed);
    }

    #[test]
    fn the_order_is_total_and_agrees_with_equality() {
        let tags = ["7.2", "7.0.2", "8.x-7.2", "7.x-7.2", "7.2.0", "7.x-7.x-dev", "8.x-7.x-dev", "7.0.x-dev"];
        let parsed: Vec<Version> = tags.iter().map(|tag| parse(tag).unwrap()).collect();
        for a in &parsed {
            for b in &parsed {
                assert_eq!(a.cmp(b) == Ordering::Equal, a == b, "{a} vs {b}");
                assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn branches_are_drupals_supported_branch_prefixes() {
        for (tag, branch) in [
            ("8.x-1.2", "8.x-1."),
            ("8.x-1.x-dev", "8.x-1."),
            ("1.2.0", "1.2."),
            ("1.2.x-dev", "1.2."),
            ("2.x-dev", "2."),
            ("7.98", "7."),
        ] {
            assert_eq!(parse(tag).unwrap().branch(), branch, "{tag}");
        }
    }

    #[test]
    fn the_record_carries_the_version_as_json_fields() {
        let json = serde_json::to_value(parse("v1.3.0-beta1").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"api": null, "major": 1, "minor": 3, "patch": 0, "extra": "beta1", "stability": "beta"})
        );
    }
}
