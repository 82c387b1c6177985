//! What several hostile plugins (`tests/hostile/*`) share.

use gitauto_plugin::shell::{Command, Output};

/// Runs `program` with `args` through the shell capability, with a 2 s timeout; the
/// error is the capability's message.
pub fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    let command = Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        cwd: None,
        env: vec![],
        timeout_ms: Some(2_000),
        stdin: None,
    };
    gitauto_plugin::shell::run(&command).map_err(|err| err.message())
}
