package toolchain

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Rustc is a rustc that can build for WebAssembly with WASI.
type Rustc struct {
	Path   string
	Target string // wasm32-wasip1 or wasm32-wasi
}

// FindRustc returns the first of $WEIR_RUSTC, rustc on PATH and
// /usr/bin/rustc whose sysroot has a WASI standard library.
func FindRustc(ctx context.Context) (Rustc, error) {
	var cands []string
	if p := os.Getenv("WEIR_RUSTC"); p != "" {
		cands = append(cands, p)
	}
	if p, err := exec.LookPath("rustc"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/rustc")
	var tried []string
	for _, c := range cands {
		out, err := exec.CommandContext(ctx, c, "--print", "sysroot").Output()
		if err != nil {
			continue
		}
		root := strings.TrimSpace(string(out))
		for _, t := range []string{"wasm32-wasip1", "wasm32-wasi"} {
			if st, err := os.Stat(filepath.Join(root, "lib", "rustlib", t, "lib")); err == nil && st.IsDir() {
				return Rustc{Path: c, Target: t}, nil
			}
		}
		tried = append(tried, c)
	}
	return Rustc{}, fmt.Errorf("%w: no rustc with the wasm32-wasi standard library (tried %s): install Debian's rustc and libstd-rust-dev-wasm32 (apt-get install rustc libstd-rust-dev-wasm32), or rustup target add wasm32-wasip1, or set WEIR_RUSTC",
		ErrToolMissing, strings.Join(append(tried, "PATH"), ", "))
}

// FindNode returns node from PATH.
func FindNode() (string, error) {
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%w: node not found on PATH: install Node.js 20 or newer (apt-get install nodejs npm) to build AssemblyScript transforms", ErrToolMissing)
	}
	return p, nil
}

// FindGo returns go from PATH.
func FindGo() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: go not found on PATH: install Go 1.24 or newer (https://go.dev/dl/) to build Go transforms", ErrToolMissing)
	}
	return p, nil
}

// findASC returns assemblyscript's asc.js in the nearest node_modules at or
// above the project; if there is none and the project has a
// package-lock.json, it runs npm ci there first (the version the lock pins).
func (p Project) findASC(ctx context.Context, log io.Writer) (string, error) {
	look := func() string {
		for d := p.Dir; ; d = filepath.Dir(d) {
			asc := filepath.Join(d, "node_modules", "assemblyscript", "bin", "asc.js")
			if _, err := os.Stat(asc); err == nil {
				return asc
			}
			if filepath.Dir(d) == d {
				return ""
			}
		}
	}
	if asc := look(); asc != "" {
		return asc, nil
	}
	if err := p.InstallNodeModules(ctx, log); err != nil {
		return "", err
	}
	if asc := look(); asc != "" {
		return asc, nil
	}
	return "", fmt.Errorf("npm ci in %s installed no assemblyscript", p.Dir)
}

// InstallNodeModules runs npm ci in the project: the packages its
// package-lock.json pins (assemblyscript) into its node_modules.
func (p Project) InstallNodeModules(ctx context.Context, log io.Writer) error {
	if _, err := os.Stat(filepath.Join(p.Dir, "package-lock.json")); err != nil {
		return fmt.Errorf("%w: no node_modules/assemblyscript at or above %s, and no package-lock.json to install it from", ErrToolMissing, p.Dir)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("%w: npm not found on PATH: install it (apt-get install npm) to fetch assemblyscript", ErrToolMissing)
	}
	return run(ctx, p.Dir, nil, log, npm, "ci", "--no-audit", "--no-fund")
}
