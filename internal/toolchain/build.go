package toolchain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the project to out (default Dir/<Name>.wasm), writing the
// compilers' output to log; extra arguments go to the compiler (go build,
// the crate's rustc, asc). It returns the module's path.
func (p Project) Build(ctx context.Context, out string, extra []string, log io.Writer) (string, error) {
	if err := p.CheckABI(); err != nil {
		return "", err
	}
	if out == "" {
		out = filepath.Join(p.Dir, p.Name+".wasm")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	switch p.Lang {
	case Go:
		err = p.buildGo(ctx, out, extra, log)
	case Rust:
		err = p.buildRust(ctx, out, extra, log)
	case TS:
		err = p.buildTS(ctx, out, extra, log)
	default:
		err = fmt.Errorf("unknown language %q", p.Lang)
	}
	return out, err
}

// Test runs the project's tests natively with the SDK's local harness:
// go test, rustc --test, or the AssemblyScript test* exports in Node.js.
func (p Project) Test(ctx context.Context, log io.Writer) error {
	if err := p.CheckABI(); err != nil {
		return err
	}
	switch p.Lang {
	case Go:
		goBin, err := FindGo()
		if err != nil {
			return err
		}
		return run(ctx, p.Dir, nil, log, goBin, "test", "-count=1", "./...")
	case Rust:
		return p.testRust(ctx, log)
	case TS:
		return p.testTS(ctx, log)
	}
	return fmt.Errorf("unknown language %q", p.Lang)
}

// run runs a command in dir with extra environment, its output to log.
func run(ctx context.Context, dir string, env []string, log io.Writer, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Stdout, c.Stderr = dir, log, log
	c.Env = append(os.Environ(), env...)
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s%s %s (in %s): %w", strings.Join(append(env, ""), " "), name, strings.Join(args, " "), dir, err)
	}
	return nil
}

func (p Project) buildGo(ctx context.Context, out string, extra []string, log io.Writer) error {
	goBin, err := FindGo()
	if err != nil {
		return err
	}
	args := append([]string{"build", "-buildmode=c-shared", "-trimpath", "-o", out}, extra...)
	return run(ctx, p.Dir, []string{"GOOS=wasip1", "GOARCH=wasm"}, log, goBin, append(args, ".")...)
}

// crateName is the project's name as a Rust crate name.
func (p Project) crateName() string {
	return strings.NewReplacer("-", "_", ".", "_", "~", "_").Replace(p.Name)
}

// rlib builds the weir_transform crate for target ("" for the host) into
// the project's .weir/build and returns its path.
func (p Project) rlib(ctx context.Context, rc Rustc, target string, log io.Writer) (string, error) {
	sub := target
	if sub == "" {
		sub = "native"
	}
	dir := filepath.Join(p.Dir, ".weir", "build", sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lib := filepath.Join(dir, "libweir_transform.rlib")
	args := []string{"--edition", "2021", "--crate-type", "rlib", "--crate-name", "weir_transform", "-O", "-o", lib}
	if target != "" {
		args = append(args, "--target", target)
	}
	args = append(args, filepath.Join(p.SDK, "src", "lib.rs"))
	return lib, run(ctx, p.Dir, nil, log, rc.Path, args...)
}

func (p Project) buildRust(ctx context.Context, out string, extra []string, log io.Writer) error {
	rc, err := FindRustc(ctx)
	if err != nil {
		return err
	}
	lib, err := p.rlib(ctx, rc, rc.Target, log)
	if err != nil {
		return err
	}
	args := []string{"--edition", "2021", "--crate-type", "cdylib", "--crate-name", p.crateName(), "--target", rc.Target,
		"-O", "-C", "strip=debuginfo", "--extern", "weir_transform=" + lib, "-o", out}
	args = append(append(args, extra...), filepath.Join(p.Dir, "src", "lib.rs"))
	return run(ctx, p.Dir, nil, log, rc.Path, args...)
}

func (p Project) testRust(ctx context.Context, log io.Writer) error {
	rc, err := FindRustc(ctx)
	if err != nil {
		return err
	}
	lib, err := p.rlib(ctx, rc, "", log)
	if err != nil {
		return err
	}
	bin := filepath.Join(p.Dir, ".weir", "build", "native", p.crateName()+"-test")
	if err := run(ctx, p.Dir, nil, log, rc.Path, "--edition", "2021", "--test", "--crate-name", p.crateName(),
		"--extern", "weir_transform="+lib, "-o", bin, filepath.Join(p.Dir, "src", "lib.rs")); err != nil {
		return err
	}
	return run(ctx, p.Dir, nil, log, bin)
}

// ascArgs are the asc arguments shared by modules and tests: the SDK
// resolves as the package "weir-transform" through --path.
func (p Project) ascArgs(ctx context.Context, log io.Writer) (node string, args []string, err error) {
	if node, err = FindNode(); err != nil {
		return "", nil, err
	}
	asc, err := p.findASC(ctx, log)
	if err != nil {
		return "", nil, err
	}
	pathDir := filepath.Join(p.Dir, ".weir", "build", "path")
	if err := os.MkdirAll(pathDir, 0o755); err != nil {
		return "", nil, err
	}
	link := filepath.Join(pathDir, "weir-transform")
	sdkDir, err := filepath.Abs(p.SDK)
	if err != nil {
		return "", nil, err
	}
	if cur, err := os.Readlink(link); err != nil || cur != sdkDir {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
		if err := os.Symlink(sdkDir, link); err != nil {
			return "", nil, err
		}
	}
	return node, []string{asc, "--path", pathDir, "--exportStart", "_initialize"}, nil
}

func (p Project) buildTS(ctx context.Context, out string, extra []string, log io.Writer) error {
	node, args, err := p.ascArgs(ctx, log)
	if err != nil {
		return err
	}
	args = append(args, filepath.Join("assembly", "index.ts"), "-O", "-o", out,
		"--use", "abort=~lib/weir-transform/assembly/abort/weirAbort")
	return run(ctx, p.Dir, nil, log, node, append(args, extra...)...)
}

func (p Project) testTS(ctx context.Context, log io.Writer) error {
	node, args, err := p.ascArgs(ctx, log)
	if err != nil {
		return err
	}
	tests, err := filepath.Glob(filepath.Join(p.Dir, "assembly", "*.test.ts"))
	if err != nil {
		return err
	}
	if len(tests) == 0 {
		return fmt.Errorf("no assembly/*.test.ts in %s", p.Dir)
	}
	for _, t := range tests {
		wasm := filepath.Join(p.Dir, ".weir", "build", strings.TrimSuffix(filepath.Base(t), ".ts")+".wasm")
		rel, err := filepath.Rel(p.Dir, t)
		if err != nil {
			return err
		}
		if err := run(ctx, p.Dir, nil, log, node, append(args, rel, "-o", wasm)...); err != nil {
			return err
		}
		if err := run(ctx, p.Dir, nil, log, node, filepath.Join(p.SDK, "test", "run.mjs"), wasm); err != nil {
			return err
		}
	}
	return nil
}
