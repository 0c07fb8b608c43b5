// Command weir is the Weir broker and its command line client.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/raftlog"
)

func main() {
	runWasmWorkerIfRequested() // a Wasm worker process of a running broker
	raftlog.QuietDragonboat()  // Dragonboat's loggers are process-wide: errors only
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "Weir: a Wasm-extensible, Raft-replicated stream processing broker",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("server", "http://127.0.0.1:8080", "URL of the Weir node to talk to (env WEIR_SERVER)")
	addSecurityFlags(root) // security_cli.go: --token, --ca, --cert, --key
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return applyEnv(cmd)
	}
	root.AddCommand(
		// Nodes and the cluster.
		newServeCmd(), newClusterCmd(), newLinkCmd(), newDevCmd(),
		// Topics and records.
		newTopicCmd(), newProduceCmd(), newConsumeCmd(),
		// Consumer groups and subscriptions (the queue model).
		newGroupCmd(), newSubCmd(), newDLQCmd(),
		// Wasm modules and pipelines.
		newTransformCmd(), newModuleCmd(), newPipelineCmd(),
		// Security and quotas (security_cli.go, quota.go).
		newAuthCmd(), newACLCmd(), newQuotaCmd(),
		// Measurements.
		newBenchCmd(),
	)
	return root
}

// applyEnv sets every flag the user did not give from WEIR_<NAME>
// (upper case, dashes as underscores), e.g. --http-addr from WEIR_HTTP_ADDR.
func applyEnv(cmd *cobra.Command) error {
	var err error
	set := func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "WEIR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
			f.Changed = true
		}
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	return err
}
