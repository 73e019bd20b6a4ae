package models

import (
	"ollama-model-downloader/internal/testkit"
	"strings"
	"testing"
)

// TestShowReadsTheConfig: show on a model whose config this test wrote,
// from the in-process registry: every field, and the model blob never
// requested.
func TestShowReadsTheConfig(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	digest, modelDigest, size := testkit.AddShowModel(f)
	c := newTestPuller(t, f.URL)
	info, err := c.Show(t.Context(), "qwen:0.5b", ReusePlaces{})
	if err != nil {
		t.Fatal(err)
	}
	want := ModelInfo{Name: f.Host + "/library/qwen:0.5b", Display: "qwen:0.5b", ID: strings.TrimPrefix(digest, "sha256:")[:12], Digest: digest,
		Size: size, Family: "qwen2", Parameters: "494.03M", Quantization: "Q4_0",
		License: "Apache License"}
	if info.Name != want.Name || info.ID != want.ID || info.Size != want.Size || info.Family != want.Family || info.Parameters != want.Parameters ||
		info.Quantization != want.Quantization || info.License != want.License || !strings.Contains(info.Params, "temperature") {
		t.Errorf("Show = %+v\nwant %+v", info, want)
	}
	var types []string
	for _, l := range info.Layers {
		types = append(types, l.Type)
	}
	if got := strings.Join(types, " "); got != "config model template license params" {
		t.Errorf("layer types %q", got)
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return f.CDNHits[modelDigest] + f.RegistryBlobHits[modelDigest] }); n != 0 {
		t.Errorf("show requested the model blob %d times", n)
	}
}
