package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func afterMs(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Consumer groups: members, assignment, offsets and lag"}
	var topic string
	offsets := &cobra.Command{
		Use:   "offsets GROUP",
		Short: "Show a group's committed offsets and lag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			offsets, err := clientFor(cmd).GroupOffsets(cmd.Context(), args[0], topic)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tOFFSET\tLAG")
			for _, o := range offsets {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", o.Topic, o.Partition, o.Offset, o.Lag)
			}
			return w.Flush()
		},
	}
	offsets.Flags().StringVar(&topic, "topic", "", "only this topic")
	var commitTopic string
	var commitPart int
	var commitOff int64
	commit := &cobra.Command{
		Use:   "commit GROUP",
		Short: "Commit an offset (the next offset to read) for a group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).CommitOffsets(cmd.Context(), args[0], []client.GroupOffset{{Topic: commitTopic, Partition: commitPart, Offset: commitOff}})
		},
	}
	commit.Flags().StringVar(&commitTopic, "topic", "", "topic")
	commit.Flags().IntVar(&commitPart, "partition", 0, "partition")
	commit.Flags().Int64Var(&commitOff, "offset", 0, "next offset to read")
	commit.MarkFlagRequired("topic")
	cmd.AddCommand(offsets, commit, newGroupDescribeCmd())
	return cmd
}

// newGroupDescribeCmd is `weir group describe GROUP`: members, assignment and lag.
func newGroupDescribeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's generation, members, their partitions and the lag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := clientFor(cmd).Group(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), d.Raw)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "group %s  generation %d  %s  %d members  total lag %d\n\n", d.Group, d.Generation, d.State, len(d.Members), d.TotalLag)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MEMBER\tKIND\tNODE\tLAST HEARTBEAT\tPARTITIONS")
			for _, m := range d.Members {
				var parts []string
				for _, a := range m.Assignment {
					ps := make([]string, len(a.Partitions))
					for i, p := range a.Partitions {
						ps[i] = strconv.Itoa(p)
					}
					parts = append(parts, a.Topic+":"+strings.Join(ps, ","))
				}
				ago := time.Since(time.UnixMilli(m.LastHeartbeatMs)).Round(time.Millisecond)
				fmt.Fprintf(w, "%s\t%s\t%d\t%s ago\t%s\n", m.ID, m.Kind, m.Node, ago, strings.Join(parts, " "))
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tHIGH WATERMARK\tLAG")
			for _, p := range d.Partitions {
				committed, member := "-", p.Member
				if p.CommittedOffset != nil {
					committed = strconv.FormatInt(*p.CommittedOffset, 10)
				}
				if member == "" {
					member = "-"
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\n", p.Topic, p.Partition, member, committed, p.HighWatermark, p.Lag)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}
