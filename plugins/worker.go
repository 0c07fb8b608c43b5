package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tetratelabs/wazero"

	"github.com/weir-broker/weir/sdk/abi"
)

// RunWorker is the Wasm worker: the body of a child process started by a
// Host with IsolationProcess. It reads the module and then batches from in,
// runs them in one guest instance at full speed, and writes results to out.
// The broker's watchdog kills the process when a batch overruns its time, so
// the worker itself needs no CPU bound. RunWorker returns nil when in
// reaches EOF (the broker closed the pipe) and an error when the protocol
// breaks.
//
// cmd/weir calls it when WorkerEnv is "1":
//
//	if os.Getenv(plugins.WorkerEnv) == "1" {
//		if err := plugins.RunWorker(ctx, os.Stdin, os.Stdout); err != nil {
//			os.Exit(1)
//		}
//		os.Exit(0)
//	}
//
// Nothing else may write to out.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	c := newConn(in, out)
	w := &workerState{c: c}
	defer w.close(ctx)
	caps := uint32(0)
	if os.Getenv(shmFDEnv) == "3" {
		// The broker passed a shared region (shm.go); without it, or where
		// it cannot be mapped, batches come through the pipe.
		if s, err := openShm(os.NewFile(3, "shm")); err == nil {
			w.shm = s
			caps |= capShm
		}
	}
	if err := c.send(msgHello, abi.AppendU32(abi.AppendU32(nil, abi.Version), caps)); err != nil {
		return err
	}
	for {
		typ, p, err := c.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch typ {
		case msgInit:
			err = w.init(ctx, p)
		case msgBatch:
			err = w.batch(ctx, p)
		default:
			err = fmt.Errorf("worker: unexpected message %d", typ)
		}
		if err != nil {
			return err
		}
	}
}

type workerState struct {
	c     *conn
	cache wazero.CompilationCache
	eng   *engine
	in    *instance
	lim   limits
	out   []byte
	frame []byte // the frame of the running batch
	shm   *shm   // the shared region, or nil
}

func (w *workerState) close(ctx context.Context) {
	if w.in != nil {
		w.in.close(ctx)
	}
	if w.eng != nil {
		w.eng.close(ctx)
	}
	if w.cache != nil {
		w.cache.Close(ctx)
	}
	if w.shm != nil {
		w.shm.close()
	}
}

func (w *workerState) fail(err error, lost bool, logs []logLine) error {
	b := abi.AppendU32(w.out[:0], errKind(err))
	b = abi.AppendStr(b, err.Error())
	l := uint32(0)
	if lost {
		l = 1
	}
	b = abi.AppendU32(b, l)
	b = appendLogs(b, logs)
	w.out = b
	return w.c.send(msgFail, b)
}

func (w *workerState) init(ctx context.Context, p []byte) error {
	r := abi.NewReader(p)
	pages := r.U32()
	maxState := r.U32()
	dir := r.Str()
	wasm := r.Bytes()
	if r.Err() != nil {
		return errors.New("worker: bad init message")
	}
	w.lim = limits{pages: pages, maxState: int(maxState)}
	if dir != "" {
		c, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return w.fail(batchErrf(ErrWorker, "compilation cache: %v", err), true, nil)
		}
		w.cache = c
	}
	e, err := newEngine(ctx, wasm, w.cache, pages, false)
	if err != nil {
		return w.fail(batchErrf(ErrWorker, "%v", err), true, nil)
	}
	w.eng = e
	if err := w.c.send(msgCompiled, nil); err != nil {
		return err
	}
	if w.in, err = e.instantiate(ctx); err != nil {
		return w.fail(err, true, nil)
	}
	return w.c.send(msgReady, nil)
}

// remoteSource serves a worker's state reads: prefetched values, a
// speculative "not found" for others (noted in missing), or, once not
// speculative, a round trip to the broker per key.
type remoteSource struct {
	c           *conn
	buf         []byte
	known       map[string]stateEntry // prefetched and fetched values
	speculative bool
	missing     map[string]bool
	read        []string // every key read, in first-read order
	readSet     map[string]bool
	listed      map[[2]string][]string // state listings by (prefix, start), for both runs
}

