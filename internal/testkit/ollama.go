package testkit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FindStockOllama finds the stock Ollama: $OLLAMA_BIN, the shared tools
// folder beside the repository (or its worktrees), ollama on PATH.
// Without one the test is skipped, except under CI where it must be there.
func FindStockOllama(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("OLLAMA_BIN"), filepath.Join("..", "shared", "tools", "ollama"), filepath.Join("..", "..", "shared", "tools", "ollama")}
	if p, err := exec.LookPath("ollama"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the stock Ollama is missing: set OLLAMA_BIN or put it at ../shared/tools/ollama")
	}
	t.Skip("the stock Ollama is missing (set OLLAMA_BIN, or ../shared/tools/ollama): skipping")
	return ""
}

// StockOllama is one `ollama serve` with its own HOME, models folder and port.
type StockOllama struct {
	Bin, home, Models, host string
	extraEnv                []string
	Out                     *LockedBuffer
}

func (o *StockOllama) Env() []string {
	return append([]string{"PATH=/usr/bin:/bin", "HOME=" + o.home, "OLLAMA_MODELS=" + o.Models, "OLLAMA_HOST=" + o.host, "OLLAMA_NO_CLOUD=1"}, o.extraEnv...)
}

// StartStockOllama starts `ollama serve` on models, with extraEnv, and
// waits (bounded) until it answers.
func StartStockOllama(t *testing.T, bin, modelsDir string, extraEnv ...string) *StockOllama {
	t.Helper()
	o := &StockOllama{Bin: bin, home: t.TempDir(), Models: modelsDir, host: FreeLoopbackAddr(t), extraEnv: extraEnv, Out: &LockedBuffer{}}
	cmd := exec.Command(bin, "serve")
	cmd.Env = o.Env()
	cmd.Stdout, cmd.Stderr = o.Out, o.Out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ollama serve: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("ollama serve did not exit within 10s of being killed")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 400 && time.Now().Before(deadline); i++ {
		select {
		case <-exited:
			t.Fatalf("ollama serve exited:\n%s", o.Out.String())
		default:
		}
		if resp, err := http.Get("http://" + o.host + "/api/version"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ollama serve did not answer within 20s:\n%s", o.Out.String())
	return nil
}

// Run runs the ollama CLI against this server.
func (o *StockOllama) Run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Bin, args...)
	cmd.Env, cmd.Dir = o.Env(), dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ollama %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, o.Out.String())
	}
	return string(out)
}

