package main

import (
	"bytes"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/testkit"
	"strings"
	"testing"
)

// TestShowPrintsWhatOllamaShows: the show command's text names the model,
// its ID, parameters, quantization, license and params.
func TestShowPrintsWhatOllamaShows(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	testkit.AddShowModel(f)
	info, err := modelstest.NewPuller(t, f.URL).Show(t.Context(), "qwen:0.5b", models.ReusePlaces{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printModelInfo(&out, info)
	for _, s := range []string{"qwen:0.5b", info.ID, "494.03M", "Q4_0", "Apache License", "stop", `"<|im_end|>"`, "temperature"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("show's text lacks %q:\n%s", s, out.String())
		}
	}
}
