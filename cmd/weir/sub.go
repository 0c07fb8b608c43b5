package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// subJSON is a subscription as the API returns it.
type subJSON struct {
	Topic               string `json:"topic"`
	Name                string `json:"name"`
	VisibilityTimeoutMs int64  `json:"visibility_timeout_ms"`
	MaxAttempts         int    `json:"max_attempts"`
	Backoff             struct {
		InitialMs  int64   `json:"initial_ms"`
		MaxMs      int64   `json:"max_ms"`
		Multiplier float64 `json:"multiplier"`
	} `json:"backoff"`
	DeadLetterTopic string `json:"dead_letter_topic"`
	Ordering        string `json:"ordering"`
	Start           string `json:"start"`
	Priority        bool   `json:"priority"`
	GuardEvery      int    `json:"priority_guard_every,omitempty"`
	CreatedAt       int64  `json:"created_at"`
}

func subPath(topic, name string) string {
	p := "/v1/topics/" + url.PathEscape(topic) + "/subscriptions"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func newSubCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sub", Short: "Subscriptions: the queue model (leases, ack, nack, retries, dead letters)"}

	var (
		vt, bInit, bMax time.Duration
		bMult           float64
		maxAttempts     int
		dlq, ordering   string
		start           string
		priority        bool
		guardEvery      int
	)
	create := &cobra.Command{
		Use:   "create TOPIC NAME",
		Short: "Create a subscription on a topic",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"name": args[1], "ordering": ordering, "start": start}
			if cmd.Flags().Changed("visibility-timeout") {
				body["visibility_timeout_ms"] = vt.Milliseconds()
			}
			if cmd.Flags().Changed("max-attempts") {
				body["max_attempts"] = maxAttempts
			}
			if dlq != "" {
				body["dead_letter_topic"] = dlq
			}
			if priority {
				body["priority"] = true
			}
			if guardEvery != 0 {
				body["priority_guard_every"] = guardEvery
			}
			b := map[string]any{}
			if cmd.Flags().Changed("backoff-initial") {
				b["initial_ms"] = bInit.Milliseconds()
			}
			if cmd.Flags().Changed("backoff-max") {
				b["max_ms"] = bMax.Milliseconds()
			}
			if cmd.Flags().Changed("backoff-multiplier") {
				b["multiplier"] = bMult
			}
			if len(b) > 0 {
				body["backoff"] = b
			}
			var out subJSON
			if err := clientFor(cmd).do(cmd.Context(), "POST", subPath(args[0], ""), body, &out); err != nil {
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
	cf.StringVar(&start, "start", "earliest", "earliest (every message in the topic) or latest (messages produced from now on)")
	cf.BoolVar(&priority, "priority", false, "hand out messages with a higher weir-priority header (0-9) first")
	cf.IntVar(&guardEvery, "priority-guard-every", 0, "with --priority: every Nth delivery is the oldest message whatever its priority (0: off)")

	list := &cobra.Command{
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

	describe := &cobra.Command{
		Use:   "describe TOPIC NAME",
		Short: "Show a subscription with its backlog, leases and counters per partition (JSON)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out json.RawMessage
			if err := clientFor(cmd).do(cmd.Context(), "GET", subPath(args[0], args[1]), nil, &out); err != nil {
				return err
			}
			var v any
			json.Unmarshal(out, &v)
			return printJSON(cmd.OutOrStdout(), v)
		},
	}

	del := &cobra.Command{
		Use:   "delete TOPIC NAME",
		Short: "Delete a subscription (its messages stay in the topic)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).do(cmd.Context(), "DELETE", subPath(args[0], args[1]), nil, nil)
		},
	}

	var (
		max, count   int
		wait, rvt    time.Duration
		ack, autoAck bool
		encoding     string
	)
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
			c := clientFor(cmd)
			got := 0
			for {
				body := map[string]any{"max_records": max, "wait_ms": wait.Milliseconds(), "auto_ack": autoAck}
				if encoding != "" {
					body["encoding"] = encoding
				}
				if rvt > 0 {
					body["visibility_timeout_ms"] = rvt.Milliseconds()
				}
				if count > 0 {
					body["max_records"] = min(max, count-got)
				}
				var out struct {
					Messages []json.RawMessage `json:"messages"`
				}
				if err := c.do(cmd.Context(), "POST", subPath(args[0], args[1])+"/receive", body, &out); err != nil {
					return err
				}
				var receipts []string
				for _, m := range out.Messages {
					fmt.Fprintln(cmd.OutOrStdout(), string(m))
					var r struct {
						Receipt string `json:"receipt"`
					}
					json.Unmarshal(m, &r)
					receipts = append(receipts, r.Receipt)
				}
				got += len(out.Messages)
				if ack && len(receipts) > 0 {
					if err := receiptCall(cmd, args[0], args[1], "ack", receipts, nil); err != nil {
						return err
					}
				}
				if count == 0 || got >= count || (len(out.Messages) == 0 && wait == 0) {
					return nil
				}
			}
		},
	}
	rf := receive.Flags()
	rf.IntVar(&max, "max", 10, "messages per receive")
	rf.DurationVar(&wait, "wait", 0, "long-poll this long while nothing is deliverable")
	rf.BoolVar(&ack, "ack", false, "acknowledge each batch after printing it")
	rf.BoolVar(&autoAck, "auto-ack", false, "acknowledge as leased (at-most-once)")
	rf.IntVar(&count, "count", 0, "keep receiving until this many messages were printed (0: one receive)")
	rf.DurationVar(&rvt, "visibility-timeout", 0, "lease length for these messages (default: the subscription's)")
	rf.StringVar(&encoding, "encoding", "", "utf8 (default) or base64 for keys and values")

	var delay, extendVT time.Duration
	var reason string
	mkReceipt := func(op, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   op + " TOPIC NAME RECEIPT...",
			Short: short,
			Args:  cobra.MinimumNArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				extra := map[string]any{}
				switch op {
				case "nack":
					if cmd.Flags().Changed("delay") {
						extra["delay_ms"] = delay.Milliseconds()
					}
					if reason != "" {
						extra["error"] = reason
					}
				case "extend":
					extra["visibility_timeout_ms"] = extendVT.Milliseconds()
				}
				return receiptCall(cmd, args[0], args[1], op, args[2:], extra)
			},
		}
		switch op {
		case "nack":
			c.Flags().DurationVar(&delay, "delay", 0, "delay before redelivery (default: the subscription's backoff)")
			c.Flags().StringVar(&reason, "error", "", "why processing failed (kept as weir-last-error)")
		case "extend":
			c.Flags().DurationVar(&extendVT, "visibility-timeout", 30*time.Second, "new lease length from now")
		}
		return c
	}
	cmd.AddCommand(create, list, describe, del, receive,
		mkReceipt("ack", "Acknowledge messages by receipt"),
		mkReceipt("nack", "Give messages back for redelivery after a delay or the backoff"),
		mkReceipt("extend", "Extend the leases of messages"))
	return cmd
}

