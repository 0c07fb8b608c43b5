package main

import (
	"slices"
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]string
		in     []string
		want   []string
	}{
		{"string", map[string]string{"field": "kind", "equals": "a"},
			[]string{`{"kind":"a","n":1}`, `{"kind":"b"}`, `{"n":1}`, `not json`, `[1]`, `{"kind":"a"}`},
			[]string{`{"kind":"a","n":1}`, `{"kind":"a"}`}},
		{"number", map[string]string{"field": "n", "equals": "42"},
			[]string{`{"n":42}`, `{"n":"42"}`, `{"n":42.0}`, `{"n":4}`},
			[]string{`{"n":42}`, `{"n":"42"}`}},
		{"bool and null", map[string]string{"field": "ok", "equals": "true"},
			[]string{`{"ok":true}`, `{"ok":null}`, `{"ok":false}`},
			[]string{`{"ok":true}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := transformtest.New(transformtest.Options{Config: tt.config})
			var recs []transformtest.Record
			for _, v := range tt.in {
				recs = append(recs, transformtest.KV("k", v))
			}
			res, err := h.Registered(recs...)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Values(); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFilterNeedsField(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	if _, err := h.Registered(transformtest.KV("k", `{}`)); err == nil {
		t.Fatal("no error without config.field")
	}
}
