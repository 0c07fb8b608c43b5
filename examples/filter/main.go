// Command filter is a Weir transform that keeps the records whose JSON value
// has a top-level field config.field equal to config.equals.
//
// The comparison is on the field's string form: a JSON string compares by
// its decoded content ("a\"b" is a"b), any other JSON value by its compact
// JSON text (42, 4.5, true, null, {"x":1}). Records whose value is not a
// JSON object, or lacks the field, are dropped.
package main

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(filter) }

func main() {}

func filter(r transform.Record, ctx *transform.Context) error {
	field, ok := ctx.LookupConfig("field")
	if !ok {
		return errors.New("filter: config.field is required")
	}
	v, ok := fieldString(r.Value, field)
	if ok && v == ctx.Config("equals") {
		return ctx.Forward()
	}
	return nil
}

// fieldString returns the string form of top-level field name of a JSON
// object.
func fieldString(value []byte, name string) (string, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(value, &obj); err != nil {
		return "", false
	}
	raw, ok := obj[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", false
	}
	return buf.String(), true
}
