package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
			var d struct {
				Group      string `json:"group"`
				Generation int64  `json:"generation"`
				State      string `json:"state"`
				TotalLag   int64  `json:"total_lag"`
				Members    []struct {
					ID              string `json:"id"`
					Kind            string `json:"kind"`
					Node            uint64 `json:"node"`
					LastHeartbeatMs int64  `json:"last_heartbeat_ms"`
					Assignment      []struct {
						Topic      string `json:"topic"`
						Partitions []int  `json:"partitions"`
					} `json:"assignment"`
				} `json:"members"`
				Partitions []struct {
					Topic     string `json:"topic"`
					Partition int    `json:"partition"`
					Member    string `json:"member"`
					Committed *int64 `json:"committed_offset"`
					HWM       int64  `json:"high_watermark"`
					Lag       int64  `json:"lag"`
				} `json:"partitions"`
			}
			var raw json.RawMessage
			if err := clientFor(cmd).do(cmd.Context(), "GET", "/v1/groups/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
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
				if p.Committed != nil {
					committed = strconv.FormatInt(*p.Committed, 10)
				}
				if member == "" {
					member = "-"
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\n", p.Topic, p.Partition, member, committed, p.HWM, p.Lag)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}
