package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

// onlyWorker returns p's one live worker.
func onlyWorker(t *testing.T, pr core.Processor) *worker {
	t.Helper()
	p := pr.(*processor)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.live) != 1 {
		t.Fatalf("%d live runners, want 1", len(p.live))
	}
	for r := range p.live {
		return r.(*worker)
	}
	return nil
}

// Batches and results cross to a worker through its shared region when they
// fit (growing it up to its limit), and through the pipe when they do not,
// in any order on the same worker; the records come back the same either
// way.
func TestSharedMemoryBatches(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("shared memory is Linux only")
	}
	const kib = 1 << 10
	small := recs("a", "b", "c")
	var large []core.Record // 3,000 records of 1 KiB: 3 MiB, above the initial 1 MiB region
	for i := range 3000 {
		large = append(large, core.Record{Offset: int64(i), Timestamp: int64(i), Key: []byte(fmt.Sprint("k", i)),
			Value: []byte(fmt.Sprintf("%04d%s", i, strings.Repeat("v", kib-4)))})
	}
	bigOut := recs("big 2000000") // a 2 MB result from a small batch
	for _, tc := range []struct {
		name      string
		max       int // Config.WorkerSharedMemory
		shm       bool
		wantGrown int // the region's size after the large batch
	}{
		{"default", 0, true, 4 << 20},
		{"small region", 64 * kib, true, 64 * kib}, // the large batch and result go through the pipe
		{"pipes only", -1, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, Config{WorkerSharedMemory: tc.max})
			// A limit far beyond the work: this test is about transport.
			p := newProcessor(t, h, buildWasm(t, guestPkg), core.ProcessorLimits{MaxOutputBytes: 8 << 20, BatchTimeoutMs: 60000})
			w := onlyWorker(t, p)
			if (w.shm != nil) != tc.shm {
				t.Fatalf("shared region %v, want %v", w.shm != nil, tc.shm)
			}
			run := func(in []core.Record) *core.ProcessOutput {
				t.Helper()
				out, err := p.Process(context.Background(), &core.ProcessInput{Records: in, Outputs: []string{"o"}})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			check := func(in []core.Record) {
				t.Helper()
				out := run(in)
				if len(out.Records) != len(in) {
					t.Fatalf("%d records out of %d", len(out.Records), len(in))
				}
				for i, r := range out.Records {
					if string(r.Record.Value) != string(in[i].Value) || string(r.Record.Key) != string(in[i].Key) {
						t.Fatalf("record %d: %.20q, want %.20q", i, r.Record.Value, in[i].Value)
					}
				}
			}
			check(small)
			check(large)
			if tc.shm && len(w.shm.mem) != tc.wantGrown {
				t.Fatalf("region of %d bytes after a 3 MiB batch, want %d", len(w.shm.mem), tc.wantGrown)
			}
			out := run(bigOut)
			if len(out.Records) != 1 || len(out.Records[0].Record.Value) != 2000000 || strings.Trim(string(out.Records[0].Record.Value), "x") != "" {
				t.Fatalf("big result: %d records", len(out.Records))
			}
			check(large)
			check(small)
			if got := onlyWorker(t, p); got != w {
				t.Fatal("the worker was replaced")
			}
		})
	}
}

// A worker killed in the middle of a batch fails that batch with ErrWorker
// (no crash, no hang); the next batch runs in a fresh worker with its own
// region.
func TestWorkerKilledMidBatch(t *testing.T) {
	h := newHost(t, Config{})
	p := newProcessor(t, h, buildWasm(t, guestPkg), core.ProcessorLimits{BatchTimeoutMs: 60000})
	// Teach the prefetch the key "k", so that the looping batch's state
	// read happens in the broker as the batch is sent.
	if _, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("get k"), Outputs: []string{"o"}, State: &enteredState{ch: make(chan struct{})}}); err != nil {
		t.Fatal(err)
	}
	w := onlyWorker(t, p)
	st := &enteredState{ch: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("get k", "loop"), Outputs: []string{"o"}, State: st})
		done <- err
	}()
	select {
	case <-st.ch:
	case err := <-done:
		t.Fatalf("the batch ended before it ran: %v", err)
	case <-time.After(40 * time.Second):
		t.Fatal("the batch never started")
	}
	from, _ := guestCPU(t, p)
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if now, _ := guestCPU(t, p); now >= from+2 {
			break // the guest spins in the worker
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker used no CPU in 40 s")
		}
	}
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrWorker) {
			t.Fatalf("err = %v, want ErrWorker", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the batch did not fail after its worker was killed")
	}
	w.shmMu.Lock()
	released := w.shm == nil
	w.shmMu.Unlock()
	if !released {
		t.Fatal("the dead worker's region was not released")
	}
	out, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("x"), Outputs: []string{"o"}})
	if err != nil || len(out.Records) != 1 {
		t.Fatalf("next batch: %v, %+v", err, out)
	}
	if w2 := onlyWorker(t, p); w2 == w || (runtime.GOOS == "linux" && w2.shm == nil) {
		t.Fatal("the next batch did not run in a fresh worker with a region")
	}
}

