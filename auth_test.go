package main

import (
	"bytes"
	"errors"
	"ollama-model-downloader/internal/fault"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "test-token-0123456789abcdef"

func TestTokenFile(t *testing.T) {
	t.Setenv("OMD_TOKEN", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  "+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseOptions([]string{"-token-file", file}, &bytes.Buffer{})
	if err != nil || o.token != testToken {
		t.Errorf("-token-file: token %q, err %v", o.token, err)
	}
	t.Setenv("OMD_TOKEN", "from-the-environment-0123")
	if o, err := parseOptions([]string{"-token-file", file}, &bytes.Buffer{}); err != nil || o.token != testToken {
		t.Errorf("-token-file beside OMD_TOKEN: token %q, err %v; want the file's", o.token, err)
	}
	if o, err := parseOptions(nil, &bytes.Buffer{}); err != nil || o.token != "from-the-environment-0123" {
		t.Errorf("OMD_TOKEN: token %q, err %v", o.token, err)
	}
	if _, err := parseOptions([]string{"-token", testToken, "-token-file", file}, &bytes.Buffer{}); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("-token and -token-file: %v, want ErrBadInput", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, f := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := parseOptions([]string{"-token-file", f}, &bytes.Buffer{}); !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("-token-file %s: %v, want ErrBadInput", f, err)
		}
	}
}

// TestCLIRefusesUnsafeServer: a short token, or the web UI on all
// interfaces without one, exits 2 with a line that says what to do.
func TestCLIRefusesUnsafeServer(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"short token", []string{"-no-browser", "-port", "0", "-token", "s3cret"}, []string{"at least 16", "-token-file"}},
		{"all interfaces without a token", []string{"-no-browser", "-port", "0", "-listen", "0.0.0.0"}, []string{"-listen 0.0.0.0", "token", "-token-file"}},
		{"all IPv6 interfaces without a token", []string{"-no-browser", "-port", "0", "-listen", "::"}, []string{"-listen ::", "token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := command(t, t.Context(), dir, tc.args...)
			cmd.Env = append(cmd.Env, "OMD_TOKEN=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("err = %v, want exit status 2 (stderr %q)", err, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("refused start wrote %d entries", len(entries))
			}
		})
	}
}
