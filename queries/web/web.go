// Package web holds the dashboard's static assets (HTML, JS, CSS),
// embedded so the binary serves them offline: no CDN, no chart library,
// no inline script (the Content-Security-Policy forbids it).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Assets returns the dashboard files: index.html, app.js, app.css.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path; "static" is a constant.
		panic(err)
	}
	return sub
}
