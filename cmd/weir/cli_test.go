package main

import (
	"os/exec"
	"strings"
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// weirCLI runs the built binary as a client of the node at url: run
// returns its combined output and error, must fails the test on an error.
func weirCLI(t *testing.T, url string) (run func(args ...string) (string, error), must func(args ...string) string) {
	bin := tu.WeirBinary(t)
	run = func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--server", url)...).CombinedOutput()
		return string(out), err
	}
	must = func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	return run, must
}
