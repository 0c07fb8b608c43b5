package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe, grow and delete topics"}
	var parts, rf int
	var retMs, retBytes, segBytes, localMs, localBytes int64
	var tiered bool
	var compression string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).CreateTopic(cmd.Context(), client.TopicConfig{Name: args[0], Partitions: parts,
				ReplicationFactor: rf, RetentionMs: retMs, RetentionBytes: retBytes,
				Tiered: tiered, SegmentBytes: segBytes, LocalRetentionMs: localMs, LocalRetentionBytes: localBytes,
				Compression: compression})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	create.Flags().IntVar(&parts, "partitions", 1, "number of partitions")
	create.Flags().IntVar(&rf, "replication-factor", 0, "replicas per partition (0: min(3, nodes))")
	create.Flags().Int64Var(&retMs, "retention-ms", 0, "delete segments older than this (0: 7 days, -1: forever)")
	create.Flags().Int64Var(&retBytes, "retention-bytes", 0, "keep at most this many bytes per partition (0 or -1: no limit)")
	create.Flags().StringVar(&compression, "compression", "", "how batches are stored: producer (default: compressed when a Kafka producer compressed them), s2 (every batch, S2) or uncompressed")
	create.Flags().BoolVar(&tiered, "tiered", false, "upload closed segments to the cluster's object storage (docs/tiered-storage.md)")
	create.Flags().Int64Var(&segBytes, "segment-bytes", 0, "segment file size (0: the node's default, 64 MiB)")
	create.Flags().Int64Var(&localMs, "local-retention-ms", 0, "tiered: keep uploaded segments on disk this long (0: 1 day, -1: as long as --retention-ms)")
	create.Flags().Int64Var(&localBytes, "local-retention-bytes", 0, "tiered: keep at most this many uploaded bytes on disk per partition (0 or -1: no limit)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topics, err := clientFor(cmd).Topics(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tPARTITIONS\tREPLICATION")
			for _, t := range topics {
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
			out, err := clientFor(cmd).Topic(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	var grow int
	addParts := &cobra.Command{
		Use:   "add-partitions NAME --partitions N",
		Short: "Grow a topic to N partitions in all (a key may map to another partition after)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).AddPartitions(cmd.Context(), args[0], grow)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	addParts.Flags().IntVar(&grow, "partitions", 0, "the topic's new partition count in all, above its current count")
	_ = addParts.MarkFlagRequired("partitions")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and all its records",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clientFor(cmd).DeleteTopic(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, describe, addParts, del)
	return cmd
}
