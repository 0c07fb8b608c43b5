package gateway

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/valyala/fasthttp"
)

// AssetRoute serves one static file (a script, a page) at path for GET and
// HEAD, with an ETag so browsers revalidate cheaply. body must not change.
func AssetRoute(path, contentType string, body []byte) Route {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return Route{Path: path, Handler: func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			writeError(ctx, errMethodNotAllowed)
			return
		}
		ctx.Response.Header.Set("ETag", etag)
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		if string(ctx.Request.Header.Peek("If-None-Match")) == etag {
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			return
		}
		ctx.SetContentType(contentType)
		ctx.SetBody(body)
	}}
}
