//! What most scenarios need: Envoy with kfauth in front of an echo upstream.

use std::ops::Deref;

use serde_json::Value;

use crate::bootstrap::EnvoySettings;
use crate::echo::EchoServer;
use crate::envoy::Envoy;

/// Envoy (with a given pluginConfig) in front of its own echo upstream.
/// Dereferences to [`Envoy`] for requests and logs.
pub struct Gateway {
    // Field order matters: Envoy goes down before its upstream.
    pub envoy: Envoy,
    pub echo: EchoServer,
}

impl Gateway {
    /// Starts with `plugin_config` and no extra clusters.
    pub fn start(plugin_config: Value) -> Gateway {
        Gateway::start_with(plugin_config, |settings| settings)
    }

    /// Starts with `plugin_config`; `customize` may add clusters etc.
    pub fn start_with(
        plugin_config: Value,
        customize: impl FnOnce(EnvoySettings) -> EnvoySettings,
    ) -> Gateway {
        let echo = EchoServer::start();
        let settings = customize(EnvoySettings::for_test(plugin_config, echo.port()));
        let envoy = Envoy::start(&settings);
        Gateway { envoy, echo }
    }

    /// Starts Envoy with a configuration it must refuse; returns its log.
    pub fn start_expect_rejected(plugin_config: Value) -> String {
        let echo = EchoServer::start();
        Envoy::start_expect_rejected(&EnvoySettings::for_test(plugin_config, echo.port()))
    }
}

impl Deref for Gateway {
    type Target = Envoy;

    fn deref(&self) -> &Envoy {
        &self.envoy
    }
}
