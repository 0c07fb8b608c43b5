package plugins

import (
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

// FuzzDecodeEmitted: the host's decoder of what a guest emitted (ABI
// records and forwards) never panics, never reads past its input, and
// honours the output limit, whatever bytes the guest wrote.
func FuzzDecodeEmitted(f *testing.F) {
	var b []byte
	b = abi.AppendEmitted(b, 0, &abi.Record{Key: []byte("k"), Value: []byte("v"), Headers: []abi.Header{{Key: "h", Value: "x"}}})
	b = abi.AppendForward(b, 1, 1)
	f.Add(b)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(abi.AppendForward(nil, 0, 7))
	in := []core.Record{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("22")}}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := decodeEmitted(b, in, 1<<16)
		if err != nil {
			return
		}
		var size int
		for _, o := range out {
			size += len(o.Record.Key) + len(o.Record.Value)
		}
		if size > len(b)+len("a1b22")*len(out) {
			t.Fatalf("decoded %d bytes of keys and values from %d input bytes", size, len(b))
		}
	})
}
