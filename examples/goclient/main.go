// Command goclient is a tour of the Go client (sdk/client) against a
// running node: a topic, produce, fetch with long-poll, an idempotent
// producer, a consumer group member, a queue subscription and a WebSocket
// stream. Run it next to `weir serve`:
//
//	go run ./examples/goclient --server http://127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/weir-broker/weir/sdk/client"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "a Weir node")
	token := flag.String("token", os.Getenv("WEIR_TOKEN"), "bearer token (auth on)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *server, *token, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server, token string, out io.Writer) error {
	c, err := client.New(server, client.WithToken(token))
	if err != nil {
		return err
	}
	// A topic (an existing one is fine).
	_, err = c.CreateTopic(ctx, client.TopicConfig{Name: "tour", Partitions: 3})
	if err != nil && !errors.Is(err, client.CodeTopicExists) {
		return err
	}
	// Produce: records with keys go to their key's partition; one offset each.
	res, err := c.Produce(ctx, "tour", []client.Record{
		{Key: []byte("alice"), Value: []byte(`{"amount":10}`)},
		{Key: []byte("bob"), Value: []byte(`{"amount":20}`), Headers: map[string]string{"source": "tour"}},
	})
	var pe *client.ProduceError
	if errors.As(err, &pe) { // some partitions committed, some did not
		_, err = c.Produce(ctx, "tour", pe.Failed) // resend only what failed
	}
	if err != nil {
		return err
	}
	for _, o := range res.Offsets {
		fmt.Fprintf(out, "produced to partition %d at offset %d\n", o.Partition, o.Offset)
	}
	// Fetch from the first record's offset; Wait long-polls for more.
	first := res.Offsets[0]
	f, err := c.Fetch(ctx, "tour", first.Partition, client.FetchOptions{Offset: first.Offset, Wait: time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fetched %q at offset %d\n", f.Records[0].Value, f.Records[0].Offset)
	if err := consume(ctx, c, out); err != nil {
		return err
	}
	return stream(ctx, c, first.Partition, out)
}

// consume produces exactly once, then reads as a group member and as a
// queue subscription's worker.
func consume(ctx context.Context, c *client.Client, out io.Writer) error {
	// An idempotent producer: retried on 503 without ever duplicating.
	p := c.Producer("tour", 0, fmt.Sprintf("tour-%d", time.Now().UnixNano()), 0)
	if _, err := p.Produce(ctx, []client.Record{{Value: []byte("exactly once")}}); err != nil {
		return err
	}

	// A consumer group member: poll, process, commit.
	m, err := c.JoinGroup(ctx, "tour-readers", client.JoinOptions{Topics: []string{"tour"}, From: client.Earliest})
	if err != nil {
		return err
	}
	recs, err := m.Poll(ctx, client.PollOptions{Wait: time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "group member %s polled %d records\n", m.Membership().MemberID, len(recs))
	if err := m.Commit(ctx, nil); err != nil { // the positions of the last poll
		return err
	}
	if err := m.Leave(ctx); err != nil {
		return err
	}

	// A queue subscription: leased messages, acknowledged one by one.
	_, err = c.CreateSubscription(ctx, "tour", client.SubscriptionConfig{Name: "workers"})
	if err != nil && !errors.Is(err, client.CodeSubscriptionExists) {
		return err
	}
	msgs, err := c.Receive(ctx, "tour", "workers", client.ReceiveOptions{MaxRecords: 10, Wait: time.Second})
	if err != nil {
		return err
	}
	for _, msg := range msgs {
		if _, err := c.Ack(ctx, "tour", "workers", msg.Receipt); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "received and acked %d messages\n", len(msgs))
	return nil
}

// stream reads a partition over WebSocket.
func stream(ctx context.Context, c *client.Client, partition int, out io.Writer) error {
	// WebSocket: a stream with credits (Next grants each batch back).
	conn, err := c.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := conn.Subscribe(ctx, client.SubscribeOptions{Topic: "tour", Partition: client.Part(partition), From: client.Earliest, Credit: 100})
	if err != nil {
		return err
	}
	ev, err := s.Next(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "streamed %d records over WebSocket\n", len(ev.Records))
	return nil
}
