// Package engine is the HTTP download engine: one URL into one file, resumable,
// verified and published by rename. It owns the range downloader, the
// several-connection split (segments.go), the speed limits (ratelimit.go), the
// rolling speed (speed_tracker.go), file names from Content-Disposition or the
// URL (filename.go), the one HTTP client with its proxies and redirect policy
// (httpclient.go), and what is retried (retry.go).
//
// A download, in outline (Downloader.Download):
//
//	check the URL and the checksum's form
//	the path: the request's, else this URL's own interrupted .part under the
//	    name the URL suggests, else the first answer names it (adoptName):
//	    Content-Disposition or the URL, never overwriting a different file
//	    ("name (1).ext"), claimed with an empty .part — one request for a
//	    small file, no HEAD before it (a HEAD first only on a nearly full disk)
//	if the file is already there with the expected size/digest: done
//	check the free space once the size is known, before any body byte
//	open the .part and its sidecar (<path>.part.json: URL, validators, size,
//	    what is durable); keep only bytes the sidecar says reached the disk
//	loop:
//	    fetch: Range from the offset, with If-Range; accept a 206 only for
//	        exactly that offset and total; a 200 restarts from 0; a file
//	        that may be split is asked for a chunk at a time (segments):
//	        several connections once the link proves slow, each asking for
//	        closed ranges, a connection out of work taking only what nobody
//	        asked for yet, so no request is cut short
//	    every second: fsync the .part, then record in the sidecar what is durable
//	    success: verify size (and SHA-256 when asked), fsync, rename, fsync the folder
//	    a failure that may pass (Retrier, retry.go): make progress durable,
//	        report the wait (Request.Waiting), back off (Retry-After
//	        honoured) until the next try, "try now" or another transfer's
//	        recovery, and go on; an attempt that moved 64 KiB is no failure
//	    a permanent failure (fault.Transient), or a budget spent (Retries in
//	        a row, RetryFor without progress): keep the .part, return one line
//
// Invariants: nothing unverified is published; a crash at any moment leaves
// the previous file or a resumable .part; a response is never appended to
// bytes of another version of the file. Progress, paths and written ranges
// are reported through callbacks in the Request: the engine knows nothing of
// the queue or the models above it.
package engine
