//! Versions from tags: Drupal's `8.x-1.2` and `7.x-2.0-beta1`, semantic versions
//! (`1.2.0`, `v1.3.0-beta1`), and the stability each implies.

use serde::{Deserialize, Serialize};

/// A version parsed from a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {}
