package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/internal/testutil"
)

// testDir holds wasm built by tests and the compilation cache shared by all
// hosts of this test binary (and their workers).
var testDir string

func TestMain(m *testing.M) {
	// The test binary is its own Wasm worker, as the weir binary is.
	if os.Getenv(WorkerEnv) == "1" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "weir-plugins-test-")
	if err != nil {
		panic(err)
	}
	testDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildWasm compiles a main package of this module (path relative to the
// module root) to a wasip1 reactor, once per test binary.
func buildWasm(tb testing.TB, pkg string) []byte {
	tb.Helper()
	return testutil.BuildWasm(tb, pkg)
}

func newHost(tb testing.TB, cfg Config) *Host {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(testDir, "cache")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func newProcessor(tb testing.TB, h *Host, wasm []byte, lim core.ProcessorLimits) core.Processor {
	tb.Helper()
	p, err := h.Processor(context.Background(), core.ModuleRef{Name: "m", Version: 1, Wasm: wasm}, lim)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func recs(values ...string) []core.Record {
	out := make([]core.Record, len(values))
	for i, v := range values {
		out[i] = core.Record{Offset: int64(i), Timestamp: int64(1000 + i), Key: []byte(fmt.Sprint("k", i)), Value: []byte(v)}
	}
	return out
}

func values(out *core.ProcessOutput) []string {
	var vs []string
	for _, r := range out.Records {
		vs = append(vs, string(r.Record.Value))
	}
	return vs
}

// isolations are the modes with a CPU bound that tests run in.
var isolations = []Isolation{IsolationProcess, IsolationInProcess}
