package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe and delete topics"}
	var parts, rf int
	var retMs, retBytes, segBytes, localMs, localBytes int64
	var tiered bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"name": args[0], "partitions": parts, "replication_factor": rf, "retention_ms": retMs, "retention_bytes": retBytes,
				"tiered": tiered, "segment_bytes": segBytes, "local_retention_ms": localMs, "local_retention_bytes": localBytes}
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "POST", "/v1/topics", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	create.Flags().IntVar(&parts, "partitions", 1, "number of partitions")
	create.Flags().IntVar(&rf, "replication-factor", 0, "replicas per partition (0: min(3, nodes))")
	create.Flags().Int64Var(&retMs, "retention-ms", 0, "delete segments older than this (0: 7 days, -1: forever)")
	create.Flags().Int64Var(&retBytes, "retention-bytes", 0, "keep at most this many bytes per partition (0 or -1: no limit)")
	create.Flags().BoolVar(&tiered, "tiered", false, "upload closed segments to the cluster's object storage (docs/tiered-storage.md)")
	create.Flags().Int64Var(&segBytes, "segment-bytes", 0, "segment file size (0: the node's default, 64 MiB)")
	create.Flags().Int64Var(&localMs, "local-retention-ms", 0, "tiered: keep uploaded segments on disk this long (0: 1 day, -1: as long as --retention-ms)")
	create.Flags().Int64Var(&localBytes, "local-retention-bytes", 0, "tiered: keep at most this many uploaded bytes on disk per partition (0 or -1: no limit)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Topics []struct {
					Name              string `json:"name"`
					Partitions        int    `json:"partitions"`
					ReplicationFactor int    `json:"replication_factor"`
				} `json:"topics"`
			}
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/topics", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tPARTITIONS\tREPLICATION")
			for _, t := range out.Topics {
				fmt.Fprintf(w, "%s\t%d\t%d\n", t.Name, t.Partitions, t.ReplicationFactor)
			}
			return w.Flush()
		},
	}
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions, leaders and offsets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/topics/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and all its records",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clientFor(cmd).do(cmd.Context(), "DELETE", "/v1/topics/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, describe, del)
	return cmd
}
