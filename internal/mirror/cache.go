package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The cache folder inside -output-dir, in Ollama's layout (blobs/ and
// manifests/), so that install, verify and zip-making take it as it is;
// the cache's own files start with a dot and are ignored by them.
const (
	CacheFolderName  = ".ollama-cache"
	cacheLockFile    = ".lock"       // one writer per folder
	cachePullsFile   = ".pulls.json" // when each model was last pulled, for eviction
	cacheIncomingDir = ".incoming"   // blobs on their way: the engine's .part files
	cacheHoldback    = 64 << 10      // bytes of a blob held back until it is verified
)

// cacheConfig is what a pull-through cache needs.
type cacheConfig struct {
	Dir      string           // the cache folder (created if missing)
	Upstream *registry.Client // where missing models come from; its -registry rules apply
	Max      int64            // bytes the cache may hold; 0 = no bound
	Log      *slog.Logger
	Stats    *mirrorStats // counts bytes fetched upstream; nil = not counted
}

// Cache is the pull-through part of the mirror: manifests are asked
// upstream on every pull while it answers and served from the folder when
// it does not; a blob that is missing is fetched upstream once, through
// the file engine (several connections, resumable, verified), while any
// number of clients follow it (blobFetch). Models are kept in Ollama's
// layout, a manifest written only once all its blobs are in, and the
// least recently pulled ones are evicted whole past Max.
type Cache struct {
	Dir      string
	root     *os.Root // dir, so that nothing served can lead outside it
	Upstream *registry.Client
	host     string // the upstream's host[:port]: manifests/<host>/…
	Max      int64
	log      *slog.Logger
	stats    *mirrorStats
	lock     *disk.Lock

	// Knobs that tests turn.
	retries           int           // engine attempts per blob, and digest mismatches tolerated
	revalidateTimeout time.Duration // how long a pull waits for upstream before using its cached manifest
	failedTTL         time.Duration // a failed blob is answered as failed this long before it is tried again
	activeGrace       time.Duration // a model pulled this recently is not evicted
	pendingTTL        time.Duration // a manifest whose blobs never all came is forgotten after this idle time
	sweepEvery        time.Duration
	holdback          int64
	headWaitBelow     int64 // a HEAD for a blob this small still arriving waits for its verdict
	now               func() time.Time

	ctx      context.Context // ends at Close: fetches stop, their .part kept for a resume
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	prefetch chan struct{} // bounds the blobs fetched ahead of the clients

	mu         sync.Mutex
	manifests  map[string]*cacheEntry // written to disk, by key
	pending    map[string]*cacheEntry // from upstream, blobs still coming
	blobs      map[string]int64       // complete blobs: digest → size
	fetches    map[string]*blobFetch  // running, and failed ones for failedTTL
	inUse      map[string]int         // digest → requests serving it now
	active     map[string]time.Time   // lower-case host/namespace/model → last request
	pullsDirty bool
	closed     bool
}

// cacheEntry is one manifest of the cache: written, or pending while its
// blobs arrive.
type cacheEntry struct {
	key         string // lower-case host/namespace/model/file: names match case-insensitively
	rel         string // manifests/<host>/<namespace>/<model>/<tag or sha256-hex>, slash-separated
	Name        registry.Name
	raw         []byte // exactly as upstream sent it: Ollama's model ID is its sha256
	digest      string
	mediaType   string
	blobs       []registry.Blob
	size        int64     // sum of the blobs
	pulled      time.Time // last pull (written entries: the eviction order)
	touched     time.Time // last use (pending entries)
	prefetching bool
	writing     bool
}

// cacheInUseError is a second writer on one cache folder.
type cacheInUseError struct{ dir string }

func (e *cacheInUseError) Error() string {
	return fmt.Sprintf("the model cache %s is in use by another process (a serve-models or a web UI mirror with an upstream); stop that one, or give this one another -output-dir", e.dir)
}

func (e *cacheInUseError) Is(target error) bool {
	return target == fault.ErrConflict || target == disk.ErrLocked
}

