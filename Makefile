# keyline — `make run` runs the whole system locally with demo data; `make test` runs every test.
# Everything these targets need is installed by `make deps` (idempotent, quiet when done).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export CDK_DISABLE_CLI_TELEMETRY := true
export GOFLAGS := -buildvcs=false

DATA_DIR ?= .keyline
ADDR ?= 127.0.0.1:4566
CONSOLE_ADDR ?= 127.0.0.1:8080

SOAK_SECONDS ?= 180
SOAK_SEED ?= 0

.PHONY: help deps run test conformance bench soak build synth deploy diff fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: .local/deps.stamp ## install everything the other targets need (Go modules, node tools, Java 17, DynamoDB Local, Chromium for the browser tests)

.local/deps.stamp: go.mod go.sum $(wildcard infra/cdk/go.mod infra/cdk/go.sum tools/node/package-lock.json) scripts/install-dynamodb-local.sh scripts/ensure-java.sh internal/local/dynamodb/LoopbackDynamoDBLocal.java scripts/ensure-chromium.sh
	@mkdir -p .local
	@go mod download
	@if [ -f infra/cdk/go.mod ]; then (cd infra/cdk && go mod download); fi
	@if [ -f tools/node/package-lock.json ]; then (cd tools/node && npm ci --silent --no-audit --no-fund >/dev/null); fi
	@scripts/install-dynamodb-local.sh
	@scripts/ensure-chromium.sh
	@touch $@

run: deps ## run the whole deployment locally with demo data (endpoint on $(ADDR), console on $(CONSOLE_ADDR))
	go build -o bin/keyline ./cmd/keyline
	exec bin/keyline local --data-dir $(DATA_DIR) --addr $(ADDR) --console-addr $(CONSOLE_ADDR) --seed demo

test: deps ## vet and test everything (both Go modules) against one DynamoDB Local
	@scripts/test.sh

conformance: deps ## compare the local runtime with outcomes recorded from AWS (../shared/conformance or $$KEYLINE_CONFORMANCE_DIR)
	@scripts/conformance.sh

bench: deps ## run the benchmarks and print `bench <name> <value> <unit>` lines
	@scripts/bench.sh

soak: deps ## run the deployment under load, 10% faults and process crashes, checking the invariants (SOAK_SECONDS, SOAK_SEED)
	go build -o bin/keyline ./cmd/keyline
	bin/keyline soak --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED)

build: deps ## build the keyline CLI (bin/keyline) and every Lambda bootstrap (build/functions/<name>/bootstrap)
	go build -o bin/keyline ./cmd/keyline
	@if [ -x scripts/build-functions.sh ]; then scripts/build-functions.sh; fi

synth: build ## synthesize the CDK app into cdk.out/ (offline: no credentials, no lookups)
	@scripts/synth.sh

deploy: synth ## deploy to the AWS account of your current credentials
	cd tools/node && npx --no-install cdk deploy --app "$(CURDIR)/cdk.out" --require-approval broadening

diff: synth ## show what `make deploy` would change
	cd tools/node && npx --no-install cdk diff --app "$(CURDIR)/cdk.out"

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build outputs and local state (not installed tools)
	rm -rf bin build cdk.out $(DATA_DIR)
