package plugins

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	h := newHost(t, Config{MaxModuleBytes: 1 << 20})
	ok := wmod{memory: true, funcs: abiFuncs(i32c(0))}
	withImport := func(im wimport) []byte {
		m := ok
		m.imports = []wimport{im}
		return m.bytes()
	}
	tests := []struct {
		name   string
		wasm   []byte
		reason string
	}{
		{"empty", nil, "bad magic"},
		{"junk", []byte("hello, this is not wasm at all"), "bad magic"},
		{"text format", []byte("(module)"), "bad magic"},
		{"wrong version", []byte{0, 'a', 's', 'm', 2, 0, 0, 0}, "binary version 2"},
		{"truncated section", append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 1, 0x7f, 0x60), "past the end"},
		{"too large", make([]byte, 2<<20), "above the limit"},
		{"garbage body", append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 1, 3, 0x60, 0xff, 0xff), "parse"},
		{"no exports", wmod{}.bytes(), "no abi version export"},
		{"abi version 3", wmod{memory: true, funcs: v(3, abiFuncs(i32c(0)))}.bytes(), "abi version 3 not supported (this broker speaks 1 to 2)"},
		{"abi version 0", wmod{memory: true, funcs: v(0, abiFuncs(i32c(0)))}.bytes(), "abi version 0 not supported"},
		{"state_keys in version 1", withImport(wimport{mod: "weir", name: "state_keys", params: []byte{tI32, tI32, tI32, tI32, tI32, tI32}, results: []byte{tI32}}), "weir.state_keys needs abi version 2; the module declares 1"},
		{"wrong tick type", wmod{memory: true, funcs: append(v(2, abiFuncs(i32c(0))), wfunc{export: "weir_tick", params: []byte{tI32}, results: []byte{tI32}, body: i32c(0)})}.bytes(), `export "weir_tick" has type (i32)->(i32)`},
		{"missing process", wmod{memory: true, funcs: abiFuncs(nil)[:2]}.bytes(), `missing export "weir_process"`},
		{"wrong process type", wmod{memory: true, funcs: append(abiFuncs(nil)[:2], wfunc{export: "weir_process", params: []byte{tI32}, results: []byte{tI32}, body: i32c(0)})}.bytes(), `export "weir_process" has type`},
		{"wasi command", wmod{memory: true, funcs: append(abiFuncs(i32c(0)), wfunc{export: "_start"})}.bytes(), "WASI command"},
		{"no memory", wmod{funcs: abiFuncs(i32c(0))}.bytes(), `missing exported memory`},
		{"env import", withImport(wimport{mod: "env", name: "abort", params: []byte{tI32}}), `env.abort`},
		{"wasi filesystem", withImport(wimport{mod: "wasi_snapshot_preview1", name: "path_open", params: []byte{tI32, tI32, tI32, tI32, tI32, tI64, tI64, tI32, tI32}, results: []byte{tI32}}), "forbidden WASI function path_open"},
		{"wasi socket", withImport(wimport{mod: "wasi_snapshot_preview1", name: "sock_accept", params: []byte{tI32, tI32, tI32}, results: []byte{tI32}}), "forbidden WASI function sock_accept"},
		{"unknown host function", withImport(wimport{mod: "weir", name: "exec"}), "unknown host function weir.exec"},
		{"host function wrong type", withImport(wimport{mod: "weir", name: "emit", params: []byte{tI32}}), "weir.emit imported with type (i32)->(), want (i32,i32)->(i32)"},
		{"imported memory", withImport(wimport{mod: "weir", name: "memory", kind: 2}), "imports memory weir.memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Validate(context.Background(), tt.wasm)
			var mi *core.ModuleInvalidError
			if !errors.As(err, &mi) || !errors.Is(err, core.ErrModuleInvalid) {
				t.Fatalf("err = %v, want a ModuleInvalidError", err)
			}
			if !strings.Contains(mi.Reason, tt.reason) {
				t.Fatalf("reason %q does not mention %q", mi.Reason, tt.reason)
			}
			// A rejected module cannot become a processor either.
			if _, err := h.Processor(context.Background(), core.ModuleRef{Wasm: tt.wasm}, core.ProcessorLimits{}); !errors.Is(err, core.ErrModuleInvalid) {
				t.Fatalf("Processor err = %v", err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	h := newHost(t, Config{})
	full := wmod{memory: true, funcs: append(v(2, abiFuncs(i32c(0))), wfunc{export: "weir_tick", params: []byte{tI32, tI32}, results: []byte{tI32}, body: i32c(0)})}
	for name := range hostSigs {
		s := hostSigs[name]
		full.imports = append(full.imports, wimport{mod: "weir", name: name, params: raw(s.params), results: raw(s.results)})
	}
	for _, tc := range []struct {
		name    string
		wasm    []byte
		version uint32
	}{
		{"minimal hand-written", wmod{memory: true, funcs: abiFuncs(i32c(0))}.bytes(), 1},
		{"every host function", full.bytes(), 2},
		{"go guest", buildWasm(t, "examples/passthrough"), abi.Version},
	} {
		info, err := h.Validate(context.Background(), tc.wasm)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if info.ABIVersion != tc.version || info.Size != len(tc.wasm) || len(info.SHA256) != 64 {
			t.Fatalf("%s: info %+v", tc.name, info)
		}
	}
}

func raw(ts []byte) []byte { return ts }

// v makes abiFuncs declare ABI version n.
func v(n int, fs []wfunc) []wfunc {
	fs[0].export = "weir_abi_version_" + strconv.Itoa(n)
	return fs
}
