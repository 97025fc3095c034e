# orderwatch: `make run` starts the demo, `make test` runs every test. Each target
# fetches what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/orderwatch
ORT_VER   := 1.24.1
ORT_DIR   := lib/onnxruntime
ORT_LIB   := $(ORT_DIR)/libonnxruntime.so.1
# sha256 of the npm tarball onnxruntime-node@1.24.1 and of the linux-x64 library in it.
ORT_TGZ_SHA256 := 57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772
ORT_LIB_SHA256 := 53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
PYTHON    := /usr/bin/python3
RUN_ARGS  ?=
# make install: the binary to $(PREFIX)/bin and ONNX Runtime to $(PREFIX)/lib/onnxruntime,
# where the binary looks for it; DESTDIR stages the tree elsewhere (packaging, tests).
PREFIX    ?= /usr/local
DESTDIR   ?=
# promtool checks deploy/prometheus. When it is missing, `make promtool` installs
# Debian's prometheus package (as root with apt-get) or else, or when that fails,
# builds the pinned promtool (Prometheus v3.16) with go install into .cache/bin.
PROMTOOL_VER  := v0.316.0
PROMTOOL_FROM ?= $(if $(and $(filter 0,$(shell id -u)),$(shell command -v apt-get)),apt,go)
PROMTOOL       = $(firstword $(wildcard $(CURDIR)/.cache/bin/promtool) $(shell command -v promtool) $(CURDIR)/.cache/bin/promtool)

export ONNXRUNTIME_LIB := $(CURDIR)/$(ORT_LIB)

.PHONY: help build install install-service systemd-analyze chromium python-ml run test check fmt vet tidy-check onnxruntime models model clean promtool alerts

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: $(ORT_LIB) ## build bin/orderwatch (and fetch ONNX Runtime when missing)
	$(GO) build -o $(BIN) ./cmd/orderwatch

install: build ## install bin/orderwatch and ONNX Runtime under PREFIX (/usr/local); DESTDIR to stage
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/orderwatch
	install -D -m 0644 $(ORT_LIB) $(DESTDIR)$(PREFIX)/lib/onnxruntime/libonnxruntime.so.1
	@echo "installed $(DESTDIR)$(PREFIX)/bin/orderwatch and ONNX Runtime $(ORT_VER) in $(DESTDIR)$(PREFIX)/lib/onnxruntime"

install-service: ## install the systemd unit, and the config and env files when missing (README: Install as a service)
	install -D -m 0644 deploy/systemd/orderwatch.service $(DESTDIR)/etc/systemd/system/orderwatch.service
	sed -i 's#/usr/local/bin/orderwatch#$(PREFIX)/bin/orderwatch#' $(DESTDIR)/etc/systemd/system/orderwatch.service
	@mkdir -p $(DESTDIR)/etc/orderwatch
	@if [ -e $(DESTDIR)/etc/orderwatch/orderwatch.yaml ]; then echo "kept $(DESTDIR)/etc/orderwatch/orderwatch.yaml"; \
	else install -m 0644 deploy/orderwatch.example.yaml $(DESTDIR)/etc/orderwatch/orderwatch.yaml; fi
	@if [ -e $(DESTDIR)/etc/orderwatch/orderwatch.env ]; then echo "kept $(DESTDIR)/etc/orderwatch/orderwatch.env"; \
	else printf '%s\n' '# orderwatch run reads these (systemd EnvironmentFile); keep this file 0600.' \
	  '# Token of the mutating API calls (approve, reject, kill switch, model activation).' 'ORDERWATCH_API_TOKEN=' \
	  '# The signing secret of each webhook, named by secret_env in the policy, e.g.:' '#ORDERWATCH_FINANCE_SECRET=' \
	  > $(DESTDIR)/etc/orderwatch/orderwatch.env && chmod 0600 $(DESTDIR)/etc/orderwatch/orderwatch.env; fi
	@echo "installed the unit in $(DESTDIR)/etc/systemd/system; then: useradd --system orderwatch, edit /etc/orderwatch/*, systemctl enable --now orderwatch"

run: build ## build and start `orderwatch run --demo` on embedded defaults (RUN_ARGS for more flags)
	ORDERWATCH_API_TOKEN="$${ORDERWATCH_API_TOKEN:-demo-token}" ./$(BIN) run --demo $(RUN_ARGS)

# Fuzz budgets are counts of executions, not durations: with a duration, Go 1.26's
# fuzz coordinator can fail a clean run with a bare "context deadline exceeded" when
# the time is up while a worker is busy (golang/go#75804, fixed in Go 1.27; it failed
# CI once on FuzzScorePoint). Each count is about 3-10 s on the 2-core machine.
FUZZ_DECODE ?= 100000x
FUZZ_REFERENCE ?= 150000x
FUZZ_SCOREPOINT ?= 50000x
# FuzzProcessBatches opens Badger for each input (~30 ms of CPU): 400 inputs are
# about 7 s; minimizing a new input is bounded the same way (it defaults to 60 s).
FUZZ_PROCESS ?= 400x