// receiptCall runs ack, nack or extend and fails when any receipt failed.
func receiptCall(cmd *cobra.Command, topic, name, op string, receipts []string, extra map[string]any) error {
	body := map[string]any{"receipts": receipts}
	for k, v := range extra {
		body[k] = v
	}
	var out struct {
		Results []struct {
			Receipt string `json:"receipt"`
			Status  string `json:"status"`
			Error   struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"results"`
	}
	if err := clientFor(cmd).do(cmd.Context(), "POST", subPath(topic, name)+"/"+op, body, &out); err != nil {
		return err
	}
	var failed []string
	for _, r := range out.Results {
		if r.Status != "ok" {
			failed = append(failed, fmt.Sprintf("%s: %s: %s", r.Receipt, r.Error.Code, r.Error.Message))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s failed for %d of %d receipts:\n  %s", op, len(failed), len(out.Results), strings.Join(failed, "\n  "))
	}
	return nil
}

// listSubs lists the subscriptions of args[0], or of every topic.
func listSubs(cmd *cobra.Command, args []string) ([]subJSON, error) {
	c := clientFor(cmd)
	topics := args
	if len(topics) == 0 {
		var tl struct {
			Topics []struct {
				Name string `json:"name"`
			} `json:"topics"`
		}
		if err := c.do(cmd.Context(), "GET", "/v1/topics", nil, &tl); err != nil {
			return nil, err
		}
		for _, t := range tl.Topics {
			topics = append(topics, t.Name)
		}
	}
	var all []subJSON
	for _, t := range topics {
		var out struct {
			Subscriptions []subJSON `json:"subscriptions"`
		}
		if err := c.do(cmd.Context(), "GET", subPath(t, ""), nil, &out); err != nil {
			if e, ok := err.(*apiError); ok && e.Code == "topic_not_found" && len(args) == 0 {
				continue // deleted while listing
			}
			return nil, err
		}
		all = append(all, out.Subscriptions...)
	}
	return all, nil
}
