// Command redact is a Weir transform that replaces the values of the
// top-level JSON fields listed in config.fields (comma-separated) with the
// string "***", keeping the order of the object's fields.
//
// A record whose value is not a JSON object is dead-lettered rather than
// passed on, so that nothing unredacted leaves the pipeline.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(redact) }

func main() {}

func redact(r transform.Record, ctx *transform.Context) error {
	fields := map[string]bool{}
	for _, f := range strings.Split(ctx.Config("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields[f] = true
		}
	}
	v, err := redactObject(r.Value, fields)
	if err != nil {
		return ctx.DeadLetter(err.Error())
	}
	r.Value = v
	return ctx.Emit(r)
}

// redactObject rewrites a JSON object, replacing the values of fields.
func redactObject(value []byte, fields map[string]bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("redact: value is not a JSON object")
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i := 0; dec.More(); i++ {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("redact: bad JSON: %v", err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("redact: bad JSON: %v", err)
		}
		if i > 0 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		out.Write(k)
		out.WriteByte(':')
		if fields[key] {
			out.WriteString(`"***"`)
		} else if err := json.Compact(&out, raw); err != nil {
			return nil, fmt.Errorf("redact: bad JSON: %v", err)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("redact: bad JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("redact: trailing data after the JSON object")
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}