// openModelCache opens (or creates) the cache folder and takes its lock.
func openModelCache(cfg cacheConfig) (*Cache, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("model cache: no upstream registry")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stats == nil {
		cfg.Stats = newMirrorStats()
	}
	for _, d := range []string{"blobs", "manifests", cacheIncomingDir} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating the model cache: %w", err)
		}
	}
	lock, err := disk.TryLock(filepath.Join(cfg.Dir, cacheLockFile))
	if errors.Is(err, disk.ErrLocked) {
		return nil, &cacheInUseError{dir: cfg.Dir}
	}
	if err != nil {
		return nil, fmt.Errorf("locking the model cache: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("opening the model cache: %w", err)
	}
	retries := cfg.Upstream.Retries()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		Dir:               cfg.Dir,
		root:              root,
		Upstream:          cfg.Upstream,
		host:              cfg.Upstream.DefaultHost(),
		Max:               cfg.Max,
		log:               cfg.Log,
		stats:             cfg.Stats,
		lock:              lock,
		retries:           retries,
		revalidateTimeout: 5 * time.Second,
		failedTTL:         30 * time.Second,
		activeGrace:       time.Minute,
		pendingTTL:        10 * time.Minute,
		sweepEvery:        time.Minute,
		holdback:          cacheHoldback,
		headWaitBelow:     1 << 20,
		now:               time.Now,
		ctx:               ctx,
		cancel:            cancel,
		prefetch:          make(chan struct{}, cfg.Upstream.Concurrency()),
		manifests:         map[string]*cacheEntry{},
		pending:           map[string]*cacheEntry{},
		blobs:             map[string]int64{},
		fetches:           map[string]*blobFetch{},
		inUse:             map[string]int{},
		active:            map[string]time.Time{},
	}
	c.load()
	c.sweep()
	c.wg.Add(1)
	go c.maintain()
	return c, nil
}

// Close stops the fetches (their .part files stay for a resume), saves
// the pull times and releases the folder.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.savePulls()
	c.root.Close()
	return c.lock.Close()
}

