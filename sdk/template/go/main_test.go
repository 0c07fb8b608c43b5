package main

import (
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestUpper(t *testing.T) {
	h := transformtest.New(transformtest.Options{
		Outputs: []string{"out"},
		Config:  map[string]string{},
	})
	res, err := h.Records(upper, transformtest.KV("k", "hello"), transformtest.KV("k", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); len(got) != 1 || got[0] != "HELLO" {
		t.Fatalf("emitted %q", got)
	}
	if len(res.Dead) != 1 || res.Dead[0].Index != 1 {
		t.Fatalf("dead letters %+v", res.Dead)
	}
}

// TestRegistered runs what init registered, as the broker does.
func TestRegistered(t *testing.T) {
	res, err := transformtest.New(transformtest.Options{}).Registered(transformtest.KV("k", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); len(got) != 1 || got[0] != "ABC" {
		t.Fatalf("emitted %q", got)
	}
}
