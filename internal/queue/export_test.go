package queue

import (
	"errors"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// newExportManager is a manager whose puller can only export (its
// registry refuses connections), with a closed time window: noon, and a
// window of 02:00–07:00.
func newExportManager(t *testing.T, dir string, hist *history.Store) *Manager {
	t.Helper()
	night, err := ParseWindow("02:00", "07:00")
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2026, 5, 1, 12, 0, 0, 0, time.Local)
	m, err := New(Config{
		OutputDir: dir, Concurrency: 2, Retries: 0, History: hist,
		Models: modelstest.NewPuller(t, "http://"+testkit.ClosedPort(t)),
		Window: night, Now: func() time.Time { return noon },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.saveEvery = 20 * time.Millisecond
	return m
}

// TestManagerExport: an export is a job of its own kind: it runs outside
// the time window (it uses no network) while a pull waits, it writes the
// zip into the output folder, it is recorded once, and the same models
// asked again (in another order or case) are the same job.
func TestManagerExport(t *testing.T) {
	src := t.TempDir()
	a := testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "0.5b", 1, 2<<20)
	b := testkit.NewTestModel(t, "registry.ollama.ai", "library", "llama3.2", "latest", 2, 100)
	testkit.WriteTestFolder(t, src, a.Entries())
	testkit.WriteTestFolder(t, src, b.Entries())
	dir := t.TempDir()
	hist := mustOpenHistory(t, dir)
	m := newExportManager(t, dir, hist)
	runManager(t, m)

	pull := mustAdd(t, m, "qwen2:0.5b") // a pull: outside the window it waits
	views, err := m.AddAll([]AddRequest{{Source: "qwen2:0.5b llama3.2", Export: true, ModelsDir: src, Retries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	v := views[0]
	if v.Kind != KindExport || v.Name != "qwen2:0.5b, llama3.2:latest" || v.Path != "qwen2-0.5b-and-1-more.zip" || v.ModelsDir != src {
		t.Errorf("added export = %+v", v)
	}
	same, err := m.AddAll([]AddRequest{{Source: "LLAMA3.2:latest  qwen2:0.5b", Export: true, ModelsDir: src, Retries: -1}})
	if err != nil || same[0].ID != v.ID {
		t.Errorf("the same export again: %+v, %v; want job %s", same, err, v.ID)
	}
	if err := m.Wait(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	done, _ := m.Get(v.ID)
	if done.State != JobCompleted || done.Path != v.Path {
		t.Fatalf("export = %+v", done)
	}
	zip := filepath.Join(dir, v.Path)
	l, err := models.OpenLayout(zip)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 || len(l.Manifests) != 2 {
		t.Errorf("the zip: %d manifests, problems %q", len(l.Manifests), problems)
	}
	if got, _ := m.Get(pull.ID); got.State != jobQueued {
		t.Errorf("the pull outside the window is %s, want queued", got.State)
	}

	page, err := hist.List(history.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 {
		t.Fatalf("history = %+v, want the export's record", page)
	}
	rec := page.Records[0]
	if rec.Kind != KindExport || rec.Status != JobCompleted || rec.Source != "qwen2:0.5b llama3.2" || rec.FileName != "qwen2-0.5b-and-1-more.zip" ||
		rec.Domain != "local" || rec.FileType != "model" || rec.Size != done.BytesTotal {
		t.Errorf("history record = %+v", rec)
	}

	for _, bad := range []AddRequest{
		{Source: "qwen2", Export: true, ModelsDir: "relative/models"},
		{Source: "  ", Export: true, ModelsDir: src},
		{Source: "bad!name", Export: true, ModelsDir: src},
		{Source: "https://example.com/x", Export: true, ModelsDir: src},
	} {
		if err := m.Check(bad); err == nil {
			t.Errorf("Check(%+v) = nil error", bad)
		}
	}
}

// TestManagerExportCancelAndRestart: an export waiting in the queue
// survives a restart as an export; a running one canceled leaves neither
// its resume state nor its unfinished zip.
func TestManagerExportCancelAndRestart(t *testing.T) {
	src := t.TempDir()
	a := testkit.NewTestModel(t, "registry.ollama.ai", "library", "big", "latest", 1, 2<<20)
	testkit.WriteTestFolder(t, src, a.Entries())
	dir := t.TempDir()
	m := newExportManager(t, dir, nil)
	// Queued, not run: the manager does not run yet.
	views, err := m.AddAll([]AddRequest{{Source: "big", Export: true, ModelsDir: src, Retries: -1, LimitRate: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	id := views[0].ID
	m.Close()

	m2 := newExportManager(t, dir, nil)
	runManager(t, m2)
	got, err := m2.Get(id)
	if err != nil || got.Kind != KindExport || got.Name != "big:latest" || got.ModelsDir != src {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
	// At 64 KiB/s the 2 MiB blob takes half a minute: cancel it running.
	waitUntil(t, m2, "the export copying", func() bool { v, _ := m2.Get(id); return v.Phase == "copying" && v.BytesDone > 0 })
	name := registry.Name{Host: "registry.ollama.ai", Namespace: "library", Model: "big", Tag: "latest"}
	staging := models.ExportStagingDir(dir, []registry.Name{name}, src)
	if _, err := os.Stat(staging); err != nil {
		t.Fatalf("no resume state while exporting: %v", err)
	}
	if err := m2.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resume state after Cancel: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		if e.Name() != ".state" {
			left = append(left, e.Name())
		}
	}
	if len(left) != 0 {
		t.Errorf("left in the output folder after Cancel: %v", left)
	}
	// The models folder is never touched.
	if got := testkit.ReadTree(t, src); !reflect.DeepEqual(got, a.Files()) {
		t.Errorf("the models folder changed")
	}
	if v, _ := m2.Get(id); v.State != jobCanceled || !strings.Contains(v.Name, "big") {
		t.Errorf("after Cancel: %+v", v)
	}
}
