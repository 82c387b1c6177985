//! The daemon's own log: which records are kept (`[server] log`, or `GITAUTO_LOG`, which
//! wins) and their form (`[server] log_format`: text lines or JSON lines). `main` sets it
//! up before any config is read, with `GITAUTO_LOG` or `info`, in text; `serve` then
//! applies the config's choice, and each reload applies it again. Records go to the log
//! thread (`terminal::LogWriter`) either way.

use crate::terminal::LogWriter;
use std::sync::OnceLock;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The environment variable that overrides `[server] log`.
pub const ENV: &str = "GITAUTO_LOG";

/// The filter when neither the config nor the environment names one.
pub const DEFAULT_FILTER: &str = "info";

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line per record: time, level, target, message, `name=value` fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

impl LogFormat {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// The format called `name` in the config.
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The levels a filter may name.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Reads a filter (`info`, `gitauto=debug,tower_http=warn`), or says what is wrong with
/// it. Stricter than `EnvFilter` itself: a bare word must be a level, because a bare word
/// is otherwise taken as a target to log at every level, so a misspelt `debg` would
/// quietly log nothing of gitauto's.
pub fn parse_filter(text: &str) -> Result<EnvFilter, String> {
    if text.trim().is_empty() {
        return Err("the filter is empty; name a level such as `info`".to_owned());
    }
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', ':']);
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` is neither a level ({}) nor `target=level` such as `gitauto=debug`",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::builder().parse(text).map_err(|err| format!("`{text}` is not a log filter: {err}"))
}

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// What a running process can change about its log.
struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Output, Filtered>,
    writer: LogWriter,
    ansi: bool,
    /// `GITAUTO_LOG`, read once at start.
    from_env: Option<String>,
    /// What is applied now: (filter, format).
    applied: std::sync::Mutex<(String, LogFormat)>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// Installs the process's log, writing to `writer`, filtered by `GITAUTO_LOG` (an error
/// when it is set and invalid) or `info`, in text (with colours when `ansi`).
pub fn init(writer: LogWriter, ansi: bool) -> Result<(), String> {
    let from_env = std::env::var(ENV).ok().filter(|text| !text.trim().is_empty());
    let text = from_env.clone().unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    let filter = parse_filter(&text).map_err(|why| format!("{ENV}: {why}"))?;
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (output, output_handle) = reload::Layer::new(output(LogFormat::Text, &writer, ansi));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|err| format!("installing the log: {err}"))?;
    let _ = HANDLES.set(Handles {
        filter: filter_handle,
        output: output_handle,
        writer,
        ansi,
        from_env,
        applied: std::sync::Mutex::new((text, LogFormat::Text)),
    });
    Ok(())
}

fn output(format: LogFormat, writer: &LogWriter, ansi: bool) -> Output {
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer.clone())
            .with_ansi(ansi)
            // Plugin summaries and payload text reach the log: one record stays one line.
            .fmt_fields(crate::terminal::log_fields())
            .boxed(),
        // serde escapes every control character, so a record stays one line here too.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer.clone())
            .boxed(),
    }
}

/// Applies a config's `[server] log` and `log_format` to the running process (the filter
/// only when `GITAUTO_LOG` did not name one). Nothing when the log was not installed by
/// [`init`] (the library in a test). A change is logged once, in the new form.
pub fn apply(filter: &str, format: LogFormat) -> Result<(), String> {
    let Some(handles) = HANDLES.get() else { return Ok(()) };
    let filter = handles.from_env.as_deref().unwrap_or(filter);
    let mut applied = handles.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if applied.0 == filter && applied.1 == format {
        return Ok(());
    }
    let parsed = parse_filter(filter)?;
    if applied.1 != format {
        handles
            .output
            .reload(output(format, &handles.writer, handles.ansi && format == LogFormat::Text))
            .map_err(|err| format!("changing the log's format: {err}"))?;
    }
    if applied.0 != filter {
        handles.filter.reload(parsed).map_err(|err| format!("changing the log's filter: {err}"))?;
    }
    *applied = (filter.to_owned(), format);
    drop(applied);
    let source = if handles.from_env.is_some() { ENV } else { "[server] log" };
    tracing::info!(filter = %filter, source = %source, format = format.as_str(), "log settings applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_strictly() {
        for good in ["info", "WARN", "gitauto=debug", "info,gitauto::queue=trace", "off", "gitauto[job]=debug"] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("debg", "`debg` is neither a level"),
            ("info,verbose", "`verbose` is neither a level"),
            ("gitauto=loud", "is not a log filter"),
            (" ", "the filter is empty"),
        ] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_have_names() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("JSON"), None);
    }
}
