# edge-agent. `make help` lists the targets; the README's two commands come first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The TLS handshake's public-key crypto runs once per connection, never per
# message (records are AES-GCM or ChaCha20, which keep their inlining):
# built without inlining, the armv6 binary is 192 KB smaller, which rules,
# the daemon's structure and the hostile-input bounds needed to stay under
# 8,000,000 bytes. (ARM binaries grow in 64 KiB steps: a few KB of code can
# cost a whole step.)
HANDSHAKE_CRYPTO := math/big crypto/rsa crypto/ecdsa crypto/elliptic crypto/ed25519 crypto/ecdh crypto/mlkem \
	crypto/internal/fips140/rsa crypto/internal/fips140/ecdsa crypto/internal/fips140/nistec/... \
	crypto/internal/fips140/edwards25519/... crypto/internal/fips140/bigmod crypto/internal/fips140/mlkem \
	crypto/internal/fips140/ecdh
# The same for what runs per connection, per command or per sink delivery,
# never per stored message: the handshake's hashes and key schedule, the
# syscalls of process spawning and mmap, JSON and reflection (commands,
# status, rules; json.Valid's scanner, the one JSON call per message, is a
# loop of indirect calls that inlining barely touches), rules, sinks and
# retry pacing. Together about 24 KB, which sinks needed.
OFF_PATH := golang.org/x/sys/... syscall os/user encoding/base64 encoding/hex reflect encoding/json \
	crypto/sha256 crypto/sha512 crypto/sha1 crypto/md5 crypto/hmac crypto/internal/fips140/sha256 \
	crypto/internal/fips140/sha512 crypto/internal/fips140/sha3 crypto/internal/fips140/hmac \
	crypto/internal/fips140/hkdf crypto/internal/fips140/tls12 crypto/internal/fips140/tls13 \
	github.com/edge-agent/edge-agent/agent/sinks github.com/edge-agent/edge-agent/agent/rules \
	github.com/edge-agent/edge-agent/agent/backoff
# What runs per system call, per TLS record or per log line, not per
# message: the socket and file wrappers under paho's buffered reads and
# bbolt's writes (one read carries many messages, one fdatasync a whole
# commit), crypto/tls's record layer (a record carries many messages under
# load; the AES-GCM and ChaCha20 under it keep their inlining), time's
# formatting and log/slog (the per-message log line is sampled). Built
# without inlining they leave the armv6 binary two 64 KiB steps smaller,
# which inputs and metrics needed (CPU per message measured in the commits).
PER_SYSCALL := net internal/poll os time log/slog crypto/tls
# Code off the per-message path is built without inlining: what runs once
# at start (config, bootstrap, certificates, the CLI), at a human's pace (the
# control socket, LEDs and relays) or never on a gateway (paho's websocket
# transport, compression). The ARM binary is ~200 KB smaller, under the 8 MB
# the field's update links are sized for; the per-message path (paho, TLS
# records, bbolt, the writer) keeps its inlining. (fmt and log/slog were
# tried too: 131 KB more, but draining cost 25% more CPU; make bench.)
NOINLINE := github.com/edge-agent/edge-agent/cmd/edge-agent \
	github.com/edge-agent/edge-agent/agent/config github.com/edge-agent/edge-agent/agent/bootstrap \
	github.com/edge-agent/edge-agent/agent/control github.com/edge-agent/edge-agent/hw/... periph.io/... \
	github.com/pelletier/go-toml/v2/... github.com/gorilla/websocket golang.org/x/net/... \
	net/http/... net/url net/textproto mime/... compress/... vendor/... \
	crypto/x509 crypto/x509/pkix encoding/asn1 encoding/pem flag text/tabwriter \
	os/signal $(HANDSHAKE_CRYPTO) $(OFF_PATH) $(PER_SYSCALL)
GCFLAGS := $(foreach p,$(NOINLINE),-gcflags=$(p)=-l)
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath $(GCFLAGS) -ldflags '$(LDFLAGS)'
QEMU_ARM ?= qemu-arm-static -cpu arm1176

.DEFAULT_GOAL := all
.PHONY: all help demo deps test test-arm build build-all vet fmt-check clean dist test-field

all: build-all ## (default) static binaries for every target

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

demo: build ## run the agent against a local TLS broker on simulated GPIO; stops by itself
	$(GO) run ./cmd/edge-demo -agent bin/edge-agent

# What the tests run besides Go (mosquitto, qemu-user-static, the field
# delivery tests' sshd, loop-image and lint tools): .ci/deps holds the one
# list. As root with apt-get it installs what is missing and says so;
# otherwise it fails with the apt-get command to run.
deps: ## install what make test needs (as root, with apt-get), or print the command that does
	@.ci/deps -as "make test" test

