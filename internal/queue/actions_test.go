package queue

import "testing"

// TestManagerPausedBy: a download paused for an interrupted command says
// so while it is paused, across a restart; a resume, or a pause from
// here, clears it.
func TestManagerPausedBy(t *testing.T) {
	dir := t.TempDir()
	f := newFakeEngine(t)
	m := newTestManager(t, dir, 1, f)
	stop := runManager(t, m)
	id := mustAdd(t, m, "https://example.com/a").ID
	waitState(t, m, id, "downloading")
	if err := m.PauseFor(id, PausedByCLI); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(id); v.State != JobPaused || v.PausedBy != PausedByCLI {
		t.Fatalf("after PauseFor: state %s, paused_by %q; want paused by %q", v.State, v.PausedBy, PausedByCLI)
	}
	stop()

	m = newTestManager(t, dir, 1, f)
	stop = runManager(t, m)
	if v, _ := m.Get(id); v.State != JobPaused || v.PausedBy != PausedByCLI {
		t.Fatalf("after a restart: state %s, paused_by %q; want paused by %q", v.State, v.PausedBy, PausedByCLI)
	}
	if err := m.Resume(id); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, id, "downloading")
	if err := m.Pause(id); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(id); v.State != JobPaused || v.PausedBy != "" {
		t.Errorf("paused here after a resume: state %s, paused_by %q; want paused with no paused_by", v.State, v.PausedBy)
	}
	stop()
}
