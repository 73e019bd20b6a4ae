// Package models is the Ollama side: the layout of a models folder
// (blobs/sha256-<hex>, manifests/<host>/<namespace>/<model>/<tag>), the zip
// that carries it (written in place, Store, zip64, split into .001 parts),
// reading and verifying zips and folders (modelzip.go, verify.go), installing
// into a models folder (install.go), reusing blobs already on this machine
// (reuse.go), `show`, and the Puller that puts a registry's model into a zip
// or straight into a models folder. Reading this machine's Ollama models
// folder without a server is local.go (list, names resolved as Ollama does);
// export.go puts its models into the zip a pull writes, with no network, and
// check.go compares one with its registry's tag.
//
// A pull, in outline (Puller.Pull):
//
//	parse the name (Ollama's rules), resolve its manifest through the registry
//	list the blobs (config and layers, once each, digests checked)
//	zip:     plan the zip from the manifest (the layout is known), then each
//	         blob goes into its place in the zip through the engine, from disk
//	         when a copy hashes right, else from the registry; manifest last;
//	         the zip is renamed into place when every entry is verified
//	install: each blob is verified in a staging folder beside blobs/ and
//	         renamed in; the manifest is written last, so a running Ollama
//	         never lists half a model
//
// An export (Puller.Export) is the zip branch with the manifests read from a
// models folder (several models, each blob once) and every blob copied from
// its blobs/, hashed on the way; nothing is fetched, and a blob that does not
// hash right fails the export instead of being fetched.
//
// Invariants: the manifest is written byte for byte as served (Ollama's model
// ID is its SHA-256); extracting the zip into an empty models folder gives
// exactly what `ollama pull` writes; nothing named by a zip or a manifest can
// reach outside the folder it is written to; a verified blob is never fetched
// again when a pull is run again.
package models
