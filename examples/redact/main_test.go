package main

import (
	"slices"
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestRedact(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"fields": "card, email"}})
	res, err := h.Registered(
		transformtest.KV("1", `{"id":1,"card":"4111","email":"a@b","nested":{"card":"x"}}`),
		transformtest.KV("2", `{"id":2}`),
		transformtest.KV("3", `not json`),
		transformtest.KV("4", `{"card":{"deep":[1,2]} , "z" : true}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"id":1,"card":"***","email":"***","nested":{"card":"x"}}`,
		`{"id":2}`,
		`{"card":"***","z":true}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if len(res.Dead) != 1 || res.Dead[0].Index != 2 {
		t.Fatalf("dead %+v", res.Dead)
	}
}