// keys lists committed keys: a round trip to the broker, once per
// (prefix, start) for the batch (the speculative run's answers serve the
// second run).
func (s *remoteSource) keys(prefix, start string, limit int) ([]string, error) {
	if k, ok := s.listed[[2]string{prefix, start}]; ok {
		return k, nil
	}
	b := abi.AppendStr(s.buf[:0], prefix)
	b = abi.AppendStr(b, start)
	b = abi.AppendU32(b, uint32(limit))
	s.buf = b
	if err := s.c.send(msgKeys, b); err != nil {
		return nil, err
	}
	typ, p, err := s.c.recv()
	if err != nil {
		return nil, err
	}
	if typ != msgKeyList {
		return nil, fmt.Errorf("worker: got message %d, want state keys", typ)
	}
	r := abi.NewReader(p)
	n := r.U32()
	if uint64(n)*4 > uint64(r.Len()) {
		return nil, errors.New("worker: bad state keys message")
	}
	keys := make([]string, 0, n)
	for range n {
		keys = append(keys, r.Str())
	}
	if r.Err() != nil {
		return nil, errors.New("worker: bad state keys message")
	}
	if s.listed == nil {
		s.listed = map[[2]string][]string{}
	}
	s.listed[[2]string{prefix, start}] = keys
	return keys, nil
}

func (s *remoteSource) noteRead(k string) {
	if !s.readSet[k] {
		s.readSet[k] = true
		s.read = append(s.read, k)
	}
}

func (s *remoteSource) get(key []byte) ([]byte, bool, error) {
	if e, ok := s.known[string(key)]; ok {
		s.noteRead(string(key))
		return e.val, e.ok, nil
	}
	if s.speculative {
		s.missing[string(key)] = true
		return nil, false, nil
	}
	if err := s.fetch([]string{string(key)}); err != nil {
		return nil, false, err
	}
	e := s.known[string(key)]
	s.noteRead(string(key))
	return e.val, e.ok, nil
}

// fetch asks the broker for keys in one round trip.
func (s *remoteSource) fetch(keys []string) error {
	b := abi.AppendU32(s.buf[:0], uint32(len(keys)))
	for _, k := range keys {
		b = abi.AppendStr(b, k)
	}
	s.buf = b
	if err := s.c.send(msgGet, b); err != nil {
		return err
	}
	typ, p, err := s.c.recv()
	if err != nil {
		return err
	}
	if typ != msgVal {
		return fmt.Errorf("worker: got message %d, want state values", typ)
	}
	r := abi.NewReader(p)
	if n := r.U32(); int(n) != len(keys) {
		return fmt.Errorf("worker: %d state values for %d keys", n, len(keys))
	}
	for _, k := range keys {
		found := r.U32() == 1
		v := r.Bytes()
		if r.Err() != nil {
			return errors.New("worker: bad state value message")
		}
		s.remember(k, found, v)
	}
	return nil
}

// remember keeps a committed value (a copy of v) or, not found, its
// absence.
func (s *remoteSource) remember(k string, found bool, v []byte) {
	e := stateEntry{ok: found}
	if found {
		e.val = append([]byte{}, v...)
	}
	s.known[k] = e
}

// fetchMissing fetches the keys the speculative run found missing, in one
// round trip, and readies the source for the second run: not speculative,
// no key read yet.
func (s *remoteSource) fetchMissing() error {
	keys := make([]string, 0, len(s.missing))
	for k := range s.missing {
		keys = append(keys, k)
	}
	if err := s.fetch(keys); err != nil {
		return err
	}
	s.speculative = false
	s.read, s.readSet = s.read[:0], map[string]bool{}
	return nil
}

// batch runs one batch message from the broker: a speculative run on the
// prefetched state, a second run when that read keys nobody prefetched,
// and the result (or the failure) sent back.
func (w *workerState) batch(ctx context.Context, p []byte) error {
	if w.eng == nil {
		return errors.New("worker: batch before init")
	}
	r := abi.NewReader(p)
	flags := r.U32()
	tick := flags&flagTick != 0
	lim := w.lim
	lim.maxOut = int64(r.U64())
	nOut := int(r.U32())
	nRec := int(r.U32())
	cfg := readConfig(r)
	src := readPrefetched(r, w.c)
	inShm := flags&flagShm != 0
	batch, err := w.batchBytes(r, inShm)
	if err != nil {
		return err
	}
	// State round trips reuse the frame buffer: take it over, and give the
	// connection the previous batch's buffer in exchange.
	w.c.steal(w.frame)
	w.frame = p[:0:cap(p)]

	sess := func() *session {
		s := newSession(cfg, nOut, nRec, lim, src)
		s.tick = tick
		return s
	}
	s, err := w.run(ctx, batch, sess)
	if err == nil || reusableAfter(err) || errors.Is(err, ErrTrap) {
		if len(src.missing) > 0 {
			// The speculative run read keys nobody prefetched: fetch them
			// all at once and run the batch again, for real.
			if err := src.fetchMissing(); err != nil {
				return err
			}
			s, err = w.run(ctx, batch, sess)
		}
	}
	if err != nil {
		return w.fail(err, w.in == nil, s.logs)
	}
	b := appendResult(w.out[:0], s, src)
	w.out = b
	if inShm && len(b) <= len(w.shm.mem) {
		// The batch is done with the region: the result takes its place.
		copy(w.shm.mem, b)
		return w.c.send(msgResultShm, abi.AppendU32(nil, uint32(len(b))))
	}
	return w.c.send(msgResult, b)
}

