package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

// worker is the broker's handle on one worker process holding one guest
// instance. Its watchdog is a timer per batch that kills the process when
// the batch overruns; a killed worker is discarded.
type worker struct {
	h      *Host
	lim    limits
	cmd    *exec.Cmd
	c      *conn
	stdin  io.Closer
	done   chan struct{} // closed when the process has exited and been reaped
	stderr *tailBuffer

	hints *hintTable // the processor's; nil for none

	mu     sync.Mutex
	killed error // why the broker killed it, or nil
	buf    []byte
	vals   []byte
	inline []byte // batches sent through the pipe

	// shmMu is held while a batch uses the region, so that close (from
	// Processor.Close, under a running batch) unmaps it only afterwards.
	shmMu  sync.Mutex
	shm    *shm // nil: batches go through the pipe
	shmMax int  // the region's limit (Config.WorkerSharedMemory)
}

func (h *Host) workerCommand() (string, []string, error) {
	path := h.cfg.WorkerPath
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", nil, fmt.Errorf("%w: no executable for workers: %v", ErrWorker, err)
		}
		path = exe
	}
	return path, h.cfg.WorkerArgs, nil
}

// startWorker starts a worker process and loads wasm into it.
func (h *Host) startWorker(ctx context.Context, wasm []byte, lim limits) (*worker, error) {
	if os.Getenv(WorkerEnv) == "1" {
		// This process was started as a worker but did not dispatch to
		// RunWorker; starting workers from here would recurse.
		return nil, fmt.Errorf("%w: this process has %s=1 but its main did not call plugins.RunWorker", ErrWorker, WorkerEnv)
	}
	path, args, err := h.workerCommand()
	if err != nil {
		return nil, err
	}
	w, err := h.spawnWorker(path, args, lim)
	if err != nil {
		return nil, err
	}
	if err := w.hello(ctx, path); err != nil {
		return nil, err
	}
	if err := w.load(ctx, wasm); err != nil {
		return nil, err
	}
	return w, nil
}

// spawnWorker starts the worker process path with args, its pipes and
// (where the platform has a memfd and the config asks for one) its
// shared-memory region, and reaps it when it exits.
func (h *Host) spawnWorker(path string, args []string, lim limits) (*worker, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"=1", "GOMAXPROCS=1")
	setWorkerAttrs(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{h: h, lim: lim, cmd: cmd, stdin: stdin, done: make(chan struct{}), stderr: &tailBuffer{max: 4 << 10}}
	cmd.Stderr = w.stderr
	if max := h.cfg.WorkerSharedMemory; max > 0 {
		// Where the platform has no memfd, batches go through the pipe.
		if s, err := newShm(min(shmInitial, max)); err == nil {
			w.shm, w.shmMax = s, max
			cmd.ExtraFiles = []*os.File{s.f}
			cmd.Env = append(cmd.Env, shmFDEnv+"=3")
		}
	}
	if err := cmd.Start(); err != nil {
		w.closeShm()
		return nil, fmt.Errorf("%w: start %s: %v", ErrWorker, path, err)
	}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	w.c = newConn(stdout, stdin)
	return w, nil
}

// hello waits for the worker's hello and drops the shared-memory region
// when the worker cannot use it. path names the binary in the error.
func (w *worker) hello(ctx context.Context, path string) error {
	stopHello := w.watch(ctx, min(helloTimeout, w.h.cfg.WorkerStartTimeout), "waiting for the worker's hello")
	typ, hello, err := w.c.recv()
	stopHello()
	if err != nil || typ != msgHello {
		if err == nil {
			err = fmt.Errorf("message %d", typ)
		}
		return fmt.Errorf("%w (is %s a Weir binary whose main calls plugins.RunWorker when %s=1?)", w.broken(err), path, WorkerEnv)
	}
	hr := abi.NewReader(hello)
	hr.U32() // the ABI version
	if caps := hr.U32(); hr.Err() != nil || caps&capShm == 0 {
		w.closeShm() // an older worker, or it could not map the region
	}
	return nil
}

