package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/internal/toolchain"
	"github.com/weir-broker/weir/sdk/abi"
)

// newTransformInitCmd is `weir transform init [--lang L] DIR`: a new project.
func newTransformInitCmd() *cobra.Command {
	var name, lang string
	var update bool
	cmd := &cobra.Command{
		Use:   "init [--lang go|rust|ts] [--name NAME] DIR",
		Short: "Create a transform project (sample transform, its test, README, the SDK) in DIR",
		Long: `Creates DIR (if needed) and writes a ready transform project into it, in Go
(default), Rust or AssemblyScript (ts): a sample transform that upper-cases
values and dead-letters empty ones, its test with the SDK's local harness, a
README, and .weir/ with a copy of the SDK taken from this binary and
project.json (the language and the ABI version of that SDK).

  go    go.mod (module NAME, requiring the SDK with a replace to
        ./.weir/sdk/go: no network needed beyond the Go module proxy),
        main.go, main_test.go
  rust  src/lib.rs (the transform and its #[cfg(test)] tests); the
        weir_transform crate in .weir/sdk/rust (std only, built with rustc)
  ts    assembly/index.ts, assembly/index.test.ts, package.json and
        package-lock.json pinning assemblyscript; the SDK in .weir/sdk/ts

Existing files are never overwritten: if any would be, nothing is written.
--update-sdk instead refreshes .weir/ of an existing project in DIR from this
binary (after upgrading weir), leaving the project's own files alone.

Then: cd DIR && weir transform build --test`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if update {
				p, err := toolchain.Open(args[0])
				if err != nil {
					return err
				}
				if err := p.UpdateSDK(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "updated the %s SDK in %s to ABI %d\n", p.Lang, filepath.Join(p.Dir, ".weir"), abi.Version)
				return nil
			}
			files, err := toolchain.Init(args[0], name, lang)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created a %s transform project in %s (%d files, SDK ABI %d)\nnext: cd %s && weir transform build --test\n",
				lang, args[0], len(files), abi.Version, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&lang, "lang", toolchain.Go, "language: "+strings.Join(toolchain.Langs(), ", "))
	cmd.Flags().StringVar(&name, "name", "", "module name (Go: the go.mod module path; default DIR's base name)")
	cmd.Flags().BoolVar(&update, "update-sdk", false, "refresh the SDK copy in an existing project's .weir/ instead")
	return cmd
}

// newTransformBuildCmd is `weir transform build [DIR]`.
func newTransformBuildCmd() *cobra.Command {
	var out string
	var test bool
	cmd := &cobra.Command{
		Use:   "build [DIR] [-o OUT.wasm] [--test] [-- COMPILER_FLAGS...]",
		Short: "Build the transform project in DIR (default .) to a .wasm module, and report its size",
		Long: `Builds the project in DIR (default the current directory) with its language's
compiler, from PATH:

  go    GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o OUT .
  rust  rustc --edition 2021 --target wasm32-wasi[p1] --crate-type rlib  .weir/sdk/rust/src/lib.rs
        rustc --edition 2021 --target wasm32-wasi[p1] --crate-type cdylib -O -C strip=debuginfo
              --extern weir_transform=… -o OUT src/lib.rs
        (a rustc with the wasm32-wasi std: WEIR_RUSTC, rustc, /usr/bin/rustc;
        Debian: apt-get install rustc libstd-rust-dev-wasm32)
  ts    node node_modules/assemblyscript/bin/asc.js assembly/index.ts --path .weir/build/path
              --exportStart _initialize --use abort=~lib/weir-transform/assembly/abort/weirAbort -O -o OUT
        (npm ci first when node_modules lacks assemblyscript)

OUT defaults to DIR/<name>.wasm; compiler output is passed through, and
arguments after -- go to the compiler. --test first runs the project's tests
with the SDK's local harness (go test; rustc --test; the test* exports of
assembly/*.test.ts in Node.js). Prints the module's size against the
broker's 16 MiB module limit.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			extra := []string(nil)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				args, extra = args[:at], args[at:]
			}
			if len(args) > 1 {
				return fmt.Errorf("want at most one DIR, got %d arguments", len(args))
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			p, err := toolchain.Open(dir)
			if err != nil {
				return err
			}
			_, err = buildProject(cmd, p, out, extra, test)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/<name>.wasm)")
	cmd.Flags().BoolVar(&test, "test", false, "run the project's tests first")
	return cmd
}

// buildProject tests (if asked) and builds p, printing the module's size.
func buildProject(cmd *cobra.Command, p toolchain.Project, out string, extra []string, test bool) (string, error) {
	log := cmd.ErrOrStderr() // compilers' output; stdout keeps the result
	if test {
		if err := p.Test(cmd.Context(), log); err != nil {
			return "", fmt.Errorf("tests: %w", err)
		}
	}
	wasm, err := p.Build(cmd.Context(), out, extra, log)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(wasm)
	if err != nil {
		return "", err
	}
	const limit = core.DefaultMaxModuleBytes
	fmt.Fprintf(cmd.OutOrStdout(), "built %s (%s): %d bytes, %.1f KiB, %.1f%% of the %d MiB module limit\n",
		wasm, p.Lang, st.Size(), float64(st.Size())/1024, 100*float64(st.Size())/limit, limit>>20)
	if st.Size() > limit {
		return wasm, errors.New("the module is larger than the broker accepts: build with smaller dependencies (Go: -- -ldflags='-s -w')")
	}
	return wasm, nil
}
