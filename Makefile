# shardwire — see README.md. Targets install missing system packages with apt when run as
# root (scripts/deps.sh), else print the command to run.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
# Each fuzz target runs a fixed number of inputs (not a wall-clock time: on a loaded machine the
# fuzzer can fail with "context deadline exceeded" when the time runs out mid-input).
FUZZTIME ?= 200000x

# Fuzz targets run by `make test`, one "package:FuzzName" per line.
FUZZ_TARGETS := \
	./proxy/wire:FuzzReader \
	./proxy/auth:FuzzSCRAM \
	./proxy/auth:FuzzMD5 \
	./proxy/auth:FuzzParseVerifier \
	./router:FuzzAnalyzeSession \
	./router:FuzzRoute

.PHONY: all build dev deps test vet fmt-check unit fuzz bench clean

all: build

deps:
	scripts/deps.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/shardwire ./cmd/shardwire
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/shardctl ./cmd/shardctl

# A local cluster in the foreground: 4 groups (writer + 1 replica each), 3 gossiping proxy nodes
# on 127.0.0.1:6432-6434 (child processes; logs in .dev/proxies).
dev: deps build
	$(BIN)/shardwire dev --dir .dev --groups 4 --replicas 1 --proxies 3

test: deps fmt-check vet unit fuzz

fmt-check:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 40m ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench: deps build
	@if [ -x bench/pgbench-compare.sh ]; then bench/pgbench-compare.sh; \
	else echo "bench/pgbench-compare.sh is not there yet"; fi

clean:
	rm -rf $(BIN) .dev
