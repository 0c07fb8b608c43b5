package plugins

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/weir-broker/weir/core"
)

// Host-guest cost per record, per isolation mode and batch size, of two Go
// guests: examples/passthrough (ctx.Forward: the host copies each record)
// and testdata/emit (ctx.Emit(r): the guest re-encodes each record). Each
// record: 8-byte key, 100-byte value, one 55-byte header.
//
//	go test ./plugins -run '^$' -bench 'Passthrough' -benchtime 2s
func BenchmarkPassthrough(b *testing.B) {
	for _, guest := range []struct{ name, pkg string }{
		{"forward", "examples/passthrough"},
		{"emit", "plugins/testdata/emit"},
	} {
		wasm := buildWasm(b, guest.pkg)
		for _, iso := range []Isolation{IsolationProcess, IsolationInProcess, IsolationTrusted} {
			h := newHost(b, Config{Isolation: iso})
			p := newProcessor(b, h, wasm, core.ProcessorLimits{BatchTimeoutMs: 60000})
			for _, n := range []int{1, 100, 1000} {
				in := &core.ProcessInput{Pipeline: "bench", Topic: "in", Outputs: []string{"out"}, Records: benchRecords(n)}
				b.Run(fmt.Sprintf("%s/%s/batch=%d", guest.name, iso, n), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						out, err := p.Process(context.Background(), in)
						if err != nil {
							b.Fatal(err)
						}
						if len(out.Records) != n {
							b.Fatalf("%d records out", len(out.Records))
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
				})
			}
		}
	}
}

func benchRecords(n int) []core.Record {
	rs := make([]core.Record, n)
	val := bytes.Repeat([]byte("v"), 100)
	for i := range rs {
		rs[i] = core.Record{Offset: int64(i), Timestamp: 1700000000000, Key: []byte(fmt.Sprintf("key%05d", i)),
			Value: val, Headers: []core.Header{{Key: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}
	}
	return rs
}

// The count example: one state read and one write per record, every key new
// to the batch (the worst case for process isolation: one state round trip
// to the broker per key).
//
//	go test ./plugins -run '^$' -bench 'CountState'
func BenchmarkCountState(b *testing.B) {
	wasm := buildWasm(b, "examples/count")
	for _, iso := range []Isolation{IsolationProcess, IsolationTrusted} {
		h := newHost(b, Config{Isolation: iso})
		p := newProcessor(b, h, wasm, core.ProcessorLimits{BatchTimeoutMs: 60000})
		st := &countingState{m: map[string][]byte{}}
		for i := 0; i < 100; i++ {
			st.m["c:"+fmt.Sprintf("key%05d", i)] = []byte(strconv.Itoa(i))
		}
		in := &core.ProcessInput{Topic: "in", Outputs: []string{"out"}, Records: benchRecords(100), State: st}
		b.Run(fmt.Sprintf("%s/batch=100", iso), func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Process(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
		})
	}
}

// Compiling the Go passthrough guest: cold, and from a warm disk cache.
//
//	go test ./plugins -run '^$' -bench 'Compile|Instance|WorkerStart' -benchtime 5x
func BenchmarkCompile(b *testing.B) {
	wasm := buildWasm(b, "examples/passthrough")
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
			if _, err := rt.CompileModule(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			rt.Close(ctx)
		}
	})
	b.Run("disk-cache", func(b *testing.B) {
		dir := b.TempDir()
		warm := func() wazero.CompilationCache {
			c, err := wazero.NewCompilationCacheWithDir(dir)
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
		c := warm()
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(c))
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		rt.Close(ctx)
		c.Close(ctx)
		for b.Loop() {
			c := warm() // a fresh process's view: nothing in memory
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(c))
			if _, err := rt.CompileModule(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			rt.Close(ctx)
			c.Close(ctx)
		}
	})
}

