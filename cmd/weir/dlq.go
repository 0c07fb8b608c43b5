package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "Dead-letter topics: list what is in them and send it back"}
	cmd.AddCommand(newDLQListCmd(), newDLQRedriveCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	var max int
	list := &cobra.Command{
		Use:   "list [DLQ-TOPIC]",
		Short: "List subscriptions with a dead-letter topic, or the messages in one dead-letter topic",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			var err error
			if len(args) == 0 {
				err = listDeadLetterSubs(cmd, w)
			} else {
				err = listDeadLetters(cmd, w, args[0], max)
			}
			if err != nil {
				return err
			}
			return w.Flush()
		},
	}
	list.Flags().IntVar(&max, "max", 100, "most messages to list")
	return list
}

// listDeadLetterSubs lists the subscriptions that have a dead-letter
// topic, with how many messages they dead-lettered and how many are in it.
func listDeadLetterSubs(cmd *cobra.Command, w io.Writer) error {
	c := clientFor(cmd)
	subs, err := listSubs(cmd, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "TOPIC\tSUBSCRIPTION\tDEAD-LETTER-TOPIC\tMAX-ATTEMPTS\tDEAD-LETTERED\tIN-DLQ")
	for _, s := range subs {
		if s.DeadLetterTopic == "" {
			continue
		}
		st, err := c.Subscription(cmd.Context(), s.Topic, s.Name)
		if err != nil {
			return err
		}
		var dead int64
		if st.Stats != nil {
			dead = st.Stats.DeadLettered
		}
		in := "?"
		if t, err := c.Topic(cmd.Context(), s.DeadLetterTopic); err == nil {
			var n int64
			for _, p := range t.Partitions {
				n += p.HighWatermark - p.LogStartOffset
			}
			in = fmt.Sprint(n)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", s.Topic, s.Name, s.DeadLetterTopic, s.MaxAttempts, dead, in)
	}
	return nil
}

// listDeadLetters lists up to max messages of dead-letter topic dlq with
// where they came from and why they failed.
func listDeadLetters(cmd *cobra.Command, w io.Writer, dlq string, max int) error {
	c := clientFor(cmd)
	t, err := c.Topic(cmd.Context(), dlq)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "PARTITION\tOFFSET\tSOURCE\tATTEMPTS\tLAST-ERROR\tKEY\tVALUE")
	shown := 0
	for _, p := range t.Partitions {
		f, err := c.Fetch(cmd.Context(), dlq, p.Partition, client.FetchOptions{From: client.Earliest, MaxRecords: max})
		if err != nil {
			return err
		}
		for _, r := range f.Records {
			if shown >= max {
				break
			}
			shown++
			key := ""
			if r.Key != nil {
				key = dlqClip(string(r.Key), 24)
			}
			h := r.Headers
			src := h["weir-source-topic"] + "/" + h["weir-source-partition"] + "@" + h["weir-source-offset"]
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Partition, r.Offset, src, h["weir-attempts"],
				dlqClip(h["weir-last-error"], 40), key, dlqClip(string(r.Value), 40))
		}
	}
	return nil
}

func newDLQRedriveCmd() *cobra.Command {
	var from, to string
	var maxRedrive int64
	redrive := &cobra.Command{
		Use:   "redrive --from DLQ-TOPIC --to TOPIC",
		Short: "Send dead-lettered messages back to a topic (from where the last redrive stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := clientFor(cmd).Redrive(cmd.Context(), from, to, maxRedrive)
			var e *client.Error
			if err != nil && !(errors.As(err, &e) && e.Status == 200) {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "redriven %d messages from %s to %s\n", n, from, to)
			if err != nil {
				return fmt.Errorf("stopped early: %s: %s", e.Code, e.Message)
			}
			return nil
		},
	}
	redrive.Flags().StringVar(&from, "from", "", "dead-letter topic")
	redrive.Flags().StringVar(&to, "to", "", "topic to send the messages to")
	redrive.Flags().Int64Var(&maxRedrive, "max", 0, "most messages to send (0: all)")
	redrive.MarkFlagRequired("from")
	redrive.MarkFlagRequired("to")
	return redrive
}

func dlqClip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
