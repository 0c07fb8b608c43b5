package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

const guestPkg = "plugins/testdata/guest"

// logCapture records log lines as "LEVEL msg pipeline=P".
type logCapture struct {
	mu sync.Mutex
	l  []string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pipeline" {
			line += " pipeline=" + a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	c.l = append(c.l, line)
	c.mu.Unlock()
	return nil
}
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }
func (c *logCapture) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.l)
}

// countingState is a StateReader that counts its reads.
type countingState struct {
	mu    sync.Mutex
	m     map[string][]byte
	reads atomic.Int64
}

func (s *countingState) Get(k []byte) ([]byte, bool) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(k)]
	return v, ok
}

func (s *countingState) apply(ch []core.StateChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range ch {
		if c.Delete {
			delete(s.m, string(c.Key))
		} else {
			s.m[string(c.Key)] = c.Value
		}
	}
}

func TestHostFunctions(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			logs := &logCapture{}
			h := newHost(t, Config{Isolation: iso, Logger: slog.New(logs)})
			p := newProcessor(t, h, buildWasm(t, guestPkg), core.ProcessorLimits{})
			in := &core.ProcessInput{
				Pipeline: "pl", Topic: "orders", Partition: 3,
				Records: recs("where", "cfg a", "cfg nope", "emitto second", "dead malformed", "log hello",
					"print from stdout", "now", "rand", "plain"),
				Outputs: []string{"first", "second"},
				Config:  map[string]string{"a": "1"},
			}
			in.Records[9].Headers = []core.Header{{Key: "h", Value: "v"}, {Key: "h", Value: "w"}}
			in.Records[9].Key = nil
			out, err := p.Process(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			vs := values(out)
			if len(vs) != 7 {
				t.Fatalf("emitted %q", vs)
			}
			if vs[0] != "orders/3/first,second" || vs[1] != "1/true" || vs[2] != "/false" || vs[3] != "emitto second" {
				t.Fatalf("emitted %q", vs)
			}
			if out.Records[3].Output != 1 || out.Records[0].Output != 0 {
				t.Fatalf("outputs %+v", out.Records)
			}
			var ns int64
			fmt.Sscan(vs[4], &ns)
			if d := time.Since(time.Unix(0, ns)); d < 0 || d > time.Minute {
				t.Fatalf("now %q is %v off", vs[4], d)
			}
			if len(vs[5]) != 16 {
				t.Fatalf("rand %q", vs[5])
			}
			last := out.Records[6].Record
			if last.Key != nil || !slices.Equal(last.Headers, in.Records[9].Headers) || last.Timestamp != in.Records[9].Timestamp {
				t.Fatalf("passthrough record %+v", last)
			}
			if len(out.Dead) != 1 || out.Dead[0] != (core.DeadRecord{Index: 4, Reason: "malformed"}) {
				t.Fatalf("dead %+v", out.Dead)
			}
			if got := logs.lines(); !slices.Contains(got, "INFO hello pipeline=pl") || !slices.Contains(got, "INFO from stdout pipeline=pl") {
				t.Fatalf("logs %q", got)
			}
		})
	}
}

// State writes are visible within their batch, go out in order, and a
// failed batch's writes never reach later batches.
func TestStateOverlay(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			h := newHost(t, Config{Isolation: iso})
			p := newProcessor(t, h, buildWasm(t, guestPkg), core.ProcessorLimits{})
			st := &countingState{m: map[string][]byte{"k": []byte("v0")}}
			run := func(cmds ...string) (*core.ProcessOutput, error) {
				out, err := p.Process(context.Background(), &core.ProcessInput{Records: recs(cmds...), Outputs: []string{"o"}, State: st})
				if err == nil {
					st.apply(out.State)
				}
				return out, err
			}
			out, err := run("get k", "get k", "put k=v1", "get k", "del k", "get k", "get other")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := values(out), []string{"v0", "v0", "v1", "<none>", "<none>"}; !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			if reads := st.reads.Load(); reads != 2 {
				t.Fatalf("%d reads of committed state, want 2 (k and other, each once)", reads)
			}
			if len(out.State) != 2 || string(out.State[0].Value) != "v1" || !out.State[1].Delete {
				t.Fatalf("changes %+v", out.State)
			}
			// Failed batches: a guest error and a trap.
			for _, failing := range [][]string{{"put k=bad", "error"}, {"put k=bad", "panic"}, {"put k=bad", "hog"}} {
				if _, err := run(failing...); err == nil {
					t.Fatalf("%q: no error", failing)
				}
			}
			out, err = run("get k", "put k=v2", "get k")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := values(out), []string{"<none>", "v2"}; !slices.Equal(got, want) {
				t.Fatalf("after failed batches: got %q, want %q", got, want)
			}
		})
	}
}

