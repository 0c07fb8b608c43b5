// Command etl is a Weir transform that parses CSV lines into JSON objects
// with typed fields. config.columns lists the columns in order as
// name:type, comma-separated, with types int, float, string and bool:
//
//	columns=id:int,name:string,price:float,ok:bool
//	7,"Widget, large",9.5,true  →  {"id":7,"name":"Widget, large","price":9.5,"ok":true}
//
// Values follow RFC 4180 quoting. An empty int, float or bool field becomes
// null. A line with the wrong number of fields, an unparsable value or more
// than one line is dead-lettered with the reason.
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(etl) }

func main() {}

type column struct{ name, typ string }

func parseColumns(spec string) ([]column, error) {
	var cols []column
	for _, c := range strings.Split(spec, ",") {
		name, typ, ok := strings.Cut(strings.TrimSpace(c), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("etl: bad column %q in config.columns (want name:type)", c)
		}
		switch typ {
		case "int", "float", "string", "bool":
		default:
			return nil, fmt.Errorf("etl: column %q has unknown type %q (int, float, string, bool)", name, typ)
		}
		cols = append(cols, column{name, typ})
	}
	return cols, nil
}

func etl(r transform.Record, ctx *transform.Context) error {
	spec := ctx.Config("columns")
	if spec == "" {
		return errors.New("etl: config.columns is required")
	}
	cols, err := parseColumns(spec)
	if err != nil {
		return err
	}
	v, err := convert(r.Value, cols)
	if err != nil {
		return ctx.DeadLetter(err.Error())
	}
	r.Value = v
	return ctx.Emit(r)
}

func convert(line []byte, cols []column) ([]byte, error) {
	line = bytes.TrimRight(line, "\r\n")
	cr := csv.NewReader(bytes.NewReader(line))
	cr.FieldsPerRecord = len(cols)
	fields, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("etl: malformed line: %v", err)
	}
	if _, err := cr.Read(); err == nil {
		return nil, errors.New("etl: malformed line: more than one CSV line")
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i, c := range cols {
		if i > 0 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(c.name)
		out.Write(k)
		out.WriteByte(':')
		f := fields[i]
		var v any
		switch {
		case c.typ == "string":
			v = f
		case strings.TrimSpace(f) == "":
			v = nil
		case c.typ == "int":
			if v, err = strconv.ParseInt(strings.TrimSpace(f), 10, 64); err != nil {
				return nil, fmt.Errorf("etl: column %s: %q is not an int", c.name, f)
			}
		case c.typ == "float":
			if v, err = strconv.ParseFloat(strings.TrimSpace(f), 64); err != nil {
				return nil, fmt.Errorf("etl: column %s: %q is not a float", c.name, f)
			}
		case c.typ == "bool":
			if v, err = strconv.ParseBool(strings.TrimSpace(f)); err != nil {
				return nil, fmt.Errorf("etl: column %s: %q is not a bool", c.name, f)
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("etl: column %s: %v", c.name, err)
		}
		out.Write(b)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}