// Instantiating the Go passthrough guest in-process (runs _initialize), and
// its guest memory after init.
func BenchmarkInstance(b *testing.B) {
	wasm := buildWasm(b, "examples/passthrough")
	ctx := context.Background()
	e, err := newEngine(ctx, wasm, nil, DefaultMemoryPages, false)
	if err != nil {
		b.Fatal(err)
	}
	defer e.close(ctx)
	var mem uint32
	for b.Loop() {
		in, err := e.instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		mem = in.mod.Memory().Size()
		in.close(ctx)
	}
	b.ReportMetric(float64(mem)/(1<<20), "guest-MiB")
}

// Starting a worker process and loading the Go passthrough guest into it
// from a warm disk cache, and the worker's resident memory.
func BenchmarkWorkerStart(b *testing.B) {
	wasm := buildWasm(b, "examples/passthrough")
	h := newHost(b, Config{})
	lim, _ := h.cfg.resolve(core.ProcessorLimits{})
	if _, err := h.Validate(context.Background(), wasm); err != nil { // warms the cache
		b.Fatal(err)
	}
	var rss float64
	for b.Loop() {
		w, err := h.startWorker(context.Background(), wasm, lim)
		if err != nil {
			b.Fatal(err)
		}
		rss = vmRSS(w.cmd.Process.Pid)
		w.close()
	}
	b.ReportMetric(rss, "worker-RSS-MiB")
}

func vmRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseFloat(string(f[1]), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkSessionizeWindows: event-time windows (examples/sessionize) over
// batches of 100 records of 100 users, event time advancing 1 s per batch,
// so a 10 s window of every user closes every 10 batches; state carries
// over. Compare with BenchmarkCountState for the cost of event time.
func BenchmarkSessionizeWindows(b *testing.B) {
	wasm := buildWasm(b, "examples/sessionize")
	for _, iso := range []Isolation{IsolationProcess, IsolationTrusted} {
		h := newHost(b, Config{Isolation: iso})
		p := newProcessor(b, h, wasm, core.ProcessorLimits{BatchTimeoutMs: 60000})
		st := &countingState{m: map[string][]byte{}}
		in := &core.ProcessInput{Topic: "in", Outputs: []string{"out"}, Records: benchRecords(100), State: st,
			Config: map[string]string{"idle_timeout_ms": "-1"}}
		for i := range in.Records {
			in.Records[i].Value = fmt.Appendf(nil, `{"user":"u%03d"}`, i)
		}
		b.Run(fmt.Sprintf("%s/batch=100", iso), func(b *testing.B) {
			ts := int64(0)
			for b.Loop() {
				for i := range in.Records {
					in.Records[i].Timestamp = ts
				}
				ts += 1000
				out, err := p.Process(context.Background(), in)
				if err != nil {
					b.Fatal(err)
				}
				st.apply(out.State)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
		})
	}
}

// The worker transport, shared memory against the pipe, on the pipeline
// benchmark's shape: batches of 1,000 records of 1 KiB (1 MiB), forwarded.
//
//	go test ./plugins -run '^$' -bench 'WorkerTransport' -count 5
func BenchmarkWorkerTransport(b *testing.B) {
	wasm := buildWasm(b, "examples/passthrough")
	recs := benchRecords(1000)
	val := bytes.Repeat([]byte("v"), 1024)
	for i := range recs {
		recs[i].Value = val
	}
	in := &core.ProcessInput{Pipeline: "bench", Topic: "in", Outputs: []string{"out"}, Records: recs}
	for _, tc := range []struct {
		name string
		shm  int
	}{{"shm", 0}, {"pipe", -1}} {
		h := newHost(b, Config{WorkerSharedMemory: tc.shm})
		p := newProcessor(b, h, wasm, core.ProcessorLimits{BatchTimeoutMs: 60000})
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(1000 * 1024))
			for b.Loop() {
				out, err := p.Process(context.Background(), in)
				if err != nil || len(out.Records) != 1000 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
		})
	}
}
