// Package live is the browser live page: it streams a topic into a table
// over the gateway's WebSocket with the weir.js client (/sdk/weir.js) and
// produces into it. The gateway serves Page at /demo.
package live

import _ "embed"

//go:embed index.html
var page []byte

// Page returns the page's HTML. The caller must not modify it.
func Page() []byte { return page }