func TestGuestErrors(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			h := newHost(t, Config{Isolation: iso})
			// The batch time limit is far beyond what any case needs: on a
			// loaded machine "hog" must reach the memory limit, not the
			// clock (the time limit has its own tests).
			p := newProcessor(t, h, buildWasm(t, guestPkg), core.ProcessorLimits{MaxOutputBytes: 4096, MemoryPages: 512, BatchTimeoutMs: 60_000})
			tests := []struct {
				cmd  string
				want error
				msg  string
			}{
				{"error", ErrGuest, "asked to fail"},
				{"panic", ErrGuest, "panic: asked to"},
				{"big 10000", ErrOutputLimit, "4096"},
				{"emitto nowhere", ErrGuest, "unknown output"},
				{"hog", ErrTrap, "out of memory (limit 512 pages, 32 MiB)"},
			}
			for _, tt := range tests {
				_, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("plain", tt.cmd), Outputs: []string{"o"}})
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("%s: err = %v, want %v mentioning %q", tt.cmd, err, tt.want, tt.msg)
				}
				// The processor goes on.
				out, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("ok"), Outputs: []string{"o"}})
				if err != nil || !slices.Equal(values(out), []string{"ok"}) {
					t.Fatalf("after %s: %v %v", tt.cmd, out, err)
				}
			}
		})
	}
}

// enteredState is a StateReader that closes ch on its first read: a batch
// "get k", "loop" reads state just before it loops, so a closed ch is the
// fence "the guest is running (and about to spin)".
type enteredState struct {
	once sync.Once
	ch   chan struct{}
}

func (s *enteredState) Get([]byte) ([]byte, bool) {
	s.once.Do(func() { close(s.ch) })
	return nil, false
}

// guestCPU sums the CPU time (clock ticks) used so far by the worker
// processes of p; ok is false for in-process isolation.
func guestCPU(t *testing.T, pr core.Processor) (ticks int64, ok bool) {
	t.Helper()
	p := pr.(*processor)
	p.mu.Lock()
	var pids []int
	for r := range p.live {
		if w, isW := r.(*worker); isW {
			pids = append(pids, w.cmd.Process.Pid)
		}
	}
	p.mu.Unlock()
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		for _, i := range []int{14 - 3, 15 - 3} {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/stat: %v", pid, err)
			}
			ticks += n
		}
	}
	return ticks, len(pids) > 0
}

