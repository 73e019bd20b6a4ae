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
//	choose the path: the request's, else the server's name in Dir, never
//	    overwriting a different file ("name (1).ext"); claim it with an empty .part
//	if the file is already there with the expected size/digest: done
//	check the free space once the size is known, before any body byte
//	open the .part and its sidecar (<path>.part.json: URL, validators, size,
//	    what is durable); keep only bytes the sidecar says reached the disk
//	loop:
//	    fetch: Range from the offset, with If-Range; accept a 206 only for
//	        exactly that offset and total; a 200 restarts from 0;
//	        several connections once the link proves slow (segments)
//	    every second: fsync the .part, then record in the sidecar what is durable
//	    success: verify size (and SHA-256 when asked), fsync, rename, fsync the folder
//	    a failure worth retrying: back off (Retry-After honoured) and go on
//	    otherwise, or out of retries: keep the .part and sidecar, return one line
//
// Invariants: nothing unverified is published; a crash at any moment leaves
// the previous file or a resumable .part; a response is never appended to
// bytes of another version of the file. Progress, paths and written ranges
// are reported through callbacks in the Request: the engine knows nothing of
// the queue or the models above it.
package engine
