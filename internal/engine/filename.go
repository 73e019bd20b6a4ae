package engine

import (
	"mime"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxFileNameBytes keeps names well under the 255-byte limit of common file
// systems, leaving room for " (12).part.json".
const maxFileNameBytes = 200

// fileNameFrom picks a file name for a download: Content-Disposition first
// (filename* in UTF-8 wins, so Persian names survive — RFC 6266), else the
// last segment of the final URL after redirects, else of the original URL,
// else "download". The result is always safe as a single path element.
func fileNameFrom(disposition string, final *url.URL, original string) string {
	if name := dispositionFileName(disposition); name != "" {
		if safe := sanitizeFileName(name); safe != "" {
			return safe
		}
	}
	candidates := []*url.URL{final}
	if u, err := url.Parse(original); err == nil {
		candidates = append(candidates, u)
	}
	for _, u := range candidates {
		if u == nil {
			continue
		}
		seg := path.Base(u.EscapedPath())
		if unescaped, err := url.PathUnescape(seg); err == nil {
			seg = unescaped
		}
		if safe := sanitizeFileName(seg); safe != "" {
			return safe
		}
	}
	return "download"
}

// dispositionFileName extracts the file name from a Content-Disposition
// header. mime.ParseMediaType decodes RFC 2231 filename* parameters; servers
// that send unquoted spaces or raw UTF-8 break it, so a lenient scan follows.
func dispositionFileName(v string) string {
	if v == "" {
		return ""
	}
	if _, params, err := mime.ParseMediaType(v); err == nil {
		if name := params["filename"]; name != "" {
			return name
		}
	}
	var plain string
	for part := range strings.SplitSeq(v, ";") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "filename*":
			// charset'language'percent-encoded-value
			pieces := strings.SplitN(value, "'", 3)
			if len(pieces) == 3 {
				if decoded, err := url.PathUnescape(pieces[2]); err == nil && utf8.ValidString(decoded) {
					return decoded
				}
			}
		case "filename":
			plain = strings.Trim(value, `"`)
		}
	}
	return plain
}

// sanitizeFileName turns a name from the network into one path element that
// is valid on Linux, macOS and Windows: no separators, no "..", no control
// or reserved characters, no reserved device names, bounded length. It
// returns "" when nothing usable is left.
func sanitizeFileName(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "_")
	}
	// Only the last element counts: "../../etc/passwd" becomes "passwd".
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || unicode.IsControl(r):
			continue
		case strings.ContainsRune(`<>:"|?*`, r):
			b.WriteRune('_')
		case r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// Bidirectional overrides can disguise "exe.pdf" as "fdp.exe".
			continue
		default:
			b.WriteRune(r)
		}
	}
	// Windows drops trailing dots and spaces; leading ones hide files on Unix.
	name = strings.Trim(b.String(), " .")
	if name == "" {
		return ""
	}
	if reservedWindowsName(name) {
		name = "_" + name
	}
	return truncateFileName(name, maxFileNameBytes)
}

// reservedWindowsName reports names Windows treats as devices, with or
// without an extension (CON, CON.txt, com1.log…).
func reservedWindowsName(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	base = strings.ToUpper(strings.TrimSpace(base))
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return false
}

// truncateFileName shortens name to at most n bytes on a rune boundary,
// keeping a short extension.
func truncateFileName(name string, n int) string {
	if len(name) <= n {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > 16 {
		ext = ""
	}
	base := name[:len(name)-len(ext)]
	keep := n - len(ext)
	for keep > 0 && !utf8.RuneStart(base[keep]) {
		keep--
	}
	return base[:keep] + ext
}

// HiddenName reports whether a file or folder is ours rather than the
// user's: dot-folders (.state, .history, .staging), partial downloads and
// their sidecars, temporary files. Case does not matter: on macOS and
// Windows ".STATE" and "x.PART" are the same files as ".state" and "x.part".
func HiddenName(name string) bool {
	name = strings.ToLower(name)
	return strings.HasPrefix(name, ".") ||
		strings.HasSuffix(name, ".part") ||
		strings.HasSuffix(name, ".part.json") ||
		strings.HasSuffix(name, ".tmp")
}
