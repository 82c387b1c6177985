//! `kv`: the key-value store the plugin's grant names (`grants = { kv = "NAME" }`), kept
//! in the queue's database by `queue/kv.rs`, which checks keys, values and the store's
//! bounds. Here: the grant, checked at every call, and the step's deadline, which bounds
//! each call's wait for the database (a call still waiting then answers `unavailable`).

use crate::capability::bindings::gitauto::plugin::kv::{self as wit, Entry, KvError};
use crate::capability::meter::Capability;
use crate::capability::{StepContext, StepState};
use crate::grant::KvGrant;
use crate::queue::Queue;
use crate::queue::kv::{KvError as Refused, KvWrite};
use std::future::Future;
use std::time::Duration;

/// The store the step may use and its grant, or why it may not.
fn store(ctx: &StepContext) -> Result<(&Queue, &KvGrant), KvError> {
    let granted = ctx.grant.check_kv().map_err(|denied| KvError::Denied(denied.0))?;
    let queue = ctx.kv.as_ref().ok_or_else(|| {
        KvError::Unavailable(format!(
            "the key-value store `{}` is the daemon's: this step runs without one (a local run)",
            granted.name
        ))
    })?;
    Ok((queue, granted))
}

/// Runs a store call on the step's blocking thread, waiting at most until the step's
/// deadline. A write whose wait is cut short may still be committed after: the plugin
/// learns what happened by reading again.
fn within<T>(ctx: &StepContext, call: impl Future<Output = Result<T, Refused>>) -> Result<T, KvError> {
    let waited = tokio::runtime::Handle::current().block_on(tokio::time::timeout(ctx.remaining(), call));
    match waited {
        Err(_) => Err(KvError::Unavailable("the step's deadline passed before the key-value store answered".into())),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Refused::Invalid(why))) => Err(KvError::Invalid(why)),
        Ok(Err(Refused::Quota(why))) => Err(KvError::Quota(format!("{why} (see `gitauto kv list`)"))),
        Ok(Err(Refused::Unavailable(why))) => Err(KvError::Unavailable(why)),
    }
}

/// A write of `value` under `key`, living `ttl` milliseconds when given.
fn write(key: String, value: Vec<u8>, ttl: Option<u64>) -> KvWrite {
    KvWrite { key, value, ttl: ttl.map(Duration::from_millis) }
}

impl wit::Host for StepState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Entry>, KvError>> {
        let _call = self.ctx.meter.start(Capability::Kv, "kv.get");
        let ctx = &self.ctx;
        let read = store(ctx).and_then(|(queue, granted)| within(ctx, queue.kv_get(&granted.name, &key)));
        Ok(read.and_then(|found| match found {
            // The value is copied into the plugin's memory, which it must fit.
            Some(entry) if entry.value.len() as u64 > ctx.max_transfer => Err(KvError::Invalid(format!(
                "the value of `{key}` is {} bytes, more than this plugin's memory limit of {}",
                entry.value.len(),
                crate::config::format_size(ctx.max_transfer)
            ))),
            found => Ok(found.map(|entry| Entry { value: entry.value, version: entry.version })),
        }))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl: Option<u64>) -> wasmtime::Result<Result<u64, KvError>> {
        let _call = self.ctx.meter.start(Capability::Kv, "kv.set");
        let ctx = &self.ctx;
        Ok(store(ctx).and_then(|(queue, granted)| {
            within(ctx, queue.kv_set(&granted.name, granted.limits, write(key, value, ttl)))
        }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        let _call = self.ctx.meter.start(Capability::Kv, "kv.delete");
        let ctx = &self.ctx;
        Ok(store(ctx).and_then(|(queue, granted)| within(ctx, queue.kv_delete(&granted.name, &key))))
    }

    fn list_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, KvError>> {
        let _call = self.ctx.meter.start(Capability::Kv, "kv.list-keys");
        let ctx = &self.ctx;
        let listed = store(ctx)
            .and_then(|(queue, granted)| within(ctx, queue.kv_list(&granted.name, &prefix, after.as_deref(), limit)));
        Ok(listed.map(|entries| entries.into_iter().map(|entry| entry.key).collect()))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl: Option<u64>,
    ) -> wasmtime::Result<Result<Option<u64>, KvError>> {
        let _call = self.ctx.meter.start(Capability::Kv, "kv.compare-and-swap");
        let ctx = &self.ctx;
        Ok(store(ctx).and_then(|(queue, granted)| {
            within(ctx, queue.kv_compare_and_swap(&granted.name, granted.limits, expected, write(key, value, ttl)))
        }))
    }
}
