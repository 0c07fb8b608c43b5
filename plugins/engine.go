package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/weir-broker/weir/sdk/abi"
)

// engine is one compiled module in one wazero runtime configured with the
// module's memory limit. It is where guests run, in the broker process
// (in-process isolation) or in a worker.
type engine struct {
	rt    wazero.Runtime
	mod   wazero.CompiledModule
	pages uint32
}

func newEngine(ctx context.Context, wasm []byte, cache wazero.CompilationCache, pages uint32, interrupt bool) (*engine, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(interrupt)
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, invalid("parse: %v", err)
	}
	return &engine{rt: rt, mod: mod, pages: pages}, nil
}

func (e *engine) close(ctx context.Context) { e.rt.Close(ctx) }

// instance is one instantiated guest. It runs one batch at a time.
type instance struct {
	mod     api.Module
	alloc   api.Function
	process api.Function
	tick    api.Function // nil: the guest takes no ticks
	stack   []uint64
	sess    *session // the running batch's, for guest stdout/stderr
	pages   uint32   // memory limit
	stdout  *guestOutput
	stderr  *guestOutput
}

// guestOutput turns the guest's stdout or stderr into log lines of the
// running batch.
type guestOutput struct {
	in    *instance
	level int32
	buf   []byte // an unfinished line
}

func (g *guestOutput) Write(p []byte) (int, error) {
	g.buf = append(g.buf, p...)
	for {
		i := bytes.IndexByte(g.buf, '\n')
		if i < 0 {
			break
		}
		g.line(g.buf[:i])
		g.buf = g.buf[i+1:]
	}
	if len(g.buf) > 4096 {
		g.flush()
	}
	return len(p), nil
}

func (g *guestOutput) line(b []byte) {
	if s := g.in.sess; s != nil && len(b) > 0 {
		s.log(g.level, string(b))
	}
}

func (g *guestOutput) flush() {
	g.line(g.buf)
	g.buf = g.buf[:0]
}

func (e *engine) instantiate(ctx context.Context) (*instance, error) {
	in := &instance{stack: make([]uint64, 2), pages: e.pages}
	in.stdout = &guestOutput{in: in, level: abi.LevelInfo}
	in.stderr = &guestOutput{in: in, level: abi.LevelWarn}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(abi.ExportInitialize).
		WithStdout(in.stdout).
		WithStderr(in.stderr).
		WithSysNanotime()
	mod, err := e.rt.InstantiateModule(ctx, e.mod, cfg)
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("instantiate: %w", err))
	}
	in.mod = mod
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.process = mod.ExportedFunction(abi.ExportProcess)
	in.tick = mod.ExportedFunction(abi.ExportTick)
	if in.alloc == nil || in.process == nil {
		mod.Close(ctx)
		return nil, invalid("missing exports %q/%q", abi.ExportAlloc, abi.ExportProcess)
	}
	return in, nil
}

func (in *instance) close(ctx context.Context) { in.mod.Close(context.WithoutCancel(ctx)) }

type sessKey struct{}

// run runs one batch, or a tick when s.tick. After an error other than
// ErrGuest, ErrABI or ErrOutputLimit the instance must be discarded.
func (in *instance) run(ctx context.Context, batch []byte, s *session) error {
	fn := in.process
	if s.tick {
		if fn = in.tick; fn == nil {
			return nil // validation let no tick through to such a guest
		}
	}
	in.sess = s
	defer func() {
		in.stdout.flush()
		in.stderr.flush()
		in.sess = nil
	}()
	ctx = context.WithValue(ctx, sessKey{}, s)
	in.stack[0] = uint64(len(batch))
	if err := in.alloc.CallWithStack(ctx, in.stack); err != nil {
		return classify(ctx, err)
	}
	ptr := uint32(in.stack[0])
	if !in.mod.Memory().Write(ptr, batch) {
		return batchErrf(ErrABI, "weir_alloc returned %d, out of memory range for %d bytes", ptr, len(batch))
	}
	in.stack[0], in.stack[1] = uint64(ptr), uint64(len(batch))
	if err := fn.CallWithStack(ctx, in.stack); err != nil {
		err = classify(ctx, err)
		if errors.Is(err, ErrTrap) && s.saw("out of memory") {
			err = batchErrf(ErrTrap, "guest ran out of memory (limit %d pages, %d MiB): %v", in.pages, in.pages/16, err)
		}
		return err
	}
	if s.err != nil {
		return s.err
	}
	status := int32(in.stack[0])
	if s.tick && (status == abi.TickIdle || status == abi.TickPending) {
		s.pending = status == abi.TickPending
		return nil
	}
	if status != 0 {
		msg := s.failMsg
		if msg == "" {
			msg = fmt.Sprintf("status %d", status)
		}
		return &batchError{kind: ErrGuest, msg: msg}
	}
	return nil
}

// classify turns a wazero call error into a batch error.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return batchErrf(ErrTimeout, "%v", err)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return batchErrf(ErrTimeout, "guest stopped")
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("wasm: %w", context.Canceled)
		}
		return batchErrf(ErrTrap, "guest exited with code %d (a Go guest exits with 2 when it runs out of memory)", exit.ExitCode())
	}
	msg := err.Error()
	if i := strings.Index(msg, "\nwasm stack trace"); i > 0 {
		msg = msg[:i]
	}
	return batchErrf(ErrTrap, "%s", msg)
}

