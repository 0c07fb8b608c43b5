package main

import (
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestRoute(t *testing.T) {
	h := transformtest.New(transformtest.Options{
		Outputs: []string{"other", "eu", "us"},
		Config:  map[string]string{"field": "region"},
	})
	res, err := h.Registered(
		transformtest.KV("1", `{"region":"eu"}`),
		transformtest.KV("2", `{"region":"us"}`),
		transformtest.KV("3", `{"region":"mars"}`),
		transformtest.KV("4", `{"x":1}`),
		transformtest.KV("5", `nope`),
		transformtest.KV("6", `{"region":1}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"eu", "us", "other", "other", "other", "other"}
	for i, e := range res.Emitted {
		if e.Output != want[i] {
			t.Errorf("record %d went to %q, want %q", i, e.Output, want[i])
		}
	}
	if len(res.Emitted) != len(want) {
		t.Fatalf("%d emitted", len(res.Emitted))
	}
}
