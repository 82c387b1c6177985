//! The daemon's own files, which no plugin grant may cover: a plugin that could reach
//! them could rewrite the config (reloaded on change), the queue, or the compiled plugins
//! the daemon loads as native code. `config` asks here about every granted directory.

use std::path::{Component, Path, PathBuf};

/// The paths a grant may neither contain nor lie inside, resolved as the kernel would.
#[derive(Debug, Default)]
pub(super) struct OwnFiles {
    /// (what it is, as configured, resolved).
    files: Vec<(&'static str, PathBuf, PathBuf)>,
}

impl OwnFiles {
    /// The config file at `config`, `data_dir` and the compiled-plugin cache inside it.
    pub(super) fn new(config: &Path, data_dir: &Path) -> Self {
        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let files = [
            ("the config file", absolute(config)),
            ("data_dir", absolute(data_dir)),
            // `daemon` keeps compiled components here (see `runtime::cache`).
            ("the compiled-plugin cache", absolute(&data_dir.join("cache"))),
        ];
        Self { files: files.into_iter().map(|(what, shown)| (what, resolved(&shown), shown)).collect() }
    }

    /// What a grant of `dir` would reach of the daemon's files, as the end of a sentence
    /// (`"contains data_dir (/srv/gitauto/.gitauto)"`); `None` when it reaches none.
    pub(super) fn covered_by(&self, dir: &Path) -> Option<String> {
        let granted = resolved(dir);
        let reached: Vec<String> = self
            .files
            .iter()
            .filter_map(|(what, canonical, shown)| {
                let relation = if granted == *canonical {
                    "is"
                } else if canonical.starts_with(&granted) {
                    "contains"
                } else if granted.starts_with(canonical) {
                    "lies inside"
                } else {
                    return None;
                };
                Some(format!("{relation} {what} ({})", shown.display()))
            })
            .collect();
        (!reached.is_empty()).then(|| reached.join(", "))
    }
}

/// `path` made absolute with every link resolved: the deepest part that exists is
/// canonicalised, and the rest (which cannot hold links yet) is added lexically, so a
/// directory that does not exist yet is compared where it will be created. A link to a
/// place that does not exist yet is followed too.
pub(super) fn resolved(path: &Path) -> PathBuf {
    resolved_within(path, 40)
}

/// [`resolved`], following at most `links` dangling links (as the kernel's limit on loops).
fn resolved_within(path: &Path, links: usize) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            // `out` is resolved up to here, so its parent is the real parent.
            Component::ParentDir => {
                out.pop();
            }
            part => {
                out.push(part);
                if let Ok(canonical) = std::fs::canonicalize(&out) {
                    out = canonical;
                } else if let Ok(target) = std::fs::read_link(&out)
                    && links > 0
                {
                    // A dangling link: where it points is where the directory will be.
                    let base = out.parent().map(Path::to_path_buf).unwrap_or_default();
                    out = resolved_within(&base.join(target), links - 1);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_through_links_and_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("link")).unwrap();
        let cases = [
            (real.join("data"), real.join("data")),
            (real.join("link"), real.join("data")),
            (real.join("link/cache/new"), real.join("data/cache/new")),
            (real.join("missing/../data"), real.join("data")),
            (real.join("missing/./deeper/.."), real.join("missing")),
            (real.join("link/../link/x"), real.join("data/x")),
        ];
        for (path, want) in cases {
            assert_eq!(resolved(&path), want, "{}", path.display());
        }
    }

    #[test]
    fn grants_that_reach_the_daemons_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("srv/site")).unwrap();
        std::os::unix::fs::symlink(root.join("srv/gitauto/.gitauto"), root.join("srv/site/state")).unwrap();
        let own = OwnFiles::new(&root.join("srv/gitauto/gitauto.toml"), &root.join("srv/gitauto/.gitauto"));
        let r = root.display();
        let cases = [
            ("srv/site", None),
            ("srv/gitauto-other", None),
            ("srv/gitauto/repos", None),
            (
                "srv",
                Some(format!(
                    "contains the config file ({r}/srv/gitauto/gitauto.toml), contains data_dir \
                     ({r}/srv/gitauto/.gitauto), contains the compiled-plugin cache ({r}/srv/gitauto/.gitauto/cache)"
                )),
            ),
            (
                "srv/gitauto/.gitauto",
                Some(format!(
                    "is data_dir ({r}/srv/gitauto/.gitauto), contains the compiled-plugin cache \
                     ({r}/srv/gitauto/.gitauto/cache)"
                )),
            ),
            (
                "srv/gitauto/.gitauto/cache/x",
                Some(format!(
                    "lies inside data_dir ({r}/srv/gitauto/.gitauto), lies inside the compiled-plugin cache \
                     ({r}/srv/gitauto/.gitauto/cache)"
                )),
            ),
            (
                // Through a link, to a data_dir that does not exist yet.
                "srv/site/state/work",
                Some(format!("lies inside data_dir ({r}/srv/gitauto/.gitauto)")),
            ),
        ];
        for (granted, want) in cases {
            assert_eq!(own.covered_by(&root.join(granted)), want, "{granted}");
        }
    }

    #[test]
    fn a_config_granting_its_own_directory_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("repos")).unwrap();
        let path = root.join("gitauto.toml");
        let config = |dirs: &str| {
            format!(
                "[plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{dirs}] }}\n\n\
                 [plugins.other]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [\"repos\"] }}\n"
            )
        };
        let err = crate::config::Config::parse(&path, &config("{ path = \".\", write = true }")).unwrap_err();
        let r = root.display();
        assert_eq!(
            err.problems(),
            [format!(
                "{r}/gitauto.toml:3:20: plugin `fetch-update`: the directory grant {r}/. contains the config file \
                 ({r}/gitauto.toml), contains data_dir ({r}/.gitauto), contains the compiled-plugin cache \
                 ({r}/.gitauto/cache); grant a directory that neither contains nor lies inside the daemon's own files"
            )]
        );
        let err = crate::config::Config::parse(&path, &config("\".gitauto/cache\"")).unwrap_err();
        assert!(err.problems()[0].contains("lies inside data_dir"), "{err}");
        let fine = crate::config::Config::parse(&path, &config("\"repos\", \"/srv/repos\""));
        assert!(fine.is_ok(), "{fine:?}");
    }
}
