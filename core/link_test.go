package core_test

import (
	"errors"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

func TestMatchPattern(t *testing.T) {
	t.Parallel()
	cases := []struct {
		patterns []string
		name     string
		want     bool
	}{
		{[]string{"orders"}, "orders", true},
		{[]string{"orders"}, "orders2", false},
		{[]string{"orders*"}, "orders", true},
		{[]string{"orders*"}, "orders.eu", true},
		{[]string{"orders.*"}, "orders", false},
		{[]string{"a", "b*"}, "bx", true},
		{[]string{"*"}, "anything", true},
		{nil, "orders", false},
	}
	for _, c := range cases {
		if got := core.MatchPattern(c.patterns, c.name); got != c.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", c.patterns, c.name, got, c.want)
		}
	}
	l := core.Link{Topics: []string{"*"}}
	if l.MirrorsTopic("__audit") {
		t.Error("an internal topic must never be mirrored")
	}
}

func TestLinkValidate(t *testing.T) {
	t.Parallel()
	ok := core.Link{Name: "eu", SourceURL: "https://a.example:8080", Topics: []string{"orders*"}, Groups: []string{"billing"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(l *core.Link){
		"name":           func(l *core.Link) { l.Name = "a b" },
		"url scheme":     func(l *core.Link) { l.SourceURL = "ftp://a" },
		"url host":       func(l *core.Link) { l.SourceURL = "http://" },
		"no topics":      func(l *core.Link) { l.Topics = nil },
		"inner star":     func(l *core.Link) { l.Topics = []string{"a*b"} },
		"two stars":      func(l *core.Link) { l.Topics = []string{"a**"} },
		"empty pattern":  func(l *core.Link) { l.Groups = []string{""} },
		"bad characters": func(l *core.Link) { l.Topics = []string{"a/b*"} },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			l := ok
			mutate(&l)
			if err := l.Validate(); !errors.Is(err, core.ErrBadRequest) {
				t.Fatalf("Validate = %v, want ErrBadRequest", err)
			}
		})
	}
}

// A produce to a mirror topic is refused (acks=all and acks=none) until
// the topic is promoted; a topic recreated under the same name is no
// mirror; deleting the link detaches its mirrors.
func TestMirrorTopicRefusesProduce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, memstore.Config{})
	links := core.NewLinks(e.st)
	if _, err := links.Create(e.ctx, core.Link{Name: "eu", SourceURL: "http://a:1", Topics: []string{"orders*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := links.Create(e.ctx, core.Link{Name: "eu", SourceURL: "http://a:1", Topics: []string{"x"}}); !errors.Is(err, core.ErrLinkExists) {
		t.Fatalf("second create: %v", err)
	}
	ti, m, err := links.MarkMirror(e.ctx, e.broker, "eu", core.TopicConfig{Name: "orders", Partitions: 2, RetentionMs: -1})
	if err != nil || m.Link != "eu" || ti.Partitions != 2 {
		t.Fatalf("MarkMirror: %+v %+v %v", ti, m, err)
	}
	if _, _, err := links.MarkMirror(e.ctx, e.broker, "eu", core.TopicConfig{Name: "orders", Partitions: 2}); err != nil {
		t.Fatalf("MarkMirror again: %v", err)
	}
	e.topic(t, "plain", 1)
	if _, _, err := links.MarkMirror(e.ctx, e.broker, "eu", core.TopicConfig{Name: "plain", Partitions: 1}); err == nil {
		t.Fatal("a link must not adopt an existing topic")
	}
	req := func() *core.ProduceRequest {
		return &core.ProduceRequest{Topic: "orders", Records: []core.ProduceRecord{{Record: core.Record{Value: []byte("v")}, Partition: 0}}}
	}
	_, err = e.broker.Produce(e.ctx, req())
	var me *core.MirrorError
	if !errors.As(err, &me) || !errors.Is(err, core.ErrMirrorTopic) || me.Link != "eu" {
		t.Fatalf("produce to a mirror: %v", err)
	}
	if err := e.broker.ProduceNoAck(e.ctx, req(), fence); !errors.Is(err, core.ErrMirrorTopic) {
		t.Fatalf("acks=none produce to a mirror: %v", err)
	}
	if _, err := e.broker.AddPartitions(e.ctx, "orders", 3); !errors.Is(err, core.ErrMirrorTopic) {
		t.Fatalf("growing a mirror: %v, want ErrMirrorTopic", err)
	}
	if ti, err := e.broker.GrowMirror(e.ctx, "orders", 3); err != nil || ti.Partitions != 3 {
		t.Fatalf("the link growing its mirror: %+v %v", ti, err)
	}
	for _, n := range []int{0, e.broker.Config().MaxPartitions + 1} {
		if _, err := e.broker.AddPartitions(e.ctx, "plain", n); !errors.Is(err, core.ErrBadRequest) {
			t.Fatalf("growing to %d partitions: %v, want ErrBadRequest", n, err)
		}
	}
	if _, err := links.Promote(e.ctx, "eu", []string{"plain"}); !errors.Is(err, core.ErrBadRequest) {
		t.Fatalf("promote of a topic that is no mirror: %v", err)
	}
	if _, err := links.Promote(e.ctx, "nope", []string{"orders"}); !errors.Is(err, core.ErrLinkNotFound) {
		t.Fatalf("promote of an unknown link: %v", err)
	}
	if _, err := links.Promote(e.ctx, "eu", []string{"orders"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.broker.Produce(e.ctx, req()); err != nil {
		t.Fatalf("produce after promote: %v", err)
	}
	if ti, err := e.broker.AddPartitions(e.ctx, "orders", 4); err != nil || ti.Partitions != 4 {
		t.Fatalf("growing a promoted mirror: %+v %v", ti, err)
	}
	if m, ok := core.MirrorOf(e.st, ti); !ok || !m.Promoted {
		t.Fatalf("mirror mark after promote: %+v %v", m, ok)
	}

	// A recreated topic is not the old mirror.
	if _, _, err := links.MarkMirror(e.ctx, e.broker, "eu", core.TopicConfig{Name: "orders.eu", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.broker.DeleteTopic(e.ctx, "orders.eu"); err != nil {
		t.Fatal(err)
	}
	e.topic(t, "orders.eu", 1)
	r := req()
	r.Topic = "orders.eu"
	if _, err := e.broker.Produce(e.ctx, r); err != nil {
		t.Fatalf("produce to a recreated topic: %v", err)
	}

	if err := links.Delete(e.ctx, "eu"); err != nil {
		t.Fatal(err)
	}
	if _, err := links.Get("eu"); !errors.Is(err, core.ErrLinkNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}
