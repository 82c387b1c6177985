//! Hostile plugin: Clones a repository from outside its grant into its writable directory, to read it there.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let (url, into) = (
            format!("file://{}", s["repo"].as_str().unwrap_or_default()),
            format!("{}/copy", s["site"].as_str().unwrap_or_default()),
        );
        Ok(match gitauto_plugin::git::Repository::clone(&url, &into, None) {
            Ok(_) => Outcome::success(format!("ESCAPED: cloned {url}")),
            Err(err) => Outcome::failure(format!("cloning {url}: {}", err.message())),
        })
    }
}

gitauto_plugin::export!(Hostile);
