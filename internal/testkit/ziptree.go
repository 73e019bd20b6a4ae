package testkit

import (
	"archive/zip"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// ZipContent is what a test expects of one zip entry.
type ZipContent struct {
	Mode fs.FileMode
	Data string
}

// ReadZipTree returns every entry of a zip by name, checking on the way
// that names are slash-separated and stored uncompressed.
func ReadZipTree(t *testing.T, path string) map[string]ZipContent {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("opening zip: %v", err)
	}
	defer zr.Close()
	got := map[string]ZipContent{}
	for _, f := range zr.File {
		if strings.Contains(f.Name, `\`) {
			t.Errorf("entry %q has a backslash", f.Name)
		}
		if f.Method != zip.Store {
			t.Errorf("entry %q method = %d, want Store", f.Name, f.Method)
		}
		if _, dup := got[f.Name]; dup {
			t.Errorf("entry %q appears twice", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("opening %s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc) // checks the CRC-32 at EOF
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", f.Name, err)
		}
		got[f.Name] = ZipContent{Mode: f.Mode(), Data: string(b)}
	}
	return got
}

func CompareZipTree(t *testing.T, got, want map[string]ZipContent) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("zip lacks %s", name)
		case g.Mode != w.Mode:
			t.Errorf("%s mode = %v, want %v", name, g.Mode, w.Mode)
		case g.Data != w.Data:
			t.Errorf("%s holds %d bytes that differ from the %d expected", name, len(g.Data), len(w.Data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("zip has a stray entry %s", name)
		}
	}
}
