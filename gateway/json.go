package gateway

import "github.com/weir-broker/weir/gateway/apierr"

// appendJSONString appends s as a JSON string (apierr.AppendJSONString).
// Binary data should be read with encoding=base64.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	return apierr.AppendJSONString(dst, s)
}
