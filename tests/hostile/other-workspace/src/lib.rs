//! Hostile plugin: Looks for another job's workspace: by climbing out of its own `/tmp`, and by the host path under the daemon's data directory.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        if s["hold"].as_bool().unwrap_or(false) {
            // The victim: holds a secret in its own workspace while the thief looks.
            std::fs::write("/tmp/secret.txt", "held secret").map_err(|err| Error::failed(format!("/tmp: {err}")))?;
            #[allow(clippy::disallowed_methods, reason = "a guest that must stay running")]
            std::thread::sleep(std::time::Duration::from_millis(s["ms"].as_u64().unwrap_or(3_000)));
            return Ok(Outcome::success("held"));
        }
        // The thief: its own workspace works; every other job's is out of reach.
        std::fs::write("/tmp/mine.txt", "mine").map_err(|err| Error::failed(format!("own workspace: {err}")))?;
        let work = format!("{}/work", s["data_dir"].as_str().unwrap_or_default());
        if let Ok(entries) = std::fs::read_dir(&work) {
            return Ok(Outcome::success(format!("ESCAPED: listed {work}: {} entries", entries.count())));
        }
        let mut first_error = None;
        for job in 1..=100 {
            for path in [format!("/tmp/../job-{job}-1/secret.txt"), format!("{work}/job-{job}-1/secret.txt")] {
                match std::fs::read_to_string(&path) {
                    Ok(text) => return Ok(Outcome::success(format!("ESCAPED: read {path}: {text}"))),
                    Err(err) => {
                        first_error.get_or_insert(format!("reading {path}: {err}"));
                    }
                }
            }
        }
        Ok(Outcome::failure(format!("no other workspace readable; first refusal: {}", first_error.unwrap_or_default())))
    }
}

gitauto_plugin::export!(Hostile);
