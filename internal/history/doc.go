// Package history keeps the record of finished downloads
// (<output-dir>/.history): history.json holds the newest records and the list
// of archive files of older ones (archive/NNNNNN.json, 1,000 records each);
// history.journal takes each new record as one fsynced line, and history.json
// is replaced atomically within half a second of a finish and at exit. It
// answers pages, searches and statistics (stats.go, query.go).
//
// Invariants: a record written is never lost (the journal holds it until
// history.json does); a record's ID is written once (AddOnce); a corrupt
// file is moved aside and reported, never silently emptied. A command run
// (OpenRecent) reads history.json's records as lines and never opens an
// archive.
package history