// load compiles and instantiates wasm in the worker. On an error the
// worker is closed (or broken).
func (w *worker) load(ctx context.Context, wasm []byte) error {
	h, lim := w.h, w.lim
	// Compilation is the host's work: it gets the start timeout.
	// Instantiation runs guest code (the start function, _initialize): it
	// gets the batch time limit, like any guest code.
	stop := w.watch(ctx, h.cfg.WorkerStartTimeout, "compiling the module")
	b := abi.AppendU32(nil, lim.pages)
	b = abi.AppendU32(b, uint32(lim.maxState))
	b = abi.AppendStr(b, h.cfg.CacheDir)
	b = abi.AppendBytes(b, wasm)
	if err := w.c.send(msgInit, b); err != nil {
		stop()
		return w.broken(err)
	}
	typ, p, err := w.c.recv()
	stop()
	if err == nil && typ == msgCompiled {
		stop = w.watch(ctx, lim.timeout, "the module's start function and _initialize")
		typ, p, err = w.c.recv()
		stop()
	}
	if err != nil {
		return w.broken(err)
	}
	switch typ {
	case msgReady:
		w.mu.Lock()
		killed := w.killed // the watchdog fired as the answer came
		w.mu.Unlock()
		if killed != nil {
			w.close()
			return killed
		}
		return nil
	case msgFail:
		r := abi.NewReader(p)
		kind, msg := r.U32(), r.Str()
		w.close()
		err := kindError(kind, msg)
		if errors.Is(err, ErrWorker) {
			return err
		}
		return fmt.Errorf("%w: module failed to start: %w", ErrWorker, err)
	}
	w.close()
	return fmt.Errorf("%w: unexpected message %d at start", ErrWorker, typ)
}

// watch arms the watchdog: the process is killed when d passes or ctx ends
// before the returned stop is called.
func (w *worker) watch(ctx context.Context, d time.Duration, what string) (stop func()) {
	t := time.AfterFunc(d, func() {
		w.kill(batchErrf(ErrTimeout, "%s ran longer than %v; worker killed", what, d))
	})
	if ctx.Done() == nil {
		return func() { t.Stop() }
	}
	cancel := context.AfterFunc(ctx, func() { w.kill(ctx.Err()) })
	return func() {
		t.Stop()
		cancel()
	}
}

func (w *worker) kill(reason error) {
	w.mu.Lock()
	if w.killed == nil {
		w.killed = reason
	}
	w.mu.Unlock()
	_ = w.cmd.Process.Kill()
}

// broken explains an I/O error with the worker: the watchdog's reason when
// it killed the process, else the process's exit and stderr.
func (w *worker) broken(err error) error {
	w.mu.Lock()
	reason := w.killed
	w.mu.Unlock()
	w.close()
	if reason != nil {
		return reason
	}
	msg := w.stderr.String()
	if msg != "" {
		msg = ": " + msg
	}
	return fmt.Errorf("%w: %v (%s)%s", ErrWorker, err, w.cmd.ProcessState, msg)
}

// close kills the process, waits for it to be reaped, and then (once no
// batch uses it) releases the shared region.
func (w *worker) close() {
	_ = w.stdin.Close()
	_ = w.cmd.Process.Kill()
	<-w.done
	w.closeShm()
}

func (w *worker) closeShm() {
	w.shmMu.Lock()
	defer w.shmMu.Unlock()
	if w.shm != nil {
		w.shm.close()
		w.shm = nil
	}
}

func (w *worker) process(ctx context.Context, in *core.ProcessInput, enc batchEncoder) (*core.ProcessOutput, []logLine, bool, error) {
	stop := w.watch(ctx, w.lim.timeout, "batch")
	out, logs, err := w.run(in, enc)
	stop()
	w.mu.Lock()
	killed := w.killed
	w.mu.Unlock()
	if killed != nil {
		// The watchdog fired, possibly just after the result arrived: the
		// batch overran its time either way.
		w.close()
		if errors.Is(killed, context.Canceled) || errors.Is(killed, context.DeadlineExceeded) {
			return nil, logs, false, fmt.Errorf("wasm: %w", killed)
		}
		return nil, logs, false, killed
	}
	if err != nil {
		var be *batchError
		if errors.As(err, &be) && be.kind != ErrWorker {
			return nil, logs, true, err // the guest failed; the worker is fine
		}
		return nil, logs, false, w.broken(err)
	}
	return out, logs, true, nil
}

