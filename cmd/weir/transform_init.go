package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// sdkModule is the module path of the guest SDK (sdk/go.mod).
const sdkModule = "github.com/weir-broker/weir/sdk"

// sdkDir is the default SDK directory for `weir transform init`. A build can
// set it with -ldflags "-X main.sdkDir=/path/to/weir/sdk"; otherwise
// defaultSDKDir looks next to this binary's sources and the binary itself.
var sdkDir string

// newTransformInitCmd is `weir transform init DIR`: a new Go transform module.
func newTransformInitCmd() *cobra.Command {
	var name, sdk string
	cmd := &cobra.Command{
		Use:   "init DIR [--name NAME] [--sdk PATH]",
		Short: "Create a Go transform module (go.mod, main.go, main_test.go) in DIR",
		Long: `Creates DIR (if needed) and writes a Go module for a transform into it:

  go.mod        module NAME (default: DIR's base name), go 1.24, requiring
                ` + sdkModule + ` v0.0.0 with a replace directive to
                the SDK directory (the SDK is not on a module proxy yet)
  main.go       an uppercase transform registered with transform.OnRecord
  main_test.go  a test of it with sdk/transform/transformtest

Existing files are never overwritten: if any of the three exists, nothing is
written. The SDK directory is --sdk (or WEIR_SDK) if given; otherwise the sdk/
directory of the Weir checkout this binary was built from, when it can be
found (the source path recorded in the binary, or the binary's own location,
e.g. bin/weir of a checkout). The replace directive gets its absolute path.

Then: cd DIR && go test && weir transform build`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(dir)
			}
			if err := checkModulePath(name); err != nil {
				return err
			}
			if sdk == "" {
				sdk = defaultSDKDir()
				if sdk == "" {
					return errors.New("cannot find the Weir SDK (this binary was not built from a Weir checkout): pass --sdk PATH/TO/weir/sdk")
				}
			}
			sdk, err = checkSDKDir(sdk)
			if err != nil {
				return err
			}
			files := []struct{ name, body string }{
				{"go.mod", goModTemplate(name, sdk)},
				{"main.go", mainTemplate},
				{"main_test.go", mainTestTemplate},
			}
			var exist []string
			for _, f := range files {
				if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
					exist = append(exist, f.name)
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			if len(exist) > 0 {
				return fmt.Errorf("%s already has %s: not overwriting (choose an empty or new directory)", dir, strings.Join(exist, ", "))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, f := range files {
				if err := writeNew(filepath.Join(dir, f.name), f.body); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created transform module %s in %s (SDK %s)\nnext: cd %s && go test && weir transform build\n",
				name, dir, sdk, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "module path for go.mod (default: DIR's base name)")
	cmd.Flags().StringVar(&sdk, "sdk", "", "the SDK directory (weir checkout's sdk/) for the replace directive (env WEIR_SDK; default: the checkout this binary was built from)")
	return cmd
}

// newTransformBuildCmd is `weir transform build [DIR]`: go build for wasip1.
func newTransformBuildCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build [DIR] [-o OUT.wasm] [-- GO_BUILD_FLAGS...]",
		Short: "Build the transform module in DIR (default .) to a .wasm file",
		Long: `Runs, in DIR (default the current directory),

  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o OUT .

with go from PATH (Go 1.24 or newer). OUT defaults to DIR/<DIR's base
name>.wasm; a relative -o is relative to the current directory. Compiler
output is passed through. Arguments after -- go to go build, e.g.
  weir transform build -- -ldflags='-s -w'`,
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
			dir, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if st, err := os.Stat(dir); err != nil {
				return err
			} else if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if out == "" {
				out = filepath.Join(dir, filepath.Base(dir)+".wasm")
			} else if out, err = filepath.Abs(out); err != nil {
				return err
			}
			goBin, err := exec.LookPath("go")
			if err != nil {
				return fmt.Errorf("go not found on PATH: install Go 1.24 or newer (https://go.dev/dl/) to build transforms: %w", err)
			}
			goArgs := append([]string{"build", "-buildmode=c-shared", "-trimpath", "-o", out}, extra...)
			goArgs = append(goArgs, ".")
			c := exec.CommandContext(cmd.Context(), goBin, goArgs...)
			c.Dir = dir
			c.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			c.Stdout = cmd.ErrOrStderr() // go build prints nothing on stdout; keep ours for the result
			c.Stderr = cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				return fmt.Errorf("GOOS=wasip1 GOARCH=wasm go %s (in %s): %w", strings.Join(goArgs, " "), dir, err)
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s (%d bytes)\n", out, st.Size())
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/<DIR's base name>.wasm)")
	return cmd
}

// defaultSDKDir finds the sdk/ directory of the checkout this binary was
// built from: -X main.sdkDir, then the source path recorded for this file
// (absent with -trimpath), then ../sdk and ../../sdk from the executable
// (bin/weir in a checkout). "" if none is an SDK.
func defaultSDKDir() string {
	var cands []string
	if sdkDir != "" {
		cands = append(cands, sdkDir)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		cands = append(cands, filepath.Join(filepath.Dir(file), "..", "..", "sdk"))
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		cands = append(cands, filepath.Join(filepath.Dir(exe), "..", "sdk"), filepath.Join(filepath.Dir(exe), "..", "..", "sdk"))
	}
	for _, c := range cands {
		if d, err := checkSDKDir(c); err == nil {
			return d
		}
	}
	return ""
}

// checkSDKDir returns dir made absolute if its go.mod declares the SDK module.
func checkSDKDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("--sdk %s: not the Weir SDK directory (want the sdk/ directory of a Weir checkout): %w", dir, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], "\"`") == sdkModule {
			return abs, nil
		}
	}
	return "", fmt.Errorf("--sdk %s: its go.mod is not module %s (want the sdk/ directory of a Weir checkout)", dir, sdkModule)
}

