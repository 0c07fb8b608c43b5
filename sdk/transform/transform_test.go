package transform_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/weir-broker/weir/sdk/transform"
	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestContext(t *testing.T) {
	h := transformtest.New(transformtest.Options{
		Topic: "orders", Partition: 2, Outputs: []string{"a", "b"},
		Config: map[string]string{"x": "1"},
	})
	res, err := h.Records(func(r transform.Record, ctx *transform.Context) error {
		switch string(r.Value) {
		case "where":
			return ctx.Emit(transform.Record{Value: []byte(ctx.Topic() + "/" + strings.Join(ctx.Outputs(), ","))})
		case "cfg":
			v, ok := ctx.LookupConfig("x")
			_, missing := ctx.LookupConfig("y")
			if !ok || missing || v != "1" || ctx.Config("x") != "1" {
				return errors.New("config")
			}
		case "to-b":
			return ctx.EmitTo("b", r)
		case "fwd-b":
			return ctx.ForwardTo("b")
		case "fwd":
			return ctx.Forward()
		case "bad-output":
			if err := ctx.EmitTo("zzz", r); !errors.Is(err, transform.ErrUnknownOutput) {
				return errors.New("unknown output accepted")
			}
		case "dead":
			return ctx.DeadLetter("nope")
		case "log":
			ctx.Logf("n=%d", ctx.Index())
		}
		return nil
	}, transformtest.KV("k", "where"), transformtest.KV("k", "cfg"), transformtest.KV("k", "to-b"),
		transformtest.KV("", "fwd-b"), transformtest.KV("k", "fwd"), transformtest.KV("k", "bad-output"),
		transformtest.KV("k", "dead"), transformtest.KV("k", "log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); !slices.Equal(got, []string{"orders/a,b", "to-b", "fwd-b", "fwd"}) {
		t.Fatalf("values %q", got)
	}
	if res.Emitted[1].Output != "b" || res.Emitted[2].Output != "b" || res.Emitted[2].Record.Key != nil || res.Emitted[3].Output != "a" {
		t.Fatalf("emitted %+v", res.Emitted)
	}
	if len(res.Dead) != 1 || res.Dead[0] != (transformtest.Dead{Index: 6, Reason: "nope"}) {
		t.Fatalf("dead %+v", res.Dead)
	}
	if len(res.Logs) != 1 || res.Logs[0].Msg != "n=7" {
		t.Fatalf("logs %+v", res.Logs)
	}
}

func TestBatchErrors(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	if _, err := h.Records(func(r transform.Record, ctx *transform.Context) error { panic("boom") }, transformtest.KV("", "")); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("panic: %v", err)
	}
	if _, err := h.Batch(func(b *transform.Batch, ctx *transform.Context) error { return ctx.DeadLetter("x") }, transformtest.KV("", "")); !errors.Is(err, transform.ErrNoRecord) {
		t.Fatalf("DeadLetter in a batch handler: %v", err)
	}
	if _, err := h.Batch(nil, transformtest.KV("", "")); err == nil {
		t.Fatal("nil handler ran")
	}
	none := transformtest.New(transformtest.Options{Outputs: []string{}})
	if _, err := none.Records(func(r transform.Record, ctx *transform.Context) error { return ctx.Emit(r) }, transformtest.KV("", "")); !errors.Is(err, transform.ErrNoOutputs) {
		t.Fatalf("emit without outputs: %v", err)
	}
}

// Many emits flush in several host calls; outputs and topic strings are
// reused across batches without aliasing.
func TestManyBatches(t *testing.T) {
	h := transformtest.New(transformtest.Options{Outputs: []string{"o"}})
	big := strings.Repeat("x", 10000)
	var recs []transform.Record
	for i := 0; i < 100; i++ {
		recs = append(recs, transformtest.KV("k", big))
	}
	var seen [][]string
	for i := 0; i < 3; i++ {
		res, err := h.Records(func(r transform.Record, ctx *transform.Context) error {
			if ctx.Index() == 0 {
				seen = append(seen, ctx.Outputs())
			}
			return ctx.Emit(r)
		}, recs...)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Emitted) != 100 || string(res.Emitted[99].Record.Value) != big {
			t.Fatalf("batch %d: %d emitted", i, len(res.Emitted))
		}
	}
	if len(seen) != 3 || seen[0][0] != "o" || seen[2][0] != "o" {
		t.Fatalf("outputs %q", seen)
	}
}

func TestStateInBatch(t *testing.T) {
	h := transformtest.New(transformtest.Options{State: map[string][]byte{"a": []byte("1")}})
	res, err := h.Batch(func(b *transform.Batch, ctx *transform.Context) error {
		st := ctx.State()
		v, _ := st.Get("a")
		if err := st.Put("b", v); err != nil {
			return err
		}
		if err := st.Delete("a"); err != nil {
			return err
		}
		if _, ok := st.Get("a"); ok {
			return errors.New("deleted key visible")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 2 || !slices.Equal(h.StateKeys(), []string{"b"}) {
		t.Fatalf("changes %+v state %q", res.Changes, h.StateKeys())
	}
}