test: $(ORT_LIB) alerts systemd-analyze chromium python-ml ## run every test with the race detector, against the real ONNX Runtime, a short fuzz of the event decoder, and the alert rule tests
	$(GO) test -race -count=1 -timeout 25m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_DECODE) ./features
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMatchesReference$$' -fuzztime $(FUZZ_REFERENCE) ./features
	$(GO) test -run '^$$' -fuzz '^FuzzScorePoint$$' -fuzztime $(FUZZ_SCOREPOINT) ./actions
	$(GO) test -run '^$$' -fuzz '^FuzzProcessBatches$$' -fuzztime $(FUZZ_PROCESS) -fuzzminimizetime 20x ./process

check: fmt vet tidy-check test ## gofmt + vet + go.mod tidy + tests

fmt: ## fail when gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

tidy-check: ## fail when go mod tidy would change go.mod or go.sum
	@cp go.mod /tmp/go.mod.bak && cp go.sum /tmp/go.sum.bak && $(GO) mod tidy && \
	  if ! diff -q go.mod /tmp/go.mod.bak >/dev/null || ! diff -q go.sum /tmp/go.sum.bak >/dev/null; then \
	    cp /tmp/go.mod.bak go.mod; cp /tmp/go.sum.bak go.sum; echo "go mod tidy changes go.mod/go.sum: run it and commit"; exit 1; fi

onnxruntime: $(ORT_LIB) ## fetch ONNX Runtime $(ORT_VER) for linux-x64 from the npm registry, checked by sha256

$(ORT_LIB):
	@command -v npm >/dev/null || { echo "npm is needed to fetch ONNX Runtime (apt-get install npm), or set ONNXRUNTIME_LIB"; exit 1; }
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  echo "fetching onnxruntime-node@$(ORT_VER) from the npm registry"; \
	  (cd "$$tmp" && npm pack --silent onnxruntime-node@$(ORT_VER) >/dev/null); \
	  echo "$(ORT_TGZ_SHA256)  $$tmp/onnxruntime-node-$(ORT_VER).tgz" | sha256sum -c --quiet; \
	  tar -xzf "$$tmp/onnxruntime-node-$(ORT_VER).tgz" -C "$$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1; \
	  echo "$(ORT_LIB_SHA256)  $$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --quiet; \
	  mkdir -p $(ORT_DIR); install -m 0644 "$$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" $(ORT_LIB); \
	  echo "ONNX Runtime $(ORT_VER) installed at $(ORT_LIB)"

systemd-analyze: ## get systemd-analyze when missing (Debian's systemd package, as root), for TestSystemdUnit
	@command -v systemd-analyze >/dev/null && exit 0; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's systemd package for systemd-analyze"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
	  else echo "systemd-analyze is missing and this is not root with apt-get: install systemd, or TestSystemdUnit fails"; fi

chromium: ## get Chromium when missing (Debian's chromium package, as root), for the console's browser tests
	@{ command -v chromium || command -v chromium-browser; } >/dev/null && exit 0; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium package for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	      || echo "apt-get install chromium failed: TestConsoleInBrowser fails in CI (CI set) and skips elsewhere"; \
	  else echo "Chromium is missing and this is not root with apt-get: install chromium, or TestConsoleInBrowser fails in CI (skips elsewhere)"; fi

alerts: promtool ## check and unit-test the Prometheus alert rules (deploy/prometheus) with promtool
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml

promtool: ## get promtool when missing: Debian's prometheus package as root, else go install into .cache/bin
	@[ -x "$(PROMTOOL)" ] && exit 0; \
	  if [ "$(PROMTOOL_FROM)" = apt ]; then \
	    echo "installing Debian's prometheus package for promtool"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null && exit 0; \
	    echo "apt-get install prometheus failed: building promtool with go install instead"; \
	  fi; \
	  echo "building promtool $(PROMTOOL_VER) into .cache/bin with go install (a few minutes)"; \
	  GOBIN=$(CURDIR)/.cache/bin $(GO) install -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VER)

python-ml: ## get the trainer's Python packages when missing (Debian's python3-sklearn python3-onnx python3-numpy, as root)
	@$(PYTHON) -c 'import sklearn, onnx, numpy, scipy' 2>/dev/null && exit 0; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's python3-sklearn python3-onnx python3-numpy for the trainer"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-sklearn python3-onnx python3-numpy >/dev/null \
	      || echo "apt-get install of the trainer's packages failed: make models fails, and the trainer's tests fail in CI (CI set) and skip elsewhere"; \
	  else echo "$(PYTHON) lacks sklearn, onnx or numpy and this is not root with apt-get: install python3-sklearn python3-onnx python3-numpy, or the trainer's tests fail in CI (skip elsewhere)"; fi

models: python-ml ## simulate, replay and train: re-create models/shipped (cutoff_risk, exception_class) and print their model cards
	$(GO) build -o $(BIN) ./cmd/orderwatch
	$(PYTHON) models/train/train.py --bin $(BIN) --work .cache/train --out models/shipped

model: models ## alias of models

clean: ## remove build outputs (not data/)
	rm -rf bin