test: deps vet fmt-check build-all ## unit + integration tests (mosquitto, installed by make deps), race detector, store and hw on emulated armv6
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
	rm -rf $(DIST)

# Release binaries (docs/deploying.md#release-binaries). Reproducible: the
# same tree and Go version give the same bytes (-trimpath, no build id, no
# VCS or cgo, GOAMD64 and GOARM64 pinned); version and commit are stamped
# explicitly. armv7 ships beside armv6 because it measured faster on the
# same emulated core (the table there).
DIST ?= dist
DIST_ARCHES := armv6 armv7 arm64 amd64
DIST_LDFLAGS := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DIST_BUILD := CGO_ENABLED=0 GOOS=linux GOAMD64=v1 GOARM64=v8.0 GOFLAGS= $(GO) build -trimpath -buildvcs=false $(GCFLAGS) -ldflags '$(DIST_LDFLAGS)'

test-field: deps ## field delivery alone: make dist under qemu, the unit, install-image.sh, deploy.sh (root; part of make test)
	$(GO) test -count=1 ./scripts/...
	$(GO) test -count=1 -run Systemd ./cmd/edge-agent

dist: ## release binaries in dist/ (linux armv6 armv7 arm64 amd64): static, reproducible, stamped, SHA256SUMS
	@mkdir -p $(DIST)
	GOARCH=arm GOARM=6 $(DIST_BUILD) -o $(DIST)/edge-agent-linux-armv6 ./cmd/edge-agent
	GOARCH=arm GOARM=7 $(DIST_BUILD) -o $(DIST)/edge-agent-linux-armv7 ./cmd/edge-agent
	GOARCH=arm64 $(DIST_BUILD) -o $(DIST)/edge-agent-linux-arm64 ./cmd/edge-agent
	GOARCH=amd64 $(DIST_BUILD) -o $(DIST)/edge-agent-linux-amd64 ./cmd/edge-agent
	cd $(DIST) && sha256sum $(addprefix edge-agent-linux-,$(DIST_ARCHES)) > SHA256SUMS
	@cd $(DIST) && ls -l $(addprefix edge-agent-linux-,$(DIST_ARCHES)) | awk '{printf "%-28s %6.2f MB\n", $$9, $$5/1e6}'

# Fault suite (docs/testing.md#make-faults): fuzz each parser for FUZZTIME, then
# run the real binary against real mosquitto brokers under SIGKILLs, broker
# crashes and outages, a network partition, a full disk, hostile payloads
# and broken TLS, and print the figures. Bounded for CI; SOAK=30m runs each
# scenario longer, SEED=N replays a run. Needs root, mosquitto, iproute2,
# nftables and strace (.ci/run installs them).
.PHONY: faults fuzz
FUZZTIME ?= 5s
FUZZ_TARGETS := ./agent:FuzzParseCommand ./agent/config:FuzzParse \
	./agent/config:FuzzScanners ./store:FuzzDecodeRecord ./store:FuzzRecordRoundTrip ./store:FuzzOpen

# The agent under test is the release build plus -tags faults, which adds
# only the EDGE_AGENT_FAILPOINT hook (cmd/edge-agent/failpoint.go); release
# binaries (build, dist) are built without it and ignore the variable.
faults: fuzz ## fault suite against the real binary; prints figures (SOAK=30m for a soak, SEED=N to replay)
	$(BUILD) -tags faults -o bin/edge-agent-faults ./cmd/edge-agent
	$(GO) build -o bin/edge-faults ./cmd/edge-faults
	bin/edge-faults -agent bin/edge-agent-faults $(if $(SOAK),-soak $(SOAK)) $(if $(SEED),-seed $(SEED))

