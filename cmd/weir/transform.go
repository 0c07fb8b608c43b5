package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/plugins"
)

// runWasmWorkerIfRequested turns this process into a Wasm worker when the
// broker started it as one (plugins.WorkerEnv=1): main must call it first,
// before parsing flags. It does not return in that case.
func runWasmWorkerIfRequested() {
	if os.Getenv(plugins.WorkerEnv) != "1" {
		return
	}
	if err := plugins.RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "weir wasm worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// newTransformCmd is `weir transform`: develop Wasm transforms locally.
func newTransformCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transform",
		Short: "Develop Wasm transforms (init, build, test, validate, deploy, logs)",
	}
	cmd.AddCommand(newTransformInitCmd(), newTransformBuildCmd(), newTransformDeployCmd(), newTransformTestCmd(), newTransformValidateCmd(),
		newPipelineLogsCmd()) // logs: the same as `weir pipeline logs`
	return cmd
}

func newTransformTestCmd() *cobra.Command {
	var (
		configs []string
		outputs []string
		input   string
	)
	cmd := &cobra.Command{
		Use:   "test module.wasm [--config k=v ...] [--outputs a,b] < records.jsonl",
		Short: "Run a transform over JSON-lines records and print what it does",
		Long: `Runs a transform module locally, without a broker, over records read as JSON
lines ({"key","value","headers","timestamp"}, plus "encoding":"base64" for binary
keys and values) from stdin or --input. Records go in batches of 100 with state
carried between batches, as in a pipeline.

Prints one JSON line per event:
  {"output":"a","key":…,"value":…,"headers":{…},"timestamp":…}   an emitted record
  {"dead_letter":{"offset":…,"key":…,"value":…,"reason":…}}      a rejected input record
  {"state":{"key":…,"value":…}} / {"state":{"key":…,"delete":true}}  a state change
  {"log":{"level":…,"msg":…}}                                      a guest log line
A failed batch (error, trap, time or output limit) stops the run with a non-zero exit.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			cfg, err := parseConfig(configs)
			if err != nil {
				return err
			}
			var in io.Reader = cmd.InOrStdin()
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return plugins.RunLocal(cmd.Context(), wasm, cfg, outputs, in, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&configs, "config", nil, "pipeline config entry key=value (repeatable)")
	cmd.Flags().StringSliceVar(&outputs, "outputs", []string{"out"}, "output topic names, comma-separated; the first is output 0")
	cmd.Flags().StringVar(&input, "input", "-", "file of JSON-lines records (- for stdin)")
	return cmd
}

func newTransformValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate module.wasm",
		Short: "Check a module the way the broker checks uploads",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			h, err := plugins.New(plugins.Config{Isolation: plugins.IsolationInProcess})
			if err != nil {
				return err
			}
			defer h.Close()
			info, err := h.Validate(cmd.Context(), wasm)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return enc.Encode(map[string]any{"abi_version": info.ABIVersion, "sha256": info.SHA256, "size": info.Size})
		},
	}
}
