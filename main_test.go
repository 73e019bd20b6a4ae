package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustOpenHistory(t testing.TB, outputDir string) *history.Store {
	t.Helper()
	h, err := history.Open(outputDir, nil)
	if err != nil {
		t.Fatalf("openHistory: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestMain lets a test run this very binary as the real command: with
// OMD_TEST_MAIN=1 the test binary is ollama-model-downloader. Subprocess
// tests can then kill it with SIGKILL like a user's crash would.
func TestMain(m *testing.M) {
	if os.Getenv("OMD_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// command runs the binary as a subprocess with args in dir.
func command(t *testing.T, ctx context.Context, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OMD_TEST_MAIN=1", "HTTP_PROXY=", "HTTPS_PROXY=", "ALL_PROXY=", "http_proxy=", "https_proxy=", "all_proxy=")
	return cmd
}

func TestParseOptionsFlagsAnywhere(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		retries int
		conc    int
		want    []string
	}{
		{"flags first", []string{"-retries", "5", "https://h/x.iso"}, 5, 4, []string{"https://h/x.iso"}},
		{"flags after", []string{"https://h/x.iso", "-retries", "5"}, 5, 4, []string{"https://h/x.iso"}},
		{"mixed", []string{"-concurrency=2", "https://h/a", "-retries", "1", "https://h/b"}, 1, 2, []string{"https://h/a", "https://h/b"}},
		{"double dash", []string{"-retries", "0", "--", "https://h/-x"}, 0, 4, []string{"https://h/-x"}},
		{"none", []string{"-port", "0"}, 3, 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if o.retries != tc.retries || o.concurrency != tc.conc || !reflect.DeepEqual(o.args, tc.want) {
				t.Errorf("got retries=%d concurrency=%d args=%q", o.retries, o.concurrency, o.args)
			}
		})
	}
}

func TestCLIBadInputExitsTwoWithOneLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-bogus", "https://h/x"}, "flag provided but not defined: -bogus"},
		{"concurrency too high", []string{"-concurrency", "33", "https://h/x"}, "-concurrency must be between 1 and 32"},
		{"concurrency zero", []string{"https://h/x", "-concurrency", "0"}, "-concurrency must be between 1 and 32"},
		{"connections too high", []string{"https://h/x", "-connections", "64"}, "-connections must be between 1 and 32"},
		{"ftp URL", []string{"ftp://h/x"}, `"ftp://h/x" is neither a URL`},
		{"URL without host", []string{"https:///x"}, "no host name"},
		{"-o with two", []string{"-o", "x", "https://h/a", "https://h/b"}, "-o names one output"},
		{"bad sha", []string{"-sha256", "abc", "https://h/a"}, "-sha256 must be 64 hexadecimal"},
		{"bad proxy", []string{"-proxy", "ftp://p:1", "https://h/a"}, "invalid proxy"},
		{"bad registry", []string{"-registry", "registry.local", "https://h/a"}, "-registry must be an http:// or https:// URL"},
		{"bad rate", []string{"-limit-rate", "fast", "https://h/a"}, "-limit-rate: invalid rate"},
		{"bad flag value", []string{"-retries", "many", "https://h/a"}, "invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := command(t, t.Context(), dir, tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("err = %v, want exit status 2", err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if !strings.Contains(lines[0], tc.want) || len(lines) > 2 {
				t.Errorf("stderr = %q, want one line containing %q", stderr.String(), tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("bad input wrote %d entries", len(entries))
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	cmd := command(t, t.Context(), t.TempDir(), "-h")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"Examples:", "-retries", "-concurrency", "-keep-staging", "-registry"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestCLIDownloadsAndReportsFailure(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(100<<10))
	dir := t.TempDir()
	cmd := command(t, t.Context(), dir, o.FileURL(), o.URL+"/nothing-here", "-retries", "0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("err = %v, want exit status 1 (one download failed); stderr=%s", err, stderr.String())
	}
	got := testkit.ReadFile(t, filepath.Join(dir, "downloaded-models", "data.bin"))
	if !bytes.Equal(got, o.Content()) {
		t.Error("the good download is not byte-exact")
	}
	if !strings.Contains(stderr.String(), "HTTP 404") {
		t.Errorf("stderr does not explain the failure: %s", stderr.String())
	}
}

// TestCLIResumesAfterSIGKILL is the promise of issue 2: kill the process
// mid-download, run the same command again, get the exact bytes.
func TestCLIResumesAfterSIGKILL(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(8<<20), testkit.WithThrottle(10*time.Millisecond))
	dir := t.TempDir()
	args := []string{o.FileURL(), "-retries", "5", "-connections", "4"}
	part := engine.PartPath(filepath.Join(dir, "downloaded-models", "data.bin"))

	cmd := command(t, t.Context(), dir, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := engine.ReadPartState(strings.TrimSuffix(part, ".part")); err == nil && st.Saved() >= 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no progress saved within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The server notices the killed process's connections late (it writes
	// into closed sockets until one fails); count from when it has.
	for i := 0; i < 250 && o.Inflight.Load() > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	sentBefore := o.BytesSent.Load()
	if _, err := os.Stat(filepath.Join(dir, "downloaded-models", "data.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a finished file exists after the kill")
	}

	o.SetThrottle(0)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := command(t, ctx, dir, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	got := testkit.ReadFile(t, filepath.Join(dir, "downloaded-models", "data.bin"))
	if testkit.Sha256Of(got) != testkit.Sha256Of(o.Content()) {
		t.Fatal("sha256 differs after kill and resume")
	}
	resent := o.BytesSent.Load() - sentBefore
	if total := int64(len(o.Content())); resent >= total {
		t.Errorf("second run fetched %d bytes of %d: nothing was resumed", resent, total)
	}
	ranges := o.SeenRanges()
	if last := ranges[len(ranges)-1]; !strings.HasPrefix(last, "bytes=") {
		t.Errorf("second run's GET had Range %q, want a resume", last)
	}
}

// TestCLISurvivesRepeatedKills kills the command at random moments, 20
// times, while it downloads two files over several connections. After
// every kill: no finished file with wrong bytes, resume state readable;
// at the end the same command finishes both files byte-exact.
func TestCLISurvivesRepeatedKills(t *testing.T) {
	a := testkit.NewOrigin(t, testkit.WithSize(6<<20), testkit.WithThrottle(3*time.Millisecond), testkit.WithPath("/a.bin"))
	b := testkit.NewOrigin(t, testkit.WithSize(3<<20), testkit.WithThrottle(3*time.Millisecond), testkit.WithPath("/b.bin"), testkit.WithoutHead())
	dir := t.TempDir()
	out := filepath.Join(dir, "downloaded-models")
	args := []string{a.FileURL(), b.FileURL(), "-connections", "4", "-retries", "10"}
	want := map[string][]byte{"a.bin": a.Content(), "b.bin": b.Content()}

	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 20 && time.Now().Before(deadline); i++ {
		cmd := command(t, t.Context(), dir, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// The queue file is always whole JSON: written by temp + rename.
		if data, err := os.ReadFile(filepath.Join(out, ".state", "cli-queue.json")); err == nil && !json.Valid(data) {
			t.Fatalf("kill %d: the queue file is not valid JSON", i)
		}
		for name, content := range want {
			path := filepath.Join(out, name)
			if got, err := os.ReadFile(path); err == nil && !bytes.Equal(got, content) {
				t.Fatalf("kill %d: finished file %s has wrong bytes", i, name)
			}
			if _, err := os.Stat(engine.SidecarPath(path)); err == nil {
				if _, err := engine.ReadPartState(path); err != nil {
					t.Fatalf("kill %d: resume state of %s unreadable: %v", i, name, err)
				}
			}
		}
	}
	a.SetThrottle(0)
	b.SetThrottle(0)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if msg, err := command(t, ctx, dir, args...).CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, msg)
	}
	for name, content := range want {
		if got := testkit.ReadFile(t, filepath.Join(out, name)); !bytes.Equal(got, content) {
			t.Errorf("%s differs after 20 kills", name)
		}
	}
	var names []string
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 2 {
		t.Errorf("output holds %q, want just the two files (and the tool's dot folders)", names)
	}
	// The history holds both completions.
	h := mustOpenHistory(t, out)
	page, err := h.List(history.Query{Status: "completed"})
	if err != nil || page.Total != 2 {
		t.Errorf("history has %d completed records (%v), want 2", page.Total, err)
	}
}

// TestCLICarryModelToAnotherMachine is issue 10's first path as a user
// types it: pull a model, verify the zip, install it into a models folder;
// and "install <model>" in one step.
func TestCLICarryModelToAnotherMachine(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "1")
	dir := t.TempDir()
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, err := command(t, t.Context(), dir, args...).CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("%q exited %d, want %d:\n%s", args, code, wantCode, out)
		}
		return string(out)
	}
	ref := f.Host + "/library/tiny:1"
	run(0, "-registry", f.URL, ref)
	zipPath := filepath.Join(dir, "downloaded-models", "tiny-1.zip")
	run(0, "verify", zipPath)

	modelsDir := filepath.Join(dir, "models")
	run(0, "install", "-models-dir", modelsDir, zipPath)
	for digest, data := range m.Blobs {
		blob := filepath.Join(modelsDir, "blobs", strings.Replace(digest, ":", "-", 1))
		if got := testkit.ReadFile(t, blob); !bytes.Equal(got, data) {
			t.Errorf("installed blob %s differs", digest)
		}
	}
	manifest := filepath.Join(modelsDir, "manifests", f.Host, "library", "tiny", "1")
	if got := testkit.ReadFile(t, manifest); !bytes.Equal(got, m.Manifest) {
		t.Error("installed manifest is not byte-for-byte the served one")
	}

	// A tampered zip is refused and installs nothing.
	bad := filepath.Join(dir, "bad.zip")
	data := testkit.ReadFile(t, zipPath)
	i := bytes.Index(data, m.Blobs[testkit.DigestOf(testkit.TestBytes(300<<10, 1))][:64])
	data[i+10] ^= 0xff
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(1, "verify", bad)
	empty := filepath.Join(dir, "empty-models")
	run(1, "install", "-models-dir", empty, bad)
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed install created the models folder")
	}

	// One step: pull and install.
	other := filepath.Join(dir, "models2")
	run(0, "install", "-registry", f.URL, "-models-dir", other, "-output-dir", filepath.Join(dir, "o2"), ref)
	if got := testkit.ReadFile(t, filepath.Join(other, "manifests", f.Host, "library", "tiny", "1")); !bytes.Equal(got, m.Manifest) {
		t.Error("install <model> did not install the manifest")
	}
}

