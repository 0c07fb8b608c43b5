package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/weir-broker/weir/sdk/transform"
	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestCount(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	res, err := h.Registered(transformtest.KV("a", ""), transformtest.KV("b", ""), transformtest.KV("a", ""), transformtest.KV("", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); !slices.Equal(got, []string{"1", "1", "2", "1"}) {
		t.Fatalf("batch 1: %q", got)
	}
	res, err = h.Registered(transformtest.KV("a", ""), transformtest.KV("", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); !slices.Equal(got, []string{"3", "2"}) {
		t.Fatalf("batch 2: %q", got)
	}
	if string(res.Emitted[0].Record.Key) != "a" || res.Emitted[1].Record.Key != nil {
		t.Fatalf("keys not kept: %+v", res.Emitted)
	}
}

// A failed batch's state writes are discarded: the retry counts from the
// committed state.
func TestCountFailedBatchDiscardsState(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	if _, err := h.Registered(transformtest.KV("a", "")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	failing := func(r transform.Record, ctx *transform.Context) error {
		if err := count(r, ctx); err != nil {
			return err
		}
		return boom
	}
	if _, err := h.Records(failing, transformtest.KV("a", "")); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	res, err := h.Registered(transformtest.KV("a", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Values(); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("after failed batch: %q", got)
	}
}
