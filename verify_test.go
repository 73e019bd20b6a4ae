package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunVerifyCommand(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 2000, 10)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zip")
	writeTestZip(t, good, m.entries())
	tampered := filepath.Join(dir, "tampered.zip")
	entries := m.entries()
	entries[1].data = append([]byte(nil), entries[1].data...)
	entries[1].data[5] ^= 1
	writeTestZip(t, tampered, entries)
	folder := t.TempDir()
	writeTestFolder(t, folder, m.entries())

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{"good zip", []string{good}, 0, []string{"good.zip: OK: 1 model(s), 3 blob(s)", "model registry.ollama.ai/library/tiny:latest (" + m.digest + ")"}},
		{"good folder", []string{folder}, 0, []string{": OK: 1 model(s)"}},
		{"tampered", []string{tampered}, 1, []string{"problem: blobs/sha256-", "content has digest", "FAILED: 1 problem(s)"}},
		{"one good one bad", []string{good, tampered}, 1, []string{"good.zip: OK", "tampered.zip: FAILED"}},
		{"not a zip", []string{filepath.Join(dir, "missing.zip")}, 1, []string{"FAILED"}},
		{"no argument", nil, 2, nil},
		{"unknown flag", []string{"-x", good}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runVerifyCommand(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}
