package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitForText waits (bounded) until buf holds text.
func waitForText(t *testing.T, buf *testkit.LockedBuffer, text string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(buf.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v; stderr:\n%s", text, within, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCLIWaitsOutAnOutage (issue 22): the server goes away in the middle
// of a download and comes back on the same port; with default flags the
// command says it waits, then finishes, exit 0.
func TestCLIWaitsOutAnOutage(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(5*time.Millisecond))
	dir := t.TempDir()
	cmd := command(t, t.Context(), dir, "-output-dir", "out", o.FileURL())
	var stdout, stderr testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(20 * time.Second); o.BytesSent.Load() < 200<<10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the download did not start: %s", stderr.String())
		}
	}
	restart := testkit.Stop(t, o.Server)
	waitForText(t, &stderr, "waiting for the network — next try in", 20*time.Second)
	time.Sleep(time.Second)
	restart()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the command did not finish after the outage:\n%s", stderr.String())
	}
	if got := testkit.ReadFile(t, filepath.Join(dir, "out", "data.bin")); !bytes.Equal(got, o.Content()) {
		t.Error("the file differs after the outage")
	}
	if !strings.Contains(stdout.String(), "done: ") || strings.Contains(stderr.String(), "failed") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestCLICtrlCDuringWait: Ctrl-C while a download waits for the network
// stops the command at once (exit 130), the download left to resume.
func TestCLICtrlCDuringWait(t *testing.T) {
	dir := t.TempDir()
	cmd := command(t, t.Context(), dir, "-output-dir", "out", "http://"+testkit.ClosedPort(t)+"/file.bin")
	var stderr testkit.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForText(t, &stderr, "waiting for the network", 20*time.Second)
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Ctrl-C during the wait did not stop the command:\n%s", stderr.String())
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Ctrl-C took %v", took)
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d, want 130\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped: ") {
		t.Errorf("stderr does not say the download stopped:\n%s", stderr.String())
	}
}

// TestCLI404FailsFast: a refusal waiting cannot mend fails at once, in one
// line, exit 1, with default flags (no waiting, however long -retry-for).
func TestCLI404FailsFast(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "nothing here", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/files/data.bin"
	start := time.Now()
	code, _, stderr := runCLI(t, t.TempDir(), "-output-dir", "out", url)
	if code != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %v, want 1 at once", code, time.Since(start))
	}
	want := "failed: " + url + ": HTTP 404 Not Found: nothing here"
	if got := strings.TrimSpace(stderr); got != want {
		t.Errorf("stderr = %q\nwant     %q", got, want)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests for a 404, want 1", n)
	}
}

// TestCLIFailureNamedOnce (issues 22 and 25): a failure is one sentence
// that names its cause once, in words; Go's dial text only with -v. The
// same for a file and for a registry that cannot be reached.
func TestCLIFailureNamedOnce(t *testing.T) {
	addr := testkit.ClosedPort(t)
	check := func(t *testing.T, stderr string, verbose bool) {
		t.Helper()
		line := lastLine(stderr) // the failure; a wait line ("waiting for the network…") may come before it
		if !verbose && strings.Count(line, "refused") != 1 || strings.Contains(line, "giving up") || strings.Count(line, "gave up") > 1 {
			t.Errorf("the cause is not named once: %q", line)
		}
		if got := strings.Contains(line, "dial tcp"); got != verbose {
			t.Errorf("Go's dial text shown = %v, want %v: %q", got, verbose, line)
		}
	}
	for _, verbose := range []bool{false, true} {
		args := []string{"-output-dir", "out", "-retries", "1", "http://" + addr + "/big2.bin"}
		showArgs := []string{"show", "-registry", "http://" + addr, addr + "/library/tiny"}
		if verbose {
			args = append(args, "-v")
		}
		code, _, stderr := runCLI(t, t.TempDir(), args...)
		if code != 1 {
			t.Errorf("exit %d", code)
		}
		if n := strings.Count(stderr, "failed: "); n != 1 {
			t.Errorf("%d failure lines:\n%s", n, stderr)
		}
		check(t, stderr, verbose)
		if !verbose {
			code, _, stderr = runCLI(t, t.TempDir(), showArgs...)
			if code == 0 {
				t.Error("show of an unreachable registry succeeded")
			}
			check(t, stderr, false)
		}
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), "out", "big2.bin")); err == nil {
		t.Error("a file was published")
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
