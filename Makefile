# edge-agent. `make help` lists the targets; the README's two commands come first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
QEMU_ARM ?= qemu-arm-static -cpu arm1176

.DEFAULT_GOAL := all
.PHONY: all help demo test test-arm build build-all vet fmt-check clean

all: build-all ## (default) static binaries for every target

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

demo: build ## run the agent against a local TLS broker on simulated GPIO; stops by itself
	$(GO) run ./cmd/edge-demo -agent bin/edge-agent

test: vet fmt-check build-all ## unit + integration tests (needs mosquitto), race detector, store and hw on emulated armv6
	$(GO) test -race -count=1 ./...
	$(MAKE) test-arm

test-arm: ## store and hardware tests on emulated 32-bit ARM (needs qemu-user-static)
	GOARCH=arm GOARM=6 CGO_ENABLED=0 $(GO) test -count=1 -exec '$(QEMU_ARM)' ./store/... ./hw/...

build: ## bin/edge-agent for this machine
	$(BUILD) -o bin/edge-agent ./cmd/edge-agent

build-all: build ## static binaries for linux/amd64, linux/arm (GOARM=6) and linux/arm64 in bin/
	GOOS=linux GOARCH=amd64 $(BUILD) -o bin/edge-agent-linux-amd64 ./cmd/edge-agent
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o bin/edge-agent-linux-armv6 ./cmd/edge-agent
	GOOS=linux GOARCH=arm64 $(BUILD) -o bin/edge-agent-linux-arm64 ./cmd/edge-agent
	@ls -l bin/edge-agent-linux-* | awk '{printf "%-32s %6.2f MB\n", $$9, $$5/1e6}'

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

clean: ## remove build output
	rm -rf bin
