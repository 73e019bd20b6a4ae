package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/engine/enginetest"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
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

// testDeadline bounds every wait in these tests.
const testDeadline = 15 * time.Second

// fakeEngine is a file engine the test steers: a transfer announces its
// path and some progress, then waits until the test ends it (finishTransfer)
// or its context is cancelled. It checks that the manager never runs two
// transfers of one URL at once and counts how many run together.
type fakeEngine struct {
	t       *testing.T
	mu      sync.Mutex
	gates   map[string]chan error
	active  map[string]int
	running int
	maxRun  int
	starts  map[string]int
	paths   map[string]string // the Path of each URL's latest request
	started chan string       // the URL of every transfer, once it runs
}

func newFakeEngine(t *testing.T) *fakeEngine {
	return &fakeEngine{t: t, gates: map[string]chan error{}, active: map[string]int{}, starts: map[string]int{}, paths: map[string]string{}, started: make(chan string, 1000)}
}

func (f *fakeEngine) gateLocked(u string) chan error {
	if f.gates[u] == nil {
		f.gates[u] = make(chan error, 1)
	}
	return f.gates[u]
}

// finishTransfer ends the current (or next) transfer of u with err.
func (f *fakeEngine) finishTransfer(u string, err error) {
	f.mu.Lock()
	ch := f.gateLocked(u)
	f.mu.Unlock()
	select {
	case ch <- err:
	case <-time.After(testDeadline):
		f.t.Errorf("finishing %s: nobody took the result", u)
	}
}

func (f *fakeEngine) download(ctx context.Context, req engine.Request) (engine.Result, error) {
	f.mu.Lock()
	f.paths[req.URL] = req.Path
	f.mu.Unlock()
	p := req.Path
	if p == "" {
		p = filepath.Join(req.Dir, path.Base(req.URL))
	}
	req.OnPath(p)
	f.mu.Lock()
	f.active[req.URL]++
	if f.active[req.URL] > 1 {
		f.t.Errorf("two transfers of %s at once", req.URL)
	}
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	f.starts[req.URL]++
	ch := f.gateLocked(req.URL)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active[req.URL]--
		f.running--
		f.mu.Unlock()
	}()
	req.Progress(10, 100)
	f.started <- req.URL
	select {
	case <-ctx.Done():
		return engine.Result{}, fmt.Errorf("downloading %s: %w", req.URL, ctx.Err())
	case err := <-ch:
		if err != nil {
			return engine.Result{}, err
		}
		if werr := os.WriteFile(p, []byte(strings.Repeat("x", 100)), 0o644); werr != nil {
			return engine.Result{}, werr
		}
		req.Progress(100, 100)
		return engine.Result{Path: p, Size: 100}, nil
	}
}

// gate is the channel that ends the next transfer of u.
func (f *fakeEngine) gate(u string) chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gateLocked(u)
}

// waitStarted waits until a transfer of each URL has started.
func (f *fakeEngine) waitStarted(urls ...string) {
	f.t.Helper()
	want := map[string]bool{}
	for _, u := range urls {
		want[u] = true
	}
	deadline := time.After(testDeadline)
	for len(want) > 0 {
		select {
		case u := <-f.started:
			delete(want, u)
		case <-deadline:
			f.t.Fatalf("transfers never started: %v", want)
		}
	}
}

func (f *fakeEngine) startCount(u string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[u]
}

// newTestManager makes a manager on dir whose file transfers go to f (when
// f is not nil).
func newTestManager(t *testing.T, dir string, concurrency int, f *fakeEngine) *Manager {
	t.Helper()
	m, err := New(Config{OutputDir: dir, Concurrency: concurrency, Retries: 2})
	if err != nil {
		t.Fatalf("newManager: %v", err)
	}
	m.saveEvery = 20 * time.Millisecond
	if f != nil {
		m.download = f.download
	}
	return m
}

// runManager runs m until the test ends or the returned stop is called;
// stop waits for Run to return.
func runManager(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(testDeadline):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitUntil waits, through Changed, until cond holds.
func waitUntil(t *testing.T, m *Manager, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testDeadline)
	for {
		ch := m.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting until %s; queue: %+v", what, m.List())
		}
	}
}

// waitQueueFile polls the queue on disk (queue.json and its journal, as a
// restart would read them; written after Changed fires, so Changed alone
// cannot tell when it is there) until cond holds for its JSON.
func waitQueueFile(t *testing.T, dir, what string, cond func(data string) bool) {
	t.Helper()
	deadline := time.After(testDeadline)
	for {
		var data []byte
		jobs, err := readQueueState(filepath.Join(dir, ".state", "queue.json"))
		if err == nil {
			data, err = json.Marshal(jobs)
		}
		if err == nil && cond(string(data)) {
			return
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting until queue.json shows %s; it holds:\n%s", what, data)
		}
	}
}

// diskQueue is the queue's files as a kill -9 at one moment leaves them.
type diskQueue struct{ snapshot, journal []byte }

func readDiskQueue(t *testing.T, dir string) diskQueue {
	t.Helper()
	var d diskQueue
	d.snapshot, _ = os.ReadFile(filepath.Join(dir, ".state", "queue.json"))
	d.journal, _ = os.ReadFile(filepath.Join(dir, ".state", "queue.journal"))
	return d
}

