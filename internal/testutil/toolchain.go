package testutil

import (
	"errors"
	"os"
	"testing"

	"github.com/weir-broker/weir/internal/toolchain"
)

// RequireToolchainsEnv, when set (CI sets it), makes a missing tool — the
// Rust or AssemblyScript toolchain, versitygw — fail the tests that need it
// instead of skipping them.
const RequireToolchainsEnv = "WEIR_REQUIRE_TOOLCHAINS"

// ToolchainOK fails t on err, except that a missing toolchain
// (toolchain.ErrToolMissing) skips t unless RequireToolchainsEnv is set.
func ToolchainOK(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, toolchain.ErrToolMissing) && os.Getenv(RequireToolchainsEnv) == "" {
		t.Skipf("%v (set %s=1 to fail instead)", err, RequireToolchainsEnv)
	}
	t.Fatal(err)
}
