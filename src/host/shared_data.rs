//! Envoy's shared data (one store per `vm_id`, shared by every worker's VM)
//! behind the core's `SharedData` trait.

use crate::keystore::shared::{SharedData, WriteError};
use crate::proxy_abi::{self, Status};

pub struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        proxy_abi::get_shared_data(key).ok().flatten()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        match proxy_abi::set_shared_data(key, value, cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(WriteError::CasMismatch),
            Err(_) => Err(WriteError::Refused),
        }
    }
}
