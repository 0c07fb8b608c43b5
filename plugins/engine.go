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

// instantiateHostModule defines the "weir" host functions in rt. They find
// the batch's session in the call's context.
//
// It is a table of the host functions, kept whole (over 80 lines): one
// place lists the whole ABI surface.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	def := func(name string, fn api.GoModuleFunc) {
		s := hostSigs[name]
		b.NewFunctionBuilder().WithGoModuleFunction(fn, s.params, s.results).Export(name)
	}
	sess := func(ctx context.Context) *session {
		if s, ok := ctx.Value(sessKey{}).(*session); ok {
			return s
		}
		// Called outside a batch (from _initialize): no outputs, no state.
		return newSession(nil, 0, 0, limits{}, readerSource{})
	}
	read := func(s *session, m api.Module, ptr, n uint64) ([]byte, bool) {
		p, ok := m.Memory().Read(uint32(ptr), uint32(n))
		if !ok {
			s.fail(batchErrf(ErrABI, "pointer %d+%d out of memory range", uint32(ptr), uint32(n)))
		}
		return p, ok
	}
	// lookup answers state_get and config_get: -1, or the length, copying
	// the value when it fits.
	lookup := func(s *session, m api.Module, stack []uint64, v []byte, ok bool) {
		if !ok {
			stack[0] = api.EncodeI32(abi.NotFound)
			return
		}
		if uint32(len(v)) <= uint32(stack[3]) && len(v) > 0 {
			if !m.Memory().Write(uint32(stack[2]), v) {
				s.fail(batchErrf(ErrABI, "buffer out of memory range"))
				stack[0] = api.EncodeI32(abi.ErrMalformed)
				return
			}
		}
		stack[0] = api.EncodeI32(int32(len(v)))
	}
	def(abi.ImportEmit, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		p, ok := read(s, m, stack[0], stack[1])
		if !ok {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		stack[0] = api.EncodeI32(s.emit(p))
	})
	def(abi.ImportDeadLetter, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		p, ok := read(s, m, stack[1], stack[2])
		if !ok {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		stack[0] = api.EncodeI32(s.deadLetter(api.DecodeI32(stack[0]), string(p)))
	})
	def(abi.ImportStateGet, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		k, ok := read(s, m, stack[0], stack[1])
		if !ok {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		v, found := s.stateGet(k)
		lookup(s, m, stack, v, found)
	})
	def(abi.ImportStatePut, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		k, ok1 := read(s, m, stack[0], stack[1])
		v, ok2 := read(s, m, stack[2], stack[3])
		if !ok1 || !ok2 {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		stack[0] = api.EncodeI32(s.statePut(k, v))
	})
	def(abi.ImportStateDelete, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		k, ok := read(s, m, stack[0], stack[1])
		if !ok {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		stack[0] = api.EncodeI32(s.stateDelete(k))
	})
	def(abi.ImportConfigGet, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		k, ok := read(s, m, stack[0], stack[1])
		if !ok {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		v, found := s.configGet(k)
		lookup(s, m, stack, []byte(v), found)
	})
	def(abi.ImportStateKeys, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		prefix, ok1 := read(s, m, stack[0], stack[1])
		start, ok2 := read(s, m, stack[2], stack[3])
		if !ok1 || !ok2 {
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		keys, err := s.stateKeys(string(prefix), string(start))
		if err != nil {
			s.fail(err)
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		page, n, need := abi.AppendKeys(nil, keys, int(uint32(stack[5])))
		if n == 0 {
			stack[0] = api.EncodeI32(int32(need)) // 0: the listing is over
			return
		}
		if !m.Memory().Write(uint32(stack[4]), page) {
			s.fail(batchErrf(ErrABI, "buffer out of memory range"))
			stack[0] = api.EncodeI32(abi.ErrMalformed)
			return
		}
		stack[0] = api.EncodeI32(int32(len(page)))
	})
	def(abi.ImportLog, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		if p, ok := read(s, m, stack[1], stack[2]); ok {
			s.log(api.DecodeI32(stack[0]), string(p))
		}
	})
	def(abi.ImportNow, func(ctx context.Context, m api.Module, stack []uint64) {
		stack[0] = uint64(sess(ctx).now())
	})
	def(abi.ImportRandom, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		if p, ok := read(s, m, stack[0], stack[1]); ok {
			s.random(p)
		}
	})
	def(abi.ImportFail, func(ctx context.Context, m api.Module, stack []uint64) {
		s := sess(ctx)
		if p, ok := read(s, m, stack[0], stack[1]); ok {
			s.failMsg = string(p)
		}
	})
	_, err := b.Instantiate(ctx)
	return err
}
