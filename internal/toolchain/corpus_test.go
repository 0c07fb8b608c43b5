package toolchain_test

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// redactSeeds are JSON values (mostly objects) that exercise what redact's
// output depends on: key escapes and UTF-8, spacing, numbers, literals,
// nesting, the HTML-safe escaping of keys, and malformed input.
var redactSeeds = []string{
	`{"id":1,"card":"4111","email":"a@b","nested":{"card":"x"}}`,
	`{ "card" : { "deep" : [ 1 , 2 , { "x" : null } ] } , "z" : true , "f" : false }`,
	"{\"ca\\u0072d\":\"escaped key\",\"ssn\":\"1\",\"\\u00a0\":2,\"<a>&\":\"html\",\"tab\\there\":\"\\n\"}",
	"{\"\\ud83d\\ude00\":1,\"\\ud800\":2,\"\\udc00x\":3,\"\\ud800\\u0041\":4,\"\\/\\b\\f\\r\\\"\\\\\":5}",
	"{\"\xff\xfe\":1,\"\xe2\x82\":2,\"\xed\xa0\x80\":3,\"\xc0\x80\":4,\"\xf4\x90\x80\x80\":5,\"\xe2\x80\xa8\xe2\x80\xa9\":6,\"\x7f\":7}",
	`{"n":-0.5e+10,"m":0,"k":1E-2,"j":123456789012345678901234567890,"s":"a\u0000b"}`,
	`{"email":"x","email":"y","":"empty key"}`,
	`{}`,
	"  \t\n{\"a\" :\n[\"b\" ,\"c\"] }\n ",
	`[1,2]`, `"str"`, `42`, `null`, ``, `not json`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`,
	`{"a":1 "b":2}`, `{"a":tru}`, `{"a":nul}`, `{"a":fals}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`, `{"a":01}`,
	`{"a":"\x"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", `{"a":1}{"b":2}`, `{"a":1} x`, `{"a":1} true`, `{"a":1} tx`,
	`{"a":1}]`, `{"a":1}}`, `{"a":1},`, `{"a":1}:`, `{"a":1} "s"`, `{"a":1} "s`, `{"a":1} 1`, `{"a":1} -`, `{"a":1} [`,
	`{1:2}`, `{{}}`, `{,}`, `{:}`, `{"a":1,,}`, `{"a"::1}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":{"b" 1}}`,
	"{\"a\":1}\xff", "{\xff}", "{\"a\":\xff}", "{\"a\":1\xa0}", "{'a':1}",
	"{\"d\":" + strings.Repeat("[", 10001) + "}",
}

// redactCorpus is the seeds plus deterministic random mutations of them, as
// `weir transform test` input lines (base64, so any byte goes).
func redactCorpus(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(15, 2026))
	alphabet := []byte("{}[]:,\"\\ \t\n0123456789.eE+-truefalsnxu'/\x00\x1f\x7f\x80\xa0\xad\xc3\xe2\xff")
	vals := append([]string(nil), redactSeeds...)
	for _, s := range redactSeeds[:9] { // the well-formed ones
		for range 120 {
			b := []byte(s)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(b) + 1)
				switch rng.IntN(5) {
				case 0: // delete
					if i < len(b) {
						b = append(b[:i], b[i+1:]...)
					}
				case 1: // insert
					b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
				case 2: // replace
					if i < len(b) {
						b[i] = alphabet[rng.IntN(len(alphabet))]
					}
				case 3: // truncate
					b = b[:i]
				case 4: // append junk after the value
					b = append(b, alphabet[rng.IntN(len(alphabet))])
				}
			}
			vals = append(vals, string(b))
		}
	}
	var sb strings.Builder
	for i, v := range vals {
		line, err := json.Marshal(map[string]any{
			"key": base64.StdEncoding.EncodeToString([]byte{'k', byte('a' + i%26)}), "value": base64.StdEncoding.EncodeToString([]byte(v)),
			"encoding": "base64", "timestamp": 1764000000000 + i, "headers": map[string]string{"h": "v"},
		})
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(line)
		sb.WriteByte('\n')
	}
	return sb.String()
}
