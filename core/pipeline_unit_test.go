package core_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// procFunc is an in-Go core.Processor: no Wasm.
type procFunc func(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error)

func (f procFunc) Process(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
	return f(ctx, in)
}
func (f procFunc) Close() error { return nil }

// fakeRuntime accepts any bytes as a module and runs proc for every one.
type fakeRuntime struct{ proc core.Processor }

func (fakeRuntime) Validate(_ context.Context, wasm []byte) (core.ModuleInfo, error) {
	sum := sha256.Sum256(wasm)
	return core.ModuleInfo{ABIVersion: 1, SHA256: hex.EncodeToString(sum[:]), Size: len(wasm)}, nil
}

func (fakeRuntime) Limits(l core.ProcessorLimits) (core.ProcessorLimits, error) {
	if l.MemoryPages == 0 {
		l.MemoryPages = core.DefaultMemoryPages
	}
	return l, l.Validate()
}

func (r fakeRuntime) Processor(context.Context, core.ModuleRef, core.ProcessorLimits) (core.Processor, error) {
	return r.proc, nil
}

// pipeEnv runs a pipeline service over topics "in" and "out" (2
// partitions each) with module "m".
type pipeEnv struct {
	*env
	p *core.Pipelines
}

func newPipeEnv(t *testing.T, proc procFunc) *pipeEnv {
	t.Helper()
	e := &pipeEnv{env: newEnv(t, memstore.Config{})}
	e.topic(t, "in", 2)
	e.topic(t, "out", 2)
	e.p = must[*core.Pipelines](t)(core.NewPipelines(e.broker, fakeRuntime{proc}, core.PipelinesConfig{ResyncInterval: 10 * time.Millisecond}))
	if _, _, err := e.p.UploadModule(e.ctx, "m", []byte("not wasm")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *pipeEnv) create(t *testing.T, s core.PipelineSpec) {
	t.Helper()
	s.Name, s.Module, s.Inputs, s.Outputs = "p", "m", []string{"in"}, []string{"out"}
	if s.OnError.InitialBackoffMs == 0 {
		s.OnError.InitialBackoffMs, s.OnError.MaxBackoffMs = 1, 5
	}
	if _, err := e.p.Create(e.ctx, s); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits until the pipeline's position on every input partition
// is the partition's high watermark and its outbox is shipped: the fence
// after which nothing more comes out of what was produced.
func (e *pipeEnv) caughtUp(t *testing.T) []core.PartitionStatus {
	t.Helper()
	var st []core.PartitionStatus
	tu.Eventually(t, fence, "the pipeline to process its input", func() bool {
		_, s, err := e.p.Status("p")
		if err != nil {
			t.Fatal(err)
		}
		st = s
		for _, ps := range s {
			if ps.Lag != 0 || ps.Pending != 0 || ps.Position != e.log(t, "in", ps.Partition).HighWatermark() {
				return false
			}
		}
		return true
	})
	return st
}

func upper(_ context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
	out := &core.ProcessOutput{}
	for _, r := range in.Records {
		out.Records = append(out.Records, core.OutputRecord{Record: core.Record{Value: []byte(strings.ToUpper(string(r.Value)))}})
	}
	return out, nil
}

func TestPipelineAtLeastOnceOutputsAndPosition(t *testing.T) {
	e := newPipeEnv(t, upper)
	e.produce(t, "in", 0, "a", "b", "c", "d", "e")
	e.produce(t, "in", 1, "x")
	e.create(t, core.PipelineSpec{BatchSize: 2})
	e.produce(t, "in", 1, "y", "z")
	st := e.caughtUp(t)
	sameStrings(t, "out/0", e.values(t, "out", 0), []string{"A", "B", "C", "D", "E"})
	sameStrings(t, "out/1", e.values(t, "out", 1), []string{"X", "Y", "Z"})
	if st[0].Processed != 5 || st[0].Emitted != 5 || st[1].Processed != 3 || st[0].Failed != 0 {
		t.Fatalf("status %+v", st)
	}
}

// Exactly-once: outputs, state and position commit as one transaction
// (the outbox), then the outbox is shipped with idempotent appends. An
// output append that applied but answered an error is shipped again, and
// the output partition drops the repeat.
func TestPipelineExactlyOnceShipsOutboxOnce(t *testing.T) {
	count := func(_ context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
		n := int64(0)
		if v, ok := in.State.Get([]byte("n")); ok {
			n, _ = strconv.ParseInt(string(v), 10, 64)
		}
		out := &core.ProcessOutput{}
		for _, r := range in.Records {
			n++
			out.Records = append(out.Records, core.OutputRecord{Record: core.Record{Value: []byte(fmt.Sprintf("%s:%d", r.Value, n))}})
		}
		out.State = []core.StateChange{{Key: []byte("n"), Value: []byte(strconv.FormatInt(n, 10))}}
		return out, nil
	}
	e := newPipeEnv(t, count)
	e.log(t, "out", 0).Inject(memstore.Fault{Ops: memstore.OpAppend, Applied: true, Count: 2})
	e.produce(t, "in", 0, "a", "b", "c", "d", "e")
	e.create(t, core.PipelineSpec{Guarantee: core.ExactlyOnce, BatchSize: 2})
	st := e.caughtUp(t)
	sameStrings(t, "out/0", e.values(t, "out", 0), []string{"a:1", "b:2", "c:3", "d:4", "e:5"})
	if v, _ := e.log(t, "in", 0).StateGet("pipe/p/s/n"); string(v) != "5" {
		t.Fatalf("module state n = %q, want 5", v)
	}
	if st[0].Emitted != 5 || st[0].Processed != 5 {
		t.Fatalf("status %+v", st[0])
	}
}

// A batch that keeps failing is retried on_error.max_attempts times, then
// its records go to the dead-letter topic and the pipeline goes on.
func TestPipelineFailingBatchDeadLettered(t *testing.T) {
	var badCalls atomic.Int64
	proc := func(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
		if string(in.Records[0].Value) == "bad" {
			badCalls.Add(1)
			return nil, errors.New("trap: unreachable")
		}
		return upper(ctx, in)
	}
	e := newPipeEnv(t, procFunc(proc))
	e.produce(t, "in", 0, "ok1", "bad", "ok2")
	e.create(t, core.PipelineSpec{BatchSize: 1, OnError: core.OnError{MaxAttempts: 3, DeadLetterTopic: "p.dlq"}})
	st := e.caughtUp(t)
	sameStrings(t, "out/0", e.values(t, "out", 0), []string{"OK1", "OK2"})
	if n := badCalls.Load(); n != 3 {
		t.Fatalf("the failing batch ran %d times, want 3", n)
	}
	e.waitHWM(t, "p.dlq", 0, 1)
	dl, _ := e.log(t, "p.dlq", 0).Read(e.ctx, 0, 10, 0)
	if string(dl[0].Value) != "bad" {
		t.Fatalf("dead letter %q", dl[0].Value)
	}
	header(t, dl[0], core.HeaderDLQReason, "batch_failed")
	header(t, dl[0], core.HeaderAttempts, "3")
	header(t, dl[0], core.HeaderLastError, "trap: unreachable")
	header(t, dl[0], core.HeaderSourceOffset, "1")
	if st[0].Failed != 3 || st[0].DeadLettered != 1 || st[0].Processed != 2 {
		t.Fatalf("status %+v", st[0])
	}
}

// Progress that does not decode stops the pipeline (state failed, naming
// the partition) instead of starting over and emitting everything again.
func TestPipelineCorruptMetaFails(t *testing.T) {
	var calls atomic.Int64
	e := newPipeEnv(t, func(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
		calls.Add(1)
		return upper(ctx, in)
	})
	e.produce(t, "in", 1, "a", "b")
	if _, err := e.log(t, "in", 1).ApplyTxn(e.ctx, &core.StateTxn{Ops: []core.StateOp{{Key: "pipe/p/meta", Value: []byte("{not json")}}}); err != nil {
		t.Fatal(err)
	}
	e.create(t, core.PipelineSpec{})
	var s core.PipelineSpec
	tu.Eventually(t, fence, "the pipeline to fail", func() bool {
		var err error
		s, err = e.p.Get("p")
		return err == nil && s.State() == core.PipelineFailed
	})
	if f := s.Failure; f.Topic != "in" || f.Partition != 1 || !strings.Contains(f.Error, "does not decode") {
		t.Fatalf("failure %+v", f)
	}
	if v, _ := e.log(t, "in", 1).StateGet("pipe/p/meta"); string(v) != "{not json" {
		t.Fatalf("the corrupt progress was overwritten with %q", v)
	}
	if n, c := len(e.values(t, "out", 1)), calls.Load(); n != 0 || c != 0 {
		t.Fatalf("a partition with corrupt progress emitted %d records in %d module calls", n, c)
	}
}

// A partition's worker runs where the partition leads, and only there: a
// new leader takes over from the committed position.
func TestPipelineRunsOnLeadersOnly(t *testing.T) {
	e := newPipeEnv(t, upper)
	in0, in1 := e.log(t, "in", 0), e.log(t, "in", 1)
	in1.SetLeader(false)
	e.produce(t, "in", 0, "a")
	e.produce(t, "in", 1, "x")
	e.create(t, core.PipelineSpec{})
	running := func(part int) bool {
		_, st, err := e.p.Status("p")
		if err != nil {
			t.Fatal(err)
		}
		return st[part].Running
	}
	tu.Eventually(t, fence, "a worker on in/0", func() bool { return running(0) })
	// Workers start in one pass over the partitions: in/1 was passed over.
	if running(1) {
		t.Fatal("a worker runs on in/1, which this node does not lead")
	}
	e.waitHWM(t, "out", 0, 1)
	in0.SetLeader(false)
	in1.SetLeader(true)
	tu.Eventually(t, fence, "the worker to move from in/0 to in/1", func() bool { return !running(0) && running(1) })
	e.waitHWM(t, "out", 1, 1)
	in0.SetLeader(true)
	e.produce(t, "in", 0, "b")
	e.caughtUp(t)
	sameStrings(t, "out/0", e.values(t, "out", 0), []string{"A", "B"})
	sameStrings(t, "out/1", e.values(t, "out", 1), []string{"X"})
}

// Exactly-once, the deletion of a shipped outbox entry rides on the next
// batch's commit (one Raft entry fewer per batch): while batch n+1 runs,
// batch n's entry is shipped and still in state. A worker stopped there
// leaves it for its successor, which ships it again (the output partition
// drops the repeat) and deletes it; once caught up the outbox is empty and
// every output is there once.
func TestPipelineExactlyOnceShippedEntryDeletedWithNextCommit(t *testing.T) {
	var calls atomic.Int64
	block := make(chan struct{})
	proc := func(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
		if calls.Add(1) == 3 { // the third batch waits until the service stops
			select {
			case <-block:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return upper(ctx, in)
	}
	e := &pipeEnv{env: newEnv(t, memstore.Config{})}
	e.topic(t, "in", 1)
	e.topic(t, "out", 1)
	start := func() (stop func()) {
		e.p = must[*core.Pipelines](t)(core.NewPipelines(e.broker, fakeRuntime{procFunc(proc)}, core.PipelinesConfig{ResyncInterval: 10 * time.Millisecond}))
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan struct{})
		go func() { defer close(done); e.p.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := start()
	if _, _, err := e.p.UploadModule(e.ctx, "m", []byte("not wasm")); err != nil {
		t.Fatal(err)
	}
	e.produce(t, "in", 0, "a", "b", "c", "d", "e", "f", "g")
	e.create(t, core.PipelineSpec{Guarantee: core.ExactlyOnce, BatchSize: 2})
	outbox := func() []string {
		var keys []string
		e.log(t, "in", 0).StateScan("pipe/p/ob/", func(k string, _ []byte) bool { keys = append(keys, k); return true })
		return keys
	}
	// Batch 2 (c, d) is shipped while batch 3 blocks in the module.
	tu.Eventually(t, fence, "batch 2's outputs", func() bool { return len(e.values(t, "out", 0)) == 4 })
	tu.Eventually(t, fence, "batch 1's entry to go with batch 2's commit", func() bool {
		keys := outbox()
		return len(keys) == 1 && strings.HasSuffix(keys[0], "/00000000000000000001")
	})
	stop()
	close(block)
	stop = start()
	defer stop()
	e.caughtUp(t)
	sameStrings(t, "out/0", e.values(t, "out", 0), []string{"A", "B", "C", "D", "E", "F", "G"})
	if keys := outbox(); len(keys) != 0 {
		t.Fatalf("outbox after catching up: %q", keys)
	}
}
