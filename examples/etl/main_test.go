package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func TestETL(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"columns": "id:int,name:string,price:float,ok:bool"}})
	res, err := h.Registered(
		transformtest.KV("1", `7,"Widget, large",9.5,true`),
		transformtest.KV("2", "8,plain,,0\r\n"),
		transformtest.KV("3", `x,a,1,true`),
		transformtest.KV("4", `1,a,1`),
		transformtest.KV("5", `1,a,1.5e3,false`),
		transformtest.KV("6", "1,a,1,true\n2,b,2,false"),
		transformtest.KV("7", `1,"unterminated,1,true`),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"id":7,"name":"Widget, large","price":9.5,"ok":true}`,
		`{"id":8,"name":"plain","price":null,"ok":false}`,
		`{"id":1,"name":"a","price":1500,"ok":false}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	var dead []int
	for _, d := range res.Dead {
		dead = append(dead, d.Index)
		if !strings.HasPrefix(d.Reason, "etl: ") {
			t.Errorf("reason %q", d.Reason)
		}
	}
	if !slices.Equal(dead, []int{2, 3, 5, 6}) {
		t.Fatalf("dead %+v", res.Dead)
	}
}

func TestETLBadConfig(t *testing.T) {
	for _, spec := range []string{"", "id", "id:uuid"} {
		h := transformtest.New(transformtest.Options{Config: map[string]string{"columns": spec}})
		if _, err := h.Registered(transformtest.KV("", "1")); err == nil {
			t.Errorf("columns %q accepted", spec)
		}
	}
}
