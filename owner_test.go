package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/owner"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("reading result: %v", err)
		return
	}
	if testkit.Sha256Of(got) != testkit.Sha256Of(want) {
		t.Errorf("%s: %d bytes, sha256 %s; want %d bytes, %s", path, len(got), testkit.Sha256Of(got), len(want), testkit.Sha256Of(want))
	}
}

// webUI is a web UI process started by a test, with its printed address.
type webUI struct {
	cmd *exec.Cmd
	URL string
	out *testkit.LockedBuffer
}

// startWebUI runs the command with no argument on the output folder out
// (relative to dir) and waits for its address.
func startWebUI(t *testing.T, dir, out string, extra ...string) *webUI {
	t.Helper()
	args := append([]string{"-no-browser", "-port", "0", "-output-dir", out}, extra...)
	cmd := command(t, context.WithoutCancel(t.Context()), dir, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &webUI{cmd: cmd, out: &testkit.LockedBuffer{}}
	cmd.Stderr = w.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.out.Write([]byte(sc.Text() + "\n"))
			if u, ok := strings.CutPrefix(sc.Text(), "Web UI: "); ok {
				urls <- u
			}
		}
	}()
	select {
	case w.URL = <-urls:
	case <-time.After(15 * time.Second):
		t.Fatalf("the web UI printed no address within 15 s:\n%s", w.out.String())
	}
	return w
}

// stop ends the web UI as Ctrl-C would and waits for it.
func (w *webUI) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the web UI did not stop within 15 s")
	}
}

