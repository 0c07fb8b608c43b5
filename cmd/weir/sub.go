package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func newSubCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sub", Short: "Subscriptions: the queue model (leases, ack, nack, retries, dead letters)"}
	cmd.AddCommand(newSubCreateCmd(), newSubListCmd(), newSubDescribeCmd(), newSubDeleteCmd(), newSubReceiveCmd(),
		newSubReceiptCmd("ack", "Acknowledge messages by receipt"),
		newSubReceiptCmd("nack", "Give messages back for redelivery after a delay or the backoff"),
		newSubReceiptCmd("extend", "Extend the leases of messages"))
	return cmd
}

func newSubCreateCmd() *cobra.Command {
	var (
		vt, bInit, bMax time.Duration
		bMult           float64
		maxAttempts     int
		dlq, ordering   string
		priority        bool
		guardEvery      int
		start           string
	)
	create := &cobra.Command{
		Use:   "create TOPIC NAME",
		Short: "Create a subscription on a topic",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := client.SubscriptionConfig{Name: args[1], Ordering: ordering, Start: client.From(start), DeadLetterTopic: dlq,
				Priority: priority, PriorityGuardEvery: guardEvery}
			f := cmd.Flags()
			if f.Changed("visibility-timeout") {
				cfg.VisibilityTimeoutMs = vt.Milliseconds()
			}
			if f.Changed("max-attempts") {
				cfg.MaxAttempts = client.Part(maxAttempts)
			}
			if f.Changed("backoff-initial") || f.Changed("backoff-max") || f.Changed("backoff-multiplier") {
				// The flags' defaults are the broker's.
				cfg.Backoff = &client.Backoff{InitialMs: bInit.Milliseconds(), MaxMs: bMax.Milliseconds(), Multiplier: bMult}
			}
			out, err := clientFor(cmd).CreateSubscription(cmd.Context(), args[0], cfg)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	cf := create.Flags()
	cf.DurationVar(&vt, "visibility-timeout", 30*time.Second, "how long a received message stays leased to its receiver")
	cf.IntVar(&maxAttempts, "max-attempts", 0, "deliveries before dead-lettering (default 5 with --dead-letter-topic, else unlimited)")
	cf.DurationVar(&bInit, "backoff-initial", time.Second, "delay before the second delivery")
	cf.DurationVar(&bMax, "backoff-max", time.Minute, "longest delay between deliveries")
	cf.Float64Var(&bMult, "backoff-multiplier", 2, "growth of the delay after each failed delivery")
	cf.StringVar(&dlq, "dead-letter-topic", "", "topic for messages whose attempts are exhausted (created when missing)")
	cf.StringVar(&ordering, "ordering", "none", "none, or key: one message per key at a time, in offset order")
	cf.BoolVar(&priority, "priority", false, "hand out messages with a higher weir-priority header (0-9) first")
	cf.IntVar(&guardEvery, "priority-guard-every", 0, "with --priority: every Nth delivery is the oldest message whatever its priority (0: off)")
	cf.StringVar(&start, "start", "earliest", "earliest (every message in the topic) or latest (messages produced from now on)")
	return create
}

func newSubListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list [TOPIC]",
		Short: "List subscriptions (of one topic, or of every topic)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subs, err := listSubs(cmd, args)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tNAME\tORDERING\tPRIORITY\tVISIBILITY\tMAX-ATTEMPTS\tDEAD-LETTER-TOPIC")
			for _, s := range subs {
				ma := fmt.Sprint(s.MaxAttempts)
				if s.MaxAttempts == 0 {
					ma = "unlimited"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", s.Topic, s.Name, s.Ordering, s.Priority,
					time.Duration(s.VisibilityTimeoutMs)*time.Millisecond, ma, s.DeadLetterTopic)
			}
			return w.Flush()
		},
	}
}

func newSubDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe TOPIC NAME",
		Short: "Show a subscription with its backlog, leases and counters per partition (JSON)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).Subscription(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out.Raw)
		},
	}
}

func newSubDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOPIC NAME",
		Short: "Delete a subscription (its messages stay in the topic)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).DeleteSubscription(cmd.Context(), args[0], args[1])
		},
	}
}

// receiveFlags are the flags of `weir sub receive`.
type receiveFlags struct {
	max, count   int
	wait, vt     time.Duration
	ack, autoAck bool
	encoding     string
}

