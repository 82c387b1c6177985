//! Text bound for a terminal. Log lines, summaries, outputs and errors come from plugins
//! (and payloads), so before the CLI prints them or the daemon logs them, every character
//! that could drive the operator's terminal or forge a line is shown as a visible escape.
//! What is printed, and where, stays with `main` and the printers.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

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

/// Log lines waiting for the log thread at most; a logger that is further behind waits
/// (lines are never dropped).
const LOG_BACKLOG: usize = 4096;

/// What the log thread receives.
enum LogMessage {
    /// One formatted record.
    Line(Vec<u8>),
    /// Write out what came before, then answer.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The daemon's log destination (`tracing_subscriber`'s `with_writer`): each record goes to
/// a thread of its own, which writes records to `out` through a buffer and flushes it
/// whenever no record waits, so a burst of deliveries costs one write per burst instead of
/// one per record, and none on the threads that serve requests.
#[derive(Clone)]
pub struct LogWriter {
    lines: std::sync::mpsc::SyncSender<LogMessage>,
}

impl LogWriter {
    /// Starts the thread that writes records to `out`.
    pub fn start(out: impl std::io::Write + Send + 'static) -> std::io::Result<Self> {
        let (lines, records) = std::sync::mpsc::sync_channel(LOG_BACKLOG);
        std::thread::Builder::new().name("gitauto-log".into()).spawn(move || write_records(out, records))?;
        Ok(Self { lines })
    }

    /// Returns once every record logged before was written out.
    pub fn flush(&self) {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self.lines.send(LogMessage::Flush(done)).is_ok() {
            let _ = written.recv();
        }
    }
}

/// Flushes its [`LogWriter`] when dropped: at the end of `main`, after everything else.
pub struct FlushOnDrop(pub LogWriter);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// The log thread: writes records as they come, flushing when none waits.
fn write_records(out: impl std::io::Write, records: std::sync::mpsc::Receiver<LogMessage>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        let mut answers = Vec::new();
        while let Some(message) = next.take() {
            match message {
                LogMessage::Line(line) => {
                    // A log that cannot be written has nowhere to say so.
                    let _ = out.write_all(&line);
                }
                LogMessage::Flush(answer) => answers.push(answer),
            }
            next = records.try_recv().ok();
        }
        let _ = out.flush();
        for answer in answers {
            let _ = answer.send(());
        }
    }
}

/// One record on its way to the log thread (sent whole when dropped).
pub struct LogRecord<'a> {
    writer: &'a LogWriter,
    line: Vec<u8>,
}

impl std::io::Write for LogRecord<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogRecord<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            let _ = self.writer.lines.send(LogMessage::Line(std::mem::take(&mut self.line)));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogRecord<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogRecord { writer: self, line: Vec::new() }
    }
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

    #[test]
    fn the_log_thread_writes_every_record_in_order_by_the_time_flush_returns() {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let log = LogWriter::start(Writer(written.clone())).unwrap();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).without_time().with_writer(log.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            for n in 0..10_000 {
                tracing::info!(n, "accepted");
            }
        });
        log.flush();
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let numbers: Vec<usize> = text.lines().map(|line| line.rsplit("n=").next().unwrap().parse().unwrap()).collect();
        assert_eq!(numbers, (0..10_000).collect::<Vec<_>>());
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
