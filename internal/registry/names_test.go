package registry

import (
	"errors"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseModelName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"llama3", Name{"registry.ollama.ai", "library", "llama3", "latest", ""}},
		{"llama3:8b", Name{"registry.ollama.ai", "library", "llama3", "8b", ""}},
		{"qwen2:0.5b", Name{"registry.ollama.ai", "library", "qwen2", "0.5b", ""}},
		{"llama3.2:3b-instruct-q4_K_M", Name{"registry.ollama.ai", "library", "llama3.2", "3b-instruct-q4_K_M", ""}},
		{"jmorgan/tiny", Name{"registry.ollama.ai", "jmorgan", "tiny", "latest", ""}},
		{"localhost/tiny", Name{"registry.ollama.ai", "localhost", "tiny", "latest", ""}},
		{"127.0.0.1:5000/library/tiny", Name{"127.0.0.1:5000", "library", "tiny", "latest", ""}},
		{"127.0.0.1:5000/library/tiny:v1", Name{"127.0.0.1:5000", "library", "tiny", "v1", ""}},
		{"hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", Name{"hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", ""}},
		{"Registry.Ollama.AI/Library/Llama3:Latest", Name{"Registry.Ollama.AI", "Library", "Llama3", "Latest", ""}},
		{"llama3@" + testkit.TestDigest, Name{"registry.ollama.ai", "library", "llama3", "", testkit.TestDigest}},
		{"llama3:8b@" + strings.ToUpper(testkit.TestDigest), Name{"registry.ollama.ai", "library", "llama3", "8b", testkit.TestDigest}},
		{"_x/_y:_z", Name{"registry.ollama.ai", "_x", "_y", "_z", ""}},
		{strings.Repeat("m", 80) + ":" + strings.Repeat("t", 80), Name{"registry.ollama.ai", "library", strings.Repeat("m", 80), strings.Repeat("t", 80), ""}},
		{strings.Repeat("h", 350) + "/n/m", Name{strings.Repeat("h", 350), "n", "m", "latest", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseName(tc.in, "registry.ollama.ai")
			if err != nil {
				t.Fatalf("ParseName(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseName(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseModelNameDefaultHost(t *testing.T) {
	got, err := ParseName("tiny", "127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "127.0.0.1:5000" {
		t.Errorf("Host = %q, want the default host 127.0.0.1:5000", got.Host)
	}
}

func TestParseModelNameErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string // a piece of the rule the message must name
	}{
		{"", "empty"},
		{"llama3:", "tag after ':' is empty"},
		{":latest", "model \"\": must not be empty"},
		{"/llama3", "namespace \"\": must not be empty"},
		{"a//b", "namespace \"\": must not be empty"},
		{"-llama", "must start with a letter, digit or '_'"},
		{"llama:-x", "tag \"-x\": must start"},
		{".hidden", "must start"},
		{"..", "must start"},
		{"lla ma", "may contain only letters"},
		{"llama/../../etc", "too many '/'"},
		{"a/b/c/d", "too many '/'"},
		{"x\\y", "may contain only"},
		{"my.ns/model", "a host needs an explicit namespace"},
		{"127.0.0.1:5000/tiny", "a host needs an explicit namespace"},
		{"hf.co/model", "a host needs an explicit namespace"},
		{"host:99999/ns/m", "port must be a number"},
		{"host:abc/ns/m", "port must be a number"},
		{"ho$t/ns/m", "may contain only"},
		{strings.Repeat("h", 351) + "/n/m", "longer than 350"},
		{strings.Repeat("m", 81), "longer than 80"},
		{"m:" + strings.Repeat("t", 81), "longer than 80"},
		{strings.Repeat("n", 81) + "/m", "longer than 80"},
		{"m@sha256:abc", "sha256: followed by 64 hex"},
		{"m@md5:" + strings.Repeat("a", 64), "sha256: followed by 64 hex"},
		{"m@" + testkit.TestDigest + "@" + testkit.TestDigest, "sha256: followed by 64 hex"},
		{"https://registry.ollama.ai/library/llama3", "no scheme"},
		{"model\x00", "may contain only"},
		{"модель", "must start"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseName(tc.in, "registry.ollama.ai")
			if err == nil {
				t.Fatalf("ParseName(%q) succeeded, want an error", tc.in)
			}
			if !errors.Is(err, fault.ErrBadInput) {
				t.Errorf("error %v does not match ErrBadInput", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not name the rule %q", err, tc.wantMsg)
			}
		})
	}
}

func TestModelNameForms(t *testing.T) {
	tests := []struct {
		in                      string
		str, display, zip, file string
	}{
		{"llama3", "registry.ollama.ai/library/llama3:latest", "llama3:latest", "llama3-latest.zip", "latest"},
		{"jmorgan/tiny:v2", "registry.ollama.ai/jmorgan/tiny:v2", "jmorgan/tiny:v2", "tiny-v2.zip", "v2"},
		{"127.0.0.1:5000/library/tiny", "127.0.0.1:5000/library/tiny:latest", "127.0.0.1:5000/library/tiny:latest", "tiny-latest.zip", "latest"},
		{"hf.co/u/r:Q4_K_M", "hf.co/u/r:Q4_K_M", "hf.co/u/r:Q4_K_M", "r-Q4_K_M.zip", "Q4_K_M"},
		{"llama3@" + testkit.TestDigest, "registry.ollama.ai/library/llama3@" + testkit.TestDigest, "llama3@" + testkit.TestDigest,
			"llama3-sha256-8de95da68dc4.zip", "sha256-8de95da68dc485c0889c205384c24642f83ca18d089559c977ffc6a3972a71a8"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, err := ParseName(tc.in, "registry.ollama.ai")
			if err != nil {
				t.Fatal(err)
			}
			if got := n.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := n.DisplayName(); got != tc.display {
				t.Errorf("DisplayName() = %q, want %q", got, tc.display)
			}
			if got := n.ZipName(); got != tc.zip {
				t.Errorf("ZipName() = %q, want %q", got, tc.zip)
			}
			if got := n.ManifestFile(); got != tc.file {
				t.Errorf("ManifestFile() = %q, want %q", got, tc.file)
			}
		})
	}
}

// FuzzParseModelName checks the properties the rest of the program relies
// on: an accepted name round-trips through String, and none of its parts
// can climb out of a folder when used as a path.
func FuzzParseModelName(f *testing.F) {
	for _, s := range []string{"llama3", "qwen2:0.5b", "127.0.0.1:5000/library/tiny", "hf.co/u/r:Q4", "m@" + testkit.TestDigest, "a/b/c/d", "../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s, "registry.ollama.ai")
		if err != nil {
			if !errors.Is(err, fault.ErrBadInput) {
				t.Fatalf("error %v does not match ErrBadInput", err)
			}
			return
		}
		again, err := ParseName(n.String(), "other.host")
		if err != nil {
			t.Fatalf("String() %q of an accepted name does not parse: %v", n.String(), err)
		}
		if again != n {
			t.Fatalf("round trip %q: got %+v, want %+v", s, again, n)
		}
		for _, part := range []string{n.Host, n.Namespace, n.Model, n.ManifestFile(), n.ZipName()} {
			if part == "" || part == "." || part == ".." || strings.ContainsAny(part, `/\`) || filepath.Base(part) != part {
				t.Fatalf("name %q gives unsafe path part %q", s, part)
			}
		}
	})
}
