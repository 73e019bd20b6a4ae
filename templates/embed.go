// Package templates holds the web UI: HTML, CSS, JS, the translations and
// the font, embedded in the binary so the page works with no other host.
package templates

import "embed"

// FS is the page's files, at their paths under templates/.
//
//go:embed *.html *.css *.js *.svg fonts i18n
var FS embed.FS