// maintain sweeps now and then: idle pending manifests, orphan blobs,
// the size bound, the pull times.
func (c *Cache) maintain() {
	defer c.wg.Done()
	t := time.NewTicker(c.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// hostDir is the folder of a registry host in the layout; Windows cannot
// name a folder "host:port", so the port is joined with "_" there, as the
// staging folder does.
func cacheHostDir(host string) string {
	if runtime.GOOS == "windows" {
		return strings.ReplaceAll(host, ":", "_")
	}
	return host
}

func cacheKey(name registry.Name) string {
	return strings.ToLower(name.Host + "/" + name.Namespace + "/" + name.Model + "/" + name.ManifestFile())
}

func repoKey(name registry.Name) string {
	return strings.ToLower(name.Host + "/" + name.Namespace + "/" + name.Model)
}

func (c *Cache) blobPath(digest string) string {
	return filepath.Join(c.Dir, "blobs", registry.DigestFilePrefix+strings.TrimPrefix(digest, registry.DigestAlgoPrefix))
}

func (c *Cache) incomingPath(digest string) string {
	return filepath.Join(c.Dir, cacheIncomingDir, registry.DigestFilePrefix+strings.TrimPrefix(digest, registry.DigestAlgoPrefix))
}

// load reads the folder: complete blobs, manifests whose blobs are all
// there, and the pull times.
func (c *Cache) load() {
	entries, err := os.ReadDir(filepath.Join(c.Dir, "blobs"))
	if err != nil {
		c.log.Warn("model cache: reading blobs", "err", err)
	}
	for _, e := range entries {
		hexPart, ok := strings.CutPrefix(e.Name(), registry.DigestFilePrefix)
		if !ok || !registry.IsLowerHex(hexPart, registry.Sha256HexLen) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			c.blobs[registry.DigestAlgoPrefix+hexPart] = info.Size()
		}
	}
	pulls := map[string]time.Time{}
	if data, err := os.ReadFile(filepath.Join(c.Dir, cachePullsFile)); err == nil {
		if err := json.Unmarshal(data, &pulls); err != nil {
			c.log.Warn("model cache: unreadable pull times; starting afresh", "err", err)
		}
	}
	mdir := filepath.Join(c.Dir, "manifests")
	filepath.WalkDir(mdir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(c.Dir, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		parts := strings.Split(rel, "/")
		if len(parts) != 5 || models.CheckLayoutParts(parts[1:]) != "" {
			return nil // a temp file of an interrupted write, or a stranger
		}
		e, err := c.readEntry(rel, parts)
		if err != nil {
			c.log.Warn("model cache: skipping a manifest", "file", rel, "err", err)
			return nil
		}
		if !c.hasAllLocked(e) {
			c.log.Warn("model cache: skipping a manifest whose blobs are missing", "file", rel)
			return nil
		}
		e.pulled = pulls[rel]
		if e.pulled.IsZero() {
			if info, err := d.Info(); err == nil {
				e.pulled = info.ModTime()
			}
		}
		c.manifests[e.key] = e
		return nil
	})
}

// readEntry reads one manifest file of the folder.
func (c *Cache) readEntry(rel string, parts []string) (*cacheEntry, error) {
	f, err := c.root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := models.ReadManifestBytes(f)
	if err != nil {
		return nil, err
	}
	host := parts[1]
	if runtime.GOOS == "windows" {
		host = strings.Replace(host, "_", ":", 1)
	}
	name := registry.Name{Host: host, Namespace: parts[2], Model: parts[3], Tag: parts[4]}
	if hexPart, ok := strings.CutPrefix(parts[4], registry.DigestFilePrefix); ok {
		name.Tag, name.Digest = "", registry.DigestAlgoPrefix+hexPart
	}
	e, err := newCacheEntry(name, raw, "")
	if err != nil {
		return nil, err
	}
	if name.Digest != "" && name.Digest != e.digest {
		return nil, fmt.Errorf("content has %s, not the digest in its name", e.digest)
	}
	e.rel = rel
	return e, nil
}

// newCacheEntry checks a manifest and lists its blobs.
func newCacheEntry(name registry.Name, raw []byte, contentType string) (*cacheEntry, error) {
	m, err := registry.DecodeManifest(raw)
	if err != nil {
		return nil, err
	}
	if m.IsIndex(contentType) {
		return nil, fmt.Errorf("%s is a multi-platform index; this cache keeps model manifests only", name.DisplayName())
	}
	blobs, err := registry.ManifestBlobs(m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	e := &cacheEntry{
		key:       cacheKey(name),
		rel:       path.Join("manifests", cacheHostDir(name.Host), name.Namespace, name.Model, name.ManifestFile()),
		Name:      name,
		raw:       raw,
		digest:    registry.DigestAlgoPrefix + hex.EncodeToString(sum[:]),
		mediaType: m.MediaType,
		blobs:     blobs,
	}
	switch contentType {
	case registry.MediaDockerManifest, registry.MediaOCIManifest:
		e.mediaType = contentType
	}
	if e.mediaType == "" {
		e.mediaType = registry.MediaDockerManifest
	}
	for _, b := range blobs {
		e.size += b.Size
	}
	return e, nil
}

func (c *Cache) hasAllLocked(e *cacheEntry) bool {
	for _, b := range e.blobs {
		if size, ok := c.blobs[b.Digest]; !ok || size != b.Size {
			return false
		}
	}
	return true
}

// manifest answers a client's manifest request. A tag is asked upstream
// every time, so a moved tag is seen; when upstream does not answer in
// time (offline, down, refusing), the cached manifest is served. A
// digest is content-addressed: a cached one is served without asking.
// An upstream "not found" is passed on (ErrNotFound).
func (c *Cache) manifest(ctx context.Context, name registry.Name) (*cacheEntry, error) {
	key := cacheKey(name)
	c.mu.Lock()
	cached := c.manifests[key]
	if cached == nil && name.Digest != "" {
		cached = c.byDigestLocked(name)
	}
	c.active[repoKey(name)] = c.now()
	c.mu.Unlock()
	if cached != nil && name.Digest != "" {
		c.pulledNow(cached)
		return cached, nil
	}
	fetchCtx, retries := ctx, c.retries
	if cached != nil {
		var cancel context.CancelFunc
		fetchCtx, cancel = context.WithTimeout(ctx, c.revalidateTimeout)
		defer cancel()
		retries = 0
	}
	raw, ct, err := c.Upstream.FetchManifest(fetchCtx, name, name.Reference(), retries)
	switch {
	case err == nil:
		return c.adopt(name, raw, ct)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, fault.ErrNotFound):
		return nil, err
	case cached != nil:
		c.log.Warn("upstream did not answer; serving the cached manifest", "model", name.DisplayName(), "err", err)
		c.pulledNow(cached)
		return cached, nil
	}
	return nil, err
}

// byDigestLocked finds a cached manifest of the same model by its digest
// (pulled by tag, asked for by digest).
func (c *Cache) byDigestLocked(name registry.Name) *cacheEntry {
	repo := repoKey(name)
	for _, e := range c.manifests {
		if e.digest == name.Digest && repoKey(e.Name) == repo {
			return e
		}
	}
	return nil
}

func (c *Cache) pulledNow(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.pulled = c.now()
	c.pullsDirty = true
}

// adopt takes a manifest upstream sent. A new one (a model not cached,
// a moved tag) becomes pending and its blobs are fetched ahead of the
// clients; it is written to the folder once they are all in.
func (c *Cache) adopt(name registry.Name, raw []byte, contentType string) (*cacheEntry, error) {
	e, err := newCacheEntry(name, raw, contentType)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s from %s: %w", name.DisplayName(), c.host, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if old := c.manifests[e.key]; old != nil {
		if old.digest == e.digest {
			old.pulled = now
			c.pullsDirty = true
			return old, nil
		}
		e.rel = old.rel // the same file, whatever the case the client typed
	}
	if p := c.pending[e.key]; p != nil && p.digest == e.digest {
		e = p
	} else {
		c.pending[e.key] = e
	}
	e.touched = now
	if !e.prefetching && !c.closed {
		e.prefetching = true
		c.wg.Add(1)
		go c.prefetchBlobs(e)
	}
	return e, nil
}