// checkModulePath accepts what `go mod init` accepts for a main module, near
// enough: letters, digits and -._~ in slash-separated elements.
func checkModulePath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("module name %q: %s (set --name, e.g. --name example.com/upper)", p, why)
	}
	if p == "" {
		return bad("empty")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." || strings.HasPrefix(elem, "-") || strings.HasPrefix(elem, ".") {
			return bad("bad path element " + strconv.Quote(elem))
		}
		for _, r := range elem {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
				return bad(fmt.Sprintf("character %q not allowed", r))
			}
		}
	}
	return nil
}

// goModQuote quotes a go.mod token when it needs it (as modfile.AutoQuote).
func goModQuote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'`") || strings.Contains(s, "//") || strings.Contains(s, "/*") {
		return strconv.Quote(s)
	}
	return s
}

func goModTemplate(name, sdk string) string {
	return "module " + name + `

go 1.24

require ` + sdkModule + ` v0.0.0

// The SDK is not on a module proxy yet: it comes from a Weir checkout.
replace ` + sdkModule + ` => ` + goModQuote(sdk) + "\n"
}

func writeNew(path, body string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

const mainTemplate = `// Command upper is a Weir transform: it upper-cases each record's value and
// sends records with an empty value to the pipeline's dead-letter topic.
//
//	go test                 # run main_test.go on the host
//	weir transform build    # or: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// See docs/transforms.md in the Weir repository.
package main

import (
	"bytes"

	"github.com/weir-broker/weir/sdk/transform"
)

// Register in init: a Wasm reactor (-buildmode=c-shared) never runs main.
func init() { transform.OnRecord(upper) }

func main() {}

func upper(r transform.Record, ctx *transform.Context) error {
	if len(r.Value) == 0 {
		return ctx.DeadLetter("empty value") // to the pipeline's dead-letter topic
	}
	r.Value = bytes.ToUpper(r.Value)
	return ctx.Emit(r) // to the first output
}
`

const mainTestTemplate = `package main

import (
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestUpper(t *testing.T) {
	h := transformtest.New(transformtest.Options{
		Outputs: []string{"out"},
		Config:  map[string]string{},
	})
	res, err := h.Records(upper, transformtest.KV("k", "hello"), transformtest.KV("k", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); len(got) != 1 || got[0] != "HELLO" {
		t.Fatalf("emitted %q", got)
	}
	if len(res.Dead) != 1 || res.Dead[0].Index != 1 {
		t.Fatalf("dead letters %+v", res.Dead)
	}
}

// TestRegistered runs what init registered, as the broker does.
func TestRegistered(t *testing.T) {
	res, err := transformtest.New(transformtest.Options{}).Registered(transformtest.KV("k", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); len(got) != 1 || got[0] != "ABC" {
		t.Fatalf("emitted %q", got)
	}
}
`