// A guest that loops forever is stopped at its time limit, while another
// processor keeps working; the looping module then works again.
//
// No assertion depends on how fast the machine is: the other processor's
// progress is observed while a looping guest is provably running (fenced by
// its state read, and given a limit far beyond the wait, then cancelled),
// and after the kill by polling with a deadline.
func TestLoopIsStopped(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			h := newHost(t, Config{Isolation: iso})
			guest := buildWasm(t, guestPkg)
			const limit = 300 * time.Millisecond
			looper := newProcessor(t, h, guest, core.ProcessorLimits{BatchTimeoutMs: limit.Milliseconds()})
			spinner := newProcessor(t, h, guest, core.ProcessorLimits{BatchTimeoutMs: 60000}) // the largest limit
			other := newProcessor(t, h, wmod{memory: true, funcs: abiFuncs(i32c(0))}.bytes(), core.ProcessorLimits{})

			stop := make(chan struct{})
			var served atomic.Int64
			var otherErr atomic.Value
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := other.Process(context.Background(), &core.ProcessInput{Records: recs("x"), Outputs: []string{"o"}}); err != nil {
						otherErr.Store(err)
						return
					}
					served.Add(1)
				}
			}()
			defer func() { close(stop); wg.Wait() }()
			// progress waits (bounded) until the other processor has served
			// n more batches than from, failing the test if it cannot.
			progress := func(from, n int64, what string) {
				t.Helper()
				deadline := time.Now().Add(40 * time.Second) // within the spinner's limit
				for served.Load() < from+n {
					if e := otherErr.Load(); e != nil {
						t.Fatalf("other processor failed %s: %v", what, e)
					}
					if time.Now().After(deadline) {
						t.Fatalf("other processor served %d batches in 40 s %s", served.Load()-from, what)
					}
					time.Sleep(time.Millisecond)
				}
			}
			loopIn := func(st *enteredState) *core.ProcessInput {
				return &core.ProcessInput{Records: recs("get k", "loop"), Outputs: []string{"o"}, State: st}
			}
			// awaitSpin returns once the looping batch provably runs: in
			// process its state read (just before the loop) happened; in a
			// worker, whose run is speculative and reads state only after,
			// the batch was sent (the host prefetched the key, as the
			// warm-up batch taught it) and the worker then burnt 50 ms of CPU.
			awaitSpin := func(pr core.Processor, st *enteredState, done <-chan error) {
				t.Helper()
				select {
				case <-st.ch:
				case err := <-done:
					t.Fatalf("the looping batch ended before it looped: %v", err)
				case <-time.After(40 * time.Second):
					t.Fatal("the looping batch never started")
				}
				from, ok := guestCPU(t, pr)
				if !ok {
					return
				}
				for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if now, _ := guestCPU(t, pr); now >= from+5 {
						return
					}
					if time.Now().After(deadline) {
						t.Fatal("the worker running the looping batch used no CPU in 40 s")
					}
				}
			}
			// warm instantiates, and teaches the worker's prefetch the key.
			// The looper's instantiation runs under its 300 ms limit, which
			// the Go guest's runtime start may overrun on a loaded machine:
			// an honest ErrTimeout, retried within a deadline.
			warm := func(pr core.Processor) {
				t.Helper()
				for deadline := time.Now().Add(40 * time.Second); ; {
					_, err := pr.Process(context.Background(), &core.ProcessInput{Records: recs("get k"), Outputs: []string{"o"}, State: &enteredState{ch: make(chan struct{})}})
					if err == nil {
						return
					}
					if !errors.Is(err, ErrTimeout) || time.Now().After(deadline) {
						t.Fatal(err)
					}
					t.Logf("warm-up overran its limit on this machine (retrying): %v", err)
				}
			}
			warm(spinner)
			warm(looper)

			// 1. While a guest spins (its limit, 60 s, is beyond the wait, so
			// it spins until cancelled), the other processor serves batches.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			spin := &enteredState{ch: make(chan struct{})}
			spinDone := make(chan error, 1)
			go func() {
				_, err := spinner.Process(ctx, loopIn(spin))
				spinDone <- err
			}()
			awaitSpin(spinner, spin, spinDone)
			progress(served.Load(), 3, "while a guest loops")
			select {
			case err := <-spinDone:
				t.Fatalf("the spinning guest stopped on its own: %v", err)
			default:
			}
			cancel()
			select {
			case err := <-spinDone:
				if err == nil {
					t.Fatal("a cancelled looping batch succeeded")
				}
			case <-time.After(60 * time.Second):
				t.Fatal("cancel did not stop the looping guest")
			}

			// 2. The time limit stops a looping guest.
			entered := &enteredState{ch: make(chan struct{})}
			loopDone := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := looper.Process(context.Background(), loopIn(entered))
				loopDone <- err
			}()
			var err error
			select {
			case err = <-loopDone:
			case <-time.After(60 * time.Second):
				t.Fatalf("a guest looping past its limit of %v was not stopped in 60 s", limit)
			}
			elapsed := time.Since(start)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			select {
			case <-entered.ch:
			default:
				t.Fatal("the batch timed out before the guest ran")
			}
			if elapsed < limit {
				t.Fatalf("stopped after %v, before its limit %v", elapsed, limit)
			}

			// 3. The other processor goes on after the kill, and so does
			// the looping module.
			progress(served.Load(), 1, "after the kill")
			t.Logf("stopped after %v (limit %v); the other processor ran %d batches in all", elapsed, limit, served.Load())
			// The looping module's next batch instantiates it afresh, under
			// the same 300 ms limit; on a loaded machine the Go guest's
			// runtime start may overrun it, an honest ErrTimeout. What must
			// hold is that the processor is not left broken: some batch
			// succeeds before the deadline, and no other error appears.
			for deadline := time.Now().Add(40 * time.Second); ; {
				out, err := looper.Process(context.Background(), &core.ProcessInput{Records: recs("again"), Outputs: []string{"o"}})
				if err == nil && slices.Equal(values(out), []string{"again"}) {
					break
				}
				if !errors.Is(err, ErrTimeout) || time.Now().After(deadline) {
					t.Fatalf("after the loop: %v %v", out, err)
				}
				t.Logf("after the loop, instantiation overran its limit on this machine (retrying): %v", err)
			}
		})
	}
}