// instantiateHostModule defines the "weir" host functions in rt, one line
// each: one place lists the whole ABI surface. They find the batch's
// session in the call's context.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	def := func(name string, fn api.GoModuleFunc) {
		s := hostSigs[name]
		b.NewFunctionBuilder().WithGoModuleFunction(fn, s.params, s.results).Export(name)
	}
	def(abi.ImportEmit, withBytes(0, func(c hostCall, p []byte) { c.reply(c.s.emit(p)) }))
	def(abi.ImportDeadLetter, withBytes(1, func(c hostCall, p []byte) {
		c.reply(c.s.deadLetter(api.DecodeI32(c.stack[0]), string(p)))
	}))
	def(abi.ImportStateGet, withBytes(0, func(c hostCall, k []byte) { c.lookup(c.s.stateGet(k)) }))
	def(abi.ImportStatePut, withBytes2(0, 2, func(c hostCall, k, v []byte) { c.reply(c.s.statePut(k, v)) }))
	def(abi.ImportStateDelete, withBytes(0, func(c hostCall, k []byte) { c.reply(c.s.stateDelete(k)) }))
	def(abi.ImportConfigGet, withBytes(0, func(c hostCall, k []byte) {
		v, found := c.s.configGet(k)
		c.lookup([]byte(v), found)
	}))
	def(abi.ImportStateKeys, withBytes2(0, 2, hostStateKeys))
	def(abi.ImportLog, hostFunc(func(c hostCall) {
		if p, ok := c.bytes(1); ok {
			c.s.log(api.DecodeI32(c.stack[0]), string(p))
		}
	}))
	def(abi.ImportNow, hostFunc(func(c hostCall) { c.stack[0] = uint64(c.s.now()) }))
	def(abi.ImportRandom, hostFunc(func(c hostCall) {
		if p, ok := c.bytes(0); ok {
			c.s.random(p)
		}
	}))
	def(abi.ImportFail, hostFunc(func(c hostCall) {
		if p, ok := c.bytes(0); ok {
			c.s.failMsg = string(p)
		}
	}))
	_, err := b.Instantiate(ctx)
	return err
}

// hostCall is one call of a host function: the batch's session, the
// calling module, and the call's stack (arguments in, the result out in
// stack[0]).
type hostCall struct {
	s     *session
	m     api.Module
	stack []uint64
}

// hostFunc makes a host function of fn, which it calls with the session
// of the batch in the call's context: outside a batch (from _initialize),
// a session with no outputs and no state.
func hostFunc(fn func(c hostCall)) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		s, ok := ctx.Value(sessKey{}).(*session)
		if !ok {
			s = newSession(nil, 0, 0, limits{}, readerSource{})
		}
		fn(hostCall{s: s, m: m, stack: stack})
	}
}

// withBytes makes a host function of fn, which it calls with the guest's
// bytes at the pointer and length in stack[i] and stack[i+1]. Out of
// range, the call answers abi.ErrMalformed without calling fn.
func withBytes(i int, fn func(c hostCall, p []byte)) api.GoModuleFunc {
	return hostFunc(func(c hostCall) {
		p, ok := c.bytes(i)
		if !ok {
			c.reply(abi.ErrMalformed)
			return
		}
		fn(c, p)
	})
}

// withBytes2 is withBytes for two byte arguments, at stack[i] and
// stack[j]: both are read before either is checked.
func withBytes2(i, j int, fn func(c hostCall, p, q []byte)) api.GoModuleFunc {
	return hostFunc(func(c hostCall) {
		p, ok1 := c.bytes(i)
		q, ok2 := c.bytes(j)
		if !ok1 || !ok2 {
			c.reply(abi.ErrMalformed)
			return
		}
		fn(c, p, q)
	})
}

// bytes reads the guest's memory at the pointer and length in stack[i]
// and stack[i+1]. Out of range, it fails the batch with ErrABI and
// reports false.
func (c hostCall) bytes(i int) ([]byte, bool) {
	ptr, n := c.stack[i], c.stack[i+1]
	p, ok := c.m.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		c.s.fail(batchErrf(ErrABI, "pointer %d+%d out of memory range", uint32(ptr), uint32(n)))
	}
	return p, ok
}

// reply sets the call's i32 result.
func (c hostCall) reply(v int32) { c.stack[0] = api.EncodeI32(v) }

// lookup answers state_get and config_get: -1, or the length, copying
// the value when it fits.
func (c hostCall) lookup(v []byte, ok bool) {
	if !ok {
		c.reply(abi.NotFound)
		return
	}
	if uint32(len(v)) <= uint32(c.stack[3]) && len(v) > 0 {
		if !c.m.Memory().Write(uint32(c.stack[2]), v) {
			c.s.fail(batchErrf(ErrABI, "buffer out of memory range"))
			c.reply(abi.ErrMalformed)
			return
		}
	}
	c.reply(int32(len(v)))
}

// hostStateKeys answers state_keys: a page of the keys under prefix from
// start, written to the buffer at stack[4] (capacity stack[5]), and its
// length; or, when not even one key fits, the size one needs (0: the
// listing is over).
func hostStateKeys(c hostCall, prefix, start []byte) {
	keys, err := c.s.stateKeys(string(prefix), string(start))
	if err != nil {
		c.s.fail(err)
		c.reply(abi.ErrMalformed)
		return
	}
	page, n, need := abi.AppendKeys(nil, keys, int(uint32(c.stack[5])))
	if n == 0 {
		c.reply(int32(need)) // 0: the listing is over
		return
	}
	if !c.m.Memory().Write(uint32(c.stack[4]), page) {
		c.s.fail(batchErrf(ErrABI, "buffer out of memory range"))
		c.reply(abi.ErrMalformed)
		return
	}
	c.reply(int32(len(page)))
}
