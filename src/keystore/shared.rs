//! The proxy-wasm shared-data interface, as the key store needs it: values with
//! a compare-and-swap token, shared by every VM of the same `vm_id` in one Envoy.

use std::collections::HashMap;

/// A failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Someone wrote the key since we read it: read again and retry.
    CasMismatch,
    /// The host refused for another reason.
    Refused,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteError::CasMismatch => "written by another VM since it was read",
            WriteError::Refused => "refused by the host",
        })
    }
}

impl std::error::Error for WriteError {}

pub trait SharedData {
    /// The value and its CAS token, or `None` when the key was never written.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value`; with `cas`, only if the key is still at that token.
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError>;
}

/// An in-memory stand-in with Envoy's semantics (every write bumps the token;
/// a write with a stale token fails), so several VMs can be simulated in tests.
#[derive(Debug, Default)]
pub struct MemorySharedData {
    entries: HashMap<String, (Vec<u8>, u32)>,
}

impl SharedData for MemorySharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        let current = self.entries.get(key).map_or(0, |(_, token)| *token);
        if let Some(expected) = cas {
            if expected != 0 && expected != current {
                return Err(WriteError::CasMismatch);
            }
        }
        self.entries.insert(
            key.to_string(),
            (value.to_vec(), current.wrapping_add(1).max(1)),
        );
        Ok(())
    }
}
