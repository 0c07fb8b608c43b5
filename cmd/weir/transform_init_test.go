package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/internal/toolchain"
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

// TestTransformInitBuildDeploy is the path of a new user, per language,
// against the built binary and a real node: weir transform init --lang L
// demo && cd demo && weir transform build && weir transform deploy ...,
// then a produced record comes out transformed; a second deploy upgrades
// the pipeline to the new module version. (The three languages share one
// node, so their modules are named demo-go, demo-rust and demo-ts.)
func TestTransformInitBuildDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs compilers and a node")
	}
	bin := tu.WeirBinary(t)
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	u := p.URL()
	for _, lang := range toolchain.Langs() {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			switch lang {
			case toolchain.Rust:
				_, err := toolchain.FindRustc(context.Background())
				tu.ToolchainOK(t, err)
			case toolchain.TS:
				_, err := toolchain.FindNode()
				tu.ToolchainOK(t, err)
				if _, err := exec.LookPath("npm"); err != nil {
					tu.ToolchainOK(t, toolchain.ErrToolMissing)
				}
			}
			work := t.TempDir()
			weir := func(dir string, args ...string) string {
				t.Helper()
				c := exec.Command(bin, append(args, "--server", u)...)
				c.Dir = dir
				out, err := c.CombinedOutput()
				if err != nil {
					t.Fatalf("weir %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
				}
				return string(out)
			}
			weir(work, "transform", "init", "--lang", lang, "demo")
			demo := filepath.Join(work, "demo")
			if out := weir(demo, "transform", "build"); !strings.Contains(out, "built "+filepath.Join(demo, "demo.wasm")) || !strings.Contains(out, "of the 16 MiB module limit") {
				t.Fatalf("build: %s", out)
			}
			in, outT := "in-"+lang, "out-"+lang
			weir(demo, "topic", "create", in)
			weir(demo, "topic", "create", outT)
			if out := weir(demo, "transform", "deploy", "demo-"+lang, "--pipeline", "shout-"+lang, "--input", in, "--output", outT); !strings.Contains(out, `"action": "created"`) {
				t.Fatalf("deploy: %s", out)
			}
			weir(demo, "produce", in, "hello")
			waitValues(t, u, outT, "HELLO")
			if out := weir(demo, "transform", "deploy", "demo-"+lang, "--pipeline", "shout-"+lang); !strings.Contains(out, `"action": "upgraded"`) || !strings.Contains(out, `"version": 2`) {
				t.Fatalf("second deploy: %s", out)
			}
			weir(demo, "produce", in, "again")
			waitValues(t, u, outT, "HELLO", "AGAIN")
		})
	}
}

// waitValues waits until partition 0 of topic holds exactly want.
func waitValues(t *testing.T, u, topic string, want ...string) {
	t.Helper()
	var got []string
	tu.Eventually(t, 60*time.Second, topic+" = "+strings.Join(want, ","), func() bool {
		var f struct{ Records []struct{ Value string } }
		tu.Do(t, "GET", u+"/v1/topics/"+topic+"/partitions/0/records?offset=earliest&max_records=100", nil).JSON(t, &f)
		got = got[:0]
		for _, r := range f.Records {
			got = append(got, r.Value)
		}
		return strings.Join(got, ",") == strings.Join(want, ",")
	})
}

func TestTransformInitErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	if out, err := runWeir(t, "", "transform", "init", "--lang", "cobol", dir); err == nil || !strings.Contains(err.Error(), "unknown language") {
		t.Fatalf("unknown language: %v %s", err, out)
	}
	if _, err := runWeir(t, "", "transform", "init", filepath.Join(t.TempDir(), "has space")); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("bad default name: %v", err)
	}
	if out, err := runWeir(t, "", "transform", "init", "--lang", "rust", dir); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte("// mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runWeir(t, "", "transform", "init", "--lang", "rust", dir); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("second init: %v", err)
	}
	// --update-sdk rewrites .weir/ only.
	if err := os.WriteFile(filepath.Join(dir, ".weir", "sdk", "rust", "src", "lib.rs"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runWeir(t, "", "transform", "init", "--update-sdk", dir); err != nil {
		t.Fatalf("update: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".weir", "sdk", "rust", "src", "lib.rs")); !bytes.Contains(b, []byte("on_record")) {
		t.Fatalf("sdk not refreshed: %.40s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src", "lib.rs")); string(b) != "// mine\n" {
		t.Fatalf("project file touched: %s", b)
	}
	// A project whose SDK speaks another ABI is refused at build.
	meta := filepath.Join(dir, ".weir", "project.json")
	if err := os.WriteFile(meta, []byte(`{"lang":"rust","name":"x","abi_version":99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runWeir(t, "", "transform", "build", dir); err == nil || !strings.Contains(err.Error(), "speaks ABI 99") {
		t.Fatalf("abi mismatch: %v", err)
	}
	if _, err := runWeir(t, "", "transform", "build", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a transform project") {
		t.Fatalf("not a project: %v", err)
	}
}

func TestTransformBuildErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broken")
	if out, err := runWeir(t, "", "transform", "init", dir); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
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
	// A compile error is passed through and fails the command.
	if err := os.WriteFile(filepath.Join(dir, "broken.go"), []byte("package main\n\nvar x int = \"no\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "transform", "build", dir, "-o", filepath.Join(dir, "x.wasm"))
	if err == nil || !strings.Contains(out, "broken.go:3") {
		t.Fatalf("compile error: %v\n%s", err, out)
	}
}

func TestTransformDeployNeedsTopics(t *testing.T) {
	if out, err := runWeir(t, "", "transform", "deploy", "--wasm", filepath.Join(t.TempDir(), "none.wasm"), "--pipeline", "p"); err == nil || !strings.Contains(err.Error(), "none.wasm") {
		t.Fatalf("missing module file: %v %s", err, out)
	}
	if _, err := runWeir(t, "", "transform", "deploy"); err == nil || !strings.Contains(err.Error(), "--pipeline is required") {
		t.Fatalf("no pipeline: %v", err)
	}
}
