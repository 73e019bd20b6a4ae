package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"math/rand/v2"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPullResumesAfterSIGKILL runs the real command as a subprocess, kills
// it while the large blob is on its way, and runs it again: the verified
// blobs are not fetched again, the large one continues from the offset the
// killed process had made durable, and the zip is complete.
func TestPullResumesAfterSIGKILL(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := testkit.TestBytes(2<<20, 8)
	m := f.AddModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := testkit.DigestOf(big)
	const trickleAt = 1 << 20
	f.Set(func(f *testkit.FakeRegistry) { f.Trickle[bigDigest] = trickleAt })
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	name, err := registry.ParseName("big", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The blob goes straight into the zip; its resume state is in staging.
	blobPath := func(d string) string {
		return filepath.Join(models.PullStagingDir(out, name), "zip", "sha256-"+strings.TrimPrefix(d, "sha256:"))
	}
	var small []string
	for d := range m.Blobs {
		if d != bigDigest {
			small = append(small, filepath.Join(models.PullStagingDir(out, name), "small", "sha256-"+strings.TrimPrefix(d, "sha256:")))
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := command(t, ctx, dir, "-output-dir", out, "-registry", f.URL, "-retries", "1", "big")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until the small blobs are published and the killed
	// process will have made at least trickleAt bytes of the big one durable.
	var committed int64
	for i := 0; i < 200 && committed < trickleAt; i++ {
		if st, err := engine.ReadPartState(blobPath(bigDigest)); err == nil && testkit.AllExist(small) {
			committed = st.Committed
		}
		if committed < trickleAt {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if committed < trickleAt {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the pull did not checkpoint %d bytes of the large blob within 10s\n%s", trickleAt, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	f.Set(func(f *testkit.FakeRegistry) { delete(f.Trickle, bigDigest); f.Ranges = nil })
	cmd = command(t, ctx, dir, "-output-dir", out, "-registry", f.URL, "big")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, b)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, filepath.Join(out, "big-latest.zip")), testkit.ExpectedTree(f.Host, "library", "big", "latest", m))

	f.Mu.Lock()
	defer f.Mu.Unlock()
	for _, d := range slices.Sorted(maps.Keys(m.Blobs)) {
		want := 1
		if d == bigDigest {
			want = 2
		}
		if got := f.CDNHits[d]; got != want {
			t.Errorf("blob %s fetched %d times, want %d", d[:19], got, want)
		}
	}
	if len(f.Ranges) != 1 || testkit.ParseRangeStart(f.Ranges[0]) < trickleAt {
		t.Errorf("second run's requests had Range %q, want one from byte >= %d", f.Ranges, trickleAt)
	}
}

// TestPullSurvivesRepeatedKills is the model side of the crash loop: a pull
// killed with SIGKILL at random moments, up to 15 times, then run to the
// end. After every kill there is no zip or a byte-exact one, the queue file
// is whole JSON and every resume sidecar is readable; the final zip is
// exactly the model, and the history holds one completed pull.
func TestPullSurvivesRepeatedKills(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := f.AddModel("library/crash", "latest", testkit.TestBytes(3<<20, 21), []byte("template"), []byte(`{"p":2}`))
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = 40 * time.Millisecond }) // about 1 s for the big blob, more than one checkpoint
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	zipPath := filepath.Join(out, "crash-latest.zip")
	want := testkit.ExpectedTree(f.Host, "library", "crash", "latest", m)
	args := []string{"-output-dir", out, "-registry", f.URL, "-connections", "4", "-retries", "10", "crash"}

	deadline := time.Now().Add(60 * time.Second)
	kills := 0
	for i := 0; i < 15 && time.Now().Before(deadline); i++ {
		if _, err := os.Stat(zipPath); err == nil {
			break // finished between kills
		}
		cmd := command(t, t.Context(), dir, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Ten early kills (before the first checkpoint of the big blob),
		// then later ones, after which the pull gets further each time.
		delay := 50 + rand.IntN(650)
		if i >= 10 {
			delay = 700 + rand.IntN(800)
		}
		time.Sleep(time.Duration(delay) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills++
		if data, err := os.ReadFile(filepath.Join(out, ".state", "cli-queue.json")); err == nil && !json.Valid(data) {
			t.Fatalf("kill %d: the queue file is not valid JSON", i)
		}
		if _, err := os.Stat(zipPath); err == nil {
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, zipPath), want)
		}
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".part.json") {
				if _, err := engine.ReadPartState(strings.TrimSuffix(p, ".part.json")); err != nil {
					t.Fatalf("kill %d: resume state %s unreadable: %v", i, p, err)
				}
			}
			return nil
		})
	}
	if kills < 10 {
		t.Fatalf("only %d kills before the pull finished: the registry is too fast for this test", kills)
	}
	t.Logf("%d kills", kills)
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = 0 })
	if _, err := os.Stat(zipPath); err != nil { // else a killed run finished it
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		if msg, err := command(t, ctx, dir, args...).CombinedOutput(); err != nil {
			t.Fatalf("final run after %d kills: %v\n%s", kills, err, msg)
		}
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, zipPath), want)
	h := mustOpenHistory(t, out)
	if page, err := h.List(history.Query{Status: "completed"}); err != nil || page.Total != 1 {
		t.Errorf("history has %d completed pulls (%v), want 1", page.Total, err)
	}
}

