// Command route is a Weir transform that sends each record to the output
// topic named by its JSON value's top-level field config.field, when that is
// one of the pipeline's outputs, and to the first output otherwise
// (including values that are not JSON or lack the field).
package main

import (
	"encoding/json"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(route) }

func main() {}

func route(r transform.Record, ctx *transform.Context) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(r.Value, &obj) == nil {
		var target string
		if json.Unmarshal(obj[ctx.Config("field")], &target) == nil {
			for _, o := range ctx.Outputs() {
				if o == target {
					return ctx.ForwardTo(o)
				}
			}
		}
	}
	return ctx.Forward()
}
