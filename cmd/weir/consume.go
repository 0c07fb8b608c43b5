package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"

	"github.com/spf13/cobra"
)

type fetchedRecord struct {
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func newConsumeCmd() *cobra.Command {
	var from string
	var partition, max int
	var follow bool
	var group string
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Read records as JSON lines",
		Long: `Read records of TOPIC (all partitions, or --partition) from --from
(earliest, latest or an offset) and print one JSON object per line. With
--follow it waits for new records until interrupted. With --group it starts
from the group's committed offsets and commits what it printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := clientFor(cmd)
			topic := args[0]
			var meta struct {
				Partitions []struct {
					Partition int `json:"partition"`
				} `json:"partitions"`
			}
			if err := c.do(cmd.Context(), "GET", "/v1/topics/"+url.PathEscape(topic), nil, &meta); err != nil {
				return err
			}
			var parts []int
			for _, p := range meta.Partitions {
				if partition < 0 || p.Partition == partition {
					parts = append(parts, p.Partition)
				}
			}
			if len(parts) == 0 {
				return fmt.Errorf("topic %s has no partition %d", topic, partition)
			}
			pos := map[int]string{}
			for _, p := range parts {
				pos[p] = from
			}
			if group != "" {
				var offs struct {
					Offsets []struct {
						Partition int   `json:"partition"`
						Offset    int64 `json:"offset"`
					} `json:"offsets"`
				}
				if err := c.do(cmd.Context(), "GET", "/v1/groups/"+url.PathEscape(group)+"/offsets?topic="+url.QueryEscape(topic), nil, &offs); err != nil {
					return err
				}
				for _, o := range offs.Offsets {
					if _, ok := pos[o.Partition]; ok {
						pos[o.Partition] = strconv.FormatInt(o.Offset, 10)
					}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			enc := json.NewEncoder(cmd.OutOrStdout())
			printed := 0
			for {
				got := 0
				for _, p := range parts {
					wait := 0
					if follow && len(parts) == 1 {
						wait = 10000
					}
					var out struct {
						Records    []fetchedRecord `json:"records"`
						NextOffset int64           `json:"next_offset"`
					}
					path := fmt.Sprintf("/v1/topics/%s/partitions/%d/records?offset=%s&max_records=500&wait_ms=%d", url.PathEscape(topic), p, url.QueryEscape(pos[p]), wait)
					if err := c.do(ctx, "GET", path, nil, &out); err != nil {
						if errors.Is(ctx.Err(), context.Canceled) {
							return nil
						}
						return err
					}
					for _, r := range out.Records {
						if max > 0 && printed >= max {
							return nil
						}
						r.Partition = p
						if err := enc.Encode(r); err != nil {
							return err
						}
						printed++
						got++
					}
					pos[p] = strconv.FormatInt(out.NextOffset, 10)
					if group != "" && len(out.Records) > 0 {
						body := map[string]any{"offsets": []map[string]any{{"topic": topic, "partition": p, "offset": out.NextOffset}}}
						if err := c.do(ctx, "POST", "/v1/groups/"+url.PathEscape(group)+"/offsets", body, nil); err != nil {
							return err
						}
					}
				}
				if max > 0 && printed >= max {
					return nil
				}
				if got == 0 && !follow {
					return nil
				}
				if got == 0 && len(parts) > 1 {
					select {
					case <-ctx.Done():
						return nil
					case <-afterMs(200):
					}
				}
			}
		},
	}
	cmd.Flags().StringVar(&from, "from", "earliest", "earliest, latest or an offset")
	cmd.Flags().IntVar(&partition, "partition", -1, "read only this partition")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep waiting for new records")
	cmd.Flags().IntVar(&max, "max", 0, "stop after this many records (0: no limit)")
	cmd.Flags().StringVar(&group, "group", "", "consumer group: start at its committed offsets and commit progress")
	return cmd
}
