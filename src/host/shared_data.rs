//! Envoy's shared data (one store per `vm_id`, shared by every worker's VM)
//! behind the core's `SharedData` trait.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::keystore::shared::{SharedData, WriteError};

pub struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(WriteError::CasMismatch),
            Err(_) => Err(WriteError::Refused),
        }
    }
}
