# lambdalog: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/lambdalog
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# The whole suite stays well under CI's 20 minutes on 2 cores.
TEST_TIMEOUT ?= 18m
BENCHTIME    ?= 2s

# govulncheck, installed from the Go module proxy by `make lint` and `make vuln`.
GOVULNCHECK_VERSION ?= v1.9.0

.PHONY: all run test build bench lint vuln deps fuzz clean

all: build

## run: build, install what is missing, and start the whole platform on embedded defaults
run: deps build
	./$(BIN) dev

## test: install what is missing and run the whole test suite
test: deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## build: build bin/lambdalog (static, no cgo)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lambdalog

## bench: run every benchmark; figures go to docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

## lint: gofmt, go vet and govulncheck (vuln.go.dev, else the snapshot in .ci/vulndb/, refused when older than 180 days)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./internal/prefetch # its assembly is per architecture
	@GO=$(GO) GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) bash .ci/vuln

## vuln: govulncheck ./... against the live database only; fails when it is unreachable (GOVULNDB=file:///... for a local copy)
vuln:
	@GO=$(GO) GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) STRICT=1 bash .ci/vuln

## deps: install clickhouse-server, hdfs-cli and chromium when missing (Debian, root)
deps:
	@bash .ci/deps

## fuzz: run each fuzz target briefly (FUZZTIME per target): the parsers, the rules file, the repartition records
FUZZTIME ?= 30s
FUZZ_PKGS ?= ./schemas/parse/ ./realtime/rules/ ./realtime/service/
fuzz:
	@for p in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "fuzzing $$p $$t for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

clean:
	rm -rf bin

## soak: the end-to-end soak with faults, every process separate (SOAK_DURATION, default 10m); docs/reliability.md
SOAK_DURATION ?= 10m
.PHONY: soak
soak: deps build
	$(GO) run ./deploy/soak --bin $(BIN) --duration $(SOAK_DURATION)
