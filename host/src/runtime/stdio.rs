//! The guest's stdout and stderr, line by line into the step's log (under its quota),
//! so a plugin's `println!` or a Python traceback ends up in the job record.

use crate::capability::log::{Level, StepLog};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes held waiting for a newline before they are logged as a line anyway.
const MAX_PENDING: usize = 8 * 1024;

/// One of the guest's output streams.
#[derive(Clone)]
pub struct LogStream {
    inner: Arc<Mutex<Lines>>,
}

struct Lines {
    log: StepLog,
    level: Level,
    pending: Vec<u8>,
}

impl LogStream {
    /// A stream whose lines go to `log` at `level`.
    pub fn new(log: StepLog, level: Level) -> Self {
        Self { inner: Arc::new(Mutex::new(Lines { log, level, pending: Vec::new() })) }
    }

    fn push(&self, bytes: &[u8]) {
        let mut lines = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.log.is_full() {
            lines.pending.clear();
            return;
        }
        lines.pending.extend_from_slice(bytes);
        while let Some(end) = lines.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = lines.pending.drain(..=end).collect();
            lines.emit(&line[..end]);
        }
        if lines.pending.len() > MAX_PENDING {
            let line = std::mem::take(&mut lines.pending);
            lines.emit(&line);
        }
    }

    /// Logs what is left without a final newline.
    pub fn flush_rest(&self) {
        let mut lines = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let rest = std::mem::take(&mut lines.pending);
        if !rest.is_empty() {
            lines.emit(&rest);
        }
    }
}

impl Lines {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.log.line(self.level, text.trim_end_matches('\r'));
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
