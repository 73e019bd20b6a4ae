package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"path"
	"strings"
	"time"
)

// asset is one embedded UI file, hashed once at startup.
type asset struct {
	name  string
	data  []byte
	etag  string
	ctype string
}

// uiContentType is the Content-Type of what the UI may embed; the
// platform's MIME tables differ (several lack woff2), the answer must not.
func uiContentType(ext string) string {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".woff":
		return "font/woff"
	case ".ttf":
		return "font/ttf"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return mime.TypeByExtension(ext)
}

// loadAssets reads the embedded UI once: content, a content-hash ETag and
// a Content-Type per file, and the page's Content-Security-Policy with
// the hashes of any inline <script> or <style> blocks in index.html, so
// the policy can forbid inline code while the page keeps working.
func loadAssets(fsys fs.FS, dir string) (map[string]*asset, string) {
	assets := map[string]*asset{}
	var inline struct{ script, style []string }
	fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(data)
		ext := strings.ToLower(path.Ext(p))
		ctype := uiContentType(ext)
		if ctype == "" {
			ctype = http.DetectContentType(data)
		}
		urlPath := "/" + strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		assets[urlPath] = &asset{
			name:  path.Base(p),
			data:  data,
			etag:  `"` + hex.EncodeToString(sum[:16]) + `"`,
			ctype: ctype,
		}
		if urlPath == "/index.html" {
			inline.script = inlineHashes(data, "script")
			inline.style = inlineHashes(data, "style")
		}
		return nil
	})
	csp := strings.Join([]string{
		"default-src 'self'",
		strings.Join(append([]string{"script-src 'self'"}, inline.script...), " "),
		strings.Join(append([]string{"style-src 'self'"}, inline.style...), " "),
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return assets, csp
}

// inlineHashes returns the CSP source expressions ('sha256-…') of the
// inline <tag> blocks of an HTML page; blocks with a src are skipped.
func inlineHashes(page []byte, tag string) []string {
	lower := asciiLower(page)
	open, end := []byte("<"+tag), []byte("</"+tag)
	var hashes []string
	for i := 0; ; {
		start := bytes.Index(lower[i:], open)
		if start < 0 {
			return hashes
		}
		start += i
		gt := bytes.IndexByte(lower[start:], '>')
		if gt < 0 {
			return hashes
		}
		attrs := lower[start+len(open) : start+gt]
		body := start + gt + 1
		stop := bytes.Index(lower[body:], end)
		if stop < 0 {
			return hashes
		}
		if len(attrs) == 0 || attrs[0] == ' ' || attrs[0] == '\t' || attrs[0] == '\n' {
			if !bytes.Contains(attrs, []byte("src=")) {
				// Browsers hash the text after the HTML parser has turned
				// CR LF and lone CR into LF.
				text := bytes.ReplaceAll(page[body:body+stop], []byte("\r\n"), []byte("\n"))
				sum := sha256.Sum256(bytes.ReplaceAll(text, []byte("\r"), []byte("\n")))
				hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			}
		}
		i = body + stop
	}
}

// asciiLower lower-cases ASCII only, keeping byte offsets equal to the
// original's (strings.ToLower may change the length of non-ASCII text).
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	a := s.assets[p]
	if a == nil {
		s.writeError(w, r, fmt.Errorf("%s: %w", r.URL.Path, fault.ErrNotFound))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate each time: the ETag makes it a 304
	h.Set("Content-Security-Policy", s.csp)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
