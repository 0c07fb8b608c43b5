package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

// fetchedRecord is a record as the CLI prints it: one JSON line, key and
// value as UTF-8 text (invalid UTF-8 becomes U+FFFD, as in the API's
// utf8 encoding).
type fetchedRecord struct {
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func printable(r client.FetchedRecord) fetchedRecord {
	out := fetchedRecord{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Value: string(r.Value), Headers: r.Headers}
	if r.Key != nil {
		k := string(r.Key)
		out.Key = &k
	}
	if out.Headers == nil {
		out.Headers = map[string]string{}
	}
	return out
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
			meta, err := c.Topic(cmd.Context(), topic)
			if err != nil {
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
			start := client.FetchOptions{From: client.From(from)}
			if n, err := strconv.ParseInt(from, 10, 64); err == nil {
				start = client.FetchOptions{Offset: n}
			}
			pos := map[int]client.FetchOptions{}
			for _, p := range parts {
				pos[p] = start
			}
			if group != "" {
				offs, err := c.GroupOffsets(cmd.Context(), group, topic)
				if err != nil {
					return err
				}
				for _, o := range offs {
					if _, ok := pos[o.Partition]; ok {
						pos[o.Partition] = client.FetchOptions{Offset: o.Offset}
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
					opts := pos[p]
					opts.MaxRecords = 500
					if follow && len(parts) == 1 {
						opts.Wait = 10 * time.Second
					}
					out, err := c.Fetch(ctx, topic, p, opts)
					if err != nil {
						if errors.Is(ctx.Err(), context.Canceled) {
							return nil
						}
						return err
					}
					for _, r := range out.Records {
						if max > 0 && printed >= max {
							return nil
						}
						if err := enc.Encode(printable(r)); err != nil {
							return err
						}
						printed++
						got++
					}
					pos[p] = client.FetchOptions{Offset: out.NextOffset}
					if group != "" && len(out.Records) > 0 {
						if err := c.CommitOffsets(ctx, group, []client.GroupOffset{{Topic: topic, Partition: p, Offset: out.NextOffset}}); err != nil {
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
