// Package queue is the download manager: one queue of file downloads,
// model pulls and exports of this machine's Ollama models (which start
// outside the time window too: they use no network), a pool of 1–32
// workers, the daily time window (schedule.go), the index of URLs already
// downloaded (done_index.go), and the state that lets the queue survive a
// restart (queue_store.go: queue.json plus queue.journal, one line per
// change).
//
// The manager's loop, in outline (Manager.Run, run.go):
//
//	load queue.json and replay queue.journal; settle jobs whose end the
//	    history already records
//	loop until the context ends:
//	    while fewer than Concurrency run and the window is open:
//	        start the first queued job whose source and path no running job holds
//	    a job ends: record it in the history (once), mark it, start the next
//	    every ProgressEvery: announce progress (Changed), save it
//	on stop: pause what runs (its .part stays) and save; a web UI folds the
//	    journal back into queue.json
//
// Actions (actions.go) change a job under the manager's lock, append one
// journal line and wait until a stopped transfer has let go of its files;
// views (views.go) are copies, never the jobs themselves.
//
// A download may carry a browser's cookies, referrer and user-agent
// (headers.go): in memory and in one 0600 file per job while it needs them,
// never in queue.json, the journal or the history; gone when it ends.
//
// Invariants: two transfers never share a .part; what was running or queued
// at a crash continues at the next start, what was paused stays paused; a
// job is recorded in the history once.
package queue
