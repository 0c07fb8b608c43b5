package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "Dead-letter topics: list what is in them and send it back"}

	var max int
	list := &cobra.Command{
		Use:   "list [DLQ-TOPIC]",
		Short: "List subscriptions with a dead-letter topic, or the messages in one dead-letter topic",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := clientFor(cmd)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if len(args) == 0 {
				subs, err := listSubs(cmd, nil)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "TOPIC\tSUBSCRIPTION\tDEAD-LETTER-TOPIC\tMAX-ATTEMPTS\tDEAD-LETTERED\tIN-DLQ")
				for _, s := range subs {
					if s.DeadLetterTopic == "" {
						continue
					}
					var st struct {
						Stats struct {
							DeadLettered int64 `json:"dead_lettered"`
						} `json:"stats"`
					}
					if err := c.do(cmd.Context(), "GET", subPath(s.Topic, s.Name), nil, &st); err != nil {
						return err
					}
					in := "?"
					var t struct {
						Partitions []struct {
							LogStart int64 `json:"log_start_offset"`
							HWM      int64 `json:"high_watermark"`
						} `json:"partitions"`
					}
					if c.do(cmd.Context(), "GET", "/v1/topics/"+url.PathEscape(s.DeadLetterTopic), nil, &t) == nil {
						var n int64
						for _, p := range t.Partitions {
							n += p.HWM - p.LogStart
						}
						in = fmt.Sprint(n)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", s.Topic, s.Name, s.DeadLetterTopic, s.MaxAttempts, st.Stats.DeadLettered, in)
				}
				return w.Flush()
			}
			var t struct {
				Partitions []struct {
					Partition int `json:"partition"`
				} `json:"partitions"`
			}
			dlq := args[0]
			if err := c.do(cmd.Context(), "GET", "/v1/topics/"+url.PathEscape(dlq), nil, &t); err != nil {
				return err
			}
			fmt.Fprintln(w, "PARTITION\tOFFSET\tSOURCE\tATTEMPTS\tLAST-ERROR\tKEY\tVALUE")
			shown := 0
			for _, p := range t.Partitions {
				var f struct {
					Records []struct {
						Offset  int64             `json:"offset"`
						Key     *string           `json:"key"`
						Value   string            `json:"value"`
						Headers map[string]string `json:"headers"`
					} `json:"records"`
				}
				path := fmt.Sprintf("/v1/topics/%s/partitions/%d/records?offset=earliest&max_records=%d", url.PathEscape(dlq), p.Partition, max)
				if err := c.do(cmd.Context(), "GET", path, nil, &f); err != nil {
					return err
				}
				for _, r := range f.Records {
					if shown >= max {
						break
					}
					shown++
					key := ""
					if r.Key != nil {
						key = dlqClip(*r.Key, 24)
					}
					h := r.Headers
					src := h["weir-source-topic"] + "/" + h["weir-source-partition"] + "@" + h["weir-source-offset"]
					fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Partition, r.Offset, src, h["weir-attempts"],
						dlqClip(h["weir-last-error"], 40), key, dlqClip(r.Value, 40))
				}
			}
			return w.Flush()
		},
	}
	list.Flags().IntVar(&max, "max", 100, "most messages to list")

	var from, to string
	var maxRedrive int64
	redrive := &cobra.Command{
		Use:   "redrive --from DLQ-TOPIC --to TOPIC",
		Short: "Send dead-lettered messages back to a topic (from where the last redrive stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Redriven int64 `json:"redriven"`
				Error    *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			body := map[string]any{"to": to, "max_records": maxRedrive}
			if err := clientFor(cmd).do(cmd.Context(), "POST", "/v1/topics/"+url.PathEscape(from)+"/redrive", body, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "redriven %d messages from %s to %s\n", out.Redriven, from, to)
			if out.Error != nil {
				return fmt.Errorf("stopped early: %s: %s", out.Error.Code, out.Error.Message)
			}
			return nil
		},
	}
	redrive.Flags().StringVar(&from, "from", "", "dead-letter topic")
	redrive.Flags().StringVar(&to, "to", "", "topic to send the messages to")
	redrive.Flags().Int64Var(&maxRedrive, "max", 0, "most messages to send (0: all)")
	redrive.MarkFlagRequired("from")
	redrive.MarkFlagRequired("to")
	cmd.AddCommand(list, redrive)
	return cmd
}

func dlqClip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
