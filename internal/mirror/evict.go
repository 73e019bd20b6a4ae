package mirror

import (
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// staleIncoming is how long a partial blob nobody asks for is kept for a
// resume before a sweep deletes it.
const staleIncoming = 7 * 24 * time.Hour

// ParseCacheSize reads -cache-max: a size like 500M, 50G or 1.5T (powers
// of 1024; a plain number is bytes). "" and "0" mean no bound.
func ParseCacheSize(s string) (int64, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	v = strings.TrimSuffix(strings.TrimSuffix(v, "IB"), "B")
	if v == "" {
		return 0, nil
	}
	mult := int64(1)
	if i := strings.IndexAny(v, "KMGT"); i == len(v)-1 {
		mult = int64(1) << (10 * (strings.IndexByte("KMGT", v[i]) + 1))
		v = v[:i]
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<60 {
		return 0, fault.BadInputf("cache size %q: use a size like 500M, 50G or 2T (0 = no bound)", s)
	}
	return int64(n * float64(mult)), nil
}

// sweep forgets pending manifests nobody asked for in a while, deletes
// blobs no manifest uses, keeps the cache within its bound and saves the
// pull times when they changed.
func (c *Cache) sweep() {
	c.mu.Lock()
	now := c.now()
	for key, e := range c.pending {
		if !e.prefetching && now.Sub(e.touched) > c.pendingTTL {
			delete(c.pending, key)
		}
	}
	for key, at := range c.active {
		if now.Sub(at) > c.activeGrace {
			delete(c.active, key) // names asked for once, maybe never to exist
		}
	}
	for digest, f := range c.fetches {
		if err, at := f.failed(); err != nil && now.Sub(at) > c.failedTTL {
			delete(c.fetches, digest)
		}
	}
	c.removeOrphansLocked()
	c.removeIncomingLocked(false, now)
	c.evictLocked(0)
	dirty := c.pullsDirty
	c.mu.Unlock()
	if dirty {
		c.savePulls()
	}
}

// referencedLocked is the set of blobs some manifest, cached or pending,
// lists.
func (c *Cache) referencedLocked() map[string]bool {
	refs := map[string]bool{}
	for _, set := range []map[string]*cacheEntry{c.manifests, c.pending} {
		for _, e := range set {
			for _, b := range e.blobs {
				refs[b.Digest] = true
			}
		}
	}
	return refs
}

// removeOrphansLocked deletes the complete blobs that no manifest lists
// and nobody is being served, and returns the bytes freed.
func (c *Cache) removeOrphansLocked() int64 {
	refs := c.referencedLocked()
	var freed int64
	for digest, size := range c.blobs {
		if refs[digest] || c.inUse[digest] > 0 {
			continue
		}
		if err := os.Remove(c.blobPath(digest)); err != nil && !os.IsNotExist(err) {
			c.log.Warn("model cache: removing an unused blob", "digest", digest, "err", err)
			continue
		}
		delete(c.blobs, digest)
		freed += size
	}
	return freed
}

// removeIncomingLocked deletes partial blobs no fetch is writing: those
// no manifest lists or untouched for staleIncoming, or every one when
// all is set (the cache is over its bound). It returns the bytes freed.
func (c *Cache) removeIncomingLocked(all bool, now time.Time) int64 {
	dir := filepath.Join(c.Dir, cacheIncomingDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	refs := c.referencedLocked()
	var freed int64
	for _, e := range entries {
		// sha256-<hex>.part, .part.json and the engine's temp files of
		// them all belong to the blob their name starts with.
		name := e.Name()
		digest := ""
		if hexPart, ok := strings.CutPrefix(name, registry.DigestFilePrefix); ok && len(hexPart) >= registry.Sha256HexLen {
			digest = registry.DigestAlgoPrefix + hexPart[:registry.Sha256HexLen]
		}
		if f := c.fetches[digest]; f != nil {
			if err, _ := f.failed(); err == nil {
				continue // being written
			}
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if !all && refs[digest] && now.Sub(info.ModTime()) < staleIncoming {
			continue
		}
		if os.Remove(filepath.Join(dir, name)) == nil {
			freed += info.Size()
		}
	}
	return freed
}

// usedLocked is what the cache holds and has promised: complete blobs and
// the full size of every running fetch.
func (c *Cache) usedLocked() int64 {
	var used int64
	for _, size := range c.blobs {
		used += size
	}
	for digest, f := range c.fetches {
		if _, ok := c.blobs[digest]; ok {
			continue
		}
		if err, _ := f.failed(); err == nil {
			used += f.size
		}
	}
	return used
}

// protectedLocked says whether a model must stay: pulled or asked for
// within activeGrace, or one of its blobs being served or fetched.
func (c *Cache) protectedLocked(e *cacheEntry, now time.Time) bool {
	if now.Sub(e.pulled) < c.activeGrace || now.Sub(c.active[repoKey(e.Name)]) < c.activeGrace {
		return true
	}
	for _, b := range e.blobs {
		if c.inUse[b.Digest] > 0 {
			return true
		}
		if f := c.fetches[b.Digest]; f != nil {
			if err, _ := f.failed(); err == nil {
				return true
			}
		}
	}
	return false
}

// evictLocked makes room for need more bytes within the bound: partial
// blobs nobody fetches first, then whole models, least recently pulled
// first. Blobs another model still lists stay, and no model being pulled
// or served is touched: when only such models are left the cache stays
// over its bound until they are done.
func (c *Cache) evictLocked(need int64) {
	if c.Max <= 0 {
		return
	}
	now := c.now()
	used := c.usedLocked()
	if used+need <= c.Max {
		return
	}
	c.removeIncomingLocked(true, now)
	byAge := make([]*cacheEntry, 0, len(c.manifests))
	for _, e := range c.manifests {
		byAge = append(byAge, e)
	}
	slices.SortFunc(byAge, func(a, b *cacheEntry) int { return a.pulled.Compare(b.pulled) })
	for _, e := range byAge {
		if used+need <= c.Max {
			return
		}
		if c.protectedLocked(e, now) {
			continue
		}
		p := filepath.Join(c.Dir, filepath.FromSlash(e.rel))
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			c.log.Warn("model cache: evicting", "model", e.Name.DisplayName(), "err", err)
			continue
		}
		for d := filepath.Dir(p); d != filepath.Join(c.Dir, "manifests") && os.Remove(d) == nil; d = filepath.Dir(d) {
		}
		delete(c.manifests, e.key)
		c.pullsDirty = true
		used -= c.removeOrphansLocked()
		c.log.Info("model evicted from the cache", "model", e.Name.DisplayName(), "last_pulled", e.pulled.Format(time.RFC3339))
	}
	if used+need > c.Max {
		c.log.Warn("model cache over its bound: the models left are being pulled", "used", used, "need", need, "max", c.Max)
	}
}
