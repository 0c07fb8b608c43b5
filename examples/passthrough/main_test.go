package main

import (
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestPassthrough(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	res, err := h.Registered(transformtest.KV("a", "1"), transformtest.KV("", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Fatalf("values %q", got)
	}
	if res.Emitted[1].Record.Key != nil {
		t.Fatalf("nil key became %q", res.Emitted[1].Record.Key)
	}
}
