//! Secrets as the config writes them: `${ENV_VAR}`, `file:PATH`, `generate:PATH` or
//! (discouraged) literally, resolved at load into a [`Secret`], which is never printed.

#![allow(clippy::disallowed_methods, reason = "secrets resolve while the config loads (see Config::load)")]

use crate::secret::Secret;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Resolves a secret reference whose `${VAR}`s are already expanded. Relative paths are
/// taken from `base` (the config file's directory).
///
/// - `file:PATH`: the file's content, without a trailing newline;
/// - `generate:PATH`: like `file:`, but a missing file is created with a random secret
///   (mode 0600), so a fresh install has a secret without one being committed anywhere;
/// - anything else: the text itself.
pub fn resolve(reference: &str, base: &Path) -> Result<Secret, String> {
    let value = if let Some(path) = reference.strip_prefix("file:") {
        read(&base.join(path))?
    } else if let Some(path) = reference.strip_prefix("generate:") {
        let path = base.join(path);
        if path.exists() { read(&path)? } else { generate(&path)? }
    } else {
        reference.to_owned()
    };
    if value.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(Secret::new(value))
}

fn read(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("reading secret file {}: {err}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn generate(path: &PathBuf) -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| format!("no randomness for a new secret: {err}"))?;
    let secret = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|err| format!("creating secret file {}: {err}", path.display()))?;
    writeln!(file, "{secret}").map_err(|err| format!("writing secret file {}: {err}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated a new random secret; the other side (the forge's webhook settings, or an API client) needs it from this file");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "from-file\n").unwrap();
        assert_eq!(resolve("literal", dir.path()).unwrap().expose(), "literal");
        assert_eq!(resolve("file:s", dir.path()).unwrap().expose(), "from-file");
        assert!(resolve("file:missing", dir.path()).unwrap_err().contains("reading secret file"));
        assert_eq!(resolve("", dir.path()).unwrap_err(), "the secret is empty");

        let generated = resolve("generate:sub/new", dir.path()).unwrap();
        assert_eq!(generated.expose().len(), 64);
        // The second load reads what the first one wrote.
        assert_eq!(resolve("generate:sub/new", dir.path()).unwrap(), generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("sub/new")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
