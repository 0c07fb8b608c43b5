package server

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/weir-broker/weir/plugins"
	"github.com/weir-broker/weir/raftlog"
)

// TestMain makes the test binary its own Wasm worker, as the weir binary is:
// nodes started in-process run guests in worker processes of this binary.
func TestMain(m *testing.M) {
	if os.Getenv(plugins.WorkerEnv) == "1" {
		if err := plugins.RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	raftlog.QuietDragonboat() // as cmd/weir does
	os.Exit(m.Run())
}
