// Package owner decides which process owns an output folder and how the
// others reach it. The owner holds an OS lock on .state/owner.lock (flock or
// LockFileEx: the kernel drops it when the process dies) and says in
// .state/owner.json (0600) its kind (web UI or command), its loopback URL and
// a random key. Client is what a process that does not own the folder uses to
// hand its downloads to the owner and follow them; Reach makes one only for
// an owner that passes the trust rules (trust.go): a file only this user can
// write, a URL on this machine, its key and never the person's token, the
// lock holder where the system can tell, and the owner's proof that it wrote
// the file.
//
// Invariants: one owner per folder at a time; a crash frees the folder at
// once; owner.json is withdrawn before a clean stop.
package owner
