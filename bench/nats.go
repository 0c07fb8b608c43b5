package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runNATS runs one scenario against NATS JetStream: a "topic" of N
// partitions is N streams (TOPIC_i on subject TOPIC.i), each its own Raft
// group in a cluster, as Weir's partitions are.
func runNATS(c *config) (result, error) {
	ctx := context.Background()
	nc, err := nats.Connect(c.servers[0])
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	for i := 0; i < c.partitions; i++ {
		cfg := jetstream.StreamConfig{Name: streamName(c, i), Subjects: []string{subject(c, i)},
			Storage: jetstream.FileStorage, Replicas: c.replicas}
		// A fresh cluster may still be electing its JetStream meta leader.
		for try := 0; ; try++ {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			if err == nil {
				break
			}
			if try == 100 {
				return result{}, fmt.Errorf("create stream: %w", err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	switch c.scenario {
	case "batch":
		return natsPublish(c, c.producers, c.batch)
	case "one":
		return natsPublish(c, 1, 1)
	case "steady":
		return natsSteady(c)
	case "consume":
		return natsConsume(ctx, js, c)
	case "idle":
		return idle(c)
	}
	return result{}, fmt.Errorf("unknown scenario %q", c.scenario)
}

func streamName(c *config, i int) string { return c.topic + "_" + strconv.Itoa(i) }
func subject(c *config, i int) string    { return c.topic + "." + strconv.Itoa(i) }

// natsPublish: each producer (own connection to server i mod len) publishes
// a batch asynchronously and waits for all its acknowledgements before the
// next one; one record at a time is a batch of 1 (a synchronous publish).
func natsPublish(c *config, producers, batch int) (result, error) {
	t := newTally(producers)
	start := startClock()
	deadline := start.Add(c.duration)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		nc, err := nats.Connect(c.servers[p%len(c.servers)])
		if err != nil {
			return result{}, err
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*batch))
		if err != nil {
			return result{}, err
		}
		subj := make([]string, 64*batch)
		for i := range subj {
			subj[i] = subject(c, partitionOf(keyOf(p, i), c.partitions))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			futs := make([]jetstream.PubAckFuture, 0, batch)
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				var err error
				if batch == 1 {
					_, err = js.Publish(ctx, subj[i%len(subj)], c.value(i))
				} else {
					futs = futs[:0]
					for j := 0; j < batch && err == nil; j++ {
						var f jetstream.PubAckFuture
						f, err = js.PublishAsync(subj[(i*batch+j)%len(subj)], c.value(i*batch+j))
						futs = append(futs, f)
					}
					for _, f := range futs {
						if err != nil {
							break
						}
						select {
						case <-f.Ok():
						case err = <-f.Err():
						case <-time.After(time.Minute):
							err = errors.New("no acknowledgement within a minute")
						}
					}
				}
				if err != nil {
					t.fail(func() string { return err.Error() })
					continue
				}
				t.ack(p, batch, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return t.result(start)
}

// natsConsume reads every stream from the start with one reader (one stream
// after the other) through an ephemeral pull consumer without acks, in
// fetches of c.perFetch messages.
func natsConsume(ctx context.Context, js jetstream.JetStream, c *config) (result, error) {
	var total int64
	start := startClock()
	for i := 0; i < c.partitions; i++ {
		s, err := js.Stream(ctx, streamName(c, i))
		if err != nil {
			return result{}, err
		}
		want := int64(s.CachedInfo().State.Msgs)
		cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute})
		if err != nil {
			return result{}, err
		}
		var got int64
		for got < want {
			// Ask for no more than is left, so the last fetch does not wait.
			batch, err := cons.Fetch(int(min(int64(c.perFetch), want-got)), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return result{}, err
			}
			n := 0
			for m := range batch.Messages() {
				if len(m.Data()) != c.size {
					return result{}, fmt.Errorf("message of %d bytes", len(m.Data()))
				}
				n++
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				return result{}, err
			}
			if n == 0 {
				return result{}, fmt.Errorf("stream %d: fetch made no progress at %d of %d", i, got, want)
			}
			got += int64(n)
		}
		total += got
	}
	if total == 0 {
		return result{}, errEmpty(c)
	}
	return result{Records: total, Seconds: time.Since(start).Seconds()}, nil
}
