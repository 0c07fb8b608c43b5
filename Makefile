# Weir build, run and test targets. `make run` and `make test` are the two
# commands of the README's quick start.
GO        ?= go
BIN       := bin
WEIR      := $(BIN)/weir
PKGS      := ./...
TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all build run test test-short bench examples lint fuzz clean cluster chaos chaos-short

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(WEIR) ./cmd/weir

run: build
	./$(WEIR) serve

examples:
	bash examples/build.sh

# Everything that proves the product works: unit, integration (real Raft
# nodes, the built binary as a process), Wasm, browser, and short fuzz runs.
test: build examples
	$(GO) vet $(PKGS)
	$(GO) test $(TEST_FLAGS) $(PKGS)
	cd sdk && $(GO) test -count=1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(MAKE) fuzz-short
	$(MAKE) chaos-short

# Each fuzz target for a few seconds (CI); `make fuzz` runs them longer.
FUZZ_TIME ?= 5s
fuzz-short:
	@scripts/fuzz.sh $(FUZZ_TIME)

fuzz:
	@scripts/fuzz.sh 2m

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3s ./core/... ./raftlog/... ./gateway/... ./plugins/...
	scripts/bench-http.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN)

# A local 3-node cluster (child processes, Ctrl-C stops all): docs/cluster.md.
cluster: build
	./$(WEIR) dev --nodes 3

# The longer randomized fault run (~10 min) for whoever changes replication
# code, in two phases on clusters whose nodes run in the test-fault mode
# (weir serve --test-faults, docs/guarantees.md "Analysis"): on disk, kill -9,
# SIGSTOP, whole-cluster restarts, network partitions (cut, black hole,
# delay; each node in its own network namespace: needs root or
# `unshare -r`), clock skew and a full or failing disk; in memory, power
# loss of every node at once and of one, in-process crashes, SIGSTOP,
# partitions and clock skew. Under produce, consumer-group, idempotent-
# producer, Kafka producer, consumer and consumer group, queue and
# exactly-once pipeline load, checked by
# internal/history after a final drain. Prints a `fault kind=` line per
# fault, an `anomaly class=` line per class, and last
# `chaos: ops= acknowledged= anomalies= seed=`; fails on any anomaly.
# CHAOS_SEED=n replays a schedule; the histories are kept in bin/.
CHAOS_TIME ?= 10m
CHAOS_SEED ?= 0
chaos:
	@mkdir -p $(BIN)
	@{ $(GO) test -tags chaos -count=1 -timeout 60m -run TestChaos -v ./internal/clustertest \
		-chaos.time $(CHAOS_TIME) -chaos.seed $(CHAOS_SEED) -chaos.history $(CURDIR)/$(BIN)/chaos-history.jsonl; \
		echo $$? > $(BIN)/chaos.rc; } 2>&1 | tee $(BIN)/chaos.log
	@grep -h '^chaos: ops=' $(BIN)/chaos.log | tail -n 1; exit $$(cat $(BIN)/chaos.rc)

# The 3-minute chaos run of `make test`.
chaos-short:
	@$(MAKE) --no-print-directory chaos CHAOS_TIME=3m