// TestWebUIModeOpensBrowserAndStopsCleanly runs the binary with no
// download argument, as "go run ." does: it prints the URL, opens the
// browser (a fake xdg-open on PATH records the call), serves the page and
// the API, and on SIGTERM stops within a few seconds leaving a queue file.
func TestWebUIModeOpensBrowserAndStopsCleanly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the fake opener is xdg-open")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	opened := filepath.Join(dir, "opened.txt")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := command(t, t.Context(), dir, "-port", "0", "-output-dir", "out")
	cmd.Env = append(cmd.Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	urlCh := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if u, ok := strings.CutPrefix(scanner.Text(), "Web UI: "); ok {
				urlCh <- u
			}
		}
	}()
	var base string
	select {
	case base = <-urlCh:
	case <-time.After(15 * time.Second):
		t.Fatal("no URL printed within 15 s")
	}
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(`dir="rtl"`)) {
		t.Errorf("GET / = %d, page without dir=\"rtl\"", resp.StatusCode)
	}
	resp, err = http.Get(base + "api/downloads")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /api/downloads = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := os.ReadFile(opened); err == nil && strings.TrimSpace(string(got)) == base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the browser was not opened on the printed URL")
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, "out", ".state", "queue.json")); err != nil {
		t.Errorf("no queue file after a clean stop: %v", err)
	}
}