// putBatch encodes the batch into the shared region when it fits there
// (growing the region up to its limit), reporting the batch's length; else
// into w.inline, for the pipe.
func (w *worker) putBatch(enc batchEncoder) (inShm bool, n int, err error) {
	if w.shm == nil {
		w.inline = enc(w.inline[:0])
		return false, len(w.inline), nil
	}
	b := enc(w.shm.mem[:0])
	if len(b) > 0 && &b[0] == &w.shm.mem[0] {
		return true, len(b), nil // encoded in place
	}
	// It outgrew the region: grow the region if allowed, else use the pipe.
	if len(b) > w.shmMax {
		w.inline = b
		return false, len(b), nil
	}
	if err := w.shm.grow(len(b)); err != nil {
		return false, 0, err
	}
	return true, copy(w.shm.mem, b), nil
}

// run sends one batch to the worker and answers its state requests until
// its result or its failure arrives. It holds w.shmMu throughout.
func (w *worker) run(in *core.ProcessInput, enc batchEncoder) (*core.ProcessOutput, []logLine, error) {
	w.shmMu.Lock()
	defer w.shmMu.Unlock()
	inShm, err := w.sendBatch(in, enc)
	if err != nil {
		return nil, nil, err
	}
	for {
		typ, p, err := w.c.recv()
		if err != nil {
			return nil, nil, err
		}
		r := abi.NewReader(p)
		switch typ {
		case msgGet:
			if err := w.answerGet(r, in.State); err != nil {
				return nil, nil, err
			}
		case msgKeys:
			if err := w.answerKeys(r, in.State); err != nil {
				return nil, nil, err
			}
		case msgResult, msgResultShm:
			return w.result(typ, r, inShm, in)
		case msgFail:
			kind, msg := r.U32(), r.Str()
			r.U32()
			logs := readLogs(r)
			return nil, logs, kindError(kind, msg)
		default:
			return nil, nil, fmt.Errorf("unexpected message %d", typ)
		}
	}
}

// sendBatch sends the batch message: its header, config and prefetched
// state, and the records (encoded by enc) in the shared region or inline.
// It reports whether the records went through the region. Called with
// w.shmMu held.
func (w *worker) sendBatch(in *core.ProcessInput, enc batchEncoder) (bool, error) {
	inShm, n, err := w.putBatch(enc)
	if err != nil {
		return false, err
	}
	flags := uint32(0)
	if in.Tick {
		flags |= flagTick
	}
	if inShm {
		flags |= flagShm
	}
	b := abi.AppendU32(w.buf[:0], flags)
	b = abi.AppendU64(b, uint64(w.lim.maxOut))
	b = abi.AppendU32(b, uint32(len(in.Outputs)))
	b = abi.AppendU32(b, uint32(len(in.Records)))
	b = abi.AppendU32(b, uint32(len(in.Config)))
	for k, v := range in.Config {
		b = abi.AppendStr(b, k)
		b = abi.AppendStr(b, v)
	}
	b = w.appendPrefetch(b, in)
	var inline []byte
	if inShm {
		b = abi.AppendU32(b, uint32(len(w.shm.mem)))
		b = abi.AppendU32(b, uint32(n))
	} else {
		b = abi.AppendU32(b, uint32(n))
		inline = w.inline
	}
	w.buf = b
	return inShm, w.c.send2(msgBatch, b, inline)
}

// answerGet answers the worker's request for state values (msgGet) from st.
func (w *worker) answerGet(r *abi.Reader, st core.StateReader) error {
	n := r.U32()
	b := abi.AppendU32(w.vals[:0], n)
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		b = appendStateValue(b, st, r.Bytes())
	}
	if r.Err() != nil {
		return errors.New("bad state request")
	}
	w.vals = b
	return w.c.send(msgVal, b)
}

// answerKeys answers the worker's request for a page of state keys
// (msgKeys) from st: none when st cannot list.
func (w *worker) answerKeys(r *abi.Reader, st core.StateReader) error {
	prefix, start, limit := r.Str(), r.Str(), r.U32()
	if r.Err() != nil {
		return errors.New("bad state listing request")
	}
	var keys []string
	if l, ok := st.(core.StateLister); ok {
		keys = l.Keys(prefix, start, int(min(limit, keysPage)))
	}
	b := abi.AppendU32(w.vals[:0], uint32(len(keys)))
	for _, k := range keys {
		b = abi.AppendStr(b, k)
	}
	w.vals = b
	return w.c.send(msgKeyList, b)
}

