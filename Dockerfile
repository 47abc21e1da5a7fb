# The kfauth module as an OCI image that Istio's WasmPlugin pulls (`url: oci://...`).
# Istio accepts a single-layer image holding `plugin.wasm` at its root (the
# "compat" variant of the Wasm image spec). Build with `make image` after
# `make build`; this needs Docker, which the CI machines do not have.
FROM scratch
LABEL org.opencontainers.image.title="kfauth" \
      org.opencontainers.image.description="In-proxy JWT authentication and Kubernetes authorization for Kubeflow (Proxy-Wasm)" \
      module.wasm.image/variant="compat"
COPY target/wasm32-wasip1/release/kfauth.wasm ./plugin.wasm
