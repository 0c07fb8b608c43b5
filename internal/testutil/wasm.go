package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var wasmBuilds sync.Map // package dir → *wasmBuild

type wasmBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

// BuildWasm compiles a main package of this module (a path relative to the
// module root, e.g. "examples/count") to a wasip1 reactor module with the
// standard toolchain, once per test process, and returns its bytes.
func BuildWasm(t testing.TB, pkg string) []byte {
	t.Helper()
	v, _ := wasmBuilds.LoadOrStore(pkg, &wasmBuild{})
	b := v.(*wasmBuild)
	b.once.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			b.err = err
			return
		}
		root := strings.TrimSpace(string(out))
		dir, err := os.MkdirTemp("", "weir-wasm-")
		if err != nil {
			b.err = err
			return
		}
		file := filepath.Join(dir, filepath.Base(pkg)+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", file, "./"+pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
			return
		}
		b.wasm, b.err = os.ReadFile(file)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.wasm
}