// prefetchBlobs fetches a pending manifest's missing blobs, a few at a
// time, while the clients ask for them one after another (as Ollama
// does): several hosts asking at once all follow the same fetches.
func (c *Cache) prefetchBlobs(e *cacheEntry) {
	defer c.wg.Done()
	var wg sync.WaitGroup
	for _, b := range e.blobs {
		select {
		case c.prefetch <- struct{}{}:
		case <-c.ctx.Done():
		}
		if c.ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-c.prefetch }()
			f, err := c.ensureFetch(b, e.Name)
			if err != nil || f == nil {
				return
			}
			select {
			case <-f.done:
			case <-c.ctx.Done():
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	e.prefetching = false
	c.mu.Unlock()
	c.writeReady()
}

// ensureFetch returns the running fetch of a blob, starting one when
// needed; nil when the blob is already complete. A fetch that failed
// a short while ago is returned as it is, failed, so a bad upstream blob
// is not fetched again by every request.
func (c *Cache) ensureFetch(b registry.Blob, name registry.Name) (*blobFetch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size, ok := c.blobs[b.Digest]; ok && size == b.Size {
		return nil, nil
	}
	if f := c.fetches[b.Digest]; f != nil {
		if err, at := f.failed(); err == nil || c.now().Sub(at) < c.failedTTL {
			return f, nil
		}
		delete(c.fetches, b.Digest)
	}
	if c.closed {
		return nil, errors.New("the model cache is closing")
	}
	if err := disk.CheckFreeSpace(c.Dir, b.Size); err != nil {
		return nil, fmt.Errorf("caching blob %s: %w", b.Digest, err)
	}
	f := newBlobFetch(b.Digest, b.Size, engine.PartPath(c.incomingPath(b.Digest)))
	c.fetches[b.Digest] = f // first: its size counts, its partial from an earlier run stays
	c.evictLocked(0)
	c.wg.Add(1)
	go c.runFetch(f, b, name)
	return f, nil
}

// runFetch downloads one blob into the cache through the engine and
// publishes it into blobs/ once verified. A digest mismatch is fetched
// again a bounded number of times, each attempt a new generation for the
// clients following it.
func (c *Cache) runFetch(f *blobFetch, b registry.Blob, name registry.Name) {
	defer c.wg.Done()
	dest := c.incomingPath(b.Digest)
	c.log.Info("fetching blob upstream", "digest", b.Digest, "size", b.Size, "model", name.DisplayName())
	var err error
	for attempt := 0; ; attempt++ {
		err = c.Upstream.DownloadBlob(c.ctx, name, b.Digest, engine.Request{
			Path:    dest,
			SHA256:  strings.TrimPrefix(b.Digest, registry.DigestAlgoPrefix),
			Size:    b.Size,
			Retries: c.retries,
			Written: func(start, end int64) {
				if start >= 0 {
					c.stats.upstream.Add(end - start)
				}
				f.written(start, end)
			},
			Verified: f.verify,
		})
		if err == nil || c.ctx.Err() != nil {
			break
		}
		mismatch := errors.Is(err, fault.ErrChecksumMismatch) && attempt < c.retries
		foreign := errors.Is(err, fault.ErrConflict) && attempt == 0 // a stale different file where the blob goes
		if !mismatch && !foreign {
			break
		}
		c.log.Warn("blob failed verification; fetching it again", "digest", b.Digest, "attempt", attempt+1, "err", err)
		if foreign {
			os.Remove(dest)
		}
		f.newGeneration()
	}
	final := c.blobPath(b.Digest)
	if err == nil {
		if err = os.Rename(dest, final); err == nil {
			syncDir(filepath.Dir(final))
		}
	}
	c.mu.Lock()
	switch {
	case err == nil:
		c.blobs[b.Digest] = b.Size
		delete(c.fetches, b.Digest)
	case c.ctx.Err() != nil:
		delete(c.fetches, b.Digest) // stopped, not failed: the .part resumes next time
	}
	c.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("fetching blob %s of %s from %s: %w", b.Digest, name.DisplayName(), c.host, err)
		if c.ctx.Err() == nil {
			c.log.Warn("blob not cached", "err", err)
		}
		f.finish("", err, c.now())
		return
	}
	c.log.Info("blob cached", "digest", b.Digest, "size", b.Size)
	f.finish(final, nil, c.now())
	c.writeReady()
}

