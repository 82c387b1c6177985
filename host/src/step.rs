//! How a step ended: one value from the runtime through the worker and the queue to the
//! API and the CLI. It is stored, sent as JSON and printed as the same lowercase word
//! (`success`, `failure`, `skipped`, `error`), so no hop spells it again.

use serde::{Deserialize, Serialize};
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
