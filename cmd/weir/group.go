package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func afterMs(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Consumer group offsets"}
	var topic string
	offsets := &cobra.Command{
		Use:   "offsets GROUP",
		Short: "Show a group's committed offsets and lag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Offsets []struct {
					Topic     string `json:"topic"`
					Partition int    `json:"partition"`
					Offset    int64  `json:"offset"`
					Lag       int64  `json:"lag"`
				} `json:"offsets"`
			}
			path := "/v1/groups/" + url.PathEscape(args[0]) + "/offsets"
			if topic != "" {
				path += "?topic=" + url.QueryEscape(topic)
			}
			if err := clientFor(cmd).do(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tOFFSET\tLAG")
			for _, o := range out.Offsets {
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
			body := map[string]any{"offsets": []map[string]any{{"topic": commitTopic, "partition": commitPart, "offset": commitOff}}}
			return clientFor(cmd).do(cmd.Context(), "POST", "/v1/groups/"+url.PathEscape(args[0])+"/offsets", body, nil)
		},
	}
	commit.Flags().StringVar(&commitTopic, "topic", "", "topic")
	commit.Flags().IntVar(&commitPart, "partition", 0, "partition")
	commit.Flags().Int64Var(&commitOff, "offset", 0, "next offset to read")
	commit.MarkFlagRequired("topic")
	cmd.AddCommand(offsets, commit)
	return cmd
}