// WriteTestGGUF writes a GGUF v3 file that `ollama create` accepts: the
// metadata keys Ollama reads and one F32 tensor of dataBytes bytes. The
// tensor is named under "v." so the stock build, which has no llama.cpp,
// does not ask llama-quantize to check it.
func WriteTestGGUF(path string, dataBytes int, seed byte) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	str := func(s string) { binary.Write(&b, le, uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	binary.Write(&b, le, uint32(3))
	binary.Write(&b, le, uint64(1)) // tensors
	binary.Write(&b, le, uint64(4)) // metadata pairs
	str("general.architecture")
	binary.Write(&b, le, uint32(8)) // string
	str("llama")
	str("general.name")
	binary.Write(&b, le, uint32(8))
	str("omd-test")
	str("llama.context_length")
	binary.Write(&b, le, uint32(4)) // uint32
	binary.Write(&b, le, uint32(2048))
	str("general.file_type")
	binary.Write(&b, le, uint32(4))
	binary.Write(&b, le, uint32(0)) // F32
	str("v.test")
	binary.Write(&b, le, uint32(1)) // dimensions
	binary.Write(&b, le, uint64(dataBytes/4))
	binary.Write(&b, le, uint32(0)) // F32
	binary.Write(&b, le, uint64(0)) // offset
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b.Bytes())
	for left := dataBytes; err == nil && left > 0; {
		chunk := TestBytes(min(left, 1<<20), seed)
		_, err = f.Write(chunk)
		left -= len(chunk)
		seed++
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// PushStockModel makes a model with the stock Ollama (CreateStockModel,
// seed 5) and pushes it to the registry as ref.
func PushStockModel(t *testing.T, o *StockOllama, ref string, dataBytes int) {
	t.Helper()
	CreateStockModel(t, o, "omdtest", dataBytes, 5)
	o.Run(t, "", "cp", "omdtest", ref)
	o.Run(t, "", "push", "--insecure", ref)
}

// CreateStockModel makes the model name with the stock Ollama's `ollama
// create`: a GGUF of dataBytes whose bytes depend on seed, a license, a
// parameter and a system prompt. The same size and seed give the same
// model blob, so two such models share it.
func CreateStockModel(t *testing.T, o *StockOllama, name string, dataBytes int, seed byte) {
	t.Helper()
	dir := t.TempDir()
	if err := WriteTestGGUF(filepath.Join(dir, "tiny.gguf"), dataBytes, seed); err != nil {
		t.Fatal(err)
	}
	modelfile := "FROM ./tiny.gguf\nLICENSE \"\"\"OMD Test License 1.0\nsecond line\"\"\"\nPARAMETER temperature 0.25\nSYSTEM You answer briefly.\n"
	if err := os.WriteFile(filepath.Join(dir, "Modelfile"), []byte(modelfile), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Run(t, dir, "create", name, "-f", "Modelfile")
}

var OllamaListID = regexp.MustCompile(`(?m)^(\S+)\s+([0-9a-f]{12})\s`)

// PullLikeOllama speaks the registry protocol the way stock Ollama does
// (server/images.go, server/download.go): the manifest with a Docker v2
// Accept header, then per blob a HEAD for the size, a GET whose redirect
// policy stops at the first redirect to another host name, and ranged GETs
// against that Location. It returns the files it would write.
func PullLikeOllama(t *testing.T, base, repo, tag string) map[string][]byte {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, manifest)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != LayoutTestDigest(manifest) {
		t.Errorf("Docker-Content-Digest = %q, want %q", got, LayoutTestDigest(manifest))
	}
	if got := resp.Header.Get("Content-Type"); got != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest Content-Type = %q", got)
	}
	var doc struct {
		Config FakeDescriptor
		Layers []FakeDescriptor
	}
	if err := json.Unmarshal(manifest, &doc); err != nil {
		t.Fatal(err)
	}
	baseURL, _ := url.Parse(base)
	files := map[string][]byte{}
	for _, ref := range append([]FakeDescriptor{doc.Config}, doc.Layers...) {
		blobURL := base + "/v2/" + repo + "/blobs/" + ref.Digest
		head, err := client.Head(blobURL)
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != 200 || head.ContentLength != ref.Size {
			t.Fatalf("HEAD %s: %d, Content-Length %d, want 200, %d", ref.Digest, head.StatusCode, head.ContentLength, ref.Size)
		}

		stopAtOtherHost := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > 10 {
				return fmt.Errorf("too many redirects")
			}
			if r.URL.Hostname() == baseURL.Hostname() {
				return nil
			}
			return http.ErrUseLastResponse
		}}
		get, err := stopAtOtherHost.Get(blobURL)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		if get.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("GET %s: %d, want 307 to another host name", ref.Digest, get.StatusCode)
		}
		direct, err := get.Location()
		if err != nil {
			t.Fatal(err)
		}
		if direct.Hostname() == baseURL.Hostname() {
			t.Fatalf("redirect stays on host %s", direct.Hostname())
		}

		// Ollama cuts a blob into parts; three ranges here.
		var blob []byte
		for _, r := range splitRanges(ref.Size, 3) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", direct.String(), nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", r[0], r[1]-1))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("ranged GET %s: %v", direct, err)
			}
			part, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusPartialContent || int64(len(part)) != r[1]-r[0] {
				t.Fatalf("range %v: %d with %d bytes", r, resp.StatusCode, len(part))
			}
			blob = append(blob, part...)
		}
		if LayoutTestDigest(blob) != ref.Digest {
			t.Fatalf("blob %s came back with digest %s", ref.Digest, LayoutTestDigest(blob))
		}
		files[BlobEntryName(ref.Digest)] = blob
	}
	files["manifest"] = manifest
	return files
}

func splitRanges(size int64, n int64) [][2]int64 {
	var out [][2]int64
	step := max(size/n, 1)
	for off := int64(0); off < size; off += step {
		out = append(out, [2]int64{off, min(off+step, size)})
	}
	return out
}