// readConfig reads a batch message's pipeline config: a count, then key
// and value strings.
func readConfig(r *abi.Reader) map[string]string {
	nCfg := r.U32()
	cfg := make(map[string]string, min(nCfg, 1024))
	for i := uint32(0); i < nCfg && r.Err() == nil; i++ {
		k := r.Str()
		cfg[k] = r.Str()
	}
	return cfg
}

// readPrefetched reads a batch message's prefetched state into a new
// speculative remoteSource on c.
func readPrefetched(r *abi.Reader, c *conn) *remoteSource {
	src := &remoteSource{c: c, known: map[string]stateEntry{}, speculative: true,
		missing: map[string]bool{}, readSet: map[string]bool{}}
	nPre := r.U32()
	for i := uint32(0); i < nPre && r.Err() == nil; i++ {
		k := r.Str()
		found := r.U32() == 1
		src.remember(k, found, r.Bytes())
	}
	return src
}

// batchBytes reads a batch message's encoded records: inline, or (inShm)
// their size in the shared-memory region, remapped to the size the broker
// gave.
func (w *workerState) batchBytes(r *abi.Reader, inShm bool) ([]byte, error) {
	var batch []byte
	if inShm {
		size, n := r.U32(), r.U32()
		if r.Err() != nil || w.shm == nil || n > size {
			return nil, errors.New("worker: bad shared-memory batch message")
		}
		if err := w.shm.remap(int(size)); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		batch = w.shm.mem[:n]
	} else {
		batch = r.Bytes()
	}
	if r.Err() != nil {
		return nil, errors.New("worker: bad batch message")
	}
	return batch, nil
}

// appendResult appends a batch's result message to b: the emitted
// records, state changes, dead letters, logs, the keys read and whether a
// tick is pending.
func appendResult(b []byte, s *session, src *remoteSource) []byte {
	b = abi.AppendBytes(b, s.emitted)
	b = abi.AppendU32(b, uint32(len(s.changes)))
	for _, ch := range s.changes {
		d := uint32(0)
		if ch.Delete {
			d = 1
		}
		b = abi.AppendU32(b, d)
		b = abi.AppendBytes(b, ch.Key)
		b = abi.AppendBytes(b, ch.Value)
	}
	b = abi.AppendU32(b, uint32(len(s.dead)))
	for _, d := range s.dead {
		b = abi.AppendU32(b, uint32(d.Index))
		b = abi.AppendStr(b, d.Reason)
	}
	b = appendLogs(b, s.logs)
	b = abi.AppendU32(b, uint32(len(src.read)))
	for _, k := range src.read {
		b = abi.AppendStr(b, k)
	}
	pending := uint32(0)
	if s.pending {
		pending = 1
	}
	return abi.AppendU32(b, pending)
}

// run runs one batch in the instance, instantiating one first if needed,
// and discards the instance when the failure requires it.
func (w *workerState) run(ctx context.Context, batch []byte, sess func() *session) (*session, error) {
	s := sess()
	if w.in == nil {
		in, err := w.eng.instantiate(ctx)
		if err != nil {
			return s, err
		}
		w.in = in
	}
	err := w.in.run(ctx, batch, s)
	if err != nil && !reusableAfter(err) {
		w.in.close(ctx)
		w.in = nil
	}
	return s, err
}

func appendLogs(b []byte, logs []logLine) []byte {
	b = abi.AppendU32(b, uint32(len(logs)))
	for _, l := range logs {
		b = abi.AppendU32(b, uint32(l.level))
		b = abi.AppendStr(b, l.msg)
	}
	return b
}

func readLogs(r *abi.Reader) []logLine {
	n := r.U32()
	var logs []logLine
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		lv := int32(r.U32())
		logs = append(logs, logLine{lv, r.Str()})
	}
	return logs
}