// A killed worker process is gone: it costs nothing afterwards.
func TestTimedOutWorkerIsReaped(t *testing.T) {
	h := newHost(t, Config{})
	pr := newProcessor(t, h, wmod{memory: true, funcs: abiFuncs(loopBody)}.bytes(), core.ProcessorLimits{BatchTimeoutMs: 100})
	p := pr.(*processor)
	p.mu.Lock()
	w := p.idle[0].(*worker)
	p.mu.Unlock()
	_, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("x"), Outputs: []string{"o"}})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the worker process was not reaped")
	}
	if !w.cmd.ProcessState.Exited() && w.cmd.ProcessState.String() != "signal: killed" {
		t.Fatalf("worker state %v", w.cmd.ProcessState)
	}
	p.mu.Lock()
	n := len(p.live)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d live workers after the kill", n)
	}
}

func TestCancelStopsBatch(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			h := newHost(t, Config{Isolation: iso})
			p := newProcessor(t, h, wmod{memory: true, funcs: abiFuncs(loopBody)}.bytes(), core.ProcessorLimits{BatchTimeoutMs: 60000})
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := p.Process(ctx, &core.ProcessInput{Records: recs("x"), Outputs: []string{"o"}})
			if err == nil || time.Since(start) > 5*time.Second {
				t.Fatalf("err = %v after %v", err, time.Since(start))
			}
		})
	}
}