// syncDir makes a rename in dir durable; failures only cost durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeReady writes the pending manifests whose blobs are all in: the
// manifest last, as a pull does, so the folder never lists a model it
// cannot serve.
func (c *Cache) writeReady() {
	c.mu.Lock()
	var ready []*cacheEntry
	for _, e := range c.pending {
		if !e.writing && c.hasAllLocked(e) {
			e.writing = true // one writer, though several fetches end at once
			ready = append(ready, e)
		}
	}
	c.mu.Unlock()
	wrote := false
	for _, e := range ready {
		p := filepath.Join(c.Dir, filepath.FromSlash(e.rel))
		err := os.MkdirAll(filepath.Dir(p), 0o755)
		if err == nil {
			err = disk.WriteFileAtomic(p, 0o644, func(w io.Writer) error { _, err := w.Write(e.raw); return err })
		}
		if err != nil {
			c.log.Warn("model cache: writing a manifest", "model", e.Name.DisplayName(), "err", err)
			c.mu.Lock()
			e.writing = false
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		if c.pending[e.key] == e {
			delete(c.pending, e.key)
		}
		e.pulled = c.now()
		c.manifests[e.key] = e
		c.pullsDirty = true
		c.mu.Unlock()
		wrote = true
		c.log.Info("model cached", "model", e.Name.DisplayName(), "digest", e.digest)
	}
	if wrote {
		c.sweep() // a moved tag leaves blobs no manifest uses
	}
}

// lookupBlob finds a blob a client asks for: its file when complete, else
// its size and a model listing it (for the upstream URL) when a cached or
// pending manifest names it. repo is the model the client asked under.
func (c *Cache) lookupBlob(digest string, repo registry.Name) (file string, ref registry.Blob, own registry.Name, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size, ok := c.blobs[digest]; ok {
		return c.blobPath(digest), registry.Blob{Digest: digest, Size: size}, repo, true
	}
	want := repoKey(repo)
	for _, set := range []map[string]*cacheEntry{c.pending, c.manifests} {
		for _, e := range set {
			for _, b := range e.blobs {
				if b.Digest != digest {
					continue
				}
				if !known || repoKey(e.Name) == want {
					ref, own, known = b, e.Name, true
				}
			}
		}
	}
	return "", ref, own, known
}

// openBlob opens a complete blob through the folder's os.Root: a regular
// file, nothing a link leads to outside.
func (c *Cache) openBlob(digest string) (*os.File, fs.FileInfo, error) {
	f, err := c.root.Open(path.Join("blobs", registry.DigestFilePrefix+strings.TrimPrefix(digest, registry.DigestAlgoPrefix)))
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("blob %s: %w", digest, fs.ErrNotExist)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// hold marks a blob (and the model it was asked under) in use until the
// returned function is called: eviction leaves it alone.
func (c *Cache) hold(digest string, repo registry.Name) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inUse[digest]++
	key := repoKey(repo)
	c.active[key] = c.now()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.inUse[digest]--; c.inUse[digest] <= 0 {
			delete(c.inUse, digest)
		}
		c.active[key] = c.now()
	}
}

// Entries lists the manifests that can be served offline, for the
// catalog, the tag lists and the statistics.
func (c *Cache) Entries() []*cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*cacheEntry, 0, len(c.manifests))
	for _, e := range c.manifests {
		if strings.EqualFold(e.Name.Host, c.host) {
			out = append(out, e)
		}
	}
	return out
}

// savePulls records when each model was last pulled.
func (c *Cache) savePulls() {
	c.mu.Lock()
	pulls := make(map[string]time.Time, len(c.manifests))
	for _, e := range c.manifests {
		pulls[e.rel] = e.pulled.UTC()
	}
	c.pullsDirty = false
	c.mu.Unlock()
	data, err := json.MarshalIndent(pulls, "", "  ")
	if err == nil {
		err = disk.WriteFileAtomic(filepath.Join(c.Dir, cachePullsFile), 0o644, func(w io.Writer) error { _, err := w.Write(data); return err })
	}
	if err != nil {
		c.log.Warn("model cache: saving pull times", "err", err)
	}
}

// manifestContentType is the media type to answer a manifest with.
func manifestContentType(e *cacheEntry) string {
	if t, _, err := mime.ParseMediaType(e.mediaType); err == nil {
		return t
	}
	return registry.MediaDockerManifest
}