func newSubReceiveCmd() *cobra.Command {
	var rf receiveFlags
	receive := &cobra.Command{
		Use:   "receive TOPIC NAME",
		Short: "Receive leased messages, one JSON line each (with --ack, acknowledge them once printed)",
		Long: `Receive leased messages and print one JSON line per message, with its receipt.
Without --ack the messages stay leased until their visibility timeout: acknowledge
them with "weir sub ack", or they are delivered again. --ack acknowledges each batch
after printing it (at-least-once); --auto-ack acknowledges them as they are leased
(at-most-once). --count keeps receiving until that many messages were printed.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return receiveMessages(cmd, args[0], args[1], rf)
		},
	}
	f := receive.Flags()
	f.IntVar(&rf.max, "max", 10, "messages per receive")
	f.DurationVar(&rf.wait, "wait", 0, "long-poll this long while nothing is deliverable")
	f.BoolVar(&rf.ack, "ack", false, "acknowledge each batch after printing it")
	f.BoolVar(&rf.autoAck, "auto-ack", false, "acknowledge as leased (at-most-once)")
	f.IntVar(&rf.count, "count", 0, "keep receiving until this many messages were printed (0: one receive)")
	f.DurationVar(&rf.vt, "visibility-timeout", 0, "lease length for these messages (default: the subscription's)")
	f.StringVar(&rf.encoding, "encoding", "", "utf8 (default) or base64 for keys and values")
	return receive
}

// receiveMessages receives from subscription name of topic and prints one
// JSON line per message, until rf.count messages (or one receive).
func receiveMessages(cmd *cobra.Command, topic, name string, rf receiveFlags) error {
	c := clientFor(cmd)
	got := 0
	for {
		opts := client.ReceiveOptions{MaxRecords: rf.max, Wait: rf.wait, AutoAck: rf.autoAck, VisibilityTimeout: rf.vt}
		if rf.count > 0 {
			opts.MaxRecords = min(rf.max, rf.count-got)
		}
		msgs, err := c.Receive(cmd.Context(), topic, name, opts)
		if err != nil {
			return err
		}
		var receipts []string
		for _, m := range msgs {
			b, err := json.Marshal(printableMessage(m, rf.encoding == "base64"))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			receipts = append(receipts, m.Receipt)
		}
		got += len(msgs)
		if rf.ack && len(receipts) > 0 {
			if err := receiptCall(cmd, topic, name, "ack", receipts); err != nil {
				return err
			}
		}
		if rf.count == 0 || got >= rf.count || (len(msgs) == 0 && rf.wait == 0) {
			return nil
		}
	}
}

// newSubReceiptCmd is ack, nack or extend: receiptCall reads its flags.
func newSubReceiptCmd(op, short string) *cobra.Command {
	c := &cobra.Command{
		Use:   op + " TOPIC NAME RECEIPT...",
		Short: short,
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return receiptCall(cmd, args[0], args[1], op, args[2:])
		},
	}
	switch op {
	case "nack":
		c.Flags().Duration("delay", 0, "delay before redelivery (default: the subscription's backoff)")
		c.Flags().String("error", "", "why processing failed (kept as weir-last-error)")
	case "extend":
		c.Flags().Duration("visibility-timeout", 30*time.Second, "new lease length from now")
	}
	return c
}

// receiptCall runs ack, nack (--delay, --error) or extend
// (--visibility-timeout) and fails when any receipt failed.
func receiptCall(cmd *cobra.Command, topic, name, op string, receipts []string) error {
	c, ctx := clientFor(cmd), cmd.Context()
	var results []client.ReceiptResult
	var err error
	switch op {
	case "ack":
		results, err = c.Ack(ctx, topic, name, receipts...)
	case "nack":
		delay, _ := cmd.Flags().GetDuration("delay")
		reason, _ := cmd.Flags().GetString("error")
		results, err = c.Nack(ctx, topic, name, delay, reason, receipts...)
	case "extend":
		vt, _ := cmd.Flags().GetDuration("visibility-timeout")
		results, err = c.Extend(ctx, topic, name, vt, receipts...)
	}
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		if err := r.Err(); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.Receipt, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s failed for %d of %d receipts:\n  %s", op, len(failed), len(results), strings.Join(failed, "\n  "))
	}
	return nil
}

// message is a leased message as `weir sub receive` prints it: the
// API's receive answer, key and value as UTF-8 text or base64.
type message struct {
	Receipt        string            `json:"receipt"`
	Partition      int               `json:"partition"`
	Offset         int64             `json:"offset"`
	Attempt        int               `json:"attempt"`
	LeaseExpiresAt int64             `json:"lease_expires_at"`
	Timestamp      int64             `json:"timestamp"`
	Key            *string           `json:"key"`
	Value          string            `json:"value"`
	Headers        map[string]string `json:"headers"`
}

func printableMessage(m client.Message, b64 bool) message {
	r := printable(m.FetchedRecord) // consume.go
	if b64 {
		r.Value = base64.StdEncoding.EncodeToString(m.Value)
		if m.Key != nil {
			k := base64.StdEncoding.EncodeToString(m.Key)
			r.Key = &k
		}
	}
	return message{Receipt: m.Receipt, Partition: m.Partition, Offset: m.Offset, Attempt: m.Attempt,
		LeaseExpiresAt: m.LeaseExpiresAt.UnixMilli(), Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers}
}

// listSubs lists the subscriptions of args[0], or of every topic.
func listSubs(cmd *cobra.Command, args []string) ([]client.Subscription, error) {
	c := clientFor(cmd)
	topics := args
	if len(topics) == 0 {
		tl, err := c.Topics(cmd.Context())
		if err != nil {
			return nil, err
		}
		for _, t := range tl {
			topics = append(topics, t.Name)
		}
	}
	var all []client.Subscription
	for _, t := range topics {
		subs, err := c.Subscriptions(cmd.Context(), t)
		if err != nil {
			if errors.Is(err, client.CodeTopicNotFound) && len(args) == 0 {
				continue // deleted while listing
			}
			return nil, err
		}
		all = append(all, subs...)
	}
	return all, nil
}
