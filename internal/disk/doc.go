// Package disk holds the durable-disk helpers every layer that writes state
// uses: atomic replacement of a file (temp file, fsync, rename, fsync of the
// folder), an append-only journal of JSON lines whose fsyncs are shared by
// concurrent writers (group commit), the folder lock the kernel drops when
// its process dies, free space and "disk full" as one message, the file
// system's type (FAT32 cannot hold a 4 GiB file), and batching of fsyncs
// (one syncfs for many small files on Linux).
//
// Platform code sits in files by suffix: _unix, _windows, _linux, _darwin,
// _other.
//
// Invariants: a file published with WriteFileAtomic or ReplaceFile is either
// the old content or the whole new one after a crash or power cut, and
// WriteFileAtomic fails when the folder's fsync does (SyncDir passes over
// only a file system that cannot sync a folder); a journal line is on disk
// when Sync returns, and no line is written over the stale end of a failed
// write; state folders and journals are the user's only (MakePrivateDir,
// 0700 and 0600); ENOSPC is always the one SpaceError ("the disk is full: no
// space left on MOUNT; …").
package disk
