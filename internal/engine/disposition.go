package engine

import (
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// dispositionFileName is the file name a Content-Disposition header gives,
// or "" when it gives none, read as RFC 6266 says and as Chromium and
// Firefox read it (the tc2231 cases they agree on, TestDispositionTC2231):
//
//   - filename* (RFC 5987: charset'language'percent-encoded) wins over
//     filename; its charset is UTF-8 or ISO-8859-1, any other makes it
//     unusable and filename is used;
//   - filename is a token or a quoted string whose quoted-pairs (\x) are
//     unescaped; bytes that are not UTF-8 are read as ISO-8859-1, and an
//     RFC 2047 encoded word (=?utf-8?B?…?=, which some servers still send)
//     is decoded;
//   - of two parameters with one name, the first counts.
//
// Where browsers are strict this is lenient, because a download tool has
// no better name to fall back on than the URL's: a filename* without a
// charset is read as UTF-8, one in quotes is unquoted, and an unquoted
// value runs to the next ";" even with spaces in it (a header without a
// disposition type, "filename=x", counts too).
func dispositionFileName(v string) string {
	params := dispositionParams(v)
	if ext, ok := params["filename*"]; ok {
		if name, ok := decodeExtValue(ext); ok && name != "" {
			return name
		}
	}
	return decodePlainFileName(params["filename"])
}

// dispositionParams splits a Content-Disposition value into its
// parameters, by lower-case name, the first of each name kept. Quoted
// strings are unquoted with their quoted-pairs undone; a ';' inside one
// does not end it.
func dispositionParams(v string) map[string]string {
	params := map[string]string{}
	rest := v
	// The disposition type: a token before the first ';'. When that part
	// is already a parameter (no type given), it is read as one.
	if i := strings.IndexByte(rest, ';'); i >= 0 && !strings.Contains(rest[:i], "=") {
		rest = rest[i+1:]
	} else if i < 0 && !strings.Contains(rest, "=") {
		return params
	}
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t;")
		eq := strings.IndexAny(rest, "=;")
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		if rest[eq] == ';' { // a parameter without a value
			rest = rest[eq:]
			continue
		}
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var value string
		if strings.HasPrefix(rest, `"`) {
			value, rest = quotedString(rest)
			// Anything after the closing quote up to the next ';' is junk.
			if i := strings.IndexByte(rest, ';'); i >= 0 {
				rest = rest[i:]
			} else {
				rest = ""
			}
		} else {
			end := strings.IndexByte(rest, ';')
			if end < 0 {
				end = len(rest)
			}
			value, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		if _, seen := params[key]; !seen && key != "" {
			params[key] = value
		}
	}
	return params
}

// quotedString reads an RFC 9110 quoted-string at the start of s (which
// begins with '"'): quoted-pairs are undone. An unterminated one runs to
// the end.
func quotedString(s string) (value, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return b.String(), s[i+1:]
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// decodeExtValue decodes an RFC 5987 ext-value, charset'language'value.
func decodeExtValue(v string) (string, bool) {
	if strings.HasPrefix(v, `"`) { // lenient: quoted, which the RFC does not allow
		v, _ = quotedString(v)
	}
	charset, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", false
	}
	_, encoded, ok := strings.Cut(rest, "'")
	if !ok {
		return "", false
	}
	raw, err := url.PathUnescape(encoded)
	if err != nil {
		return "", false
	}
	switch strings.ToLower(charset) {
	case "utf-8", "": // "" is lenient: the RFC requires a charset
		return raw, utf8.ValidString(raw)
	case "iso-8859-1":
		return latin1(raw), true
	}
	return "", false
}

// decodePlainFileName reads a filename parameter: an RFC 2047 encoded word
// as browsers decode it, and bytes that are not UTF-8 as ISO-8859-1 (what
// an HTTP header's bytes were defined to be).
func decodePlainFileName(v string) string {
	if strings.Contains(v, "=?") && strings.Contains(v, "?=") {
		if decoded, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
			v = decoded
		}
	}
	if !utf8.ValidString(v) {
		v = latin1(v)
	}
	return v
}

// latin1 reads each byte of s as the ISO-8859-1 character of that code.
func latin1(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