// A non-Go guest written by hand: it emits a fixed record from its data
// segment through the emit host function.
func TestHandWrittenGuest(t *testing.T) {
	rec := []byte{0, 0, 0, 0} // output 0
	rec = append(rec, make([]byte, 16)...)
	rec = append(rec, 0xff, 0xff, 0xff, 0xff) // nil key
	rec = append(rec, 2, 0, 0, 0, 'h', 'i')
	rec = append(rec, 0, 0, 0, 0)
	body := append(i32c(1024), i32c(int32(len(rec)))...)
	body = append(body, 0x10, 0, 0x1a) // call emit (import 0), drop
	body = append(body, i32c(0)...)
	m := wmod{
		memory:  true,
		data:    rec,
		imports: []wimport{{mod: "weir", name: "emit", params: []byte{tI32, tI32}, results: []byte{tI32}}},
		funcs:   abiFuncs(body),
	}
	for _, iso := range isolations {
		h := newHost(t, Config{Isolation: iso})
		p := newProcessor(t, h, m.bytes(), core.ProcessorLimits{})
		out, err := p.Process(context.Background(), &core.ProcessInput{Records: recs("a"), Outputs: []string{"o"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Records) != 1 || string(out.Records[0].Record.Value) != "hi" || out.Records[0].Record.Key != nil {
			t.Fatalf("%s: %+v", iso, out.Records)
		}
	}
}

func TestLimitsConfig(t *testing.T) {
	h := newHost(t, Config{MaxMemoryPages: 100, Limits: core.ProcessorLimits{MemoryPages: 64}})
	_, err := h.Processor(context.Background(), core.ModuleRef{Wasm: wmod{memory: true, funcs: abiFuncs(i32c(0))}.bytes()}, core.ProcessorLimits{MemoryPages: 101})
	if err == nil || !strings.Contains(err.Error(), "above the maximum") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Config{Isolation: "vm"}); err == nil {
		t.Fatal("unknown isolation accepted")
	}
	// A Go guest does not fit in 16 pages (1 MiB): the processor fails to start.
	if _, err := h.Processor(context.Background(), core.ModuleRef{Wasm: buildWasm(t, guestPkg)}, core.ProcessorLimits{MemoryPages: 16}); err == nil {
		t.Fatal("a Go guest started in 1 MiB")
	}
}

func TestHostClose(t *testing.T) {
	h := newHost(t, Config{})
	pr := newProcessor(t, h, wmod{memory: true, funcs: abiFuncs(i32c(0))}.bytes(), core.ProcessorLimits{})
	w := pr.(*processor).idle[0].(*worker)
	h.Close()
	<-w.done
	if _, err := pr.Process(context.Background(), &core.ProcessInput{Records: recs("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := h.Validate(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// Forwarded records count at their full size toward the output limit, and
// share the input's bytes.
func TestForward(t *testing.T) {
	h := newHost(t, Config{})
	p := newProcessor(t, h, buildWasm(t, "examples/passthrough"), core.ProcessorLimits{MaxOutputBytes: 1000})
	in := &core.ProcessInput{Records: recs("a", "b"), Outputs: []string{"o"}}
	in.Records[1].Headers = []core.Header{{Key: "x", Value: "y"}}
	out, err := p.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 2 || !slices.Equal(out.Records[1].Record.Headers, in.Records[1].Headers) ||
		string(out.Records[1].Record.Key) != "k1" || out.Records[1].Record.Timestamp != in.Records[1].Timestamp {
		t.Fatalf("forwarded %+v", out.Records)
	}
	big := recs(strings.Repeat("x", 600), strings.Repeat("y", 600))
	if _, err := p.Process(context.Background(), &core.ProcessInput{Records: big, Outputs: []string{"o"}}); !errors.Is(err, ErrOutputLimit) {
		t.Fatalf("err = %v, want ErrOutputLimit", err)
	}
}

// Trusted mode cannot stop a guest: the batch fails at its deadline, the
// guest is abandoned until it returns by itself, and closing meanwhile does
// not crash the broker.
func TestTrustedAbandons(t *testing.T) {
	// The guest reads a state key, and the host's read blocks until the
	// test releases it: the guest cannot finish before its deadline, however
	// loaded the machine (a loop of about a second once did, with both of
	// the machine's cores busy elsewhere).
	body := append(i32c(1024), i32c(1)...) // key "k" at 1024
	body = append(body, i32c(2048)...)     // buffer
	body = append(body, i32c(16)...)       // buffer capacity
	body = append(body, 0x10, 0, 0x1a)     // call state_get (import 0), drop
	body = append(body, i32c(0)...)
	m := wmod{
		memory:  true,
		data:    []byte("k"),
		imports: []wimport{{mod: "weir", name: "state_get", params: []byte{tI32, tI32, tI32, tI32}, results: []byte{tI32}}},
		funcs:   abiFuncs(body),
	}
	h := newHost(t, Config{Isolation: IsolationTrusted})
	pr := newProcessor(t, h, m.bytes(), core.ProcessorLimits{BatchTimeoutMs: 20})
	release := make(chan struct{})
	_, err := pr.Process(context.Background(), &core.ProcessInput{Records: recs("x"), Outputs: []string{"o"},
		State: blockingState{release}})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want the batch abandoned at its deadline", err)
	}
	p := pr.(*processor)
	p.Close()
	h.Close()
	close(release) // the abandoned guest now returns
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		n := p.running
		p.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned guest never returned")
		}
	}
}

// blockingState is a state reader whose reads wait for release.
type blockingState struct{ release chan struct{} }

func (b blockingState) Get([]byte) ([]byte, bool) {
	<-b.release
	return nil, false
}

// An executable that is not a worker is found out, with a hint.
func TestWorkerNotDispatched(t *testing.T) {
	h := newHost(t, Config{WorkerPath: "/bin/echo", WorkerArgs: []string{"hello"}})
	_, err := h.Processor(context.Background(), core.ModuleRef{Wasm: wmod{memory: true, funcs: abiFuncs(i32c(0))}.bytes()}, core.ProcessorLimits{})
	if !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "plugins.RunWorker") {
		t.Fatalf("err = %v", err)
	}
}
