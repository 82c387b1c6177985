//! Where each file of the repository goes in the site: `nested` keeps the folders,
//! `flat` writes every page and copied file to the site's root by base name, as
//! tx-manager did; when two files would go to one place, the first in tree order keeps
//! it. No I/O: the plugin writes what the [`Plan`] says.

use crate::render;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// How the site's files are laid out (the `layout` setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `docs/guide.md` → `docs/guide.html`, `images/logo.png` → `images/logo.png`.
    #[default]
    Nested,
    /// `gen/01.md` → `01.html`, `images/logo.png` → `logo.png`.
    Flat,
}

/// The name the build writes its log under, which no file of the repository may take.
pub const BUILD_LOG: &str = "build_log.json";

/// Whether the repository file `path` is Markdown, converted rather than copied.
pub fn is_markdown(path: &str) -> bool {
    path.len() >= 3 && path.is_char_boundary(path.len() - 3) && path[path.len() - 3..].eq_ignore_ascii_case(".md")
}

/// Where the repository file `source` is written, relative to the site's root: a page
/// (Markdown) as `.html`, any other file as it is named.
pub fn target_path(layout: Layout, source: &str) -> String {
    let path = match layout {
        Layout::Nested => source,
        Layout::Flat => source.rsplit('/').next().unwrap_or(source),
    };
    if is_markdown(source) { render::html_path(path) } else { path.to_owned() }
}

/// The site's files: where each is written, and which are left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Site path by repository path, for every file written.
    pub targets: HashMap<String, String>,
    /// Files left out because their site path was taken first, in tree order.
    pub skipped: Vec<Skipped>,
}

impl Plan {
    /// The repository path of the file written to `target` (a site path), if any.
    pub fn owner(&self, target: &str) -> Option<&str> {
        self.targets.iter().find(|(_, site_path)| *site_path == target).map(|(path, _)| path.as_str())
    }
}

/// A file left out of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file's repository path.
    pub path: String,
    /// The site path it would have had.
    pub target: String,
    /// The repository path of the file written there (`None`: the build log).
    pub kept: Option<String>,
}

impl fmt::Display for Skipped {
    /// The build log's warning, naming both files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kept {
            Some(kept) => write!(f, "Skipped {}: {kept} is already written to {}", self.path, self.target),
            None => write!(f, "Skipped {}: {} is the build log", self.path, self.target),
        }
    }
}

/// Places `sources` (repository paths, in tree order): each goes to its
/// [`target_path`] unless an earlier file, or the build log, has it.
pub fn plan<'a>(layout: Layout, sources: impl IntoIterator<Item = &'a str>) -> Plan {
    let mut plan = Plan::default();
    let mut owners: HashMap<String, &'a str> = HashMap::new();
    for source in sources {
        let target = target_path(layout, source);
        if target == BUILD_LOG {
            plan.skipped.push(Skipped { path: source.to_owned(), target, kept: None });
        } else if let Some(kept) = owners.get(&target) {
            plan.skipped.push(Skipped { path: source.to_owned(), target, kept: Some((*kept).to_owned()) });
        } else {
            owners.insert(target.clone(), source);
            plan.targets.insert(source.to_owned(), target);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_folders_or_take_the_base_name() {
        let cases = [
            (Layout::Nested, "docs/guide.md", "docs/guide.html"),
            (Layout::Nested, "images/logo.png", "images/logo.png"),
            (Layout::Nested, "a.md", "a.html"),
            (Layout::Flat, "gen/01.md", "01.html"),
            (Layout::Flat, "translate/figs-metaphor/01.md", "01.html"),
            (Layout::Flat, "media/map.png", "map.png"),
            (Layout::Flat, "manifest.yaml", "manifest.yaml"),
            (Layout::Flat, "notes/READ.MD", "READ.MD.html"),
        ];
        for (layout, source, target) in cases {
            assert_eq!(target_path(layout, source), target, "{layout:?} {source}");
        }
        assert!(is_markdown("a/b.MD") && is_markdown("x.md") && !is_markdown("md") && !is_markdown("a.mdx"));
    }

    #[test]
    fn the_first_file_of_a_name_wins_and_the_later_ones_are_named() {
        let sources =
            ["exo/01/01.md", "exo/01/intro.md", "gen/01/01.md", "gen/01/intro.md", "gen/map.png", "x/build_log.json"];
        let flat = plan(Layout::Flat, sources);
        assert_eq!(flat.targets["exo/01/01.md"], "01.html");
        assert_eq!(flat.targets["gen/map.png"], "map.png");
        assert_eq!((flat.owner("01.html"), flat.owner("02.html")), (Some("exo/01/01.md"), None));
        assert!(!flat.targets.contains_key("gen/01/01.md"));
        let skipped: Vec<String> = flat.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                "Skipped gen/01/01.md: exo/01/01.md is already written to 01.html",
                "Skipped gen/01/intro.md: exo/01/intro.md is already written to intro.html",
                "Skipped x/build_log.json: build_log.json is the build log",
            ]
        );

        // Nested, only a page and a file of the same name in one folder meet.
        let nested = plan(Layout::Nested, ["a.html", "a.md", "b/a.md", "build_log.json"]);
        assert_eq!(nested.targets.len(), 2);
        assert_eq!(nested.targets["b/a.md"], "b/a.html");
        assert_eq!(nested.skipped[0].kept.as_deref(), Some("a.html"));
        assert_eq!(nested.skipped[1].kept, None);
    }
}
