package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/weir-broker/weir/core"
)

// AppendBody appends the public JSON error answer of err under code
// (docs/api.md "Errors"), ending in a newline:
//
//	{"error":{"code":"…","message":"…"}}
//
// with, after the "error" member, "log_start_offset" and "high_watermark"
// when err is a *core.OffsetRangeError, and "expected_sequence" when it is
// a *core.SequenceError, and "partitions" (AppendPartitions) when it is a
// *core.ProduceError.
func AppendBody(b []byte, code string, err error) []byte {
	return appendBody(b, code, err, false)
}

// AppendNodeBody is AppendBody for node-to-node answers (internal/peer): it
// adds what the calling node needs to rebuild the typed error and that
// clients are not shown: a *core.NotLeaderError's leader hint ("leader"),
// an out-of-range read's offset ("offset"), a *core.SequenceError's
// producer and sequence ("producer_id", "sequence"), and a
// *core.StaleGenerationError's group and generations ("group",
// "generation", "current_generation").
func AppendNodeBody(b []byte, code string, err error) []byte {
	return appendBody(b, code, err, true)
}

func appendBody(b []byte, code string, err error, node bool) []byte {
	b = append(b, `{"error":{"code":`...)
	b = AppendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = AppendJSONString(b, err.Error())
	b = append(b, '}')
	var re *core.OffsetRangeError
	if errors.As(err, &re) {
		b = appendInt(b, "log_start_offset", re.LogStart)
		b = appendInt(b, "high_watermark", re.HighWatermark)
		if node {
			b = appendInt(b, "offset", re.Offset)
		}
	}
	// An idempotent producer learns where the partition is: a sequence below
	// expected_sequence was stored already (docs/guarantees.md).
	var sqe *core.SequenceError
	if errors.As(err, &sqe) {
		b = appendInt(b, "expected_sequence", sqe.Expected)
		if node {
			b = append(b, `,"producer_id":`...)
			b = AppendJSONString(b, sqe.ProducerID)
			b = appendInt(b, "sequence", sqe.Got)
		}
	}
	b = AppendPartitions(b, err)
	if node {
		var nl *core.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 {
			b = append(b, `,"leader":`...)
			b = strconv.AppendUint(b, nl.Leader, 10)
		}
		var sg *core.StaleGenerationError
		if errors.As(err, &sg) {
			b = append(b, `,"group":`...)
			b = AppendJSONString(b, sg.Group)
			b = appendInt(b, "generation", sg.Generation)
			b = appendInt(b, "current_generation", sg.Current)
		}
	}
	return append(b, "}\n"...)
}

// AppendPartitions appends, when err is a *core.ProduceError (a produce
// over several partitions that partly failed), its per-partition results
// (docs/api.md "Partial failure"), else nothing:
//
//	,"partitions":[{"partition":0,"status":"ok","offset":41,"records":[0,2]},
//	  {"partition":1,"status":"error","records":[1],"error":{"code":"…","message":"…"}}]
//
// records are the indexes of the request's records that went to the
// partition; a committed partition's records[j] is at offset+j.
func AppendPartitions(b []byte, err error) []byte {
	var pe *core.ProduceError
	if !errors.As(err, &pe) {
		return b
	}
	b = append(b, `,"partitions":[`...)
	for i, p := range pe.Partitions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(p.Partition), 10)
		if p.Err == nil {
			b = append(b, `,"status":"ok"`...)
			b = appendInt(b, "offset", p.BaseOffset)
		} else {
			b = append(b, `,"status":"error"`...)
		}
		b = append(b, `,"records":[`...)
		for j, r := range p.Records {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(r), 10)
		}
		b = append(b, ']')
		if p.Err != nil {
			_, code := Status(p.Err)
			b = append(b, `,"error":{"code":`...)
			b = AppendJSONString(b, code)
			b = append(b, `,"message":`...)
			b = AppendJSONString(b, p.Err.Error())
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// body is an error answer as Decode reads it: the public members and the
// node-to-node ones.
type body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	LogStart          int64  `json:"log_start_offset"`
	HighWatermark     int64  `json:"high_watermark"`
	Offset            int64  `json:"offset"`
	Expected          *int64 `json:"expected_sequence"`
	ExpectedV0        int64  `json:"expected"` // nodes before apierr sent this name
	ProducerID        string `json:"producer_id"`
	Sequence          int64  `json:"sequence"`
	Leader            uint64 `json:"leader"`
	Group             string `json:"group"`
	Generation        int64  `json:"generation"`
	CurrentGeneration int64  `json:"current_generation"`
}

// Decode turns an error answer (its HTTP status and JSON body) back into
// an error. For a code of the table the result is a *StatusError with the
// answer's status, code and message that unwraps to the code's canonical
// error: the core sentinel, or for these codes a typed error filled from
// the body:
//
//	not_leader             *core.NotLeaderError (Leader, Msg)
//	offset_out_of_range    *core.OffsetRangeError
//	out_of_order_sequence  *core.SequenceError
//	stale_generation       *core.StaleGenerationError
//	bad_request            *core.InvalidError
//
// A code outside the table decodes to a *StatusError with no Err, so that
// Status(Decode(status, body)) is (status, code) for every answer. A body
// that is not an error answer decodes to a plain error quoting it.
func Decode(status int, data []byte) error {
	var r body
	if json.Unmarshal(data, &r) != nil || r.Error.Code == "" {
		return fmt.Errorf("HTTP %d: %.200s", status, data)
	}
	msg := r.Error.Message
	se := &StatusError{Status: status, Code: r.Error.Code, Msg: msg}
	switch se.Code {
	case "not_leader":
		se.Err = &core.NotLeaderError{Leader: r.Leader, Msg: msg}
	case "offset_out_of_range":
		se.Err = &core.OffsetRangeError{Offset: r.Offset, LogStart: r.LogStart, HighWatermark: r.HighWatermark}
	case "out_of_order_sequence":
		exp := r.ExpectedV0
		if r.Expected != nil {
			exp = *r.Expected
		}
		se.Err = &core.SequenceError{ProducerID: r.ProducerID, Expected: exp, Got: r.Sequence}
	case "stale_generation":
		se.Err = &core.StaleGenerationError{Group: r.Group, Generation: r.Generation, Current: r.CurrentGeneration}
	case "bad_request":
		se.Err = &core.InvalidError{Msg: msg}
	default:
		for i := range table {
			if table[i].code == se.Code {
				se.Err = table[i].err
				break
			}
		}
	}
	return se
}
