//! Hostile plugin: Points the remote of a granted checkout at a repository outside its grant, then fetches.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let checkout = s["checkout"].as_str().unwrap_or_default();
        let config = format!("{checkout}/.git/config");
        let text = std::fs::read_to_string(&config).map_err(|err| Error::failed(format!("{config}: {err}")))?;
        let evil = format!(
            "[remote \"evil\"]\n\turl = {}\n\tfetch = +refs/heads/*:refs/remotes/evil/*\n",
            s["repo"].as_str().unwrap_or_default()
        );
        std::fs::write(&config, text + &evil).map_err(|err| Error::failed(format!("{config}: {err}")))?;
        let repo = gitauto_plugin::git::Repository::open(checkout).map_err(|err| Error::failed(err.message()))?;
        Ok(match repo.fetch("evil") {
            Ok(n) => Outcome::success(format!("ESCAPED: fetched {n} objects from outside")),
            Err(err) => Outcome::failure(err.message()),
        })
    }
}

gitauto_plugin::export!(Hostile);
