package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
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

// consumeFlags are the flags of `weir consume`.
type consumeFlags struct {
	from, group    string
	partition, max int
	follow         bool
}

func newConsumeCmd() *cobra.Command {
	var o consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Read records as JSON lines",
		Long: `Read records of TOPIC (all partitions, or --partition) from --from
(earliest, latest or an offset) and print one JSON object per line. With
--follow it waits for new records until interrupted (and reads partitions
added to the topic meanwhile from their start). With --group it starts
from the group's committed offsets and commits what it printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := consumeStart(cmd, args[0], o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return consumeLoop(ctx, cmd, args[0], pos, o)
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "earliest", "earliest, latest or an offset")
	cmd.Flags().IntVar(&o.partition, "partition", -1, "read only this partition")
	cmd.Flags().BoolVar(&o.follow, "follow", false, "keep waiting for new records")
	cmd.Flags().IntVar(&o.max, "max", 0, "stop after this many records (0: no limit)")
	cmd.Flags().StringVar(&o.group, "group", "", "consumer group: start at its committed offsets and commit progress")
	return cmd
}

// consumeStart is where `weir consume` starts in each partition it reads:
// --from, or the group's committed offset.
func consumeStart(cmd *cobra.Command, topic string, o consumeFlags) (map[int]client.FetchOptions, error) {
	c := clientFor(cmd)
	meta, err := c.Topic(cmd.Context(), topic)
	if err != nil {
		return nil, err
	}
	start := client.FetchOptions{From: client.From(o.from)}
	if n, err := strconv.ParseInt(o.from, 10, 64); err == nil {
		start = client.FetchOptions{Offset: n}
	}
	pos := map[int]client.FetchOptions{}
	for _, p := range meta.Partitions {
		if o.partition < 0 || p.Partition == o.partition {
			pos[p.Partition] = start
		}
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("topic %s has no partition %d", topic, o.partition)
	}
	if o.group != "" {
		offs, err := c.GroupOffsets(cmd.Context(), o.group, topic)
		if err != nil {
			return nil, err
		}
		for _, off := range offs {
			if _, ok := pos[off.Partition]; ok {
				pos[off.Partition] = client.FetchOptions{Offset: off.Offset}
			}
		}
	}
	return pos, nil
}

// consumeLoop prints the records of the partitions of pos, in partition
// order, from their positions, until --max records, the end (without
// --follow), or ctx ends; with --group it commits what it printed.
func consumeLoop(ctx context.Context, cmd *cobra.Command, topic string, pos map[int]client.FetchOptions, o consumeFlags) error {
	c := clientFor(cmd)
	parts := make([]int, 0, len(pos))
	for p := range pos {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	enc := json.NewEncoder(cmd.OutOrStdout())
	printed := 0
	// Following every partition, it follows the topic's growth too: a
	// partition added meanwhile is read from its start, as consumer
	// groups, queues and WebSocket subscriptions do (docs/cli.md).
	growth := o.follow && o.partition < 0
	var checked time.Time
	for {
		if growth && time.Since(checked) >= time.Second {
			checked = time.Now()
			meta, err := c.Topic(ctx, topic)
			if err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil
				}
				return err
			}
			for _, p := range meta.Partitions {
				if _, ok := pos[p.Partition]; !ok {
					pos[p.Partition] = client.FetchOptions{From: client.Earliest}
					parts = append(parts, p.Partition)
				}
			}
			sort.Ints(parts)
		}
		got := 0
		for _, p := range parts {
			opts := pos[p]
			opts.MaxRecords = 500
			if o.follow && len(parts) == 1 {
				opts.Wait = 10 * time.Second
				if growth {
					opts.Wait = time.Second // back in time for the growth check
				}
			}
			out, err := c.Fetch(ctx, topic, p, opts)
			if err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil
				}
				return err
			}
			for _, r := range out.Records {
				if o.max > 0 && printed >= o.max {
					return nil
				}
				if err := enc.Encode(printable(r)); err != nil {
					return err
				}
				printed++
				got++
			}
			pos[p] = client.FetchOptions{Offset: out.NextOffset}
			if o.group != "" && len(out.Records) > 0 {
				if err := c.CommitOffsets(ctx, o.group, []client.GroupOffset{{Topic: topic, Partition: p, Offset: out.NextOffset}}); err != nil {
					return err
				}
			}
		}
		if o.max > 0 && printed >= o.max {
			return nil
		}
		if got == 0 && !o.follow {
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
}
