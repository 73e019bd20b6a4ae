package mirror

import (
	"bytes"
	"net/http"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countOpens makes the mirror count how often it parses a zip or folder.
func countOpens(m *Mirror) *atomic.Int64 {
	var n atomic.Int64
	m.openLayout = func(p string) (*models.Layout, error) {
		n.Add(1)
		return models.OpenLayout(p)
	}
	return &n
}

// TestMirrorIndexReadsUnchangedZipsOnce: rescans only look at each zip's
// size and time; a zip is parsed again only when it changed (issue 18: a
// manifest bomb used to be reread every 5 s).
func TestMirrorIndexReadsUnchangedZipsOnce(t *testing.T) {
	dir := t.TempDir()
	m1 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "one", "latest", 1, 1000)
	m2 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "two", "latest", 2, 1000)
	testkit.WriteTestZip(t, filepath.Join(dir, "one.zip"), m1.Entries())
	testkit.WriteTestZip(t, filepath.Join(dir, "two.zip"), m2.Entries())
	testkit.WriteTestZip(t, filepath.Join(dir, "broken.zip"), m1.Entries()[1:])
	folder := t.TempDir()
	testkit.WriteTestFolder(t, folder, testkit.NewTestModel(t, "registry.ollama.ai", "library", "three", "latest", 3, 1000).Entries())
	m := newModelMirror([]string{dir, folder}, nil)
	m.RescanAfter = 0
	opens := countOpens(m)
	for range 5 {
		m.Index()
	}
	if n := opens.Load(); n != 4 {
		t.Fatalf("5 scans parsed %d times, want 4 (each zip and the folder once)", n)
	}
	if got := strings.Join(m.catalog(), ","); got != "library/one,library/three,library/two" {
		t.Errorf("catalog = %s", got)
	}

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "one.zip"), later, later); err != nil {
		t.Fatal(err)
	}
	m4 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "four", "latest", 4, 3000)
	testkit.WriteTestZip(t, filepath.Join(dir, "two.zip"), m4.Entries()) // rewritten: another size
	m.Index()
	m.Index()
	if n := opens.Load(); n != 6 {
		t.Errorf("after two zips changed: parsed %d times in all, want 6", n)
	}
	if got := strings.Join(m.catalog(), ","); got != "library/four,library/one,library/three" {
		t.Errorf("catalog after the change = %s", got)
	}
	testkit.WriteTestFolder(t, folder, testkit.NewTestModel(t, "registry.ollama.ai", "library", "five", "latest", 5, 1000).Entries())
	m.Index()
	if n := opens.Load(); n != 7 {
		t.Errorf("after a model was added to the folder: parsed %d times in all, want 7", n)
	}
}

// TestMirrorServesRegularZipsOnly: a link in the folder is neither listed
// nor served, wherever it points (issue 18), nor is a hidden zip.
func TestMirrorServesRegularZipsOnly(t *testing.T) {
	out, outside := t.TempDir(), t.TempDir()
	real := testkit.NewTestModel(t, "registry.ollama.ai", "library", "real", "latest", 1, 1000)
	secret := testkit.NewTestModel(t, "registry.ollama.ai", "library", "secret", "latest", 2, 1000)
	hidden := testkit.NewTestModel(t, "registry.ollama.ai", "library", "hidden", "latest", 3, 1000)
	testkit.WriteTestZip(t, filepath.Join(out, "real.zip"), real.Entries())
	testkit.WriteTestZip(t, filepath.Join(outside, "secret.zip"), secret.Entries())
	testkit.WriteTestZip(t, filepath.Join(out, ".hidden.zip"), hidden.Entries())
	if err := os.Symlink(filepath.Join(outside, "secret.zip"), filepath.Join(out, "link.zip")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	os.MkdirAll(filepath.Join(out, ".state"), 0o755)
	testkit.WriteTestZip(t, filepath.Join(out, ".state", "inner.zip"), hidden.Entries())
	os.Symlink(filepath.Join(out, ".state", "inner.zip"), filepath.Join(out, "inner.zip"))
	_, srv := newTestMirror(t, out)
	_, body, err := testkit.GetBody(t, srv.URL+"/v2/_catalog", "")
	if err != nil || string(body) != `{"repositories":["library/real"]}` {
		t.Errorf("catalog = %v %s", err, body)
	}
	for _, m := range []testkit.TestModel{secret, hidden} {
		for _, d := range m.Order {
			resp, _, _ := testkit.GetBody(t, srv.URL+"/v2/library/x/blobs/"+d+"?direct=1", "")
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("blob %s of a linked or hidden zip: %d", d[:19], resp.StatusCode)
			}
		}
	}
}

// TestMirrorRefusesASwappedZip: a zip the scan read that becomes a link
// (to a file of the same size and time outside the folder, with other
// bytes) is not served from: a bounded loop swaps it and asks.
func TestMirrorRefusesASwappedZip(t *testing.T) {
	out, outside := t.TempDir(), t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "swap", "latest", 1, 4000)
	zipPath := filepath.Join(out, "swap.zip")
	testkit.WriteTestZip(t, zipPath, m.Entries())
	// Outside: the same zip with the layer's bytes altered, same size and time.
	data := testkit.ReadFile(t, zipPath)
	layer := m.Blobs[m.Order[1]]
	i := bytes.Index(data, layer)
	forged := bytes.Clone(data)
	for j := i; j < i+len(layer); j++ {
		forged[j] ^= 0x55
	}
	forgedPath := filepath.Join(outside, "swap.zip")
	if err := os.WriteFile(forgedPath, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(zipPath)
	os.Chtimes(forgedPath, info.ModTime(), info.ModTime())
	link, keep := filepath.Join(out, "swap.link"), filepath.Join(out, "swap.keep")
	if err := os.Symlink(forgedPath, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	mir, srv := newTestMirror(t, out)
	mir.RescanAfter = time.Hour // the index keeps the regular zip it read
	blobURL := srv.URL + "/v2/library/swap/blobs/" + m.Order[1] + "?direct=1"
	for n := range 20 {
		mir.rescanSoon()
		resp, body, err := testkit.GetBody(t, blobURL, "")
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, layer) {
			t.Fatalf("round %d, the real zip: %v %v", n, err, resp)
		}
		os.Rename(zipPath, keep)
		os.Rename(link, zipPath) // the zip is now a link outside
		resp, body, err = testkit.GetBody(t, blobURL, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("round %d: a link swapped in for the zip was served (forged bytes: %v)", n, !bytes.Equal(body, layer))
		}
		os.Rename(zipPath, link)
		os.Rename(keep, zipPath)
	}
}