// TestPullSplit: -split writes NAME.zip.001… each at most SIZE, whose
// concatenation is byte for byte the zip an unsplit pull writes; verify,
// install and openModelLayout take the first part or the base name.
func TestPullSplit(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := f.AddModel("library/big", "latest", testkit.TestBytes(3<<20+12345, 4), []byte("template"), []byte(`{"p":1}`))
	c := modelstest.NewPuller(t, f.URL, modelstest.NoReuse)
	modelstest.FixedClock(c)

	one, err := c.Pull(t.Context(), models.PullRequest{Ref: "big", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(one.Path)
	if err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	const part = 1 << 20
	res, err := c.Pull(t.Context(), models.PullRequest{Ref: "big", OutputDir: out, Split: part, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(out, "big-latest.zip")
	if res.Path != base+".001" || len(res.Parts) != 4 || res.Parts[3] != base+".004" || res.Size != int64(len(whole)) {
		t.Fatalf("result %+v, want 4 parts from %s.001", res, base)
	}
	var joined []byte
	for i, p := range res.Parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > part || i < len(res.Parts)-1 && len(b) != part {
			t.Errorf("part %s has %d bytes, want %d", p, len(b), part)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, whole) {
		t.Fatalf("the parts joined (%d bytes) differ from the unsplit zip (%d bytes)", len(joined), len(whole))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 4 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output folder holds %v, want only the 4 parts", names)
	}

	for _, name := range []string{base + ".001", base, base + ".003"} {
		l, err := models.OpenLayout(name)
		if err != nil {
			t.Fatalf("openModelLayout(%s): %v", filepath.Base(name), err)
		}
		if problems := l.Verify(t.Context(), nil); len(problems) > 0 || len(l.Parts) != 4 {
			t.Errorf("%s: problems %v, parts %v", filepath.Base(name), problems, l.Parts)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runVerifyCommand(t.Context(), []string{base}, &stdout, &stderr); code != 0 {
		t.Errorf("verify %s: exit %d\n%s%s", base, code, stdout.String(), stderr.String())
	}
	modelsDir := t.TempDir()
	if code := runInstallCommand(t.Context(), []string{base + ".001", "-models-dir", modelsDir}, &stdout, &stderr); code != 0 {
		t.Fatalf("install of the first part: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for d, b := range m.Blobs {
		if got, err := os.ReadFile(filepath.Join(modelsDir, "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:"))); err != nil || !bytes.Equal(got, b) {
			t.Errorf("installed blob %s: %v", d[:19], err)
		}
	}

	// A rerun finds the set complete and fetches nothing.
	before := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Ranges) })
	again, err := c.Pull(t.Context(), models.PullRequest{Ref: "big", OutputDir: out, Split: part, Retries: -1})
	if err != nil || again.Path != res.Path || len(again.Parts) != 4 {
		t.Fatalf("rerun: %+v, %v", again, err)
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Ranges) }) - before; n != 0 {
		t.Errorf("rerun fetched %d blobs", n)
	}

	// A part missing in the middle is named, not a puzzling zip error.
	if err := os.Remove(base + ".002"); err != nil {
		t.Fatal(err)
	}
	if _, err := models.OpenLayout(base + ".001"); err == nil || !strings.Contains(err.Error(), "big-latest.zip.002 is missing") {
		t.Errorf("a gap in the set: err = %v, want the missing part named", err)
	}
}

// TestSplitSizes: -split 4G makes parts FAT32 can hold; the flag's value
// is checked.
func TestSplitSizes(t *testing.T) {
	if got := models.PartSize(4 << 30); got != 1<<32-1 {
		t.Errorf("partSize(4G) = %d, want 4 GiB - 1", got)
	}
	for in, want := range map[string]int64{"4G": 4 << 30, "700M": 700 << 20, "0": 0} {
		if got, err := models.ParseSplitSize(in); err != nil || got != want {
			t.Errorf("parseSplitSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1", "10K"} {
		if _, err := models.ParseSplitSize(bad); !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("parseSplitSize(%q): err = %v, want bad input", bad, err)
		}
	}
	if _, err := parseOptions([]string{"-split", "4G", "llama3"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-split 4G: %v", err)
	}
}
