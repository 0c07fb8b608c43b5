package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runWeir runs the weir command line in-process.
func runWeir(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// TestTransformInitBuild: init a module against this repository's SDK, go
// test it, build it to Wasm and run the .wasm on the real host.
func TestTransformInitBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Wasm module")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	sdk, err := filepath.Abs("../../sdk")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "shout")
	if out, err := runWeir(t, "", "transform", "init", dir, "--sdk", sdk); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"module shout\n", "\ngo 1.24\n", "require github.com/weir-broker/weir/sdk v0.0.0\n", "replace github.com/weir-broker/weir/sdk => " + sdk + "\n"} {
		if !strings.Contains(string(mod), want) {
			t.Fatalf("go.mod lacks %q:\n%s", want, mod)
		}
	}

	// A second init refuses and leaves the files alone.
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main // mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "transform", "init", dir, "--sdk", sdk)
	if err == nil || !strings.Contains(err.Error(), "go.mod, main.go, main_test.go") || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("second init: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); string(b) != "package main // mine\n" {
		t.Fatalf("main.go overwritten: %s", b)
	}
	if err := os.Remove(filepath.Join(dir, "main.go")); err != nil {
		t.Fatal(err)
	}
	if err := writeNew(filepath.Join(dir, "main.go"), mainTemplate); err != nil {
		t.Fatal(err)
	}

	// The generated test passes on the host.
	gt := exec.Command("go", "test", "-count=1", "./...")
	gt.Dir = dir
	gt.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if b, err := gt.CombinedOutput(); err != nil {
		t.Fatalf("go test in the generated module: %v\n%s", err, b)
	}

	// build: default output DIR/shout.wasm, a Wasm module.
	if out, err := runWeir(t, "", "transform", "build", dir); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	wasm := filepath.Join(dir, "shout.wasm")
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s does not start with the Wasm magic: % x", wasm, b[:min(8, len(b))])
	}
	// ...that the real host runs.
	out, err = runWeir(t, "{\"key\":\"k\",\"value\":\"hello\"}\n", "transform", "test", wasm)
	if err != nil || !strings.Contains(out, `"value":"HELLO"`) {
		t.Fatalf("transform test: %v\n%s", err, out)
	}
}

func TestTransformBuildErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("no go", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := runWeir(t, "", "transform", "build", dir)
		if err == nil || !strings.Contains(err.Error(), "go not found on PATH") {
			t.Fatalf("without go: %v", err)
		}
	})
	if testing.Short() {
		t.Skip("runs go build")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	// A compile error is passed through and fails the command.
	sdk, _ := filepath.Abs("../../sdk")
	if out, err := runWeir(t, "", "transform", "init", dir, "--sdk", sdk, "--name", "example.com/broken"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.go"), []byte("package main\n\nvar x int = \"no\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "transform", "build", dir, "-o", filepath.Join(dir, "x.wasm"))
	if err == nil || !strings.Contains(out, "broken.go:3") {
		t.Fatalf("compile error: %v\n%s", err, out)
	}
}

func TestTransformInitSDK(t *testing.T) {
	// Run from this checkout's sources: the default finds its sdk/.
	want, _ := filepath.Abs("../../sdk")
	if got := defaultSDKDir(); got != want {
		t.Fatalf("defaultSDKDir() = %q, want %q", got, want)
	}
	if _, err := runWeir(t, "", "transform", "init", t.TempDir(), "--sdk", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not the Weir SDK") {
		t.Fatalf("--sdk not an SDK: %v", err)
	}
	if _, err := runWeir(t, "", "transform", "init", filepath.Join(t.TempDir(), "has space")); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("bad default name: %v", err)
	}
	// Default SDK, explicit name: the replace names this checkout's sdk/.
	dir := t.TempDir()
	if out, err := runWeir(t, "", "transform", "init", dir, "--name", "example.com/upper"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(mod), "module example.com/upper\n") || !strings.Contains(string(mod), "=> "+want+"\n") {
		t.Fatalf("go.mod:\n%s", mod)
	}
}
