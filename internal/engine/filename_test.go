package engine

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeFileName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`..\..\windows\system32\x.dll`, "x.dll"},
		{"..", ""},
		{".", ""},
		{"a:b*c?.txt", "a_b_c_.txt"},
		{"name.  ", "name"},
		{".hidden", "hidden"},
		{"CON", "_CON"},
		{"com1.log", "_com1.log"},
		{"console.txt", "console.txt"},
		{"tab\there\x00.bin", "tabhere.bin"},
		{"evil\u202Egnp.exe", "evilgnp.exe"},
		{"مدل فارسی.gguf", "مدل فارسی.gguf"},
		{"\xff\xfe.bin", "_.bin"},
	}
	for _, tc := range tests {
		if got := sanitizeFileName(tc.in); got != tc.want {
			t.Errorf("sanitizeFileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSanitizeFileNameTruncatesOnRuneBoundary(t *testing.T) {
	long := strings.Repeat("ف", 300) + ".iso"
	got := sanitizeFileName(long)
	if len(got) > maxFileNameBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, ".iso") {
		t.Errorf("got %d bytes, valid=%v, suffix .iso=%v", len(got), utf8.ValidString(got), strings.HasSuffix(got, ".iso"))
	}
}

func TestDispositionFileName(t *testing.T) {
	tests := []struct{ in, want string }{
		{`attachment; filename="a.zip"`, "a.zip"},
		{`attachment; filename=a.zip`, "a.zip"},
		{`attachment; filename*=UTF-8''%D9%85%D8%AF%D9%84.bin`, "مدل.bin"},
		{`attachment; filename="fallback.bin"; filename*=UTF-8''%D9%85.bin`, "م.bin"},
		{`attachment; filename="with space.iso"`, "with space.iso"},
		{`attachment; filename=with space.iso`, "with space.iso"}, // invalid, but common
		{`inline`, ""},
		{``, ""},
	}
	for _, tc := range tests {
		if got := dispositionFileName(tc.in); got != tc.want {
			t.Errorf("dispositionFileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFileNameFromFallsBack(t *testing.T) {
	final, _ := url.Parse("https://cdn.example/blobs/abc?sig=1")
	if got := fileNameFrom("", final, "https://host/x.iso"); got != "abc" {
		t.Errorf("got %q, want the final URL's name", got)
	}
	root, _ := url.Parse("https://cdn.example/")
	if got := fileNameFrom("", root, "https://host/"); got != "download" {
		t.Errorf("got %q, want download", got)
	}
}

func TestNumberedName(t *testing.T) {
	tests := []struct {
		in   string
		i    int
		want string
	}{
		{"a.iso", 0, "a.iso"}, {"a.iso", 1, "a (1).iso"}, {"noext", 2, "noext (2)"},
		{"x.tar.gz", 1, "x (1).tar.gz"}, {".bashrc", 1, " (1).bashrc"},
	}
	for _, tc := range tests {
		if got := NumberedName(tc.in, tc.i); got != tc.want {
			t.Errorf("numberedName(%q, %d) = %q, want %q", tc.in, tc.i, got, tc.want)
		}
	}
}

// FuzzSanitizeFileName: whatever a server sends, the name is one safe path
// element or empty.
func FuzzSanitizeFileName(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", `..\y`, "CON", "\u202e", "ف.bin", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := sanitizeFileName(in)
		if got == "" {
			return
		}
		if strings.ContainsAny(got, `/\:*?"<>|`) || got == "." || got == ".." || strings.HasPrefix(got, ".") {
			t.Fatalf("unsafe name %q from %q", got, in)
		}
		if len(got) > maxFileNameBytes || !utf8.ValidString(got) || reservedWindowsName(got) {
			t.Fatalf("bad name %q from %q", got, in)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", got)
			}
		}
	})
}

// FuzzDispositionFileName: parsing any header never panics, and what it
// yields is made safe by sanitizeFileName.
func FuzzDispositionFileName(f *testing.F) {
	for _, s := range []string{`attachment; filename="a"`, `attachment; filename*=UTF-8''%D9%85`, `; ;=`, `filename*=''`, `attachment; filename="../../x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		name := sanitizeFileName(dispositionFileName(header))
		if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			t.Fatalf("unsafe %q from %q", name, header)
		}
	})
}
