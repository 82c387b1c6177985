//! How a step ended: one value from the runtime through the worker and the queue to the
//! API and the CLI. It is stored, sent as JSON and printed as the same lowercase word
//! (`success`, `failure`, `skipped`, `error`), so no hop spells it again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A step's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// The plugin did what it was asked.
    Success,
    /// The plugin ran and reports that the work failed (a build broke, a check found
    /// problems).
    Failure,
    /// Nothing to do: the plugin said so, or the step's `if` was false.
    Skipped,
    /// No outcome: the plugin returned an error or was stopped (a trap, a limit, the
    /// rule's timeout), or the step's `if` or `with` could not be evaluated.
    Error,
}

impl StepStatus {
    /// Every status, in the order above.
    pub const ALL: [StepStatus; 4] = [StepStatus::Success, StepStatus::Failure, StepStatus::Skipped, StepStatus::Error];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Failure => "failure",
            StepStatus::Skipped => "skipped",
            StepStatus::Error => "error",
        }
    }

    /// The status called `name`.
    pub fn parse(name: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: tables print it with a width.
        f.pad(self.as_str())
    }
}

/// What one step cost, measured by the runtime while it ran: stored with the step and
/// shown on the job page, in the API and in `/metrics`. A step whose plugin was never
/// called (its `if` was false, its checkout could not be filled) has none. What each
/// field includes and leaves out is in docs/plugins.md, "What a step costs".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepBill {
    /// From the step's start (before filling the job's checkout, when it asked for it)
    /// to the plugin's return or trap, in microseconds.
    pub wall_us: u64,
    /// CPU time of the thread that ran the plugin, in microseconds: instantiation, the
    /// guest's code, WASI and host calls, and the confined threads git and process calls
    /// run on. Not the programs `process` runs (processes of their own), HTTP's
    /// connections (tokio's threads), nor filling the job's checkout.
    pub cpu_us: u64,
    /// The most the plugin's linear memories held together, in bytes (at most its
    /// memory limit: a refused growth is not counted).
    pub peak_memory: u64,
    /// Epoch ticks (one each 10 ms, the unit the deadline is counted in) that passed
    /// between the plugin's store being made and its return.
    pub epoch_ticks: u64,
    /// Calls to each gitauto capability (`git`, `http`, `process`, `kv`, `log`): how many, and
    /// the time spent in them. Capabilities not called are left out; so is WASI.
    pub calls: BTreeMap<String, CallBill>,
}

impl StepBill {
    /// One line for people: `wall 152 ms · cpu 3.1 ms · memory 10.1 MiB · 15 ticks ·
    /// http 3 × 12 ms · log 2 × 0.1 ms`.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("wall {}", millis(self.wall_us)),
            format!("cpu {}", millis(self.cpu_us)),
            format!("memory {:.1} MiB", self.peak_memory as f64 / (1024.0 * 1024.0)),
            format!("{} ticks", self.epoch_ticks),
        ];
        for (capability, calls) in &self.calls {
            parts.push(format!("{capability} {} × {}", calls.count, millis(calls.time_us)));
        }
        parts.join(" · ")
    }
}

/// Microseconds as milliseconds, with a decimal below 10 ms.
fn millis(us: u64) -> String {
    if us < 10_000 { format!("{:.1} ms", us as f64 / 1000.0) } else { format!("{} ms", us / 1000) }
}

/// Calls to one capability during a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBill {
    /// How many calls.
    pub count: u64,
    /// Time spent in them, in microseconds.
    pub time_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_one_word_stored_sent_and_read_back_alike() {
        let words = ["success", "failure", "skipped", "error"];
        for (status, word) in StepStatus::ALL.into_iter().zip(words) {
            assert_eq!(status.as_str(), word);
            assert_eq!(status.to_string(), word);
            assert_eq!(format!("[{status:<8}]"), format!("[{word:<8}]"));
            assert_eq!(StepStatus::parse(word), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(word));
            assert_eq!(serde_json::from_value::<StepStatus>(serde_json::json!(word)).unwrap(), status);
        }
        assert_eq!(StepStatus::parse("Success"), None);
        assert_eq!(StepStatus::parse("not run"), None);
    }

    #[test]
    fn a_bill_reads_as_one_line() {
        let mut bill =
            StepBill { wall_us: 152_400, cpu_us: 3_140, peak_memory: 10 << 20, epoch_ticks: 15, ..StepBill::default() };
        bill.calls.insert("http".into(), CallBill { count: 3, time_us: 12_000 });
        bill.calls.insert("log".into(), CallBill { count: 2, time_us: 90 });
        assert_eq!(
            bill.summary(),
            "wall 152 ms · cpu 3.1 ms · memory 10.0 MiB · 15 ticks · http 3 × 12 ms · log 2 × 0.1 ms"
        );
        let stored = serde_json::to_value(&bill).unwrap();
        assert_eq!(stored["calls"]["http"], serde_json::json!({"count": 3, "time_us": 12000}));
        assert_eq!(serde_json::from_value::<StepBill>(stored).unwrap(), bill);
    }
}
