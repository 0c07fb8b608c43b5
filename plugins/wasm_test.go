package plugins

// A tiny WebAssembly binary writer for hand-made test modules: guests in
// "another language", hostile imports, broken exports.

type wfunc struct {
	export          string // "" for none
	params, results []byte // value types: 0x7f i32, 0x7e i64
	body            []byte // instructions without the final end
}

type wimport struct {
	mod, name       string
	params, results []byte
	kind            byte // 0 func, 2 memory
}

type wmod struct {
	imports []wimport
	funcs   []wfunc
	memory  bool   // define and export "memory" (1 page)
	pages   uint32 // initial pages of "memory" when more than 1
	data    []byte // at offset 1024
	start   int    // 1 + index in funcs of the start function; 0 for none
}

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

func uleb128(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb128(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wstr(s string) []byte { return append(uleb128(uint32(len(s))), s...) }

func wvec(items ...[]byte) []byte {
	b := uleb128(uint32(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb128(uint32(len(body)))...), body...)
}

func functype(params, results []byte) []byte {
	b := []byte{0x60}
	b = append(b, uleb128(uint32(len(params)))...)
	b = append(b, params...)
	b = append(b, uleb128(uint32(len(results)))...)
	return append(b, results...)
}

// i32c is i32.const v.
func i32c(v int32) []byte { return append([]byte{0x41}, sleb128(v)...) }

func (m wmod) bytes() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var types, imps, fns, exps, codes [][]byte
	nFuncImports := 0
	for _, im := range m.imports {
		if im.kind == 2 {
			imps = append(imps, append(append(wstr(im.mod), wstr(im.name)...), 2, 0, 1))
			continue
		}
		imps = append(imps, append(append(wstr(im.mod), wstr(im.name)...), append([]byte{0}, uleb128(uint32(len(types)))...)...))
		types = append(types, functype(im.params, im.results))
		nFuncImports++
	}
	for i, f := range m.funcs {
		fns = append(fns, uleb128(uint32(len(types))))
		types = append(types, functype(f.params, f.results))
		if f.export != "" {
			exps = append(exps, append(wstr(f.export), append([]byte{0}, uleb128(uint32(nFuncImports+i))...)...))
		}
		body := append([]byte{0}, f.body...) // no locals
		body = append(body, 0x0b)
		codes = append(codes, append(uleb128(uint32(len(body))), body...))
	}
	if m.memory {
		exps = append(exps, append(wstr("memory"), 2, 0))
	}
	out = append(out, section(1, wvec(types...))...)
	if len(imps) > 0 {
		out = append(out, section(2, wvec(imps...))...)
	}
	out = append(out, section(3, wvec(fns...))...)
	if m.memory {
		out = append(out, section(5, wvec(append([]byte{0}, uleb128(max(m.pages, 1))...)))...)
	}
	out = append(out, section(7, wvec(exps...))...)
	if m.start > 0 {
		out = append(out, section(8, uleb128(uint32(nFuncImports+m.start-1)))...)
	}
	out = append(out, section(10, wvec(codes...))...)
	if len(m.data) > 0 {
		seg := append([]byte{0}, i32c(1024)...)
		seg = append(seg, 0x0b)
		seg = append(seg, wvec(m.data)[:0]...)
		seg = append(seg, uleb128(uint32(len(m.data)))...)
		seg = append(seg, m.data...)
		out = append(out, section(11, wvec(seg))...)
	}
	return out
}

// abiFuncs are the exports every guest needs, with process running body
// (which must leave an i32 status).
func abiFuncs(process []byte) []wfunc {
	return []wfunc{
		{export: "weir_abi_version_1"},
		{export: "weir_alloc", params: []byte{tI32}, results: []byte{tI32}, body: i32c(4096)},
		{export: "weir_process", params: []byte{tI32, tI32}, results: []byte{tI32}, body: process},
	}
}

// loopBody loops forever: loop br 0 end, then a status for validation.
var loopBody = append([]byte{0x03, 0x40, 0x0c, 0x00, 0x0b}, i32c(0)...)