// restore puts the files back, as the next start after that kill finds them.
func (d diskQueue) restore(t *testing.T, dir string) {
	t.Helper()
	for name, data := range map[string][]byte{"queue.json": d.snapshot, "queue.journal": d.journal} {
		p := filepath.Join(dir, ".state", name)
		if data == nil {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func waitState(t *testing.T, m *Manager, id, state string) JobView {
	t.Helper()
	var v JobView
	waitUntil(t, m, id+" is "+state, func() bool {
		var err error
		v, err = m.Get(id)
		return err == nil && v.State == state
	})
	return v
}

// waitTransfer waits until the fake engine runs id's transfer: it has
// reported its first 10 bytes.
func waitTransfer(t *testing.T, m *Manager, id string) {
	t.Helper()
	waitUntil(t, m, id+" transferring", func() bool {
		v, err := m.Get(id)
		return err == nil && v.State == "downloading" && v.BytesDone == 10
	})
}

func countStates(m *Manager) map[string]int {
	n := map[string]int{}
	for _, v := range m.List() {
		n[v.State]++
	}
	return n
}

func mustAdd(t *testing.T, m *Manager, src string) JobView {
	t.Helper()
	v, err := m.Add(AddRequest{Source: src, Retries: -1})
	if err != nil {
		t.Fatalf("Add(%q): %v", src, err)
	}
	return v
}

func TestManagerAddValidates(t *testing.T) {
	m := newTestManager(t, t.TempDir(), 2, nil)
	tests := []struct {
		name string
		req  AddRequest
		want string // part of the message
	}{
		{"empty", AddRequest{Source: "  "}, "enter a URL"},
		{"no host", AddRequest{Source: "https:///x.iso"}, "no host"},
		{"bare scheme", AddRequest{Source: "http://"}, "no host"},
		{"bad escape", AddRequest{Source: "http://h/%zz"}, "invalid URL"},
		{"ftp", AddRequest{Source: "ftp://h/x.iso"}, "ftp:// links are not supported"},
		{"retries too many", AddRequest{Source: "https://h/x", Retries: 101}, "between 0 and 100"},
		{"short sha256", AddRequest{Source: "https://h/x", SHA256: "abc"}, "64 hexadecimal"},
		{"non-hex sha256", AddRequest{Source: "https://h/x", SHA256: strings.Repeat("g", 64)}, "64 hexadecimal"},
		{"bad model name", AddRequest{Source: "llama 3"}, "llama 3"},
		{"model with sha256", AddRequest{Source: "llama3", SHA256: strings.Repeat("a", 64)}, "file downloads only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Add(tc.req)
			if !errors.Is(err, fault.ErrBadInput) {
				t.Fatalf("Add(%+v) = %v, want an error matching ErrBadInput", tc.req, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not contain %q", err, tc.want)
			}
		})
	}
	if got := m.List(); len(got) != 0 {
		t.Errorf("rejected input was queued: %+v", got)
	}
}

func TestManagerAddView(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, dir, 2, nil)
	sum := strings.Repeat("AB", 32)
	v, err := m.Add(AddRequest{Source: " https://example.com/files/a%20b.iso?sig=1 ", Retries: -1, SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	want := JobView{
		ID: v.ID, Kind: "file", Source: "https://example.com/files/a%20b.iso?sig=1", Name: "a b.iso",
		State: "queued", BytesTotal: -1, ETASeconds: -1, Retries: 2, CreatedAt: v.CreatedAt, Rev: v.Rev,
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("Add view =\n%+v, want\n%+v", v, want)
	}
	if !strings.HasPrefix(v.ID, "d-") || v.CreatedAt.IsZero() {
		t.Errorf("id %q, created_at %v", v.ID, v.CreatedAt)
	}
	// The same source again is the same download, not a second one.
	again, err := m.Add(AddRequest{Source: v.Source, Retries: 5})
	if err != nil || again.ID != v.ID {
		t.Errorf("adding the same URL again = %+v, %v; want the existing %s", again, err, v.ID)
	}
	other := mustAdd(t, m, "https://example.com/files/b.iso")
	if other.ID == v.ID || other.Position != 1 {
		t.Errorf("second download: id %s position %d", other.ID, other.Position)
	}
}

func TestManagerTransitions(t *testing.T) {
	f := newFakeEngine(t)
	m := newTestManager(t, t.TempDir(), 1, f)
	runManager(t, m)
	a := mustAdd(t, m, "https://example.com/a.bin")
	b := mustAdd(t, m, "https://example.com/b.bin")
	waitTransfer(t, m, a.ID)
	if v, _ := m.Get(b.ID); v.State != "queued" {
		t.Fatalf("b = %s with concurrency 1, want queued", v.State)
	}

	conflicts := []struct {
		name string
		call func() error
	}{
		{"resume downloading", func() error { return m.Resume(a.ID) }},
		{"retry downloading", func() error { return m.Retry(a.ID) }},
		{"remove downloading", func() error { return m.Remove(a.ID, false) }},
		{"move downloading", func() error { return m.Move(a.ID, "top") }},
		{"resume queued", func() error { return m.Resume(b.ID) }},
	}
	for _, c := range conflicts {
		if err := c.call(); !errors.Is(err, fault.ErrConflict) {
			t.Errorf("%s = %v, want ErrConflict", c.name, err)
		}
	}
	unknown := []func() error{
		func() error { return m.Pause("nope") },
		func() error { return m.Resume("nope") },
		func() error { return m.Cancel("nope") },
		func() error { return m.Retry("nope") },
		func() error { return m.Remove("nope", true) },
		func() error { return m.Move("nope", "up") },
		func() error { _, err := m.Get("nope"); return err },
	}
	for i, call := range unknown {
		if err := call(); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("unknown id call %d = %v, want ErrNotFound", i, err)
		}
	}

	// Pausing a queued one, then the running one, lets the other run.
	if err := m.Pause(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Resume(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(a.ID); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(a.ID); v.State != "paused" || v.BytesDone != 10 || v.Path != "a.bin" {
		t.Errorf("paused a = %+v, want paused with its 10 bytes and path", v)
	}
	waitState(t, m, b.ID, "downloading")
	f.finishTransfer("https://example.com/b.bin", nil)
	done := waitState(t, m, b.ID, "completed")
	if done.BytesDone != 100 || done.BytesTotal != 100 || done.FinishedAt.IsZero() || done.StartedAt.IsZero() || done.ETASeconds != 0 {
		t.Errorf("completed b = %+v", done)
	}
	err := m.Cancel(b.ID)
	if !errors.Is(err, fault.ErrConflict) || err.Error() != "b.bin is already finished: there is nothing to cancel (remove it from the list instead)" {
		t.Errorf("Cancel(completed) = %v, want a conflict saying why", err)
	}

	// a resumes, fails, is retried, is canceled, is removed.
	if err := m.Resume(a.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, a.ID, "downloading")
	f.finishTransfer("https://example.com/a.bin", errors.New("origin said 500"))
	failed := waitState(t, m, a.ID, "failed")
	if failed.Error != "origin said 500" {
		t.Errorf("failed error = %q", failed.Error)
	}
	if err := m.Pause(a.ID); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("Pause(failed) = %v, want ErrConflict", err)
	}
	if err := m.Retry(a.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, a.ID, "downloading")
	if err := m.Cancel(a.ID); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(a.ID); v.State != "canceled" {
		t.Errorf("after Cancel a = %s", v.State)
	}
	if got := f.startCount("https://example.com/a.bin"); got != 3 {
		t.Errorf("a started %d times, want 3 (first, resume, retry)", got)
	}
	if err := m.Remove(a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(a.ID); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("Get(removed) = %v, want ErrNotFound", err)
	}
}

func TestManagerConcurrencyChanges(t *testing.T) {
	f := newFakeEngine(t)
	m := newTestManager(t, t.TempDir(), 2, f)
	runManager(t, m)
	var urls []string
	for i := range 8 {
		u := fmt.Sprintf("https://example.com/f%d.bin", i)
		urls = append(urls, u)
		mustAdd(t, m, u)
	}
	waitUntil(t, m, "2 downloading", func() bool { return countStates(m)["downloading"] == 2 })

	for _, n := range []int{0, 33, -1} {
		if err := m.SetConcurrency(n); !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("SetConcurrency(%d) = %v, want ErrBadInput", n, err)
		}
	}
	// Raising starts queued ones at once.
	if err := m.SetConcurrency(5); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, m, "5 downloading", func() bool { return countStates(m)["downloading"] == 5 })
	for _, v := range m.List() {
		if v.State == "downloading" {
			waitTransfer(t, m, v.ID)
		}
	}
	if m.Concurrency() != 5 {
		t.Errorf("Concurrency() = %d", m.Concurrency())
	}

	// Lowering stops nothing: the 5 keep running; no new one starts until
	// fewer than 1 run.
	if err := m.SetConcurrency(1); err != nil {
		t.Fatal(err)
	}
	if got := countStates(m)["downloading"]; got != 5 {
		t.Errorf("after lowering to 1: %d downloading, want the 5 still running", got)
	}
	for i := range 4 {
		f.finishTransfer(urls[i], nil)
		want := 4 - i
		waitUntil(t, m, fmt.Sprintf("%d downloading", want), func() bool {
			n := countStates(m)
			return n["downloading"] == want && n["completed"] == i+1
		})
	}
	for i := 4; i < 8; i++ {
		f.finishTransfer(urls[i], nil)
		waitUntil(t, m, fmt.Sprintf("%d completed", i+1), func() bool { return countStates(m)["completed"] == i+1 })
		if n := countStates(m)["downloading"]; n > 1 {
			t.Fatalf("%d downloading with concurrency 1", n)
		}
	}
	if f.maxRun != 5 {
		t.Errorf("at most %d transfers ran together, want 5", f.maxRun)
	}
}

func TestManagerMove(t *testing.T) {
	// Every case starts from: c (queued), b (completed), a (downloading), d, e (queued).
	tests := []struct {
		move, where string
		want        string
		conflict    bool
	}{
		{"e", "top", "e c b a d", false},
		{"c", "bottom", "b a d e c", false},
		{"c", "down", "b a d c e", false}, // swaps with the next queued one, d
		{"d", "up", "d c b a e", false},
		{"c", "up", "c b a d e", false}, // already first
		{"e", "down", "c b a d e", false},
		{"a", "top", "c b a d e", true}, // downloading
		{"b", "bottom", "c b a d e", true},
	}
	for _, tc := range tests {
		t.Run(tc.move+" "+tc.where, func(t *testing.T) {
			f := newFakeEngine(t)
			m := newTestManager(t, t.TempDir(), 1, f)
			ids := map[string]string{}
			for _, n := range []string{"a", "b", "c", "d", "e"} {
				ids[n] = mustAdd(t, m, "https://example.com/"+n).ID
			}
			if err := m.Move(ids["b"], "top"); err != nil {
				t.Fatal(err)
			}
			runManager(t, m)
			f.finishTransfer("https://example.com/b", nil)
			waitState(t, m, ids["b"], "completed")
			waitState(t, m, ids["a"], "downloading")
			if err := m.Move(ids["c"], "top"); err != nil {
				t.Fatal(err)
			}

			err := m.Move(ids[tc.move], tc.where)
			if tc.conflict != errors.Is(err, fault.ErrConflict) || !tc.conflict && err != nil {
				t.Fatalf("Move(%s, %s) = %v, want conflict %v", tc.move, tc.where, err, tc.conflict)
			}
			var got []string
			for i, v := range m.List() {
				got = append(got, v.Name)
				if v.Position != i {
					t.Errorf("%s has position %d at index %d", v.Name, v.Position, i)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("order %v, want %s", got, tc.want)
			}
		})
	}
	m := newTestManager(t, t.TempDir(), 1, nil)
	v := mustAdd(t, m, "https://example.com/x")
	if err := m.Move(v.ID, "sideways"); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("Move(sideways) = %v, want ErrBadInput", err)
	}
}

func TestManagerBulk(t *testing.T) {
	f := newFakeEngine(t)
	m := newTestManager(t, t.TempDir(), 2, f)
	runManager(t, m)
	var ids []string
	for i := range 5 {
		ids = append(ids, mustAdd(t, m, fmt.Sprintf("https://example.com/%d", i)).ID)
	}
	waitState(t, m, ids[0], "downloading")
	f.finishTransfer("https://example.com/0", nil)
	waitState(t, m, ids[0], "completed")
	waitUntil(t, m, "2 downloading", func() bool { return countStates(m)["downloading"] == 2 })

	steps := []struct {
		name  string
		call  func() int
		want  int
		state string // every download but the completed one
	}{
		{"pause all", m.PauseAll, 4, "paused"},
		{"pause all again", m.PauseAll, 0, "paused"},
		{"resume all", m.ResumeAll, 4, ""},
		{"cancel all", m.CancelAll, 4, "canceled"},
		{"resume all canceled", m.ResumeAll, 0, "canceled"},
	}
	for _, s := range steps {
		if got := s.call(); got != s.want {
			t.Errorf("%s = %d, want %d", s.name, got, s.want)
		}
		if s.state == "" {
			continue
		}
		if n := countStates(m); n[s.state] != 4 || n["completed"] != 1 {
			t.Errorf("after %s: states %v", s.name, n)
		}
		if s.state == "paused" {
			f.mu.Lock()
			if f.running != 0 {
				t.Errorf("after %s: %d transfers still running", s.name, f.running)
			}
			f.mu.Unlock()
		}
	}
	if got := m.ClearFinished(); got != 5 {
		t.Errorf("ClearFinished = %d, want 5", got)
	}
	if got := m.List(); len(got) != 0 {
		t.Errorf("after ClearFinished: %+v", got)
	}
}

func TestManagerWait(t *testing.T) {
	f := newFakeEngine(t)
	m := newTestManager(t, t.TempDir(), 2, f)
	runManager(t, m)
	ok := mustAdd(t, m, "https://example.com/ok")
	bad := mustAdd(t, m, "https://example.com/bad")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := m.Wait(ctx, ok.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running download = %v, want DeadlineExceeded", err)
	}
	if err := m.Wait(t.Context(), ok.ID, "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("Wait(unknown) = %v, want ErrNotFound", err)
	}

	waited := make(chan error, 1)
	go func() { waited <- m.Wait(t.Context(), ok.ID, bad.ID) }()
	f.finishTransfer("https://example.com/ok", nil)
	f.finishTransfer("https://example.com/bad", errors.New("404 Not Found"))
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "https://example.com/bad: 404 Not Found") || strings.Contains(err.Error(), "/ok") {
			t.Errorf("Wait = %v, want the failure of bad only", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Wait did not return after both finished")
	}
	if err := m.Wait(t.Context(), ok.ID); err != nil {
		t.Errorf("Wait(completed) = %v", err)
	}
}

func TestManagerRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFakeEngine(t)
	m := newTestManager(t, dir, 2, f)
	stop := runManager(t, m)
	ids := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		ids[n] = mustAdd(t, m, "https://example.com/"+n).ID
	}
	// a and b run; c, d, e, f wait. Then: e completes, f fails, d is paused.
	waitState(t, m, ids["b"], "downloading")
	if err := m.Pause(ids["d"]); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"e", "f"} {
		if err := m.Move(ids[n], "top"); err != nil {
			t.Fatal(err)
		}
	}
	// Order now f e a b c d; make room for e and f.
	if err := m.SetConcurrency(4); err != nil {
		t.Fatal(err)
	}
	f.finishTransfer("https://example.com/e", nil)
	f.finishTransfer("https://example.com/f", errors.New("gone"))
	waitState(t, m, ids["e"], "completed")
	waitState(t, m, ids["f"], "failed")
	waitState(t, m, ids["c"], "downloading")
	// What a kill -9 at this moment would leave: the queue as last saved.
	// a, b, c run and f failed with 10 bytes each: the ticker saves them.
	waitQueueFile(t, dir, "a, b, c downloading with their bytes", func(data string) bool {
		return strings.Count(data, `"state":"downloading"`) == 3 && strings.Count(data, `"bytes_done":10,`) == 4
	})
	killed := readDiskQueue(t, dir)
	before := m.List()
	stop()

	want := map[string]string{"f": "failed", "e": "completed", "a": "queued", "b": "queued", "c": "queued", "d": "paused"}
	check := func(name string, m *Manager) {
		t.Helper()
		got := m.List()
		if len(got) != len(before) {
			t.Fatalf("%s: %d downloads, want %d", name, len(got), len(before))
		}
		for i, v := range got {
			if v.ID != before[i].ID || v.Source != before[i].Source || v.Position != i {
				t.Errorf("%s: #%d = %s %s, want %s %s", name, i, v.ID, v.Source, before[i].ID, before[i].Source)
			}
			if w := want[v.Name]; v.State != w {
				t.Errorf("%s: %s is %s, want %s", name, v.Name, v.State, w)
			}
		}
	}
	check("after shutdown", m)
	m2 := newTestManager(t, dir, 2, nil)
	check("after restart", m2)
	if v, _ := m2.Get(ids["a"]); v.Path != "a" || v.BytesDone != 10 || v.CreatedAt != before[2].CreatedAt {
		t.Errorf("restored a = %+v", v)
	}

	// The state a kill leaves loads the same way.
	killed.restore(t, dir)
	f3 := newFakeEngine(t)
	m3 := newTestManager(t, dir, 2, f3)
	check("after kill", m3)
	if v, _ := m3.Get(ids["c"]); v.BytesDone != 10 || v.Path != "c" {
		t.Errorf("progress saved while running: c = %+v, want its 10 bytes and path", v)
	}
	if m3.Recovered() != "" {
		t.Errorf("Recovered() = %q on a good file", m3.Recovered())
	}
	// It continues the same files: the engine is told the known paths.
	runManager(t, m3)
	f3.waitStarted("https://example.com/a", "https://example.com/b")
	f3.mu.Lock()
	if got, want := f3.paths["https://example.com/a"], filepath.Join(dir, "a"); got != want {
		t.Errorf("resumed a with Path %q, want %q", got, want)
	}
	f3.mu.Unlock()
	for _, n := range []string{"a", "b", "c"} {
		f3.finishTransfer("https://example.com/"+n, nil)
	}
	if err := m3.Wait(t.Context(), ids["a"], ids["b"], ids["c"]); err != nil {
		t.Fatal(err)
	}
	if v, _ := m3.Get(ids["d"]); v.State != "paused" {
		t.Errorf("paused d became %s", v.State)
	}
}

