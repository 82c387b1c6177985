//! Every WASI call that can wait is bounded by the step's deadline. A guest waiting in
//! host code is out of reach of the epoch interrupt, so an unbounded wait would hold its
//! worker thread for ever: a clock subscription for a day, or (since `wasi:http`) a
//! write to a request body that nothing reads, or a poll on it. The clock's
//! subscriptions are refused up front when they would end after the deadline; the
//! waits themselves (`poll`, `pollable.block`, the streams' `blocking-*` calls) run
//! under a timeout of the time left, and a wait that reaches it stops the step, as the
//! deadline would.

use super::{StoreData, WaitPastDeadline};
use std::time::Duration;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::streams::{Host as _, StreamError as WitStreamError};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi_io::bindings::wasi::io::streams::{HostInputStream as _, HostOutputStream as _};

/// WASI's own interfaces whose waits are replaced here.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// A plugin waited in a WASI call until its deadline.
#[derive(Debug)]
pub struct BlockedPastDeadline {
    /// The call, e.g. `output-stream.blocking-write-and-flush`.
    pub call: &'static str,
}

impl std::fmt::Display for BlockedPastDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it was still waiting in `{}` when its time ran out", self.call)
    }
}

impl std::error::Error for BlockedPastDeadline {}

/// Replaces WASI's waiting calls in `linker` with ones the step's deadline bounds.
pub(super) fn bound(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    bound_clock(linker)?;
    bound_poll(linker)?;
    bound_streams(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn bound_clock(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host;

    fn subscribe(state: &mut StoreData, wait: Duration) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let left = state.step.ctx.remaining();
        if wait > left {
            return Err(WaitPastDeadline { wait, left }.into());
        }
        Ok((state.clocks().subscribe_duration(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX))?,))
    }

    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store: StoreContextMut<'_, StoreData>, (nanos,): (u64,)| {
        subscribe(store.data_mut(), Duration::from_nanos(nanos))
    })?;
    clock.func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, StoreData>, (when,): (u64,)| {
        let state = store.data_mut();
        let now = state.clocks().now()?;
        subscribe(state, Duration::from_nanos(when.saturating_sub(now)))
    })?;
    Ok(())
}

fn bound_poll(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, StoreData>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let (table, left) = table(&mut store);
            Ok((bounded("poll", left, table.poll(pollables))??,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, StoreData>, (pollable,): (Resource<DynPollable>,)| {
            let (table, left) = table(&mut store);
            bounded("pollable.block", left, table.block(pollable))??;
            Ok(())
        },
    )?;
    Ok(())
}

fn bound_streams(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: StoreContextMut<'_, StoreData>, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let (table, left) = table(&mut store);
            let call = "output-stream.blocking-write-and-flush";
            let done = bounded(call, left, table.blocking_write_and_flush(stream, bytes))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store: StoreContextMut<'_, StoreData>, (stream, len): (Resource<DynOutputStream>, u64)| {
            let (table, left) = table(&mut store);
            let call = "output-stream.blocking-write-zeroes-and-flush";
            let done = bounded(call, left, table.blocking_write_zeroes_and_flush(stream, len))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store: StoreContextMut<'_, StoreData>, (stream,): (Resource<DynOutputStream>,)| {
            let (table, left) = table(&mut store);
            let done = bounded("output-stream.blocking-flush", left, table.blocking_flush(stream))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store: StoreContextMut<'_, StoreData>,
         (to, from, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let (table, left) = table(&mut store);
            let done = bounded("output-stream.blocking-splice", left, table.blocking_splice(to, from, len))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store: StoreContextMut<'_, StoreData>, (stream, len): (Resource<DynInputStream>, u64)| {
            let (table, left) = table(&mut store);
            let done = bounded("input-stream.blocking-read", left, table.blocking_read(stream, len))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store: StoreContextMut<'_, StoreData>, (stream, len): (Resource<DynInputStream>, u64)| {
            let (table, left) = table(&mut store);
            let done = bounded("input-stream.blocking-skip", left, table.blocking_skip(stream, len))?;
            Ok((wit_result(table, done)?,))
        },
    )?;
    Ok(())
}

/// The step's resource table, and the time it has left.
fn table<'a>(store: &'a mut StoreContextMut<'_, StoreData>) -> (&'a mut ResourceTable, Duration) {
    let state = store.data_mut();
    let left = state.step.ctx.remaining();
    (&mut state.step.table, left)
}

/// Waits for `wait` on the step's thread (a blocking thread of the daemon's runtime),
/// at most `left`; past it, the step stops.
#[allow(clippy::disallowed_methods, reason = "a step runs on a blocking thread, never a tokio worker")]
fn bounded<T>(call: &'static str, left: Duration, wait: impl Future<Output = T>) -> wasmtime::Result<T> {
    tokio::runtime::Handle::current()
        .block_on(tokio::time::timeout(left, wait))
        .map_err(|_| BlockedPastDeadline { call }.into())
}

/// A stream call's result as WASI gives it to the guest (a trap stays a trap).
fn wit_result<T>(table: &mut ResourceTable, result: StreamResult<T>) -> wasmtime::Result<Result<T, WitStreamError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(table.convert_stream_error(err)?)),
    }
}
