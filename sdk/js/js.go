// Package js holds the Weir browser client, weir.js, a dependency-free ES
// module (README.md beside it). The gateway serves Module at /sdk/weir.js,
// so a page of any Weir node can import it:
//
//	import { Client } from "/sdk/weir.js";
package js

import _ "embed"

//go:embed weir.js
var module []byte

// ModuleName is the file name the module is served under.
const ModuleName = "weir.js"

// Module returns the source of weir.js. The caller must not modify it.
func Module() []byte { return module }
