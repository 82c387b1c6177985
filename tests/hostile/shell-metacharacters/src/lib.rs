//! Hostile plugin: Passes shell metacharacters in the arguments of a granted program, hoping for a shell.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::run;
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        let args = ["; id", "$(id)", "`id`", "| id", "&& id", "> /tmp/x"];
        let out = run("echo", &args).map_err(Error::failed)?;
        let expected = args.join(" ") + "\n";
        if out.stdout != expected {
            return Ok(Outcome::success(format!("ESCAPED: a shell interpreted the arguments: {:?}", out.stdout)));
        }
        Ok(Outcome::failure(format!("no shell: echo printed its arguments verbatim: {}", out.stdout.trim_end())))
    }
}

gitauto_plugin::export!(Hostile);
