package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/sdk/client"
)

func newModuleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "module", Short: "Upload and list Wasm modules"}
	upload := &cobra.Command{
		Use:   "upload NAME FILE.wasm",
		Short: "Upload a module; each upload is a new version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			out, err := clientFor(cmd).UploadModule(cmd.Context(), args[0], wasm)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List modules and their latest versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			modules, err := clientFor(cmd).Modules(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tLATEST\tSIZE\tSHA256")
			for _, m := range modules {
				v := m.Versions[len(m.Versions)-1]
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", m.Name, m.Latest, v.Size, v.SHA256[:16])
			}
			return w.Flush()
		},
	}
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a module's versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).Module(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a module (refused while a pipeline uses it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).DeleteModule(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(upload, list, describe, del)
	return cmd
}

func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Create, inspect and control Wasm pipelines"}
	cmd.AddCommand(newPipelineCreateCmd(), newPipelineListCmd(), newPipelineDescribeCmd(), newPipelineUpgradeCmd(),
		newPipelineDeleteCmd(), newPipelineLogsCmd(),
		newPipelineActionCmd("pause", "Pause a pipeline", (*client.Client).PausePipeline),
		newPipelineActionCmd("resume", "Resume a paused pipeline", (*client.Client).ResumePipeline))
	return cmd
}

func newPipelineCreateCmd() *cobra.Command {
	var (
		module string
		spec   pipelineSpec
	)
	create := &cobra.Command{
		Use:   "create NAME --module M --input T --output T [--config k=v]...",
		Short: "Create a pipeline that runs a module between topics",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := spec.pipelineConfig(args[0], module)
			if err != nil {
				return err
			}
			out, err := clientFor(cmd).CreatePipeline(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out.Raw)
		},
	}
	f := create.Flags()
	f.StringVar(&module, "module", "", "module name")
	f.IntVar(&spec.version, "version", 0, "module version (0: the latest)")
	spec.flags(f)
	create.MarkFlagRequired("module")
	create.MarkFlagRequired("input")
	create.MarkFlagRequired("output")
	return create
}

func newPipelineUpgradeCmd() *cobra.Command {
	var (
		upModule           string
		upVersion, upBatch int
		upConfig           []string
		upTimeoutMs        int64
		upPages            uint32
	)
	upgrade := &cobra.Command{
		Use:   "upgrade NAME --module M [--version N] [--config k=v]... [--batch-size N] [--timeout-ms MS] [--memory-pages N]",
		Short: "Switch a running pipeline to another module or version at a batch boundary, keeping its position and state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			up := client.PipelineUpgrade{Module: upModule, Version: upVersion, BatchSize: upBatch}
			if len(upConfig) > 0 {
				cfg, err := parseConfig(upConfig)
				if err != nil {
					return err
				}
				up.Config = cfg
			}
			if cmd.Flags().Changed("timeout-ms") || cmd.Flags().Changed("memory-pages") {
				up.Limits = &client.PipelineLimits{BatchTimeoutMs: upTimeoutMs, MemoryPages: upPages}
			}
			out, err := clientFor(cmd).UpgradePipeline(cmd.Context(), args[0], up)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out.Raw)
		},
	}
	uf := upgrade.Flags()
	uf.StringVar(&upModule, "module", "", "module name (the current one for another version)")
	uf.IntVar(&upVersion, "version", 0, "module version (0: the latest)")
	uf.StringArrayVar(&upConfig, "config", nil, "replace the module config with these key=value pairs (repeatable; none: keep it)")
	uf.IntVar(&upBatch, "batch-size", 0, "records per Wasm call (0: keep)")
	uf.Int64Var(&upTimeoutMs, "timeout-ms", 0, "time limit per batch (with --memory-pages, replaces the limits; unset: keep)")
	uf.Uint32Var(&upPages, "memory-pages", 0, "guest memory limit in 64 KiB pages (with --timeout-ms, replaces the limits; unset: keep)")
	upgrade.MarkFlagRequired("module")
	return upgrade
}

func newPipelineDeleteCmd() *cobra.Command {
	var purge bool
	del := &cobra.Command{
		Use:   "delete NAME [--purge]",
		Short: "Delete a pipeline (its position and state stay for a create --resume, unless --purge)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clientFor(cmd).DeletePipeline(cmd.Context(), args[0], purge); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: deleted\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&purge, "purge", false, "also drop its position and state: the next pipeline of this name starts fresh")
	return del
}

func newPipelineListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List pipelines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pipelines, err := clientFor(cmd).Pipelines(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tMODULE\tINPUTS\tOUTPUTS\tGUARANTEE\tSTATE")
			for _, p := range pipelines {
				st := "running"
				if p.Paused {
					st = "paused"
				}
				fmt.Fprintf(w, "%s\t%s@%d\t%s\t%s\t%s\t%s\n", p.Name, p.Module, p.Version, strings.Join(p.Inputs, ","), strings.Join(p.Outputs, ","), p.Guarantee, st)
			}
			return w.Flush()
		},
	}
}

func newPipelineDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a pipeline's status: per-partition position, lag, processed, failed and dead-lettered counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).Pipeline(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out.Raw)
		},
	}
}

// newPipelineActionCmd is a command that calls call on one pipeline and
// says it was done (pause, resume).
func newPipelineActionCmd(use, short string, call func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(clientFor(cmd), cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], use+"d")
			return nil
		},
	}
}

// newPipelineLogsCmd is `weir pipeline logs` (also `weir transform logs`).
func newPipelineLogsCmd() *cobra.Command {
	var (
		follow bool
		after  int64
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [--follow] [--after SEQ]",
		Short: "Print the log lines a pipeline's module wrote (kept by the node that ran the worker)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for {
				var wait time.Duration
				if follow {
					wait = 10 * time.Second
				}
				lines, next, err := clientFor(cmd).PipelineLogs(cmd.Context(), args[0], after, wait)
				if err != nil {
					return err
				}
				for _, l := range lines {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %-5s %s@%d %s/%d [%d-%d] %s\n",
						time.UnixMilli(l.TimeMs).UTC().Format("2006-01-02T15:04:05.000Z"), l.Level, l.Module, l.Version,
						l.Topic, l.Partition, l.Offset, l.LastOffset, l.Message)
				}
				after = next
				if !follow || cmd.Context().Err() != nil {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().Int64Var(&after, "after", 0, "print lines after this sequence number")
	return cmd
}

// pipelineSpec is what `pipeline create` and `transform deploy` send to
// create a pipeline, from their shared flags.
type pipelineSpec struct {
	guarantee, dlq, from    string
	version, maxAttempts    int
	batch                   int
	inputs, outputs, config []string
	timeoutMs, tickMs       int64
	pages                   uint32
	resume, reset           bool
}

// flags registers the create flags (all but --module and --version).
func (s *pipelineSpec) flags(f *pflag.FlagSet) {
	f.StringSliceVar(&s.inputs, "input", nil, "input topic (repeat or comma-separate)")
	f.StringSliceVar(&s.outputs, "output", nil, "output topic (repeat or comma-separate); the module's output 0 is the first")
	f.StringArrayVar(&s.config, "config", nil, "module config key=value (repeatable)")
	f.StringVar(&s.guarantee, "guarantee", "at_least_once", "at_least_once or exactly_once")
	f.IntVar(&s.maxAttempts, "max-attempts", 0, "attempts per batch before dead-lettering (0: 3)")
	f.StringVar(&s.dlq, "dead-letter-topic", "", "dead-letter topic (default NAME.dlq)")
	f.IntVar(&s.batch, "batch-size", 0, "records per Wasm call (0: 1000)")
	f.Int64Var(&s.tickMs, "tick-interval-ms", 0, "how often an idle input partition ticks the module's timers (0: 1000)")
	f.StringVar(&s.from, "from", "", "earliest (default), latest, an offset or a timestamp (ms)")
	f.Int64Var(&s.timeoutMs, "timeout-ms", 0, "time limit per batch (0: the host default, 2000)")
	f.Uint32Var(&s.pages, "memory-pages", 0, "guest memory limit in 64 KiB pages (0: the host default, 256)")
	f.BoolVar(&s.resume, "resume", false, "continue from the position and state a deleted pipeline of this name left")
	f.BoolVar(&s.reset, "reset", false, "start fresh, dropping the position and state a deleted pipeline of this name left")
}

// pipelineConfig is the pipeline to create: name running module, from the flags.
func (s *pipelineSpec) pipelineConfig(name, module string) (client.PipelineConfig, error) {
	cfg, err := parseConfig(s.config)
	if err != nil {
		return client.PipelineConfig{}, err
	}
	return client.PipelineConfig{
		Name: name, Module: module, Version: s.version, Inputs: s.inputs, Outputs: s.outputs,
		Config: cfg, Guarantee: s.guarantee, BatchSize: s.batch, From: client.From(s.from), TickIntervalMs: s.tickMs,
		OnError: &client.PipelineOnError{MaxAttempts: s.maxAttempts, DeadLetterTopic: s.dlq},
		Limits:  &client.PipelineLimits{BatchTimeoutMs: s.timeoutMs, MemoryPages: s.pages},
		Resume:  s.resume, Reset: s.reset,
	}, nil
}

// parseConfig turns --config key=value flags into a map.
func parseConfig(kvs []string) (map[string]string, error) {
	cfg := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q is not key=value", kv)
		}
		cfg[k] = v
	}
	return cfg, nil
}
