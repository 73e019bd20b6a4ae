package models

import (
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstallStagingSurvivesOllamaServe: files two hours old in the
// install staging folder survive an `ollama serve` start on that models
// folder, while the same in blobs/ (a partial name, an unreferenced blob)
// are pruned: the staging folder is outside what Ollama prunes.
func TestInstallStagingSurvivesOllamaServe(t *testing.T) {
	bin := testkit.FindStockOllama(t)
	modelsDir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	hexDigest := strings.Repeat("ab", 32)
	stage := filepath.Join(modelsDir, InstallStagingFolder, "tiny-latest-0123456789ab")
	kept := []string{
		filepath.Join(stage, "sha256-"+hexDigest),
		filepath.Join(stage, "sha256-"+hexDigest+".part"),
		filepath.Join(stage, "sha256-"+hexDigest+".part.json"),
		filepath.Join(stage, "manifest"),
	}
	pruned := []string{
		filepath.Join(modelsDir, "blobs", "sha256-"+hexDigest+"-partial"),
		filepath.Join(modelsDir, "blobs", "sha256-"+hexDigest),
	}
	for _, p := range append(kept, pruned...) {
		testkit.WriteTestFile(t, p, "data")
		if err := os.Chtimes(p, old, old); err != nil { // touch -d '2 hours ago'
			t.Fatal(err)
		}
	}
	os.Chtimes(stage, old, old)
	os.Chtimes(filepath.Dir(stage), old, old)
	o := testkit.StartStockOllama(t, bin, modelsDir)
	deadline := time.Now().Add(15 * time.Second)
	for !allGone(pruned) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !allGone(pruned) {
		t.Fatalf("ollama serve did not prune blobs/ within 15s (the control failed):\n%s", o.Out.String())
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("ollama serve removed %s: %v", p, err)
		}
	}
}

func allGone(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return false
		}
	}
	return true
}
