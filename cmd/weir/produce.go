package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func newProduceCmd() *cobra.Command {
	var key string
	var partition, batch int
	cmd := &cobra.Command{
		Use:   "produce TOPIC [VALUE...]",
		Short: "Produce records: the VALUE arguments, or one record per line of stdin",
		Long: `Produce records to TOPIC. Each VALUE argument is one record; with none, every
line of standard input is one record (sent in batches). Prints each record's
partition and offset.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := clientFor(cmd)
			topic := args[0]
			send := func(values []string) error {
				recs := make([]client.Record, len(values))
				for i, v := range values {
					recs[i].Value = []byte(v)
					if cmd.Flags().Changed("key") {
						recs[i].Key = []byte(key)
					}
					if partition >= 0 {
						recs[i].Partition = client.Part(partition)
					}
				}
				out, err := c.Produce(cmd.Context(), topic, recs)
				if err != nil {
					return err
				}
				for _, o := range out.Offsets {
					fmt.Fprintf(cmd.OutOrStdout(), "%d\t%d\n", o.Partition, o.Offset)
				}
				return nil
			}
			if len(args) > 1 {
				return send(args[1:])
			}
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			var pending []string
			for sc.Scan() {
				pending = append(pending, strings.TrimRight(sc.Text(), "\r"))
				if len(pending) >= batch {
					if err := send(pending); err != nil {
						return err
					}
					pending = pending[:0]
				}
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if len(pending) > 0 {
				return send(pending)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "record key (all records)")
	cmd.Flags().IntVar(&partition, "partition", -1, "target partition (default: hash of the key, else round robin)")
	cmd.Flags().IntVar(&batch, "batch", 100, "records per request when reading stdin")
	return cmd
}
