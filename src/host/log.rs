//! Log lines. Envoy prefixes them with the plugin name (`wasm log kfauth`).

use super::abi;
use proxy_wasm::types::LogLevel;

pub fn info(message: &str) {
    let _ = abi::log(LogLevel::Info, message);
}

pub fn warn(message: &str) {
    let _ = abi::log(LogLevel::Warn, message);
}

pub fn error(message: &str) {
    let _ = abi::log(LogLevel::Error, message);
}

pub fn debug(message: &str) {
    let _ = abi::log(LogLevel::Debug, message);
}
