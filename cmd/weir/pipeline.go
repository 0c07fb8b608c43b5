package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "PUT", "/v1/modules/"+url.PathEscape(args[0]), wasm, &out); err != nil {
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
			var out struct {
				Modules []struct {
					Name     string `json:"name"`
					Latest   int    `json:"latest"`
					Versions []struct {
						SHA256 string `json:"sha256"`
						Size   int    `json:"size"`
					} `json:"versions"`
				} `json:"modules"`
			}
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/modules", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tLATEST\tSIZE\tSHA256")
			for _, m := range out.Modules {
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
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/modules/"+url.PathEscape(args[0]), nil, &out); err != nil {
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
			return clientFor(cmd).do(cmd.Context(), "DELETE", "/v1/modules/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(upload, list, describe, del)
	return cmd
}

func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Create, inspect and control Wasm pipelines"}
	var (
		module, guarantee, dlq, from string
		version, maxAttempts, batch  int
		inputs, outputs, config      []string
		timeoutMs, tickMs            int64
		pages                        uint32
		resume, reset                bool
	)
	create := &cobra.Command{
		Use:   "create NAME --module M --input T --output T [--config k=v]...",
		Short: "Create a pipeline that runs a module between topics",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := map[string]string{}
			for _, kv := range config {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--config %q is not key=value", kv)
				}
				cfg[k] = v
			}
			body := map[string]any{
				"name": args[0], "module": module, "version": version, "inputs": inputs, "outputs": outputs,
				"config": cfg, "guarantee": guarantee, "batch_size": batch, "from": from, "tick_interval_ms": tickMs,
				"on_error": map[string]any{"max_attempts": maxAttempts, "dead_letter_topic": dlq},
				"limits":   map[string]any{"batch_timeout_ms": timeoutMs, "memory_pages": pages},
				"resume":   resume, "reset": reset,
			}
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "POST", "/v1/pipelines", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	f := create.Flags()
	f.StringVar(&module, "module", "", "module name")
	f.IntVar(&version, "version", 0, "module version (0: the latest)")
	f.StringSliceVar(&inputs, "input", nil, "input topic (repeat or comma-separate)")
	f.StringSliceVar(&outputs, "output", nil, "output topic (repeat or comma-separate); the module's output 0 is the first")
	f.StringArrayVar(&config, "config", nil, "module config key=value (repeatable)")
	f.StringVar(&guarantee, "guarantee", "at_least_once", "at_least_once or exactly_once")
	f.IntVar(&maxAttempts, "max-attempts", 0, "attempts per batch before dead-lettering (0: 3)")
	f.StringVar(&dlq, "dead-letter-topic", "", "dead-letter topic (default NAME.dlq)")
	f.IntVar(&batch, "batch-size", 0, "records per Wasm call (0: 1000)")
	f.Int64Var(&tickMs, "tick-interval-ms", 0, "how often an idle input partition ticks the module's timers (0: 1000)")
	f.StringVar(&from, "from", "", "earliest (default) or latest")
	f.Int64Var(&timeoutMs, "timeout-ms", 0, "time limit per batch (0: the host default, 2000)")
	f.Uint32Var(&pages, "memory-pages", 0, "guest memory limit in 64 KiB pages (0: the host default, 256)")
	f.BoolVar(&resume, "resume", false, "continue from the position and state a deleted pipeline of this name left")
	f.BoolVar(&reset, "reset", false, "start fresh, dropping the position and state a deleted pipeline of this name left")
	create.MarkFlagRequired("module")
	create.MarkFlagRequired("input")
	create.MarkFlagRequired("output")

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
			body := map[string]any{"module": upModule, "version": upVersion, "batch_size": upBatch}
			if len(upConfig) > 0 {
				cfg := map[string]string{}
				for _, kv := range upConfig {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--config %q is not key=value", kv)
					}
					cfg[k] = v
				}
				body["config"] = cfg
			}
			if cmd.Flags().Changed("timeout-ms") || cmd.Flags().Changed("memory-pages") {
				body["limits"] = map[string]any{"batch_timeout_ms": upTimeoutMs, "memory_pages": upPages}
			}
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "PATCH", "/v1/pipelines/"+url.PathEscape(args[0]), body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
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

	var purge bool
	del := &cobra.Command{
		Use:   "delete NAME [--purge]",
		Short: "Delete a pipeline (its position and state stay for a create --resume, unless --purge)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/pipelines/" + url.PathEscape(args[0])
			if purge {
				path += "?purge=true"
			}
			if err := clientFor(cmd).do(cmd.Context(), "DELETE", path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: deleted\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&purge, "purge", false, "also drop its position and state: the next pipeline of this name starts fresh")

	list := &cobra.Command{
		Use:   "list",
		Short: "List pipelines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Pipelines []struct {
					Name      string   `json:"name"`
					Module    string   `json:"module"`
					Version   int      `json:"version"`
					Inputs    []string `json:"inputs"`
					Outputs   []string `json:"outputs"`
					Guarantee string   `json:"guarantee"`
					Paused    bool     `json:"paused"`
				} `json:"pipelines"`
			}
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/pipelines", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tMODULE\tINPUTS\tOUTPUTS\tGUARANTEE\tSTATE")
			for _, p := range out.Pipelines {
				st := "running"
				if p.Paused {
					st = "paused"
				}
				fmt.Fprintf(w, "%s\t%s@%d\t%s\t%s\t%s\t%s\n", p.Name, p.Module, p.Version, strings.Join(p.Inputs, ","), strings.Join(p.Outputs, ","), p.Guarantee, st)
			}
			return w.Flush()
		},
	}
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a pipeline's status: per-partition position, lag, processed, failed and dead-lettered counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/pipelines/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	simple := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := clientFor(cmd).do(cmd.Context(), method, "/v1/pipelines/"+url.PathEscape(args[0])+suffix, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], use+"d")
				return nil
			},
		}
	}
	cmd.AddCommand(create, list, describe, upgrade, del, newPipelineLogsCmd(),
		simple("pause", "Pause a pipeline", "POST", "/pause"),
		simple("resume", "Resume a paused pipeline", "POST", "/resume"))
	return cmd
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
				q := fmt.Sprintf("?after=%d", after)
				if follow {
					q += "&wait_ms=10000"
				}
				var out struct {
					Lines []struct {
						Seq        int64  `json:"seq"`
						Time       int64  `json:"time"`
						Level      string `json:"level"`
						Message    string `json:"message"`
						Module     string `json:"module"`
						Version    int    `json:"version"`
						Topic      string `json:"topic"`
						Partition  int    `json:"partition"`
						Offset     int64  `json:"offset"`
						LastOffset int64  `json:"last_offset"`
					} `json:"lines"`
					Next int64 `json:"next"`
				}
				if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/pipelines/"+url.PathEscape(args[0])+"/logs"+q, nil, &out); err != nil {
					return err
				}
				for _, l := range out.Lines {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %-5s %s@%d %s/%d [%d-%d] %s\n",
						time.UnixMilli(l.Time).UTC().Format("2006-01-02T15:04:05.000Z"), l.Level, l.Module, l.Version,
						l.Topic, l.Partition, l.Offset, l.LastOffset, l.Message)
				}
				after = out.Next
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
