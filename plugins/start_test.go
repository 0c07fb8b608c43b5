package plugins

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

// loopingStart is a valid guest whose start function loops forever.
func loopingStart() []byte {
	m := wmod{memory: true, funcs: append(abiFuncs(i32c(0)), wfunc{body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}})}
	m.start = len(m.funcs)
	return m.bytes()
}

// loopingInitialize is a valid reactor whose _initialize loops forever.
func loopingInitialize() []byte {
	return wmod{memory: true, funcs: append(abiFuncs(i32c(0)), wfunc{export: "_initialize", body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}})}.bytes()
}

// A start function or _initialize that never returns is stopped at the
// pipeline's time limit, in the modes with a CPU bound, and Processor fails.
// (Trusted mode gives up at the limit too, but the guest goes on running.)
func TestInstantiationTimeLimit(t *testing.T) {
	for _, iso := range isolations {
		for name, wasm := range map[string][]byte{"start": loopingStart(), "_initialize": loopingInitialize()} {
			t.Run(string(iso)+"/"+name, func(t *testing.T) {
				h := newHost(t, Config{Isolation: iso})
				const limit = 200 * time.Millisecond
				begin := time.Now()
				_, err := h.Processor(context.Background(), core.ModuleRef{Name: "m", Version: 1, Wasm: wasm}, core.ProcessorLimits{BatchTimeoutMs: limit.Milliseconds()})
				elapsed := time.Since(begin)
				if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "_initialize") {
					t.Fatalf("err = %v, want ErrTimeout naming the start function", err)
				}
				// Bounded by the batch limit, not the minute-long start timeout.
				if elapsed > 30*time.Second {
					t.Fatalf("stopped after %v, limit %v", elapsed, limit)
				}
			})
		}
	}
}

// A module that declares more initial memory than its limit is refused
// before it runs; at upload when no pipeline could ever give it that much.
func TestInstantiationMemoryLimit(t *testing.T) {
	h := newHost(t, Config{})
	big := wmod{memory: true, pages: 300, funcs: abiFuncs(i32c(0))}.bytes()
	info, err := h.Validate(context.Background(), big)
	if err != nil || info.MemoryPages != 300 {
		t.Fatalf("info %+v, err %v", info, err)
	}
	_, err = h.Processor(context.Background(), core.ModuleRef{Wasm: big}, core.ProcessorLimits{})
	if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), "300 pages") {
		t.Fatalf("err = %v, want ErrMemoryLimit", err)
	}
	p, err := h.Processor(context.Background(), core.ModuleRef{Wasm: big}, core.ProcessorLimits{MemoryPages: 300})
	if err != nil {
		t.Fatalf("with 300 pages: %v", err)
	}
	p.Close()

	huge := wmod{memory: true, pages: 65536, funcs: abiFuncs(i32c(0))}.bytes() // 4 GiB
	if _, err := h.Validate(context.Background(), huge); !errors.Is(err, core.ErrModuleInvalid) || !strings.Contains(err.Error(), "65536 pages") {
		t.Fatalf("4 GiB module: err = %v", err)
	}
}

// Limits resolves defaults and refuses out-of-range limits as bad requests.
func TestHostLimits(t *testing.T) {
	h := newHost(t, Config{MaxMemoryPages: 1024})
	got, err := h.Limits(core.ProcessorLimits{})
	if err != nil || got != (core.ProcessorLimits{MemoryPages: core.DefaultMemoryPages, BatchTimeoutMs: core.DefaultBatchTimeoutMs, MaxOutputBytes: core.DefaultMaxOutputBytes}) {
		t.Fatalf("defaults %+v %v", got, err)
	}
	for _, l := range []core.ProcessorLimits{
		{MemoryPages: 65536},
		{MemoryPages: 1025},
		{BatchTimeoutMs: 86_400_000},
		{BatchTimeoutMs: -1},
		{MaxOutputBytes: 1 << 30},
	} {
		if _, err := h.Limits(l); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%+v: err = %v, want ErrBadRequest", l, err)
		}
	}
	if _, err := New(Config{MaxMemoryPages: 65536}); err == nil {
		t.Fatal("MaxMemoryPages of 4 GiB accepted")
	}
}