// result decodes the batch's result, a msgResult (r reads its frame) or a
// msgResultShm (r reads its length in the shared region), and keeps the
// keys it read as the partition's prefetch hints.
func (w *worker) result(typ byte, r *abi.Reader, inShm bool, in *core.ProcessInput) (*core.ProcessOutput, []logLine, error) {
	if typ == msgResultShm {
		// Copied out first: the decoded records alias the copy, and
		// nothing the worker does to the region later changes them.
		n := r.U32()
		if r.Err() != nil || !inShm || uint64(n) > uint64(len(w.shm.mem)) {
			return nil, nil, errors.New("bad shared-memory result message")
		}
		r = abi.NewReader(append([]byte(nil), w.shm.mem[:n]...))
	} else {
		// The decoded records alias the frame: it becomes theirs.
		w.c.steal(nil)
	}
	out, logs, read, err := decodeResult(r, in, w.lim.maxOut)
	if err == nil && w.hints != nil {
		w.hints.set(in.Topic, in.Partition, read)
	}
	return out, logs, err
}

// decodeResult decodes a msgResult; emitted records alias its frame.
func decodeResult(r *abi.Reader, in *core.ProcessInput, maxOut int64) (*core.ProcessOutput, []logLine, []string, error) {
	nOut, nRec := len(in.Outputs), len(in.Records)
	emitted := r.Bytes()
	out := &core.ProcessOutput{}
	n := r.U32()
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		del := r.U32() == 1
		k := append([]byte{}, r.Bytes()...)
		v := append([]byte{}, r.Bytes()...)
		if del {
			v = nil
		}
		out.State = append(out.State, core.StateChange{Key: k, Value: v, Delete: del})
	}
	n = r.U32()
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		idx := int(r.U32())
		out.Dead = append(out.Dead, core.DeadRecord{Index: idx, Reason: r.Str()})
	}
	logs := readLogs(r)
	nRead := r.U32()
	var read []string
	for i := uint32(0); i < nRead && r.Err() == nil; i++ {
		read = append(read, r.Str())
	}
	out.Pending = r.U32() == 1
	if r.Err() != nil {
		return nil, logs, nil, errors.New("bad result message")
	}
	recs, err := decodeEmitted(emitted, in.Records, maxOut)
	if err != nil {
		return nil, logs, nil, err
	}
	for _, rec := range recs {
		if rec.Output < 0 || rec.Output >= nOut {
			return nil, logs, nil, batchErrf(ErrABI, "emit to output %d, the pipeline has %d", rec.Output, nOut)
		}
	}
	for _, d := range out.Dead {
		if d.Index < 0 || d.Index >= nRec {
			return nil, logs, nil, batchErrf(ErrABI, "dead_letter index %d out of range", d.Index)
		}
	}
	out.Records = recs
	return out, logs, read, nil
}

func appendStateValue(b []byte, st core.StateReader, key []byte) []byte {
	var v []byte
	var ok bool
	if st != nil {
		v, ok = st.Get(key)
	}
	found := uint32(0)
	if ok {
		found = 1
	}
	return abi.AppendBytes(abi.AppendU32(b, found), v)
}

// appendPrefetch appends the committed values of the keys the previous
// batch of this partition read.
func (w *worker) appendPrefetch(b []byte, in *core.ProcessInput) []byte {
	var keys []string
	if w.hints != nil && in.State != nil {
		keys = w.hints.get(in.Topic, in.Partition)
	}
	b = abi.AppendU32(b, uint32(len(keys)))
	for _, k := range keys {
		b = abi.AppendStr(b, k)
		b = appendStateValue(b, in.State, []byte(k))
	}
	return b
}

// maxHints bounds the keys prefetched for one batch.
const maxHints = 8192

// hintTable remembers, per input partition, the state keys the last batch
// read: the next batch's prefetch. Safe for concurrent use.
type hintTable struct {
	mu sync.Mutex
	m  map[hintKey][]string
}

type hintKey struct {
	topic     string
	partition int
}

func (t *hintTable) get(topic string, partition int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[hintKey{topic, partition}]
}

func (t *hintTable) set(topic string, partition int, keys []string) {
	if len(keys) > maxHints {
		keys = keys[:maxHints]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[hintKey][]string)
	}
	t.m[hintKey{topic, partition}] = keys
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b.Bytes()))
}