// downloads is the web UI's list.
func (w *webUI) downloads(t *testing.T) []queue.JobView {
	t.Helper()
	resp, err := http.Get(w.URL + "api/downloads")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Downloads []queue.JobView `json:"downloads"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Downloads
}

// runCLI runs one command to its end (at most a minute) and returns its
// exit code and output.
func runCLI(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := command(t, ctx, dir, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	return code, o.String(), e.String()
}

// historyOf reads a folder's history as the web UI would after every
// process let go of it.
func historyOf(t *testing.T, outputDir string) []history.Record {
	t.Helper()
	h := mustOpenHistory(t, outputDir)
	page, err := h.List(history.Query{Limit: history.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	return page.Records
}

// countSource counts the records of one source.
func countSource(recs []history.Record, source, status string) int {
	n := 0
	for _, r := range recs {
		if r.Source == source && r.Status == status {
			n++
		}
	}
	return n
}

// TestTwoWebUIsOnOneFolder: the second one does not serve the folder; it
// prints the first one's address and exits 0.
func TestTwoWebUIsOnOneFolder(t *testing.T) {
	dir := t.TempDir()
	first := startWebUI(t, dir, "out")
	code, stdout, stderr := runCLI(t, dir, "-no-browser", "-port", "0", "-output-dir", "out")
	if code != 0 {
		t.Fatalf("second web UI exited %d: %s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "A web UI already serves out: "+first.URL) {
		t.Errorf("second web UI said %q, want the first one's address %s", stdout, first.URL)
	}
	if strings.Contains(stdout, "Web UI: ") {
		t.Errorf("the second web UI served the folder too: %s", stdout)
	}
	if resp, err := http.Get(first.URL + "api/downloads"); err != nil || resp.StatusCode != 200 {
		t.Errorf("the first web UI stopped answering: %v", err)
	}
}

// TestCLIBesideWebUI: a command on the folder a web UI serves hands its
// download to the web UI, shows it, exits 0; the web UI lists it and the
// history records it once.
func TestCLIBesideWebUI(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithThrottle(5*time.Millisecond))
	dir := t.TempDir()
	ui := startWebUI(t, dir, "out")
	code, stdout, stderr := runCLI(t, dir, "-output-dir", "out", "-connections", "1", o.FileURL())
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "the web UI at "+ui.URL+" owns out") {
		t.Errorf("stderr does not say the web UI runs it: %s", stderr)
	}
	if want := "done: " + filepath.Join("out", "data.bin"); strings.TrimSpace(stdout) != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	checkFile(t, filepath.Join(dir, "out", "data.bin"), o.Content())
	listed := ui.downloads(t)
	if len(listed) != 1 || listed[0].State != queue.JobCompleted || listed[0].Source != o.FileURL() {
		t.Errorf("the web UI lists %+v, want the command's download, completed", listed)
	}
	ui.stop(t)
	if n := countSource(historyOf(t, filepath.Join(dir, "out")), o.FileURL(), queue.JobCompleted); n != 1 {
		t.Errorf("history holds %d completed records of the download, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", ".state", owner.InfoName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner.json left after the web UI stopped: %v", err)
	}
}

// TestTwoCLIsAtOnce: the second command hands its download to the first;
// when the first finishes its own and exits, the second takes the folder
// over and resumes from the .part. Both finish, each recorded once.
func TestTwoCLIsAtOnce(t *testing.T) {
	first := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(20*time.Millisecond), testkit.WithPath("/first.bin"))
	second := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(20*time.Millisecond), testkit.WithPath("/second.bin"))
	dir := t.TempDir()
	own := command(t, t.Context(), dir, "-output-dir", "out", "-connections", "1", first.FileURL())
	var ownerOut, ownerErr testkit.LockedBuffer
	own.Stdout, own.Stderr = &ownerOut, &ownerErr
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	waitOwner(t, filepath.Join(dir, "out"), owner.KindCLI)
	follower := command(t, t.Context(), dir, "-output-dir", "out", "-connections", "1", second.FileURL())
	var fout, ferr testkit.LockedBuffer
	follower.Stdout, follower.Stderr = &fout, &ferr
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the second download runs in the first command, let the first
	// one's own download finish: the first command exits, the second
	// takes over.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(ferr.String(), "another command (pid") || second.BytesSent.Load() < 32<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the second command did not hand its download over: %s", ferr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.SetThrottle(0)
	if err := own.Wait(); err != nil {
		t.Fatalf("first command: %v\n%s%s", err, ownerOut.String(), ownerErr.String())
	}
	second.SetThrottle(time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- follower.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second command: %v\n%s%s", err, fout.String(), ferr.String())
		}
	case <-time.After(time.Minute):
		follower.Process.Kill()
		t.Fatalf("the second command did not finish within a minute\n%s", ferr.String())
	}
	checkFile(t, filepath.Join(dir, "out", "first.bin"), first.Content())
	checkFile(t, filepath.Join(dir, "out", "second.bin"), second.Content())
	if sent := second.BytesSent.Load(); sent > int64(len(second.Content()))+128<<10 {
		t.Errorf("the second file cost %d bytes for %d: the takeover fetched it again instead of resuming", sent, len(second.Content()))
	}
	if ranges := second.SeenRanges(); len(ranges) < 2 || !strings.HasPrefix(ranges[len(ranges)-1], "bytes=") {
		t.Errorf("the second file's requests had ranges %q, want a resume after the takeover\n%s\n%s", ranges, ferr.String(), ownerErr.String())
	}
	recs := historyOf(t, filepath.Join(dir, "out"))
	if a, b := countSource(recs, first.FileURL(), queue.JobCompleted), countSource(recs, second.FileURL(), queue.JobCompleted); a != 1 || b != 1 || len(recs) != 2 {
		t.Errorf("history: %d records, first %d, second %d; want one each", len(recs), a, b)
	}
}

// waitOwner waits until the folder's owner has said how to reach it.
func waitOwner(t *testing.T, outputDir, kind string) owner.Info {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if info, err := owner.Read(outputDir); err == nil && info.Kind == kind {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s owner of %s within 15 s", kind, outputDir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKillOwnerThenTakeOver: kill -9 of the owning command; the command
// that handed it a download takes the folder over at once and finishes;
// the killed command run again resumes its own.
func TestKillOwnerThenTakeOver(t *testing.T) {
	mine := testkit.NewOrigin(t, testkit.WithSize(2<<20), testkit.WithThrottle(4*time.Millisecond), testkit.WithPath("/mine.bin"))
	theirs := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithThrottle(4*time.Millisecond), testkit.WithPath("/theirs.bin"))
	dir := t.TempDir()
	own := command(t, t.Context(), dir, "-output-dir", "out", "-connections", "1", mine.FileURL())
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	waitOwner(t, filepath.Join(dir, "out"), owner.KindCLI)

	follower := command(t, t.Context(), dir, "-output-dir", "out", "-connections", "1", theirs.FileURL())
	var fout, ferr testkit.LockedBuffer
	follower.Stdout, follower.Stderr = &fout, &ferr
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the owner once it runs the handed-over download.
	deadline := time.Now().Add(15 * time.Second)
	for theirs.BytesSent.Load() < 64<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the owner never started the handed-over download\n%s", ferr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	own.Process.Signal(syscall.SIGKILL)
	own.Wait()
	killedAt := time.Now()

	done := make(chan error, 1)
	go func() { done <- follower.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the follower: %v\n%s%s", err, fout.String(), ferr.String())
		}
	case <-time.After(time.Minute):
		follower.Process.Kill()
		t.Fatalf("the follower did not finish within a minute of the kill\n%s", ferr.String())
	}
	t.Logf("the follower finished %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	checkFile(t, filepath.Join(dir, "out", "theirs.bin"), theirs.Content())
	if _, err := os.Stat(filepath.Join(dir, "out", "mine.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the killed owner's download was finished by the follower: it was not the follower's to run")
	}

	code, _, stderr := runCLI(t, dir, "-output-dir", "out", "-connections", "1", mine.FileURL())
	if code != 0 {
		t.Fatalf("the owner's command again: exit %d: %s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "out", "mine.bin"), mine.Content())
	recs := historyOf(t, filepath.Join(dir, "out"))
	if a, b := countSource(recs, mine.FileURL(), queue.JobCompleted), countSource(recs, theirs.FileURL(), queue.JobCompleted); a != 1 || b != 1 {
		t.Errorf("history: mine %d, theirs %d; want one each", a, b)
	}
}

// TestWebUITakesOverFromCLI: a web UI started while a command downloads
// into the folder asks the command to hand it over; the download goes on
// in the web UI, which the command follows to the end.
func TestWebUITakesOverFromCLI(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(4*time.Millisecond))
	dir := t.TempDir()
	cli := command(t, t.Context(), dir, "-output-dir", "out", "-connections", "1", o.FileURL())
	var cout, cerr testkit.LockedBuffer
	cli.Stdout, cli.Stderr = &cout, &cerr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	waitOwner(t, filepath.Join(dir, "out"), owner.KindCLI)
	ui := startWebUI(t, dir, "out")
	done := make(chan error, 1)
	go func() { done <- cli.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the command: %v\n%s%s", err, cout.String(), cerr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("the command did not finish within a minute\n%s", cerr.String())
	}
	if !strings.Contains(cerr.String(), "A web UI took out over") {
		t.Errorf("the command did not say it handed the folder over: %s", cerr.String())
	}
	checkFile(t, filepath.Join(dir, "out", "data.bin"), o.Content())
	if listed := ui.downloads(t); len(listed) != 1 || listed[0].State != queue.JobCompleted {
		t.Errorf("the web UI lists %+v, want the command's download, completed", listed)
	}
	ui.stop(t)
	if n := countSource(historyOf(t, filepath.Join(dir, "out")), o.FileURL(), queue.JobCompleted); n != 1 {
		t.Errorf("history holds %d records of the download, want 1", n)
	}
}

// TestCLIExitCodesOnSignals: Ctrl-C exits 130 and SIGTERM 143, with the
// download left resumable; the same command again finishes it.
func TestCLIExitCodesOnSignals(t *testing.T) {
	for _, tc := range []struct {
		sig  os.Signal
		code int
	}{{os.Interrupt, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(5*time.Millisecond))
			dir := t.TempDir()
			cmd := command(t, t.Context(), dir, "-connections", "1", o.FileURL())
			var stderr testkit.LockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for o.BytesSent.Load() < 64<<10 {
				if time.Now().After(deadline) {
					t.Fatal("no download started")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("exit after %v: %v, want status %d\n%s", tc.sig, err, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "stopped: ") {
				t.Errorf("stderr does not say the download stopped: %s", stderr.String())
			}
			o.SetThrottle(0)
			if code, _, e := runCLI(t, dir, "-connections", "1", o.FileURL()); code != 0 {
				t.Fatalf("the same command again: exit %d: %s", code, e)
			}
			checkFile(t, filepath.Join(dir, "downloaded-models", "data.bin"), o.Content())
		})
	}
}

// TestCLIPrintsNoLogRecords: without -v a run prints progress and one line
// per download, never a log record; with -v it does.
func TestCLIPrintsNoLogRecords(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, dir, o.FileURL(), o.URL+"/missing", "-retries", "0")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one download failed)", code)
	}
	for _, out := range []string{stdout, stderr} {
		if strings.Contains(out, "level=") || strings.Contains(out, "time=") {
			t.Errorf("a log record without -v:\n%s", out)
		}
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "failed: ") {
		t.Errorf("stderr = %q, want one line for the failure", stderr)
	}
	_, _, verbose := runCLI(t, dir, o.FileURL(), "-v", "-force")
	if !strings.Contains(verbose, "level=") {
		t.Errorf("-v printed no log records: %s", verbose)
	}
}

// TestCLIHelpOnStdout: -h goes to standard output (so that -h | less
// shows it) and exits 0; so do the subcommands'.
func TestCLIHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"install", "-h"}, {"verify", "-h"}, {"serve-models", "-h"}} {
		code, stdout, stderr := runCLI(t, t.TempDir(), args...)
		if code != 0 || !strings.Contains(stdout, "Usage") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q", args, code, len(stdout), stderr)
		}
	}
}

// TestCLIOutputFolderInTheWay: a file where the output folder should be
// gives one line saying so, exit 1, and the file is left alone.
func TestCLIOutputFolderInTheWay(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, dir, "-output-dir", "out", "https://127.0.0.1:1/x.bin")
	if code != 1 || !strings.Contains(stderr, "cannot create the output folder out") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want 1 and one line naming the folder", code, stderr)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "out")); string(data) != "keep me" {
		t.Errorf("the file in the way changed: %q", data)
	}
}

// TestTenCLIRunsKeepEveryRecord: ten runs back to back, then two at once,
// each of one file: every run is in the history (issue 18 lost records
// whose IDs came from the same second).
func TestTenCLIRunsKeepEveryRecord(t *testing.T) {
	dir := t.TempDir()
	var sources []string
	for i := range 10 {
		o := testkit.NewOrigin(t, testkit.WithSize(4<<10), testkit.WithPath("/f"+string(rune('a'+i))+".bin"))
		sources = append(sources, o.FileURL())
		if code, _, stderr := runCLI(t, dir, o.FileURL()); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
	}
	var wg sync.WaitGroup
	for i := range 2 {
		o := testkit.NewOrigin(t, testkit.WithSize(4<<10), testkit.WithPath("/p"+string(rune('a'+i))+".bin"))
		sources = append(sources, o.FileURL())
		wg.Go(func() {
			if code, _, stderr := runCLI(t, dir, o.FileURL()); code != 0 {
				t.Errorf("parallel run %d: exit %d: %s", i, code, stderr)
			}
		})
	}
	wg.Wait()
	recs := historyOf(t, filepath.Join(dir, "downloaded-models"))
	for _, s := range sources {
		if n := countSource(recs, s, queue.JobCompleted); n != 1 {
			t.Errorf("%s: %d records, want 1", s, n)
		}
	}
	if len(recs) != len(sources) {
		t.Errorf("%d records for %d runs", len(recs), len(sources))
	}
}

// TestCLISameURLAgain: the same command again asks the server whether the
// file changed. Unchanged: "already downloaded", no body fetched, exit 0.
// Changed: the new version beside the old, which is kept. -force fetches
// again regardless.
func TestCLISameURLAgain(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(256<<10))
	dir := t.TempDir()
	file := filepath.Join(dir, "downloaded-models", "data.bin")
	if code, stdout, stderr := runCLI(t, dir, o.FileURL()); code != 0 || strings.TrimSpace(stdout) != "done: "+filepath.Join("downloaded-models", "data.bin") {
		t.Fatalf("first run: exit %d, %q %q", code, stdout, stderr)
	}
	sent := o.BytesSent.Load()
	code, stdout, stderr := runCLI(t, dir, o.FileURL())
	if code != 0 || strings.TrimSpace(stdout) != "already downloaded: "+filepath.Join("downloaded-models", "data.bin") {
		t.Fatalf("unchanged: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := o.BytesSent.Load() - sent; n != 0 {
		t.Errorf("unchanged: %d body bytes fetched, want none", n)
	}
	old := o.Content()
	o.Replace(testkit.TestBytes(300<<10, 9), `"v2"`)
	code, stdout, stderr = runCLI(t, dir, o.FileURL())
	if code != 0 || !strings.Contains(stdout, "a newer version") || !strings.Contains(stdout, "data (1).bin") {
		t.Fatalf("changed: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	checkFile(t, file, old)
	checkFile(t, filepath.Join(dir, "downloaded-models", "data (1).bin"), o.Content())
	if code, stdout, _ = runCLI(t, dir, o.FileURL()); code != 0 || !strings.Contains(stdout, "already downloaded: "+filepath.Join("downloaded-models", "data (1).bin")) {
		t.Errorf("the new version again: exit %d, %q", code, stdout)
	}
	sent = o.BytesSent.Load()
	if code, stdout, _ = runCLI(t, dir, "-force", o.FileURL()); code != 0 || !strings.Contains(stdout, "done: ") {
		t.Errorf("-force: exit %d, %q", code, stdout)
	}
	if n := o.BytesSent.Load() - sent; n != int64(len(o.Content())) {
		t.Errorf("-force fetched %d bytes, want the whole %d", n, len(o.Content()))
	}
}

// TestCLIRefusesWhatDoesNotFit: on a small tmpfs a download bigger than the
// free space is refused before any body byte, in one line that says where,
// how much is needed and how much is free.
func TestCLIRefusesWhatDoesNotFit(t *testing.T) {
	mnt := testkit.MountTmpfs(t, "1m")
	o := testkit.NewOrigin(t, testkit.WithSize(4<<20))
	code, stdout, stderr := runCLI(t, mnt, "-output-dir", "out", o.FileURL())
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "not enough free space on "+mnt+": need 4.2 MB") || !strings.Contains(lines[0], "free") {
		t.Errorf("stderr = %q, want one line: not enough free space on %s: need 4.2 MB, … free", stderr, mnt)
	}
	if n := o.BytesSent.Load(); n != 0 {
		t.Errorf("%d body bytes fetched before refusing", n)
	}
	if _, err := os.Stat(filepath.Join(mnt, "out", "data.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was published")
	}
}

// TestCLIScheduleWaits: outside its -schedule window a command says what
// it waits for and fetches nothing; Ctrl-C leaves the download queued.
func TestCLIScheduleWaits(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	dir := t.TempDir()
	now := time.Now()
	closed := now.Add(2*time.Hour).Format("15:04") + "-" + now.Add(3*time.Hour).Format("15:04")
	cmd := command(t, t.Context(), dir, "-schedule", closed, o.FileURL())
	var stderr testkit.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), "Waiting for the download window") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no word of the window: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The word comes after the queue's first pass: the download must be
	// waiting in the owner's queue, not running (a start is decided
	// there, before any request).
	var info owner.Info
	waitFor(t, "the owner's announcement", func() bool {
		var err error
		info, err = owner.Read(filepath.Join(dir, "downloaded-models"))
		return err == nil
	})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", info.URL+"api/downloads", nil)
	req.Header.Set("Authorization", "Bearer "+info.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Downloads []queue.JobView `json:"downloads"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Downloads) != 1 || list.Downloads[0].State != "queued" {
		t.Errorf("outside the window the owner's queue holds %+v, want one queued download", list.Downloads)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if n := o.Requests.Load(); n != 0 {
		t.Errorf("%d requests outside the window", n)
	}
	// Inside the window it runs.
	open := now.Add(-time.Hour).Format("15:04") + "-" + now.Add(time.Hour).Format("15:04")
	if code, _, stderr := runCLI(t, dir, "-schedule", open, o.FileURL()); code != 0 {
		t.Fatalf("inside the window: exit %d: %s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "downloaded-models", "data.bin"), o.Content())
}

// TestCLIBesideWebUIOutsideItsWindow: a command handing a download to a
// web UI whose time window is closed says what it waits for, and Ctrl-C
// leaves the download paused in the web UI, marked as paused by the
// command line (the same command resumes it).
func TestCLIBesideWebUIOutsideItsWindow(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	dir := t.TempDir()
	ui := startWebUI(t, dir, "out")
	now := time.Now()
	form := "schedule_start=" + now.Add(2*time.Hour).Format("15:04") + "&schedule_end=" + now.Add(3*time.Hour).Format("15:04")
	resp, err := http.Post(ui.URL+"api/settings", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("setting the window: %v %v", err, resp)
	}
	resp.Body.Close()
	cmd := command(t, t.Context(), dir, "-output-dir", "out", o.FileURL())
	var stderr testkit.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), "download window") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no word of the window: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("exit after Ctrl-C: %v, want 130", err)
	}
	if n := o.Requests.Load(); n != 0 {
		t.Errorf("%d requests outside the window", n)
	}
	// The row in the web UI says where the pause came from.
	if listed := ui.downloads(t); len(listed) != 1 || listed[0].State != queue.JobPaused || listed[0].PausedBy != queue.PausedByCLI {
		t.Errorf("the web UI lists %+v, want the download paused by %q", listed, queue.PausedByCLI)
	}
}

// TestModelRefusedWhatDoesNotFit: on a small tmpfs, a model pull (zip)
// and an install whose blobs need more than the free space are refused
// before the first blob byte, in one line that says where, what is
// needed and what is free.
func TestModelRefusedWhatDoesNotFit(t *testing.T) {
	mnt := testkit.MountTmpfs(t, "1m")
	f := testkit.NewFakeRegistry(t)
	f.AddModel("library/big", "latest", testkit.TestBytes(3<<20, 5), []byte("template"))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"zip", []string{"-output-dir", "out", "-registry", f.URL, "big"}},
		{"install", []string{"install", "-output-dir", "out", "-registry", f.URL, "-models-dir", filepath.Join(mnt, "models"), "big"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, mnt, tc.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, "not enough free space on "+mnt+": need ") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("stderr = %q, want one line: not enough free space on %s: need …", stderr, mnt)
			}
			f.Mu.Lock()
			var served int64
			for _, n := range f.BytesServed {
				served += n
			}
			f.Mu.Unlock()
			if served > 64<<10 {
				t.Errorf("%d blob bytes fetched before refusing (only the small config may be)", served)
			}
		})
	}
}
