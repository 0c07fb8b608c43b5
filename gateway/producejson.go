package gateway

import (
	"encoding/json"
	"unicode/utf8"
)

// parseProduceFast decodes the common shape of a JSON produce request
// without encoding/json, which costs more CPU than the whole Raft path at
// 100 MB/s. It understands exactly the fields of ProduceRequestJSON and
// ProduceRecordJSON with string/null keys and values; anything else (an
// unknown field, a JSON object as a value, a syntax error) returns ok=false
// and the caller falls back to encoding/json, which gives the precise error.
// Keys and values alias body.
func parseProduceFast(body []byte) (req ProduceRequestJSON, ok bool) {
	p := fastJSON{b: body}
	if !p.consume('{') {
		return req, false
	}
	if p.consume('}') {
		return req, p.end()
	}
	for {
		name, ok := p.name()
		if !ok {
			return req, false
		}
		switch name {
		case "records":
			if !p.records(&req.Records) {
				return req, false
			}
		case "encoding":
			s, ok := p.plainString()
			if !ok {
				return req, false
			}
			req.Encoding = s
		case "producer_id":
			s, ok := p.plainString()
			if !ok {
				return req, false
			}
			req.ProducerID = s
		case "sequence":
			if p.null() {
				req.Sequence = nil
				break
			}
			n, ok := p.int()
			if !ok {
				return req, false
			}
			req.Sequence = &n
		default:
			return req, false
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return req, p.end()
		}
		return req, false
	}
}

type fastJSON struct {
	b []byte
	i int
}

func (p *fastJSON) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastJSON) consume(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastJSON) end() bool {
	p.ws()
	return p.i == len(p.b)
}

func (p *fastJSON) null() bool {
	p.ws()
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// stringToken returns the raw JSON string token (with quotes) at the
// cursor. It validates the token: no raw control characters, escapes well
// formed. escaped reports whether it contains a backslash.
func (p *fastJSON) stringToken() (tok []byte, escaped, ok bool) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false, false
	}
	start := p.i
	i := p.i + 1
	for i < len(p.b) {
		c := p.b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return p.b[start:p.i], escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(p.b) {
				return nil, false, false
			}
			switch p.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p.b) {
					return nil, false, false
				}
				for _, h := range p.b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, false
					}
				}
				i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			i++
		}
	}
	return nil, false, false
}

// plainString reads a string without escapes (names, encodings, ids).
// Invalid UTF-8 falls back to encoding/json, which replaces each bad byte
// with U+FFFD; both paths must store the same header.
func (p *fastJSON) plainString() (string, bool) {
	tok, esc, ok := p.stringToken()
	if !ok || esc || !utf8.Valid(tok) {
		return "", false
	}
	return string(tok[1 : len(tok)-1]), true
}

func (p *fastJSON) name() (string, bool) {
	s, ok := p.plainString()
	if !ok || !p.consume(':') {
		return "", false
	}
	return s, true
}

func (p *fastJSON) int() (int64, bool) {
	p.ws()
	neg := false
	if p.i < len(p.b) && p.b[p.i] == '-' {
		neg = true
		p.i++
	}
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		if p.i-start >= 18 {
			return 0, false // let encoding/json judge huge numbers
		}
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || (p.b[start] == '0' && p.i-start > 1) {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// rawStringOrNull returns a string token or nil for null.
func (p *fastJSON) rawStringOrNull() (json.RawMessage, bool) {
	if p.null() {
		return nil, true
	}
	tok, _, ok := p.stringToken()
	return tok, ok
}

func (p *fastJSON) records(out *[]ProduceRecordJSON) bool {
	if p.null() {
		*out = nil
		return true
	}
	if !p.consume('[') {
		return false
	}
	recs := make([]ProduceRecordJSON, 0, 128)
	if p.consume(']') {
		*out = recs
		return true
	}
	for {
		var r ProduceRecordJSON
		if !p.record(&r) {
			return false
		}
		recs = append(recs, r)
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			*out = recs
			return true
		}
		return false
	}
}

func (p *fastJSON) record(r *ProduceRecordJSON) bool {
	if !p.consume('{') {
		return false
	}
	if p.consume('}') {
		return true
	}
	for {
		name, ok := p.name()
		if !ok {
			return false
		}
		switch name {
		case "key":
			if r.Key, ok = p.rawStringOrNull(); !ok {
				return false
			}
		case "value":
			if r.Value, ok = p.rawStringOrNull(); !ok {
				return false
			}
		case "partition":
			if p.null() {
				r.Partition = nil
				break
			}
			n, ok := p.int()
			if !ok || n > 1<<30 || n < -(1<<30) {
				return false
			}
			v := int(n)
			r.Partition = &v
		case "timestamp":
			n, ok := p.int()
			if !ok {
				return false
			}
			r.Timestamp = n
		case "headers":
			if !p.headers(&r.Headers) {
				return false
			}
		default:
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

func (p *fastJSON) headers(out *map[string]string) bool {
	if p.null() {
		*out = nil
		return true
	}
	if !p.consume('{') {
		return false
	}
	m := map[string]string{}
	if p.consume('}') {
		*out = m
		return true
	}
	for {
		k, ok := p.name()
		if !ok {
			return false
		}
		v, ok := p.plainString()
		if !ok {
			return false
		}
		m[k] = v
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			*out = m
			return true
		}
		return false
	}
}
