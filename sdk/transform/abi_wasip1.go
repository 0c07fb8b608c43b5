//go:build wasip1

package transform

import (
	"unsafe"

	"github.com/weir-broker/weir/sdk/abi"
)

// Every import from the host and export to it lives in this file.

//go:wasmimport weir emit
func hostEmit(p unsafe.Pointer, n uint32) int32

//go:wasmimport weir dead_letter
func hostDeadLetter(index int32, p unsafe.Pointer, n uint32) int32

//go:wasmimport weir state_get
func hostStateGet(k unsafe.Pointer, kn uint32, buf unsafe.Pointer, bufCap uint32) int32

//go:wasmimport weir state_put
func hostStatePut(k unsafe.Pointer, kn uint32, v unsafe.Pointer, vn uint32) int32

//go:wasmimport weir state_delete
func hostStateDelete(k unsafe.Pointer, kn uint32) int32

//go:wasmimport weir config_get
func hostConfigGet(k unsafe.Pointer, kn uint32, buf unsafe.Pointer, bufCap uint32) int32

//go:wasmimport weir log
func hostLog(level int32, p unsafe.Pointer, n uint32)

//go:wasmimport weir now
func hostNow() int64

//go:wasmimport weir random
func hostRandom(p unsafe.Pointer, n uint32)

//go:wasmimport weir fail
func hostFail(p unsafe.Pointer, n uint32)

//go:wasmimport weir state_keys
func hostStateKeys(p unsafe.Pointer, pn uint32, s unsafe.Pointer, sn uint32, buf unsafe.Pointer, bufCap uint32) int32

// abiVersion2 is the handshake: its export name carries abi.Version.
//
//go:wasmexport weir_abi_version_2
func abiVersion2() {}

var (
	inBuf   []byte
	scratch = make([]byte, 4096)
	keyBuf  = make([]byte, 16<<10)
	guest   = runner{r: *abi.NewSharedReader(nil)}
	wasm    wasmHost
)

//go:wasmexport weir_alloc
func alloc(size uint32) unsafe.Pointer {
	if uint32(cap(inBuf)) < size {
		inBuf = make([]byte, size)
	}
	inBuf = inBuf[:size]
	if size == 0 {
		return nil
	}
	return unsafe.Pointer(&inBuf[0])
}

//go:wasmexport weir_process
func process(p unsafe.Pointer, n uint32) int32 {
	if err := guest.run(wasm, unsafe.Slice((*byte)(p), n), registered); err != nil {
		return 1
	}
	return 0
}

//go:wasmexport weir_tick
func tick(p unsafe.Pointer, n uint32) int32 {
	pending, err := guest.tick(wasm, unsafe.Slice((*byte)(p), n), registered)
	switch {
	case err != nil:
		return -1
	case pending:
		return abi.TickPending
	}
	return abi.TickIdle
}

type wasmHost struct{}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func sptr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func (wasmHost) Emit(frames []byte) int32 { return hostEmit(ptr(frames), uint32(len(frames))) }

func (wasmHost) DeadLetter(i int, reason string) int32 {
	return hostDeadLetter(int32(i), sptr(reason), uint32(len(reason)))
}

// get calls a state_get-shaped import, growing the scratch buffer as needed.
func get(fn func(k unsafe.Pointer, kn uint32, buf unsafe.Pointer, bufCap uint32) int32, key string) ([]byte, bool) {
	for {
		n := fn(sptr(key), uint32(len(key)), ptr(scratch), uint32(len(scratch)))
		if n < 0 {
			return nil, false
		}
		if int(n) <= len(scratch) {
			v := make([]byte, n)
			copy(v, scratch[:n])
			return v, true
		}
		scratch = make([]byte, n)
	}
}

func (wasmHost) StateGet(key string) ([]byte, bool) { return get(hostStateGet, key) }

func (wasmHost) StatePut(key string, v []byte) int32 {
	return hostStatePut(sptr(key), uint32(len(key)), ptr(v), uint32(len(v)))
}

func (wasmHost) StateDelete(key string) int32 { return hostStateDelete(sptr(key), uint32(len(key))) }

func (wasmHost) Config(key string) (string, bool) {
	v, ok := get(hostConfigGet, key)
	return string(v), ok
}

func (wasmHost) Log(level int32, msg string) { hostLog(level, sptr(msg), uint32(len(msg))) }

func (wasmHost) Now() int64 { return hostNow() }

func (wasmHost) Random(p []byte) { hostRandom(ptr(p), uint32(len(p))) }

func (wasmHost) Fail(msg string) { hostFail(sptr(msg), uint32(len(msg))) }

func (wasmHost) StateKeys(prefix, start string) ([]string, int32) {
	for {
		n := hostStateKeys(sptr(prefix), uint32(len(prefix)), sptr(start), uint32(len(start)), ptr(keyBuf), uint32(len(keyBuf)))
		if n < 0 {
			return nil, n
		}
		if int(n) > len(keyBuf) {
			keyBuf = make([]byte, n)
			continue
		}
		r := abi.NewReader(keyBuf[:n])
		var keys []string
		for r.Len() > 0 {
			keys = append(keys, r.Str())
		}
		if r.Err() != nil {
			return nil, abi.ErrMalformed
		}
		return keys, 0
	}
}
