package models

import (
	"ollama-model-downloader/internal/testkit"
	"strings"
	"testing"
)

// TestRegistryIntegration pushes a small model to a real Docker
// Distribution registry through its push API and pulls it back: once with
// blobs served by the registry, once with the redirect storage middleware
// sending blob GETs (307) to a second local server, as registry.ollama.ai
// sends them to its CDN.
func TestRegistryIntegration(t *testing.T) {
	bin := testkit.FindRegistry(t)
	for _, redirect := range []bool{false, true} {
		name := "direct"
		if redirect {
			name = "redirect"
		}
		t.Run(name, func(t *testing.T) {
			reg := testkit.StartDistribution(t, bin, redirect)
			m := testkit.NewFakeModel(t, "tiny:latest", testkit.TestBytes(256<<10, 7), []byte("{{ .Prompt }}"), []byte(`{"temperature":0}`))
			reg.Push(t, "library/tiny", "latest", m)

			c := newTestPuller(t, reg.URL)
			for _, ref := range []string{reg.Host + "/library/tiny", "tiny@" + m.Digest} {
				res, err := c.Pull(t.Context(), PullRequest{Ref: ref, OutputDir: t.TempDir(), Retries: -1})
				if err != nil {
					t.Fatalf("Pull %s: %v\nregistry log:\n%s", ref, err, reg.Log())
				}
				file := "latest"
				if strings.Contains(ref, "@") {
					file = "sha256-" + strings.TrimPrefix(m.Digest, "sha256:")
				}
				testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(reg.Host, "library", "tiny", file, m))
			}
			if redirect {
				if got, want := reg.CdnHits.Load(), int64(2*len(m.Blobs)); got != want {
					t.Errorf("the blob server got %d requests, want %d (every blob through the redirect)", got, want)
				}
				if n := reg.CdnAuth.Load(); n != 0 {
					t.Errorf("the blob server saw an Authorization header %d times", n)
				}
			}
		})
	}
}
