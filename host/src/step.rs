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
/// shown on the job page, in the API and in `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepBill {
    /// From the store's creation to the plugin's return, in microseconds.
    pub wall_us: u64,
    /// CPU time of the thread that ran the plugin and its host calls, in microseconds.
    pub cpu_us: u64,
    /// The largest the plugin's linear memories were together, in bytes.
    pub peak_memory: u64,
    /// Epoch ticks that passed while it ran (the deadline is counted in them).
    pub epoch_ticks: u64,
    /// Host calls per capability (`git`, `http`, `shell`, `log`, `wasi`): how many, and
    /// the time spent in them.
    pub calls: BTreeMap<String, CallBill>,
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
}