# Go's fuzz coordinator sometimes ends a healthy run with "context deadline
# exceeded" and no failing input (golang/go#75804, in Go 1.26): such a run
# is tried once more; a run that found a crasher fails at once.
fuzz: ## each fuzz target for FUZZTIME (default 5s); a crasher lands in the package's testdata/fuzz
	@set -o pipefail; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  for try in 1 2; do \
	    echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); rc=$$?; \
	    echo "$$out" | grep -v '^fuzz: elapsed'; \
	    [ $$rc -eq 0 ] && break; \
	    if [ $$try -eq 1 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input'; then \
	      echo "fuzz $$fn: the coordinator timed out without a failing input (golang/go#75804); once more"; continue; fi; \
	    exit 1; \
	  done; \
	done

# Benchmark (issue 7): the real binary against one mosquitto over TLS on
# loopback (limits raised: 1000 in flight, 100000 queued), beside the old
# Python script and mosquitto_sub; several runs, median and range of each
# figure beside its target. A missed target is printed, not an error; a
# lost message or a crashed subject is. RUNS=N (default 3), QUICK=1 (smoke
# run), ONLY=ingest,commands,footprint,scale,oversize,sinks,wear (wear needs root), KEEP=1 (keep the work
# dir), NAGLE=1 (mosquitto's default Nagle on; the bench turns it off).
# Needs mosquitto, mosquitto-clients and Debian's python3-paho-mqtt (make
# bench-deps installs what is missing, as root).
.PHONY: bench bench-deps
bench: build dist bench-deps ## benchmark vs the old script and mosquitto_sub: ingest, commands, footprint, store scale (RUNS=N QUICK=1 ONLY=…)
	$(GO) build -o bin/edge-bench ./cmd/edge-bench
	bin/edge-bench -agent bin/edge-agent -dist $(DIST) $(if $(RUNS),-runs $(RUNS)) $(if $(QUICK),-quick) $(if $(ONLY),-only $(ONLY)) $(if $(KEEP),-keep) $(if $(NAGLE),-nagle)

# The profile behind docs/testing.md#make-bench: the agent built with -tags
# pprof (release builds carry no profiler) drains a 100,000-message backlog
# once under make bench's rig; the top of its CPU profile is printed, without
# the bench's own `inbox export` that checks the drain (agent/control).
.PHONY: profile
profile: bench-deps ## CPU profile of the agent draining a 100,000-message backlog (bin/drain.prof; go tool pprof to explore)
	$(GO) build -tags pprof -o bin/edge-agent-pprof ./cmd/edge-agent
	$(GO) build -o bin/edge-bench ./cmd/edge-bench
	bin/edge-bench -agent bin/edge-agent-pprof -only ingest -runs 1 -cpuprofile $(CURDIR)/bin/drain.prof > bin/profile-bench.txt
	$(GO) tool pprof -top -cum -nodecount 30 -ignore 'agent/control' bin/edge-agent-pprof bin/drain.prof

bench-deps: ## mosquitto and python3-paho-mqtt (the old-script baseline), installed (as root) only if missing (.ci/deps)
	@.ci/deps -as "make bench" bench

# Hardware in the loop (docs/testing.md#make-hil): make dist's arm64
# and armv6 binaries, unchanged, on Debian's arm64 kernel in
# qemu-system-aarch64 (virt board, TCG), driving the board's PL061 GPIO
# lines through the real kernel; QEMU's pl061_set_output trace shows every
# level from outside, the agent's status and the kernel's debugfs from
# inside. Needs root, qemu-system-arm, cpio, xz-utils and mosquitto; the
# kernel, its modules and busybox are fetched once (apt-get download) into
# HIL_CACHE (default /var/cache/edge-agent-hil). HIL_ARCH=arm64 runs one.
.PHONY: hil
hil: dist ## the shipped ARM binaries driving a real kernel's GPIO lines in QEMU (root; HIL_CACHE=dir, HIL_ARCH=arm64|armv6)
	$(GO) build -o bin/edge-hil ./cmd/edge-hil
	bin/edge-hil -dist $(DIST) $(if $(HIL_CACHE),-cache $(HIL_CACHE)) $(if $(HIL_ARCH),-arch $(HIL_ARCH))

# The whole field path on a real systemd (docs/testing.md#make-system): a
# Debian bookworm arm64 card (FAT boot + ext4 root, systemd as PID 1, udev,
# sshd), built once per machine into SYSTEM_CACHE (default
# /var/cache/edge-agent-system; about 20 minutes the first time, under TCG),
# gets make dist's arm64 agent from scripts/install-image.sh and boots in
# qemu-system-aarch64 (virt board, PL061 GPIO traced from outside); then
# the unit's sandbox and watchdog, a config error, systemctl stop,
# scripts/deploy.sh updates and rollbacks over the guest's sshd, and a
# power cut during a flood and a timed relay. Root; KEEP=1 keeps the logs.
.PHONY: system
system: dist ## the field path under a real systemd in QEMU: install-image.sh, boot, sandbox, watchdog, deploy.sh, power cut (root; SYSTEM_CACHE=dir)
	@.ci/deps -as "make system" system
	$(GO) build -o bin/edge-system ./cmd/edge-system
	bin/edge-system -dist $(DIST) $(if $(SYSTEM_CACHE),-cache $(SYSTEM_CACHE)) $(if $(KEEP),-keep)
