//! Comment text in the event: the command a comment gives (its first non-empty line,
//! when it starts with `/`) and the bound on the body kept in the event. The forges
//! fill [`Comment`](super::Comment)s; this module decides what a command is, once for all.

use super::Command;

/// The most of a comment's body the event keeps (64 KiB): comment text is anyone's, and
/// the event is stored and routed; the full text stays in the payload plugins receive.
pub const MAX_BODY: usize = 64 * 1024;

/// The longest command line read; a longer first line gives no command.
pub const MAX_LINE: usize = 1024;

/// The comment body as the event keeps it: at most [`MAX_BODY`] bytes, cut at a
/// character boundary.
pub fn bounded_body(body: &str) -> String {
    if body.len() <= MAX_BODY {
        return body.to_owned();
    }
    let cut = (0..=MAX_BODY).rev().find(|&at| body.is_char_boundary(at)).unwrap_or(0);
    body[..cut].to_owned()
}

/// The command `body` gives: its first non-empty line, trimmed, when it starts with `/`
/// followed by a word, split on whitespace. A line longer than [`MAX_LINE`] bytes or
/// holding a control character gives none (nothing a rule could match on safely).
pub fn parse(body: &str) -> Option<Command> {
    let line = body.lines().map(str::trim).find(|line| !line.is_empty())?;
    if !line.starts_with('/') || line.len() > MAX_LINE || line.chars().any(char::is_control) {
        return None;
    }
    let mut words = line.split_whitespace();
    let name = words.next()?;
    if name.len() < 2 {
        return None;
    }
    Some(Command { name: name.to_owned(), args: words.map(str::to_owned).collect(), line: line.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_gives_at_most_its_first_lines_command(body in "\\PC{0,40}(\n\\PC{0,40}){0,3}") {
            if let Some(command) = parse(&body) {
                let first = body.lines().map(str::trim).find(|line| !line.is_empty()).unwrap();
                prop_assert_eq!(&command.line, first);
                prop_assert!(command.name.starts_with('/') && command.name.len() > 1);
                let words: Vec<&str> = first.split_whitespace().collect();
                prop_assert_eq!(&words[1..], command.args.as_slice());
            }
        }
    }

    #[test]
    fn commands_are_read_from_the_first_non_empty_line() {
        /// (comment body, (name, args, line) of the command it gives)
        type Row<'a> = (&'a str, Option<(&'a str, &'a [&'a str], &'a str)>);
        let rows: &[Row] = &[
            ("/deploy staging", Some(("/deploy", &["staging"], "/deploy staging"))),
            (
                "\n\n  /deploy   staging  eu-west\r\nthanks!",
                Some(("/deploy", &["staging", "eu-west"], "/deploy   staging  eu-west")),
            ),
            ("/ok-to-test", Some(("/ok-to-test", &[], "/ok-to-test"))),
            ("\t/retest\n/deploy prod", Some(("/retest", &[], "/retest"))),
            ("please /deploy staging", None),
            ("Looks good\n/deploy staging", None),
            ("", None),
            ("   \n \n", None),
            ("/", None),
            ("/ deploy", None),
            ("// comment", Some(("//", &["comment"], "// comment"))),
            ("/deploy \u{1b}[31mred", None),
        ];
        for (body, want) in rows {
            let got = parse(body);
            let got = got
                .as_ref()
                .map(|c| (c.name.as_str(), c.args.iter().map(String::as_str).collect::<Vec<_>>(), c.line.as_str()));
            let want = want.map(|(name, args, line)| (name, args.to_vec(), line));
            assert_eq!(got, want, "{body:?}");
        }
        assert_eq!(parse(&format!("/x {}", "a".repeat(MAX_LINE))), None, "an over-long line gives no command");
    }

    #[test]
    fn bodies_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_body("short"), "short");
        let long = "é".repeat(MAX_BODY);
        let cut = bounded_body(&long);
        assert_eq!(cut.len(), MAX_BODY);
        assert!(long.starts_with(&cut));
        let odd = format!("x{}", "é".repeat(MAX_BODY / 2));
        assert_eq!(bounded_body(&odd).len(), MAX_BODY - 1, "the last whole character before the limit");
    }
}
