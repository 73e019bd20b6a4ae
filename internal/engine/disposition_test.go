package engine

import (
	"net/url"
	"testing"
)

// TestDispositionTC2231 holds the file name against the Content-Disposition
// cases of greenbytes' tc2231 suite (RFC 6266, RFC 5987, RFC 2047) on which
// Chromium and Firefox agree, plus Persian names as servers send them. The
// name is the one saved: after sanitizeFileName. fromURL means the header
// gives no usable name and the URL's is used.
func TestDispositionTC2231(t *testing.T) {
	const fromURL = "from-url.bin"
	final, _ := url.Parse("https://example.com/" + fromURL)
	tests := []struct{ code, header, want string }{
		{"inlonly", `inline`, fromURL},
		{"inlwithasciifilename", `inline; filename="foo.html"`, "foo.html"},
		{"attonly", `attachment`, fromURL},
		{"attonlyucase", `ATTACHMENT`, fromURL},
		{"attwithasciifilename", `attachment; filename="foo.html"`, "foo.html"},
		{"attwithasciifilename25", `attachment; filename="0000000000111111111122222"`, "0000000000111111111122222"},
		{"attwithasciifnescapedchar", `attachment; filename="f\oo.html"`, "foo.html"},
		{"attwithasciifnescapedquote", `attachment; filename="\"quoting\" tested.html"`, "_quoting_ tested.html"},
		{"attwithquotedsemicolon", `attachment; filename="Here's a semicolon;.html"`, "Here's a semicolon;.html"},
		{"attwithfilenameandextparam", `attachment; foo="bar"; filename="foo.html"`, "foo.html"},
		{"attwithfilenameandextparamescaped", `attachment; foo="\"\\";filename="foo.html"`, "foo.html"},
		{"attwithasciifilenameucase", `attachment; FILENAME="foo.html"`, "foo.html"},
		{"attwithasciifilenamenq", `attachment; filename=foo.html`, "foo.html"},
		{"attwithasciifilenamenqs", `attachment; filename=foo.html ;`, "foo.html"},
		{"attwithfntokensq", `attachment; filename='foo.bar'`, "'foo.bar'"},
		{"attwithisofnplain", "attachment; filename=\"foo-\xe4.html\"", "foo-ä.html"},
		{"attwithutf8fnplain", "attachment; filename=\"foo-\xc3\xa4.html\"", "foo-ä.html"},
		{"attwithfnrawpctenca", `attachment; filename="foo-%41.html"`, "foo-%41.html"},
		{"attwithfnusingpct", `attachment; filename="50%.html"`, "50%.html"},
		{"attwithfnrawpctencaq", `attachment; filename="foo-%\41.html"`, "foo-%41.html"},
		{"attwithasciifilenamews1", `attachment; filename ="foo.html"`, "foo.html"},
		{"attconfusedparam", `attachment; xfilename=foo.html`, fromURL},
		{"attabspath", `attachment; filename="/foo.html"`, "foo.html"},
		{"attabspathwin", `attachment; filename="\\foo.html"`, "foo.html"},
		{"attcdate", `attachment; creation-date="Wed, 12 Feb 1997 16:29:51 -0500"`, fromURL},
		{"dispextbadfn", `attachment; example="filename=example.txt"`, fromURL},
		{"attwithisofn2231iso", `attachment; filename*=iso-8859-1''foo-%E4.html`, "foo-ä.html"},
		{"attwithfn2231utf8", `attachment; filename*=UTF-8''foo-%c3%a4-%e2%82%ac.html`, "foo-ä-€.html"},
		{"attwithfn2231utf8comp", `attachment; filename*=UTF-8''foo-a%cc%88.html`, "foo-a\u0308.html"},
		{"attwithfn2231ws2", `attachment; filename*= UTF-8''foo-%c3%a4.html`, "foo-ä.html"},
		{"attwithfn2231ws3", `attachment; filename* =UTF-8''foo-%c3%a4.html`, "foo-ä.html"},
		{"attwithfn2231singleqmissing", `attachment; filename*=UTF-8'foo-%c3%a4.html`, fromURL},
		{"attwithfn2231nbadpct1", `attachment; filename*=UTF-8''foo%`, fromURL},
		{"attwithfn2231nbadpct2", `attachment; filename*=UTF-8''f%oo.html`, fromURL},
		{"attwithfn2231dpct", `attachment; filename*=UTF-8''A-%2541.html`, "A-%41.html"},
		{"attwithfn2231abspathdisguised", `attachment; filename*=UTF-8''%5cfoo.html`, "foo.html"},
		{"attfnboth", `attachment; filename="foo-ae.html"; filename*=UTF-8''foo-%c3%a4.html`, "foo-ä.html"},
		{"attfnboth2", `attachment; filename*=UTF-8''foo-%c3%a4.html; filename="foo-ae.html"`, "foo-ä.html"},
		{"attfnboth3", `attachment; filename*0*=ISO-8859-15''euro-sign%3d%a4; filename*=ISO-8859-1''currency-sign%3d%a4`, "currency-sign=¤"},
		{"attnewandfn", `attachment; foobar=x; filename="foo.html"`, "foo.html"},
		{"attrfc2047quoted", `attachment; filename="=?ISO-8859-1?Q?foo-=E4.html?="`, "foo-ä.html"},
		// An unknown charset in filename* is ignored: filename is used.
		{"attwithfn2231unknowncharset", `attachment; filename="plain.bin"; filename*=x-klingon''foo.bin`, "plain.bin"},

		// Persian names as servers send them.
		{"persian 5987", `attachment; filename*=UTF-8''%D9%81%D8%A7%DB%8C%D9%84.zip`, "فایل.zip"},
		{"persian raw utf-8", "attachment; filename=\"\u0641\u0627\u06cc\u0644.zip\"", "فایل.zip"},
		{"persian raw utf-8 unquoted", "attachment; filename=\u0641\u0627\u06cc\u0644 \u062c\u062f\u06cc\u062f.zip", "فایل جدید.zip"},
		{"persian 2047 base64", `attachment; filename="=?utf-8?B?2YHYp9uM2YQuemlw?="`, "فایل.zip"},
		{"persian with ascii fallback", `attachment; filename="file.zip"; filename*=utf-8''%D9%81%D8%A7%DB%8C%D9%84.zip`, "فایل.zip"},

		// The lenient readings this tool keeps (docs/ARCHITECTURE.md,
		// "File names"): browsers ignore these filename* forms.
		{"lenient: filename* without a charset", `attachment; filename*=''foo-%c3%a4.html`, "foo-ä.html"},
		{"lenient: filename* in quotes", `attachment; filename*="UTF-8''foo-%c3%a4.html"`, "foo-ä.html"},
		// Two filename parameters: the first, as browsers take it.
		{"attwith2filenames", `attachment; filename="foo.html"; filename="bar.html"`, "foo.html"},
		{"unquoted with spaces", `attachment; filename=with space.iso`, "with space.iso"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			if got := fileNameFrom(tc.header, final, final.String()); got != tc.want {
				t.Errorf("Content-Disposition: %s\nsaved as %q, want %q", tc.header, got, tc.want)
			}
		})
	}
}
