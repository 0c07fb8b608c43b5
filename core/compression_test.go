package core_test

import (
	"errors"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

func TestCompressBatch(t *testing.T) {
	for _, c := range []struct {
		setting   string
		ask, want bool
	}{
		{"", false, false}, {"", true, true},
		{core.CompressionProducer, false, false}, {core.CompressionProducer, true, true},
		{core.CompressionS2, false, true}, {core.CompressionS2, true, true},
		{core.CompressionUncompressed, false, false}, {core.CompressionUncompressed, true, false},
	} {
		if got := core.CompressBatch(c.setting, c.ask); got != c.want {
			t.Errorf("CompressBatch(%q, %v) = %v, want %v", c.setting, c.ask, got, c.want)
		}
	}
}

func TestWorthCompressing(t *testing.T) {
	for _, c := range []struct {
		compressed, plain int
		want              bool
	}{{875, 1000, true}, {876, 1000, false}, {0, 0, true}, {1000, 1000, false}, {12, 204800, true}} {
		if got := core.WorthCompressing(c.compressed, c.plain); got != c.want {
			t.Errorf("WorthCompressing(%d, %d) = %v, want %v", c.compressed, c.plain, got, c.want)
		}
	}
}

// A topic's compression defaults to producer; anything but the three
// settings is refused.
func TestCreateTopicCompression(t *testing.T) {
	e := newEnv(t, memstore.Config{})
	for name, want := range map[string]string{"d": core.CompressionProducer, core.CompressionS2: core.CompressionS2, core.CompressionUncompressed: core.CompressionUncompressed} {
		setting := want
		if name == "d" {
			setting = ""
		}
		ti, err := e.broker.CreateTopic(e.ctx, core.TopicConfig{Name: "t-" + name, Compression: setting})
		if err != nil {
			t.Fatal(err)
		}
		if ti.Compression != want || ti.StoredCompression() != want {
			t.Fatalf("topic created with compression %q has %q (%q)", setting, ti.Compression, ti.StoredCompression())
		}
	}
	for _, bad := range []string{"zstd", "S2", "none"} {
		_, err := e.broker.CreateTopic(e.ctx, core.TopicConfig{Name: "bad", Compression: bad})
		if !errors.Is(err, core.ErrBadRequest) {
			t.Fatalf("compression %q: %v, want a bad request", bad, err)
		}
	}
	if (core.TopicConfig{}).StoredCompression() != core.CompressionProducer {
		t.Fatal("a topic without the setting is not stored as producer")
	}
}