// fakeWorker connects a worker handle to pipes whose other ends the test
// drives, with a shared region of size bytes.
func fakeWorker(t *testing.T, size int) (w *worker, toWorker *conn) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("shared memory is Linux only")
	}
	s, err := newShm(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	br, ww := io.Pipe() // worker → broker
	wr, bw := io.Pipe() // broker → worker
	t.Cleanup(func() { br.Close(); wr.Close() })
	w = &worker{lim: limits{maxOut: 1 << 20}, c: newConn(br, bw), shm: s, shmMax: size}
	return w, newConn(wr, ww)
}

// The broker refuses a shared-memory result whose length lies outside the
// region, or that answers a batch sent through the pipe, and decodes a
// result from a copy: the worker changing the region afterwards changes
// nothing.
func TestSharedMemoryResultChecked(t *testing.T) {
	in := &core.ProcessInput{Records: recs("a"), Outputs: []string{"o"}}
	big := &core.ProcessInput{Records: recs(strings.Repeat("x", 70<<10)), Outputs: []string{"o"}}
	// result is a msgResult payload emitting one record "hi".
	result := func() []byte {
		rec := abi.AppendEmitted(nil, 0, &abi.Record{Timestamp: 7, Value: []byte("hi")})
		b := abi.AppendBytes(nil, rec)
		for range 4 { // changes, dead, logs, read
			b = abi.AppendU32(b, 0)
		}
		return abi.AppendU32(b, 0) // pending
	}()
	for _, tc := range []struct {
		name string
		n    uint32 // the length the worker claims
		inOK bool
		big  bool // a batch above the region's limit, sent through the pipe
	}{
		{"fits", uint32(len(result)), true, false},
		{"past the region", 64<<10 + 1, false, false},
		{"huge", 0xffffffff, false, false},
		{"batch went through the pipe", uint32(len(result)), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, wc := fakeWorker(t, 64<<10)
			go func() {
				typ, p, err := wc.recv()
				if err != nil || typ != msgBatch {
					return
				}
				if inShm := abi.NewReader(p).U32()&flagShm != 0; inShm == tc.big {
					return // the wrong transport: no answer, the test fails
				}
				copy(w.shm.mem, result)
				_ = wc.send(msgResultShm, abi.AppendU32(nil, tc.n))
			}()
			pin := in
			if tc.big {
				pin = big
			}
			enc := func(b []byte) []byte { return appendBatch(b, abi.Version, pin) }
			out, _, err := w.run(pin, enc)
			if !tc.inOK {
				if err == nil {
					t.Fatalf("accepted a result of %d bytes: %+v", tc.n, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			copy(w.shm.mem, strings.Repeat("\xee", 64)) // the worker scribbles afterwards
			if len(out.Records) != 1 || string(out.Records[0].Record.Value) != "hi" || out.Records[0].Record.Timestamp != 7 {
				t.Fatalf("decoded %+v", out.Records)
			}
		})
	}
}

// A worker refuses shared-memory batch frames that do not fit its region
// (or that it has no region for), and ends with an error, never a fault.
func TestSharedMemoryBatchChecked(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("shared memory is Linux only")
	}
	wasm := buildWasm(t, "examples/passthrough")
	for _, tc := range []struct {
		name     string
		region   bool
		size, n  uint32
		fileSize int
	}{
		{"no region", false, 1 << 20, 10, 1 << 20},
		{"length past the size", true, 1 << 20, 1<<20 + 1, 1 << 20},
		{"size past the file", true, 4 << 20, 10, 1 << 20},
		{"size zero", true, 0, 0, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br, ww := io.Pipe()
			wr, bw := io.Pipe()
			defer br.Close()
			defer bw.Close()
			ws := &workerState{c: newConn(wr, ww)}
			if tc.region {
				s, err := newShm(tc.fileSize)
				if err != nil {
					t.Fatal(err)
				}
				ws.shm = s
			}
			defer ws.close(context.Background())
			bc := newConn(br, bw)
			// Answers to init: msgCompiled, msgReady.
			go func() {
				for {
					if _, _, err := bc.recv(); err != nil {
						return
					}
				}
			}()
			init := abi.AppendU32(nil, 256)
			init = abi.AppendU32(init, 1<<20)
			init = abi.AppendStr(init, "")
			init = abi.AppendBytes(init, wasm)
			if err := ws.init(context.Background(), init); err != nil || ws.in == nil {
				t.Fatalf("init: %v", err)
			}
			b := abi.AppendU32(nil, flagShm)
			b = abi.AppendU64(b, 1<<20)
			b = abi.AppendU32(b, 1) // outputs
			b = abi.AppendU32(b, 0) // records
			b = abi.AppendU32(b, 0) // config
			b = abi.AppendU32(b, 0) // prefetch
			b = abi.AppendU32(b, tc.size)
			b = abi.AppendU32(b, tc.n)
			if err := ws.batch(context.Background(), b); err == nil {
				t.Fatal("a bad shared-memory batch frame was accepted")
			}
		})
	}
}
