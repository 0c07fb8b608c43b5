package toolchain_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/internal/toolchain"
	"github.com/weir-broker/weir/plugins"
)

// repo is the repository root, from this package's directory.
func repo(t *testing.T, parts ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", ".."}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runLocal runs a module over JSON-lines input on the real Wasm host, as
// `weir transform test` does, and returns its output lines.
func runLocal(t *testing.T, wasm []byte, cfg map[string]string, input string) string {
	t.Helper()
	var out bytes.Buffer
	if err := plugins.RunLocal(context.Background(), wasm, cfg, nil, strings.NewReader(input), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestInitTestBuild: for each language, a new project's own tests pass with
// the local harness, it builds to a module that validates, and the real
// host runs it.
func TestInitTestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs compilers")
	}
	for _, lang := range toolchain.Langs() {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "demo-"+lang)
			files, err := toolchain.Init(dir, "", lang)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := toolchain.Init(dir, "", lang); err == nil || !strings.Contains(err.Error(), "not overwriting") {
				t.Fatalf("second init: %v", err)
			}
			p, err := toolchain.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if p.Lang != lang || p.Name != "demo-"+lang || p.ABIVersion == 0 {
				t.Fatalf("project %+v (files %v)", p, files)
			}
			if lang == toolchain.Go {
				mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
				if !strings.Contains(string(mod), "=> ./.weir/sdk/go\n") {
					t.Fatalf("go.mod:\n%s", mod)
				}
			}
			if lang == toolchain.TS {
				linkNodeModules(t, dir)
			}
			var log bytes.Buffer
			tu.ToolchainOK(t, p.Test(context.Background(), &log))
			out, err := p.Build(context.Background(), "", nil, &log)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, log.String())
			}
			wasm, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := runLocal(t, wasm, nil, `{"key":"k","value":"hello","timestamp":7}`+"\n"+`{"key":"k","value":"","timestamp":8}`+"\n")
			want := `{"key":"k","output":"out","timestamp":7,"value":"HELLO"}` + "\n" +
				`{"dead_letter":{"key":"k","offset":1,"reason":"empty value","value":""}}` + "\n"
			if got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// linkNodeModules points a TypeScript project at the repository's
// sdk/ts/node_modules (installing it with npm ci if needed), so tests do
// not fetch assemblyscript once per project.
func linkNodeModules(t *testing.T, dir string) {
	t.Helper()
	sdkTS := repo(t, "sdk", "ts")
	if _, err := os.Stat(filepath.Join(sdkTS, "node_modules", "assemblyscript")); err != nil {
		p := toolchain.Project{Dir: sdkTS, Name: "sdk", Lang: toolchain.TS, SDK: sdkTS}
		var log bytes.Buffer
		if err := p.InstallNodeModules(context.Background(), &log); err != nil {
			tu.ToolchainOK(t, err)
		}
	}
	if err := os.Symlink(filepath.Join(sdkTS, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
}

// example returns the repository's Rust or TypeScript redact example as a
// project in a temporary directory (its build output stays out of the tree).
func example(t *testing.T, lang string) toolchain.Project {
	t.Helper()
	sdkDir := repo(t, "sdk", lang)
	src := filepath.Join(sdkDir, "examples", "redact")
	dir := filepath.Join(t.TempDir(), "redact")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if lang == toolchain.TS {
		linkNodeModules(t, dir)
	}
	return toolchain.Project{Dir: dir, Name: "redact", Lang: lang, SDK: sdkDir}
}

// TestRedactExamplesAgree: the Rust and AssemblyScript redact examples pass
// their own tests and produce byte for byte what the Go example produces
// (emitted records and dead-letter reasons) on the same input, run through
// the real Wasm host.
func TestRedactExamplesAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("runs compilers")
	}
	input := redactCorpus(t)
	cfg := map[string]string{"fields": " card, email ,\u00a0ssn\u3000,,"}
	want := runLocal(t, tu.BuildWasm(t, "examples/redact"), cfg, input)
	if n := strings.Count(want, `"dead_letter"`); n < 100 || strings.Count(want, `"output"`) < 100 {
		t.Fatalf("corpus too one-sided: %d dead letters in\n%s", n, want)
	}
	for _, lang := range []string{toolchain.Rust, toolchain.TS} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			p := example(t, lang)
			var log bytes.Buffer
			tu.ToolchainOK(t, p.Test(context.Background(), &log))
			out, err := p.Build(context.Background(), "", nil, &log)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, log.String())
			}
			wasm, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := runLocal(t, wasm, cfg, input)
			if got == want {
				return
			}
			g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("line %d differs:\n%s: %s\ngo:   %s", i+1, lang, g[i], w[i])
				}
			}
			t.Fatalf("%d lines from %s, %d from go", len(g), lang, len(w))
		})
	}
}

// TestRustSDK runs the weir_transform crate's own tests natively.
func TestRustSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rustc")
	}
	rc, err := toolchain.FindRustc(context.Background())
	tu.ToolchainOK(t, err)
	bin := filepath.Join(t.TempDir(), "sdk-test")
	for _, args := range [][]string{
		{rc.Path, "--edition", "2021", "--test", "--crate-name", "weir_transform", "-o", bin, repo(t, "sdk", "rust", "src", "lib.rs")},
		{bin},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
