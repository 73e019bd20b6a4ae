package models

import (
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"testing"
)

// BenchmarkOpenManifestBomb reports what reading issue 18's bomb costs
// now (it took 3.2 GB before the caps).
func BenchmarkOpenManifestBomb(b *testing.B) {
	bomb := filepath.Join(b.TempDir(), "bomb.zip")
	testkit.WriteManifestBomb(b, bomb, 300, 4<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenLayout(bomb); err == nil {
			b.Fatal("bomb accepted")
		}
	}
}
