//! Text bound for a terminal. Log lines, summaries, outputs and errors come from plugins
//! (and payloads), so before the CLI prints them or the daemon logs them, every character
//! that could drive the operator's terminal or forge a line is shown as a visible escape.
//! What is printed, and where, stays with `main` and the printers.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` made safe to print on one terminal line: C0 controls (ESC, BEL, CR, backspace,
/// ...), DEL, C1 controls (the one-byte CSI U+009B, OSC U+009D, ...), bidirectional
/// overrides and isolates, and line separators become visible escapes such as `\x1b`,
/// `\u{9b}` and `\u{202e}`; a newline becomes `\n`. Tabs and all other text pass unchanged.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !needs_escape(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Whether `c` must not reach a terminal as it is.
fn needs_escape(c: char) -> bool {
    match c {
        '\t' => false,
        // C0, DEL and C1 (`char::is_control` is exactly these ranges).
        c if c.is_control() => true,
        // Arabic letter mark, left-to-right and right-to-left marks.
        '\u{061c}' | '\u{200e}' | '\u{200f}' => true,
        // Line and paragraph separators: some viewers break lines there.
        '\u{2028}' | '\u{2029}' => true,
        // Bidirectional embeddings and overrides, then isolates: they reorder what follows.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// The daemon's log formatting of event fields (`tracing_subscriber`'s `fmt_fields`):
/// like the default (the message bare, other fields `name=value`, space-separated), with
/// every value passed through [`escape`], so a plugin's summary or a payload's text
/// logged by the daemon cannot end its line and forge the next one.
pub fn log_fields() -> impl for<'writer> tracing_subscriber::fmt::FormatFields<'writer> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(
        |writer: &mut tracing_subscriber::fmt::format::Writer<'_>,
         field: &tracing::field::Field,
         value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            match field.name() {
                "message" => write!(writer, "{}", escape(&text)),
                name => write!(writer, "{name}={}", escape(&text)),
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        let cases = [
            ("plain text, tabs\tand ünïcödé ✓", "plain text, tabs\tand ünïcödé ✓"),
            ("", ""),
            ("\u{1b}[2J", "\\x1b[2J"),
            ("\u{1b}]0;owned\u{7}", "\\x1b]0;owned\\x07"),
            ("\u{1b}]52;c;aGVsbG8=\u{1b}\\", "\\x1b]52;c;aGVsbG8=\\x1b\\"),
            ("bell\u{7}", "bell\\x07"),
            ("back\u{8}space", "back\\x08space"),
            ("nul\0", "nul\\x00"),
            ("del\u{7f}", "del\\x7f"),
            ("first\nforged line", "first\\nforged line"),
            ("carriage\rreturn", "carriage\\rreturn"),
            ("\r\n", "\\r\\n"),
            ("c1 csi \u{9b}2J", "c1 csi \\u{9b}2J"),
            ("c1 osc \u{9d}0;t\u{9c}", "c1 osc \\u{9d}0;t\\u{9c}"),
            ("nel \u{85}", "nel \\u{85}"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            ("\u{202a}\u{202b}\u{202c}\u{202d}", "\\u{202a}\\u{202b}\\u{202c}\\u{202d}"),
            ("\u{2066}\u{2067}\u{2068}\u{2069}", "\\u{2066}\\u{2067}\\u{2068}\\u{2069}"),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("a\u{2028}b\u{2029}c", "a\\u{2028}b\\u{2029}c"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn escaped_text_has_no_control_characters_and_one_line() {
        let every: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = escape(&every);
        assert!(!shown.chars().any(|c| c != '\t' && needs_escape(c)), "{shown:?}");
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn clean_text_is_not_copied() {
        assert!(matches!(escape("nothing to do"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_daemon_log_cannot_be_given_forged_lines() {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_ansi(false)
            .without_time()
            .with_writer(move || Writer(sink.clone()))
            .finish();
        let summary = "done\n2026-01-01T00:00:00Z  INFO gitauto: forged \u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(job = 7, rule = %"docs\nx", plugin = "p\u{7}", "{summary}");
        });
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
        assert!(text.contains("done\\n2026-01-01T00:00:00Z  INFO gitauto: forged \\x1b[2J"), "{text}");
        assert!(text.contains("job=7 rule=docs\\nx plugin=\"p\\u{7}\""), "{text}");
    }

    /// A log destination the test reads back.
    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