func TestManagerCorruptQueue(t *testing.T) {
	tests := []struct {
		name, data string
	}{
		{"garbage", "{not json"},
		{"truncated", `{"version":1,"jobs":[{"id":"d-1-1","kind":"file","source":"https://h/x","state":"queued"`},
		{"unknown version", `{"version":99,"jobs":[]}`},
		{"unknown state", `{"version":1,"jobs":[{"id":"d-1-1","kind":"file","source":"https://h/x","state":"exploded"}]}`},
		{"duplicate id", `{"version":1,"jobs":[{"id":"d-1-1","kind":"file","source":"https://h/x","state":"queued"},{"id":"d-1-1","kind":"file","source":"https://h/y","state":"queued"}]}`},
		{"no source", `{"version":1,"jobs":[{"id":"d-1-1","kind":"file","state":"queued"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, ".state", "queue.json")
			if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(state, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			// A temporary file a crash left before its rename.
			if err := os.WriteFile(state+".tmp-123", []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
			m := newTestManager(t, dir, 2, nil)
			if _, err := os.Stat(state + ".tmp-123"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale temporary file kept: %v", err)
			}
			aside := m.Recovered()
			if !strings.HasPrefix(aside, state+".corrupt-") {
				t.Fatalf("Recovered() = %q, want %s.corrupt-<time>", aside, state)
			}
			if got, err := os.ReadFile(aside); err != nil || string(got) != tc.data {
				t.Errorf("moved-aside file = %q, %v; want the original bytes", got, err)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("queue.json still there: %v", err)
			}
			if got := m.List(); len(got) != 0 {
				t.Errorf("queue = %+v, want empty", got)
			}
			// The manager works and writes a good file again.
			v := mustAdd(t, m, "https://example.com/x")
			m2 := newTestManager(t, dir, 2, nil)
			if got := m2.List(); len(got) != 1 || got[0].ID != v.ID || m2.Recovered() != "" {
				t.Errorf("after a new add and reload: %+v, recovered %q", got, m2.Recovered())
			}
		})
	}
}

func TestManagerRemoveDeletesOnlyInsideOutput(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "link")); err != nil {
		t.Skipf("cannot make a symbolic link: %v", err)
	}
	f := newFakeEngine(t)
	m := newTestManager(t, dir, 3, f)
	runManager(t, m)
	add := func(u, output string) JobView {
		t.Helper()
		v, err := m.Add(AddRequest{Source: u, Retries: -1, Output: output})
		if err != nil {
			t.Fatal(err)
		}
		f.finishTransfer(u, nil)
		return waitState(t, m, v.ID, "completed")
	}
	inside := add("https://example.com/inside.bin", "")
	outside := add("https://example.com/outside.bin", filepath.Join(elsewhere, "outside.bin"))
	linked := add("https://example.com/linked.bin", filepath.Join(dir, "link", "linked.bin"))

	if err := m.Remove(outside.ID, true); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("Remove(outside, delete) = %v, want ErrConflict", err)
	}
	if _, err := m.Get(outside.ID); err != nil {
		t.Errorf("a refused Remove forgot the download: %v", err)
	}
	if err := m.Remove(linked.ID, true); err == nil {
		t.Errorf("Remove through a symbolic link out of the output folder succeeded")
	}
	for _, name := range []string{"outside.bin", "linked.bin"} {
		if _, err := os.Stat(filepath.Join(elsewhere, name)); err != nil {
			t.Errorf("%s outside the output folder was touched: %v", name, err)
		}
	}
	if err := m.Remove(inside.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "inside.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inside.bin still there: %v", err)
	}
	if err := m.Remove(outside.ID, false); err != nil {
		t.Errorf("Remove(outside, keep file) = %v", err)
	}
	if got := m.List(); len(got) != 0 {
		t.Errorf("left: %+v", got)
	}
}

func TestManagerHistoryRecord(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	m := newTestManager(t, t.TempDir(), 1, nil)
	tests := []struct {
		name string
		job  managerJob
		want history.Record
	}{
		{
			"file",
			managerJob{
				ID: "d-1-1", Kind: "file", Source: "https://u:secret@Example.COM:8443/d/Movie.MKV?X-Amz-Signature=abc#t",
				State: "completed", Path: filepath.Join(m.outputDir, "Movie.MKV"), Done: 4000, Attempt: 1,
				Transferred: 3000, Active: 2, StartedAt: start, FinishedAt: start.Add(5 * time.Second),
			},
			history.Record{
				ID: "d-1-1", Kind: "file", Source: engine.RedactURL("https://u:secret@Example.COM:8443/d/Movie.MKV?X-Amz-Signature=abc#t"),
				FileName: "Movie.MKV", Path: "Movie.MKV", Size: 4000, StartedAt: start, FinishedAt: start.Add(5 * time.Second),
				Duration: 2, AverageSpeed: 1500, Status: "completed", Domain: "example.com", FileType: "mkv",
			},
		},
		{
			"failed retry without extension",
			managerJob{
				ID: "d-1-2", Kind: "file", Source: "http://h/download", State: "failed", Error: "boom", Attempt: 2,
				FinishedAt: start,
			},
			history.Record{
				ID: "d-1-2-2", Kind: "file", Source: "http://h/download", StartedAt: start, FinishedAt: start,
				Status: "failed", Error: "boom", Domain: "h", FileType: "other",
			},
		},
		{
			"model",
			managerJob{
				ID: "d-1-3", Kind: "model", Source: "llama3", State: "canceled", Done: 10,
				name: registry.Name{Host: "registry.ollama.ai", Namespace: "library", Model: "llama3", Tag: "latest"},
				Path: filepath.Join(m.outputDir, "llama3-latest.zip"), StartedAt: start, FinishedAt: start,
			},
			history.Record{
				ID: "d-1-3", Kind: "model", Source: "llama3", FileName: "llama3-latest.zip", Path: "llama3-latest.zip",
				Size: 10, StartedAt: start, FinishedAt: start, Status: "canceled", Domain: "registry.ollama.ai", FileType: "model",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := m.recordLocked(&tc.job)
			if got != tc.want {
				t.Errorf("record =\n%+v, want\n%+v", got, tc.want)
			}
			if strings.Contains(got.Source, "secret") || strings.Contains(got.Source, "abc") {
				t.Errorf("history source %q keeps a secret", got.Source)
			}
		})
	}
}

// TestManagerConcurrentCalls hammers one manager from many goroutines; the
// fake engine fails the test if a URL ever has two transfers at once, and
// -race checks the locking.
func TestManagerConcurrentCalls(t *testing.T) {
	f := newFakeEngine(t)
	m := newTestManager(t, t.TempDir(), 3, f)
	runManager(t, m)
	const urls = 12
	source := func(i int) string { return fmt.Sprintf("https://example.com/s%d", i) }
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				k := (g*7 + i*5) % urls
				v, err := m.Add(AddRequest{Source: source(k), Retries: -1})
				if err != nil {
					t.Errorf("Add: %v", err)
					return
				}
				switch (g + i) % 9 {
				case 0:
					err = m.Pause(v.ID)
				case 1:
					err = m.Resume(v.ID)
				case 2:
					err = m.Cancel(v.ID)
				case 3:
					err = m.Retry(v.ID)
				case 4:
					err = m.SetConcurrency(1 + (g+i)%4)
				case 5:
					err = m.Move(v.ID, []string{"top", "up", "down", "bottom"}[i%4])
				case 6:
					// Completes whatever transfer of it runs next.
					select {
					case f.gate(source(k)) <- nil:
					default:
					}
				case 7:
					m.List()
				case 8:
					if i%3 == 0 {
						m.PauseAll()
					} else {
						m.ResumeAll()
					}
				}
				if err != nil && !errors.Is(err, fault.ErrConflict) {
					t.Errorf("call %d: %v", (g+i)%9, err)
				}
			}
		}()
	}
	wg.Wait()
	m.CancelAll()
	var ids []string
	for _, v := range m.List() {
		ids = append(ids, v.ID)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	defer cancel()
	if err := m.Wait(ctx, ids...); err != nil {
		t.Fatalf("Wait after CancelAll: %v", err)
	}
	for _, v := range m.List() {
		if v.State != "canceled" && v.State != "completed" {
			t.Errorf("%s left %s", v.ID, v.State)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running != 0 {
		t.Errorf("%d transfers still running", f.running)
	}
	if f.maxRun > 4 {
		t.Errorf("%d transfers ran together; concurrency never exceeded 4", f.maxRun)
	}
}

// newOriginManager is a manager whose file transfers go through the real
// engine (with the short timeouts of testDownloader).
func newOriginManager(t *testing.T, dir string, concurrency int) *Manager {
	t.Helper()
	files := enginetest.NewDownloader(t)
	files.Connections = 1 // these tests check the Range of a single connection
	m, err := New(Config{OutputDir: dir, Concurrency: concurrency, Retries: 3, Files: files})
	if err != nil {
		t.Fatalf("newManager: %v", err)
	}
	m.saveEvery = 20 * time.Millisecond
	return m
}

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

func waitBytes(t *testing.T, m *Manager, id string, atLeast int64) JobView {
	t.Helper()
	var v JobView
	waitUntil(t, m, fmt.Sprintf("%s has %d bytes", id, atLeast), func() bool {
		v, _ = m.Get(id)
		return v.BytesDone >= atLeast || v.State == "completed" || v.State == "failed"
	})
	if v.State != "downloading" {
		t.Fatalf("%s is %s before %d bytes; the origin is too fast for this test", id, v.State, atLeast)
	}
	return v
}

func TestManagerOriginPauseResumeCancel(t *testing.T) {
	const size = 256 << 10
	o := testkit.NewOrigin(t, testkit.WithSize(size), testkit.WithPath("/files/movie.mkv"), testkit.WithThrottle(8*time.Millisecond))
	dir := t.TempDir()
	m := newOriginManager(t, dir, 2)
	runManager(t, m)

	v := mustAdd(t, m, o.FileURL())
	waitBytes(t, m, v.ID, 16<<10)
	// Live figures: a speed, and so an ETA, while bytes flow.
	waitUntil(t, m, "a speed and an ETA", func() bool {
		v, _ := m.Get(v.ID)
		return v.State == "downloading" && v.Speed > 0 && v.ETASeconds >= 0 && v.BytesTotal == size
	})
	waitBytes(t, m, v.ID, 32<<10)
	if err := m.Pause(v.ID); err != nil {
		t.Fatal(err)
	}
	paused, _ := m.Get(v.ID)
	part, err := os.Stat(filepath.Join(dir, "movie.mkv.part"))
	if err != nil || paused.State != "paused" || part.Size() == 0 || part.Size() >= size {
		t.Fatalf("after Pause: %+v; .part %v, %v", paused, part, err)
	}
	sentAtPause := o.BytesSent.Load()
	if err := m.Resume(v.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	done, _ := m.Get(v.ID)
	if done.State != "completed" || done.Path != "movie.mkv" || done.BytesDone != size || done.BytesTotal != size {
		t.Errorf("completed view = %+v", done)
	}
	checkFile(t, filepath.Join(dir, "movie.mkv"), o.Content())
	// The resumed request started where the .part ended: nothing twice.
	ranges := o.SeenRanges()
	last := ranges[len(ranges)-1]
	if start := testkit.ParseRangeStart(last); start == 0 || start > part.Size() {
		t.Errorf("resume asked for %q; the .part had %d bytes", last, part.Size())
	}
	// The stopped connection's handler may still write the chunk it was
	// in (8 KiB) after Pause returned; anything more was fetched twice.
	if resent := o.BytesSent.Load() - sentAtPause; resent > size-testkit.ParseRangeStart(last)+8<<10 {
		t.Errorf("after resume the origin sent %d bytes for the %d missing", resent, size-testkit.ParseRangeStart(last))
	}

	// Cancel removes the partial data; Retry starts over and finishes.
	o2 := testkit.NewOrigin(t, testkit.WithSize(size), testkit.WithPath("/files/disk.iso"), testkit.WithThrottle(8*time.Millisecond))
	c := mustAdd(t, m, o2.FileURL())
	waitBytes(t, m, c.ID, 16<<10)
	if err := m.Cancel(c.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"disk.iso.part", "disk.iso.part.json", "disk.iso"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Cancel %s: %v, want it gone", name, err)
		}
	}
	if v, _ := m.Get(c.ID); v.State != "canceled" {
		t.Errorf("after Cancel: %s", v.State)
	}
	o2.SetThrottle(0)
	if err := m.Retry(c.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "disk.iso"), o2.Content())
}

func TestManagerOriginChecksum(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithPath("/sum.bin"))
	dir := t.TempDir()
	m := newOriginManager(t, dir, 2)
	runManager(t, m)
	bad, err := m.Add(AddRequest{Source: o.FileURL(), Retries: 0, SHA256: strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(t.Context(), bad.ID); err == nil {
		t.Fatal("Wait = nil for a wrong checksum")
	}
	v, _ := m.Get(bad.ID)
	if v.State != "failed" || !strings.Contains(v.Error, fault.ErrChecksumMismatch.Error()) {
		t.Errorf("wrong checksum: %+v", v)
	}
	for _, name := range []string{"sum.bin", "sum.bin.part"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a checksum mismatch: %v", name, err)
		}
	}
	good, err := m.Add(AddRequest{Source: o.FileURL(), Retries: 0, SHA256: strings.ToUpper(testkit.Sha256Of(o.Content()))})
	if err != nil {
		t.Fatal(err)
	}
	if good.ID == bad.ID {
		t.Error("adding a finished source again reused the failed download")
	}
	if err := m.Wait(t.Context(), good.ID); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "sum.bin"), o.Content())
}

func TestManagerOriginFailure(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<10), testkit.FailFirst(100, 404, ""))
	m := newOriginManager(t, t.TempDir(), 2)
	runManager(t, m)
	v, err := m.Add(AddRequest{Source: o.FileURL(), Retries: 0})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Wait(t.Context(), v.ID)
	got, _ := m.Get(v.ID)
	if err == nil || got.State != "failed" || !strings.Contains(got.Error, "404") || got.FinishedAt.IsZero() {
		t.Errorf("Wait = %v, view %+v; want failed with the 404", err, got)
	}
}

// TestManagerOriginManyCalls steers several live downloads from many
// goroutines at once, then checks every file is byte-exact.
func TestManagerOriginManyCalls(t *testing.T) {
	const n = 6
	dir := t.TempDir()
	m := newOriginManager(t, dir, 2)
	runManager(t, m)
	var origins []*testkit.Origin
	var ids []string
	for i := range n {
		o := testkit.NewOrigin(t, testkit.WithSize(96<<10+i*1000), testkit.WithPath(fmt.Sprintf("/f%d.bin", i)), testkit.WithThrottle(2*time.Millisecond))
		origins = append(origins, o)
		ids = append(ids, mustAdd(t, m, o.FileURL()).ID)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				id := ids[(g*3+i)%n]
				var err error
				switch (g + i) % 6 {
				case 0:
					err = m.Pause(id)
				case 1, 4:
					err = m.Resume(id)
				case 2:
					err = m.Cancel(id)
				case 3:
					err = m.Retry(id)
				case 5:
					err = m.SetConcurrency(1 + i%4)
				}
				if err != nil && !errors.Is(err, fault.ErrConflict) {
					t.Errorf("call: %v", err)
				}
			}
		})
	}
	wg.Wait()
	m.ResumeAll()
	for _, id := range ids {
		if v, _ := m.Get(id); v.State == "canceled" || v.State == "failed" {
			if err := m.Retry(id); err != nil {
				t.Errorf("Retry(%s): %v", id, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	defer cancel()
	if err := m.Wait(ctx, ids...); err != nil {
		t.Fatalf("Wait: %v; queue %+v", err, m.List())
	}
	for i, id := range ids {
		v, _ := m.Get(id)
		if v.State != "completed" {
			t.Errorf("%s: %s", id, v.State)
			continue
		}
		checkFile(t, filepath.Join(dir, v.Path), origins[i].Content())
		for _, leftover := range []string{v.Path + ".part", v.Path + ".part.json"} {
			if _, err := os.Stat(filepath.Join(dir, leftover)); err == nil {
				t.Errorf("%s left behind", leftover)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != n+1 { // the files and .state
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output folder holds %v, want the %d files and .state", names, n)
	}
}

// TestManagerOriginRestart stops a manager mid-download (as SIGTERM does)
// and checks that a new one on the same folder finishes every file
// byte-exact, asking only for the bytes it did not have.
func TestManagerOriginRestart(t *testing.T) {
	const n, size = 4, 256 << 10
	dir := t.TempDir()
	m := newOriginManager(t, dir, n)
	stop := runManager(t, m)
	var origins []*testkit.Origin
	var ids []string
	for i := range n {
		o := testkit.NewOrigin(t, testkit.WithSize(size), testkit.WithPath(fmt.Sprintf("/r%d.bin", i)), testkit.WithThrottle(8*time.Millisecond))
		origins = append(origins, o)
		ids = append(ids, mustAdd(t, m, o.FileURL()).ID)
	}
	paused := ids[n-1]
	for _, id := range ids {
		waitBytes(t, m, id, 32<<10)
	}
	if err := m.Pause(paused); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	stop()
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	for i, id := range ids {
		v, _ := m.Get(id)
		want := "queued"
		if id == paused {
			want = "paused"
		}
		if v.State != want {
			t.Errorf("after shutdown %s is %s, want %s", id, v.State, want)
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("r%d.bin.part", i))); err != nil {
			t.Errorf("after shutdown: %v", err)
		}
	}

	// What each .part holds now is what must not be fetched again.
	have := make([]int64, n)
	sent := make([]int64, n)
	for i := range n {
		st, err := engine.ReadPartState(filepath.Join(dir, fmt.Sprintf("r%d.bin", i)))
		if err != nil {
			t.Fatal(err)
		}
		have[i] = st.Committed
		sent[i] = origins[i].BytesSent.Load()
		origins[i].SetThrottle(0)
	}
	m2 := newOriginManager(t, dir, 2)
	runManager(t, m2)
	if v, _ := m2.Get(paused); v.State != "paused" {
		t.Errorf("paused download came back %s", v.State)
	}
	if err := m2.Resume(paused); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	defer cancel()
	if err := m2.Wait(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		v, _ := m2.Get(id)
		if v.State != "completed" || v.ID != id {
			t.Errorf("%s: %+v", id, v)
		}
		checkFile(t, filepath.Join(dir, fmt.Sprintf("r%d.bin", i)), origins[i].Content())
		ranges := origins[i].SeenRanges()
		if got, want := ranges[len(ranges)-1], fmt.Sprintf("bytes=%d-", have[i]); got != want {
			t.Errorf("r%d resumed with Range %q, want %q", i, got, want)
		}
		// Besides the missing bytes, only the chunk (8 KiB) the stopped
		// connection's handler may have been writing.
		if again := origins[i].BytesSent.Load() - sent[i]; again < size-have[i] || again > size-have[i]+8<<10 {
			t.Errorf("r%d: after restart the origin sent %d bytes, want the %d missing", i, again, size-have[i])
		}
	}
}

// TestManagerOriginTenDownloadsTwoRestarts is issue 4's scenario in one
// process: ten throttled downloads are paused, resumed, reordered and
// cancelled while the manager is stopped and started again twice; every
// file ends byte-exact and each restart asks only for the missing bytes.
func TestManagerOriginTenDownloadsTwoRestarts(t *testing.T) {
	const n, size = 10, 160 << 10
	dir := t.TempDir()
	var origins []*testkit.Origin
	var ids []string
	m := newOriginManager(t, dir, 3)
	for i := range n {
		o := testkit.NewOrigin(t, testkit.WithSize(size+i*512), testkit.WithPath(fmt.Sprintf("/t%d.bin", i)), testkit.WithThrottle(6*time.Millisecond))
		origins = append(origins, o)
		ids = append(ids, mustAdd(t, m, o.FileURL()).ID)
	}
	part := func(i int) string { return filepath.Join(dir, fmt.Sprintf("t%d.bin", i)) }

	for round := range 3 {
		if round > 0 {
			m = newOriginManager(t, dir, 3)
			if got := len(m.List()); got != n {
				t.Fatalf("round %d: %d downloads after restart, want %d", round, got, n)
			}
		}
		// What each .part holds before this round starts.
		committed := make([]int64, n)
		for i := range n {
			if st, err := engine.ReadPartState(part(i)); err == nil {
				committed[i] = st.Committed
			}
		}
		before := make([]int, n)
		for i := range n {
			before[i] = len(origins[i].SeenRanges())
		}
		stop := runManager(t, m)
		switch round {
		case 0:
			waitBytes(t, m, ids[0], 16<<10)
			if err := m.Move(ids[9], "top"); err != nil {
				t.Fatal(err)
			}
			if err := m.Pause(ids[1]); err != nil {
				t.Fatal(err)
			}
			waitBytes(t, m, ids[9], 16<<10)
			if err := m.Cancel(ids[2]); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := m.Retry(ids[2]); err != nil {
				t.Fatal(err)
			}
			if err := m.Move(ids[2], "top"); err != nil && !errors.Is(err, fault.ErrConflict) {
				t.Fatal(err)
			}
			if err := m.SetConcurrency(5); err != nil {
				t.Fatal(err)
			}
			waitBytes(t, m, ids[2], 16<<10)
			if m.PauseAll() == 0 {
				t.Error("PauseAll paused nothing")
			}
			m.ResumeAll()
			waitBytes(t, m, ids[2], 48<<10)
		case 2:
			for i := range n {
				origins[i].SetThrottle(0)
			}
			if err := m.Resume(ids[1]); err != nil && !errors.Is(err, fault.ErrConflict) {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
			defer cancel()
			if err := m.Wait(ctx, ids...); err != nil {
				t.Fatalf("Wait: %v; %+v", err, m.List())
			}
		}
		stop()
		// Every download that continued asked for exactly what was missing.
		for i := range n {
			ranges := origins[i].SeenRanges()[before[i]:]
			if committed[i] > 0 && len(ranges) > 0 {
				if got, want := ranges[0], fmt.Sprintf("bytes=%d-", committed[i]); got != want {
					t.Errorf("round %d: t%d continued with Range %q, want %q", round, i, got, want)
				}
			}
		}
	}
	for i, id := range ids {
		v, _ := m.Get(id)
		if v.State != "completed" {
			t.Errorf("%s (t%d) ended %s", id, i, v.State)
			continue
		}
		checkFile(t, part(i), origins[i].Content())
	}
}

// fakePull is a registry client the test steers phase by phase.
type fakePull struct {
	steps chan models.PullProgress // reported one by one
	end   chan error               // ends the pull
	reqs  chan models.PullRequest
}

func (f *fakePull) pull(ctx context.Context, req models.PullRequest) (models.PullResult, error) {
	f.reqs <- req
	for {
		select {
		case <-ctx.Done():
			return models.PullResult{}, fmt.Errorf("pulling: %w", ctx.Err())
		case p := <-f.steps:
			req.Progress(p)
		case err := <-f.end:
			if err != nil {
				return models.PullResult{}, err
			}
			path := req.Output
			if path == "" {
				path = filepath.Join(req.OutputDir, "llama3-latest.zip")
			}
			if werr := os.WriteFile(path, []byte("zip"), 0o644); werr != nil {
				return models.PullResult{}, werr
			}
			return models.PullResult{Path: path, Size: 3}, nil
		}
	}
}

func TestManagerModelPhases(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, dir, 2, nil)
	fp := &fakePull{steps: make(chan models.PullProgress), end: make(chan error), reqs: make(chan models.PullRequest, 10)}
	m.pull = fp.pull
	m.cfg.KeepStaging = true
	runManager(t, m)
	id := mustAdd(t, m, "llama3").ID
	req := <-fp.reqs
	if req.Ref != "llama3" || req.OutputDir != m.outputDir || req.Output != "" || !req.KeepStaging || req.Retries != 2 {
		t.Errorf("pull request = %+v", req)
	}
	steps := []struct {
		p     models.PullProgress
		state string
	}{
		{models.PullProgress{Phase: "resolving", Total: -1}, "downloading"},
		{models.PullProgress{Phase: "downloading", Done: 40, Total: 100}, "downloading"},
		{models.PullProgress{Phase: "verifying", Done: 100, Total: 100}, "verifying"},
		{models.PullProgress{Phase: "packaging", Done: 100, Total: 100}, "packaging"},
	}
	for _, s := range steps {
		fp.steps <- s.p
		waitUntil(t, m, "phase "+s.p.Phase, func() bool {
			v, _ := m.Get(id)
			return v.Phase == s.p.Phase && v.State == s.state && v.BytesDone == s.p.Done && v.BytesTotal == s.p.Total
		})
	}
	fp.end <- nil
	v := waitState(t, m, id, "completed")
	want := JobView{
		ID: id, Kind: "model", Source: "llama3", Name: "llama3:latest", Path: "llama3-latest.zip", State: "completed",
		BytesDone: 3, BytesTotal: 3, Retries: 2, CreatedAt: v.CreatedAt, StartedAt: v.StartedAt, FinishedAt: v.FinishedAt, Rev: v.Rev,
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("completed model =\n%+v, want\n%+v", v, want)
	}

	// A paused pull goes back to queued and is asked for again; a
	// canceled one is gone.
	id2 := mustAdd(t, m, "qwen2:0.5b").ID
	<-fp.reqs
	fp.steps <- models.PullProgress{Phase: "downloading", Done: 10, Total: 100}
	waitUntil(t, m, "qwen2 at 10 bytes", func() bool { v, _ := m.Get(id2); return v.BytesDone == 10 })
	if err := m.Pause(id2); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(id2); v.State != "paused" || v.Phase != "" || v.BytesDone != 10 {
		t.Errorf("paused model = %+v", v)
	}
	if err := m.Resume(id2); err != nil {
		t.Fatal(err)
	}
	<-fp.reqs
	if err := m.Cancel(id2); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(id2); v.State != "canceled" {
		t.Errorf("canceled model = %+v", v)
	}
}

// BenchmarkManagerProgress is the cost of one engine progress report: the
// engine calls it for every buffer it writes.
func BenchmarkManagerProgress(b *testing.B) {
	m, err := New(Config{OutputDir: b.TempDir(), Concurrency: 4})
	if err != nil {
		b.Fatal(err)
	}
	run := &managerRun{speed: engine.NewSpeedTracker(10), done: make(chan struct{})}
	j := &managerJob{ID: "d-1-1", Kind: "file", State: "downloading", run: run}
	m.jobs = append(m.jobs, j)
	var done int64
	for b.Loop() {
		done += 256 << 10
		m.progress(j, run, models.PullProgress{Done: done, Total: -1})
	}
}

// BenchmarkManagerList is the cost of the list the API serves every second.
func BenchmarkManagerList(b *testing.B) {
	m, err := New(Config{OutputDir: b.TempDir(), Concurrency: 4})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := m.Add(AddRequest{Source: fmt.Sprintf("https://example.com/%d.bin", i), Retries: -1}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		m.List()
	}
}

// newRegistryManager is a manager pulling models from the fake registry f
// and writing history, with the real engines.
func newRegistryManager(t *testing.T, dir string, f *testkit.FakeRegistry) (*Manager, *history.Store) {
	t.Helper()
	hist := mustOpenHistory(t, dir)
	files := enginetest.NewDownloader(t)
	files.Connections = 1
	m, err := New(Config{
		OutputDir: dir, Concurrency: 2, Retries: 3,
		Files: files, Models: modelstest.NewPuller(t, f.URL), History: hist,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.saveEvery = 20 * time.Millisecond
	return m, hist
}

func TestManagerModelPull(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	model := testkit.TinyModel(f, "tiny", "1")
	var layer string // the 300 KB layer
	for d, b := range model.Blobs {
		if len(b) == 300<<10 {
			layer = d
		}
	}
	// The big layer sends 64 KB, then a byte per 50 ms: time to pause.
	f.Set(func(f *testkit.FakeRegistry) { f.Trickle[layer] = 64 << 10 })
	dir := t.TempDir()
	m, _ := newRegistryManager(t, dir, f)
	stop := runManager(t, m)

	v := mustAdd(t, m, "tiny:1")
	name, err := registry.ParseName("tiny:1", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind != "model" || v.Name != name.DisplayName() || v.Path != "tiny-1.zip" {
		t.Errorf("added model = %+v", v)
	}
	waitUntil(t, m, "64 KB of the layer", func() bool {
		v, _ := m.Get(v.ID)
		return v.State == "downloading" && v.Phase == "downloading" && v.BytesDone >= 64<<10 && v.BytesTotal > 300<<10
	})
	if err := m.Pause(v.ID); err != nil {
		t.Fatal(err)
	}
	// Stop the process here too: the next one continues the paused pull
	// when asked, from the bytes it has.
	stop()
	f.Set(func(f *testkit.FakeRegistry) { delete(f.Trickle, layer) })
	served := f.Count(func(f *testkit.FakeRegistry) int { return int(f.BytesServed[layer]) })

	m2, hist := newRegistryManager(t, dir, f)
	runManager(t, m2)
	if got, _ := m2.Get(v.ID); got.State != "paused" {
		t.Fatalf("after restart the paused pull is %s", got.State)
	}
	if err := m2.Resume(v.ID); err != nil {
		t.Fatal(err)
	}
	if err := m2.Wait(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	done, _ := m2.Get(v.ID)
	if done.State != "completed" || done.Phase != "" || done.Path != "tiny-1.zip" {
		t.Errorf("completed pull = %+v", done)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, filepath.Join(dir, "tiny-1.zip")), testkit.ExpectedTree(f.Host, "library", "tiny", "1", model))
	again := f.Count(func(f *testkit.FakeRegistry) int { return int(f.BytesServed[layer]) }) - served
	if again <= 0 || again > 300<<10-32<<10 {
		t.Errorf("after resume the layer's origin sent %d bytes; it had %d of %d before", again, served, 300<<10)
	}
	if _, err := os.Stat(filepath.Join(dir, ".staging")); err == nil {
		if entries, _ := os.ReadDir(filepath.Join(dir, ".staging")); len(entries) > 0 {
			t.Errorf("staging left behind: %v", entries)
		}
	}

	page, err := hist.List(history.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 {
		t.Fatalf("history = %+v, want one record", page)
	}
	rec := page.Records[0]
	if rec.ID != v.ID || rec.Kind != "model" || rec.Status != "completed" || rec.Domain != f.Host ||
		rec.FileType != "model" || rec.FileName != "tiny-1.zip" || rec.Size != done.BytesDone || rec.Source != "tiny:1" {
		t.Errorf("history record = %+v", rec)
	}
}

func TestManagerModelCancelAndFailure(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	model := testkit.TinyModel(f, "slow", "1")
	for d, b := range model.Blobs {
		if len(b) == 300<<10 {
			f.Set(func(f *testkit.FakeRegistry) { f.Trickle[d] = 32 << 10 })
		}
	}
	dir := t.TempDir()
	m, hist := newRegistryManager(t, dir, f)
	runManager(t, m)

	v := mustAdd(t, m, "slow:1")
	waitUntil(t, m, "32 KB", func() bool { v, _ := m.Get(v.ID); return v.BytesDone >= 32<<10 })
	name, err := registry.ParseName("slow:1", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(models.PullStagingDir(dir, name)); err != nil {
		t.Fatalf("no staging while pulling: %v", err)
	}
	if err := m.Cancel(v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(models.PullStagingDir(dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging after Cancel: %v", err)
	}
	if got, _ := m.Get(v.ID); got.State != "canceled" {
		t.Errorf("after Cancel: %+v", got)
	}

	missing, err := m.Add(AddRequest{Source: "nothere:1", Retries: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(t.Context(), missing.ID); err == nil {
		t.Error("Wait = nil for a model the registry does not have")
	}
	if got, _ := m.Get(missing.ID); got.State != "failed" || got.Error == "" {
		t.Errorf("unknown model = %+v", got)
	}

	page, err := hist.List(history.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, r := range page.Records {
		statuses[r.ID] = r.Status
	}
	if statuses[v.ID] != "canceled" || statuses[missing.ID] != "failed" || len(statuses) != 2 {
		t.Errorf("history statuses = %v", statuses)
	}
}

func TestManagerFileHistory(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(128<<10), testkit.WithPath("/pics/photo.JPG"), testkit.WithThrottle(5*time.Millisecond))
	dir := t.TempDir()
	hist := mustOpenHistory(t, dir)
	files := enginetest.NewDownloader(t)
	m, err := New(Config{OutputDir: dir, Concurrency: 2, Retries: 1, Files: files, History: hist})
	if err != nil {
		t.Fatal(err)
	}
	m.saveEvery = 20 * time.Millisecond
	runManager(t, m)

	v := mustAdd(t, m, o.FileURL()+"?token=secret")
	waitBytes(t, m, v.ID, 16<<10)
	if err := m.Cancel(v.ID); err != nil {
		t.Fatal(err)
	}
	o.SetThrottle(0)
	if err := m.Retry(v.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	page, err := hist.List(history.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]history.Record{}
	for _, r := range page.Records {
		byID[r.ID] = r
		if strings.Contains(r.Source, "secret") {
			t.Errorf("history keeps the query string: %q", r.Source)
		}
		if r.Domain != "127.0.0.1" || r.FileType != "jpg" || r.Kind != "file" || r.FileName != "photo.JPG" {
			t.Errorf("record = %+v", r)
		}
	}
	canceled, completed := byID[v.ID], byID[v.ID+"-2"]
	if len(byID) != 2 || canceled.Status != "canceled" || completed.Status != "completed" {
		t.Fatalf("history = %+v, want a canceled and a completed attempt", page.Records)
	}
	if completed.Size != 128<<10 || completed.Path != "photo.JPG" || completed.Duration <= 0 || completed.AverageSpeed <= 0 ||
		completed.FinishedAt.Before(completed.StartedAt) {
		t.Errorf("completed record = %+v", completed)
	}
}

// TestManagerKillAfterCompletionBeforeQueueSave: the queue is saved after
// the history. A kill in between leaves queue.json saying the job is
// queued, without its path; the restart must take the end from the
// history, not fetch the file again as "data (1).bin".
func TestManagerKillAfterCompletionBeforeQueueSave(t *testing.T) {
	dir := t.TempDir()
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	open := func() *Manager {
		h := mustOpenHistory(t, dir)
		m, err := New(Config{OutputDir: dir, Concurrency: 2, Retries: 1, Files: enginetest.NewDownloader(t), History: h})
		if err != nil {
			t.Fatal(err)
		}
		m.saveEvery = time.Hour // no progress saves: only Add's and shutdown's
		return m
	}
	m := open()
	stop := runManager(t, m)
	id := mustAdd(t, m, o.FileURL()).ID
	stale := readDiskQueue(t, dir) // what Add saved: queued, no path
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	defer cancel()
	if err := m.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	stop()
	stale.restore(t, dir) // the kill: the saves after Add never happened
	gets := o.Gets.Load()

	m = open()
	v, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != "completed" || v.BytesDone != 64<<10 || filepath.Base(v.Path) != "data.bin" {
		t.Fatalf("after the restart the job is %s with %d bytes at %q, want completed, 65536, data.bin", v.State, v.BytesDone, v.Path)
	}
	runManager(t, m)
	time.Sleep(100 * time.Millisecond) // a wrongly queued job would start now
	if n := o.Gets.Load(); n != gets {
		t.Errorf("the restart made %d more GET requests for a finished file", n-gets)
	}
	if _, err := os.Stat(filepath.Join(dir, "data (1).bin")); err == nil {
		t.Error("the file was fetched a second time as data (1).bin")
	}
	checkFile(t, filepath.Join(dir, "data.bin"), o.Content())
}

// TestManagerCleansOnlyItsOwnTempFiles: the CLI's queue file lives next to
// the web UI's; each cleans up its own crash leftovers and never touches a
// temp file the other may be about to rename.
func TestManagerCleansOnlyItsOwnTempFiles(t *testing.T) {
	dir := t.TempDir()
	open := func(queueFile string) *Manager {
		m, err := New(Config{OutputDir: dir, QueueFile: queueFile, Files: enginetest.NewDownloader(t)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	open("cli-queue.json")
	if err := os.MkdirAll(filepath.Join(dir, ".state"), 0o755); err != nil {
		t.Fatal(err)
	}
	leftover, err := os.CreateTemp(filepath.Join(dir, ".state"), "cli-queue.json.tmp-*") // a CLI save cut short
	if err != nil {
		t.Fatal(err)
	}
	leftover.Close()
	open("") // the web UI starts
	if _, err := os.Stat(leftover.Name()); err != nil {
		t.Fatalf("the web UI removed the CLI's temp file: %v", err)
	}
	open("cli-queue.json")
	if _, err := os.Stat(leftover.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Error("the CLI kept its own stale temp file")
	}
}

// TestManagerQueueFull: the queue's cap refuses a batch that does not fit
// with ErrConflict and a message saying so, and queues none of it.
func TestManagerQueueFull(t *testing.T) {
	m := newTestManager(t, t.TempDir(), 1, nil)
	// Filled in place: adding 20,000 through AddAll takes seconds (each
	// add scans the queue for the same source), and only the count matters.
	m.mu.Lock()
	for i := range maxQueueJobs - 2 {
		m.jobs = append(m.jobs, &managerJob{ID: fmt.Sprintf("d-fill-%d", i), Kind: jobKindFile, Source: fmt.Sprintf("https://example.com/%d", i), State: JobCompleted, Total: -1})
	}
	m.mu.Unlock()
	_, err := m.AddAll([]AddRequest{{Source: "https://example.com/a"}, {Source: "https://example.com/b"}, {Source: "https://example.com/c"}})
	if !errors.Is(err, fault.ErrConflict) || !strings.Contains(err.Error(), "queue is full") {
		t.Errorf("AddAll beyond the cap: %v, want ErrConflict saying the queue is full", err)
	}
	m.mu.Lock()
	n := len(m.jobs)
	m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool { return strings.HasPrefix(j.ID, "d-fill-") })
	m.mu.Unlock()
	if n != maxQueueJobs-2 {
		t.Errorf("%d downloads after a refused add, want %d", n, maxQueueJobs-2)
	}
}
