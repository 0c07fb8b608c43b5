package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

const wasiModule = "wasi_snapshot_preview1"

type sig struct{ params, results []api.ValueType }

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostSigs are the functions of the weir host module and their types.
var hostSigs = map[string]sig{
	abi.ImportEmit:        {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	abi.ImportDeadLetter:  {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
	abi.ImportStateGet:    {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
	abi.ImportStatePut:    {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
	abi.ImportStateDelete: {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	abi.ImportConfigGet:   {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
	abi.ImportLog:         {[]api.ValueType{i32, i32, i32}, nil},
	abi.ImportNow:         {nil, []api.ValueType{i64}},
	abi.ImportRandom:      {[]api.ValueType{i32, i32}, nil},
	abi.ImportFail:        {[]api.ValueType{i32, i32}, nil},
	abi.ImportStateKeys:   {[]api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
}

// sinceVersion names the host functions and exports later ABI versions
// added, with the version that added them: an older guest may not use them.
var sinceVersion = map[string]uint32{
	abi.ImportStateKeys: 2,
	abi.ExportTick:      2,
}

// guestInfo is what the host needs to know of a module to run it.
type guestInfo struct {
	version uint32 // the ABI version it declares
	tick    bool   // it exports abi.ExportTick (version 2 and later)
}

// wasiAllowed are the WASI functions a Go guest imports: the runtime's ten
// (sched_yield, proc_exit, args_*, clock_time_get, environ_*, fd_write,
// random_get, poll_oneoff) and, once package os is linked in (fmt imports
// it), the fd_* calls its init makes on descriptors already open. None of
// them reaches a filesystem or network: no directory is preopened (so
// fd_prestat_get finds none), stdin is empty, stdout and stderr go to the
// guest's log, and every path_* and sock_* call is refused at upload.
var wasiAllowed = map[string]bool{
	"sched_yield": true, "proc_exit": true, "args_get": true, "args_sizes_get": true,
	"clock_time_get": true, "environ_get": true, "environ_sizes_get": true,
	"fd_write": true, "random_get": true, "poll_oneoff": true,
	"fd_close": true, "fd_read": true, "fd_fdstat_get": true, "fd_fdstat_set_flags": true,
	"fd_prestat_get": true, "fd_prestat_dir_name": true,
}

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

func invalid(format string, args ...any) error {
	return &core.ModuleInvalidError{Reason: fmt.Sprintf(format, args...)}
}

// checkStatic checks what needs no compiler: size, header, import section.
func checkStatic(wasm []byte, maxBytes int) error {
	if len(wasm) > maxBytes {
		return invalid("module is %d bytes, above the limit of %d", len(wasm), maxBytes)
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic[:4]) {
		return invalid("not a WebAssembly binary (bad magic number)")
	}
	if !bytes.Equal(wasm[4:8], wasmMagic[4:]) {
		return invalid("unsupported WebAssembly binary version %d", leU32(wasm[4:8]))
	}
	imps, err := parseImports(wasm[8:])
	if err != nil {
		return invalid("parse: %v", err)
	}
	for _, im := range imps {
		if err := checkImport(im); err != nil {
			return err
		}
	}
	return nil
}

func leU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

type wasmImport struct {
	module, name string
	kind         byte // 0 func, 1 table, 2 memory, 3 global
}

var kindNames = []string{"function", "table", "memory", "global", "tag"}

func checkImport(im wasmImport) error {
	what := "function"
	if int(im.kind) < len(kindNames) {
		what = kindNames[im.kind]
	}
	if im.kind != 0 {
		return invalid("imports %s %s.%s: only functions of %q and the allowed WASI calls may be imported", what, im.module, im.name, abi.ImportModule)
	}
	switch im.module {
	case abi.ImportModule:
		if _, ok := hostSigs[im.name]; !ok {
			return invalid("imports unknown host function %s.%s", im.module, im.name)
		}
	case wasiModule:
		if !wasiAllowed[im.name] {
			return invalid("imports forbidden WASI function %s (no filesystem, network or process access; allowed: %s)", im.name, strings.Join(sortedKeys(wasiAllowed), ", "))
		}
	default:
		return invalid("imports %s.%s: only %q and %q may be imported", im.module, im.name, abi.ImportModule, wasiModule)
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseImports walks the sections after the header and decodes the import
// section. It checks section framing; everything else is wazero's job.
func parseImports(b []byte) ([]wasmImport, error) {
	var out []wasmImport
	for len(b) > 0 {
		id := b[0]
		size, n, err := uleb(b[1:])
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		b = b[1+n:]
		if uint64(len(b)) < uint64(size) {
			return nil, fmt.Errorf("section %d: length %d past the end of the module", id, size)
		}
		sec := b[:size]
		b = b[size:]
		if id != 2 {
			continue
		}
		count, n, err := uleb(sec)
		if err != nil {
			return nil, fmt.Errorf("import section: %w", err)
		}
		sec = sec[n:]
		for i := uint32(0); i < count; i++ {
			var im wasmImport
			if im.module, sec, err = name(sec); err != nil {
				return nil, fmt.Errorf("import %d: %w", i, err)
			}
			if im.name, sec, err = name(sec); err != nil {
				return nil, fmt.Errorf("import %d: %w", i, err)
			}
			if len(sec) == 0 {
				return nil, fmt.Errorf("import %d: truncated", i)
			}
			im.kind = sec[0]
			sec = sec[1:]
			switch im.kind {
			case 0: // type index
				if _, n, err = uleb(sec); err != nil {
					return nil, fmt.Errorf("import %d: %w", i, err)
				}
				sec = sec[n:]
			case 1: // reftype, limits
				if len(sec) == 0 {
					return nil, fmt.Errorf("import %d: truncated", i)
				}
				if sec, err = skipLimits(sec[1:]); err != nil {
					return nil, fmt.Errorf("import %d: %w", i, err)
				}
			case 2:
				if sec, err = skipLimits(sec); err != nil {
					return nil, fmt.Errorf("import %d: %w", i, err)
				}
			case 3: // valtype, mut
				if len(sec) < 2 {
					return nil, fmt.Errorf("import %d: truncated", i)
				}
				sec = sec[2:]
			default:
				// Unknown kinds are rejected by checkImport; stop decoding.
				return append(out, im), nil
			}
			out = append(out, im)
		}
	}
	return out, nil
}

func name(b []byte) (string, []byte, error) {
	l, n, err := uleb(b)
	if err != nil {
		return "", nil, err
	}
	b = b[n:]
	if uint64(len(b)) < uint64(l) {
		return "", nil, errors.New("name past the end of the section")
	}
	return string(b[:l]), b[l:], nil
}

func skipLimits(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("truncated limits")
	}
	flag := b[0]
	b = b[1:]
	_, n, err := uleb(b)
	if err != nil {
		return nil, err
	}
	b = b[n:]
	if flag&1 != 0 {
		if _, n, err = uleb(b); err != nil {
			return nil, err
		}
		b = b[n:]
	}
	return b, nil
}

func uleb(b []byte) (uint32, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("truncated integer")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 0xffffffff {
				return 0, 0, errors.New("integer overflow")
			}
			return uint32(v), i + 1, nil
		}
	}
	return 0, 0, errors.New("integer too long")
}

// checkCompiled checks the imports' types and the required exports of a
// compiled module and returns the ABI version it declares and whether it
// takes ticks.
func checkCompiled(cm compiledModule) (guestInfo, error) {
	version, err := checkVersion(cm.ExportedFunctions())
	if err != nil {
		return guestInfo{}, err
	}
	for _, f := range cm.ImportedFunctions() {
		mod, fn, _ := f.Import()
		if mod != abi.ImportModule {
			continue
		}
		want := hostSigs[fn]
		if !sameTypes(f.ParamTypes(), want.params) || !sameTypes(f.ResultTypes(), want.results) {
			return guestInfo{}, invalid("host function %s.%s imported with type %s, want %s", mod, fn, sigString(f.ParamTypes(), f.ResultTypes()), sigString(want.params, want.results))
		}
		if v := sinceVersion[fn]; v > version {
			return guestInfo{}, invalid("host function %s.%s needs abi version %d; the module declares %d", mod, fn, v, version)
		}
	}
	if len(cm.ImportedMemories()) > 0 {
		return guestInfo{}, invalid("imports a memory; the module must define and export its own")
	}
	return checkExports(cm, version)
}

// checkVersion finds the one abi version export and checks the host runs
// that version.
func checkVersion(exports map[string]api.FunctionDefinition) (uint32, error) {
	var version uint32
	var versions []string
	for n := range exports {
		if s, ok := strings.CutPrefix(n, abi.ExportVersionPrefix); ok {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return 0, invalid("bad abi version export %q", n)
			}
			version = uint32(v)
			versions = append(versions, n)
		}
	}
	switch {
	case len(versions) == 0:
		return 0, invalid("no abi version export (%s%d): not built with the Weir SDK, or for an older ABI", abi.ExportVersionPrefix, abi.Version)
	case len(versions) > 1:
		return 0, invalid("several abi version exports: %s", strings.Join(versions, ", "))
	case version < abi.MinVersion || version > abi.Version:
		return 0, invalid("abi version %d not supported (this broker speaks %d to %d)", version, abi.MinVersion, abi.Version)
	}
	return version, nil
}

// checkExports checks the exports a guest of version must (or may) have.
func checkExports(cm compiledModule, version uint32) (guestInfo, error) {
	exports := cm.ExportedFunctions()
	batchSig := sig{[]api.ValueType{i32, i32}, []api.ValueType{i32}}
	need := map[string]sig{
		abi.ExportAlloc:   {[]api.ValueType{i32}, []api.ValueType{i32}},
		abi.ExportProcess: batchSig,
	}
	for _, n := range []string{abi.ExportAlloc, abi.ExportProcess} {
		f, ok := exports[n]
		if !ok {
			return guestInfo{}, invalid("missing export %q", n)
		}
		w := need[n]
		if !sameTypes(f.ParamTypes(), w.params) || !sameTypes(f.ResultTypes(), w.results) {
			return guestInfo{}, invalid("export %q has type %s, want %s", n, sigString(f.ParamTypes(), f.ResultTypes()), sigString(w.params, w.results))
		}
	}
	info := guestInfo{version: version}
	if f, ok := exports[abi.ExportTick]; ok && version >= sinceVersion[abi.ExportTick] {
		if !sameTypes(f.ParamTypes(), batchSig.params) || !sameTypes(f.ResultTypes(), batchSig.results) {
			return guestInfo{}, invalid("export %q has type %s, want %s", abi.ExportTick, sigString(f.ParamTypes(), f.ResultTypes()), sigString(batchSig.params, batchSig.results))
		}
		info.tick = true
	}
	if _, ok := exports["_start"]; ok {
		if _, ok := exports[abi.ExportInitialize]; !ok {
			return guestInfo{}, invalid("module is a WASI command (exports _start, no _initialize); build a reactor (Go: -buildmode=c-shared)")
		}
	}
	if f, ok := exports[abi.ExportInitialize]; ok && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
		return guestInfo{}, invalid("export %q must take and return nothing", abi.ExportInitialize)
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		return guestInfo{}, invalid("missing exported memory %q", abi.ExportMemory)
	}
	return info, nil
}

type compiledModule interface {
	ImportedFunctions() []api.FunctionDefinition
	ExportedFunctions() map[string]api.FunctionDefinition
	ImportedMemories() []api.MemoryDefinition
	ExportedMemories() map[string]api.MemoryDefinition
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sigString(p, r []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	return "(" + names(p) + ")->(" + names(r) + ")"
}

// validate runs every upload check and returns what it learned.
func (h *Host) validate(ctx context.Context, wasm []byte) (core.ModuleInfo, guestInfo, error) {
	if err := checkStatic(wasm, h.cfg.MaxModuleBytes); err != nil {
		return core.ModuleInfo{}, guestInfo{}, err
	}
	cm, err := h.valRT.CompileModule(ctx, wasm)
	if err != nil {
		if ctx.Err() != nil {
			return core.ModuleInfo{}, guestInfo{}, ctx.Err()
		}
		return core.ModuleInfo{}, guestInfo{}, invalid("parse: %v", err)
	}
	defer cm.Close(context.WithoutCancel(ctx))
	g, err := checkCompiled(cm)
	if err != nil {
		return core.ModuleInfo{}, guestInfo{}, err
	}
	pages := cm.ExportedMemories()[abi.ExportMemory].Min()
	if pages > h.cfg.MaxMemoryPages {
		return core.ModuleInfo{}, guestInfo{}, invalid("declares %d pages (%d MiB) of initial memory, above the most a pipeline may have: %d pages (%d MiB)",
			pages, pages/16, h.cfg.MaxMemoryPages, h.cfg.MaxMemoryPages/16)
	}
	sum := sha256.Sum256(wasm)
	return core.ModuleInfo{ABIVersion: g.version, SHA256: hex.EncodeToString(sum[:]), Size: len(wasm), MemoryPages: pages}, g, nil
}
