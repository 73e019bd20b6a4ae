package history

import (
	"cmp"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Stats is GET /api/statistics. Counts include every record
// (completed, failed, canceled); bytes and the average speed count
// completed downloads only, because a failed record's size says nothing
// reliable about what reached the disk.
type Stats struct {
	TotalFiles    int               `json:"total_files"`
	TotalBytes    int64             `json:"total_bytes"`
	Completed     int               `json:"completed"`
	Failed        int               `json:"failed"`
	Canceled      int               `json:"canceled"`
	AverageSpeed  float64           `json:"average_speed"` // completed bytes / completed seconds
	Domains       []historyDomain   `json:"domains"`       // by bytes, largest first
	FileTypes     []historyFileType `json:"file_types"`    // by bytes, largest first
	Daily         []historyDay      `json:"daily"`         // last 30 UTC days, oldest first
	RecoveredFrom string            `json:"recovered_from"`
}

type historyDomain struct {
	Domain string `json:"domain"`
	Count  int    `json:"count"`
	Bytes  int64  `json:"bytes"`
}

type historyFileType struct {
	Type  string `json:"type"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

type historyDay struct {
	Date  string `json:"date"` // YYYY-MM-DD, UTC
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

// Stats computes the statistics at now (the daily chart ends at now's UTC
// day). Counts include every record; bytes only completed ones.
func (h *Store) Stats(now time.Time) Stats {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	first := today.AddDate(0, 0, -(historyDays - 1))
	st := Stats{
		Domains:   []historyDomain{},
		FileTypes: []historyFileType{},
		Daily:     make([]historyDay, historyDays),
	}
	for i := range st.Daily {
		st.Daily[i].Date = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	domains := map[string]*historyDomain{}
	types := map[string]*historyFileType{}
	var seconds float64

	h.mu.Lock()
	h.parseAllLocked()
	st.RecoveredFrom = h.recovered
	for i := range h.records {
		r := &h.records[i].rec
		var size int64
		switch r.Status {
		case "completed":
			st.Completed++
			size = r.Size
			seconds += r.Duration
		case "failed":
			st.Failed++
		case "canceled":
			st.Canceled++
		}
		st.TotalFiles++
		st.TotalBytes += size

		domain := cmp.Or(r.Domain, "unknown")
		d := domains[domain]
		if d == nil {
			d = &historyDomain{Domain: domain}
			domains[domain] = d
		}
		d.Count++
		d.Bytes += size

		ft := cmp.Or(r.FileType, "other")
		t := types[ft]
		if t == nil {
			t = &historyFileType{Type: ft}
			types[ft] = t
		}
		t.Count++
		t.Bytes += size

		fin := r.FinishedAt.UTC()
		day := time.Date(fin.Year(), fin.Month(), fin.Day(), 0, 0, 0, 0, time.UTC)
		if !day.Before(first) && !day.After(today) {
			k := int(day.Sub(first).Hours()/24 + 0.5)
			st.Daily[k].Count++
			st.Daily[k].Bytes += size
		}
	}
	h.mu.Unlock()

	if seconds > 0 {
		st.AverageSpeed = float64(st.TotalBytes) / seconds
	}
	for _, d := range domains {
		st.Domains = append(st.Domains, *d)
	}
	sortLargestFirst(st.Domains, func(d historyDomain) (int64, int, string) { return d.Bytes, d.Count, d.Domain })
	for _, t := range types {
		st.FileTypes = append(st.FileTypes, *t)
	}
	sortLargestFirst(st.FileTypes, func(t historyFileType) (int64, int, string) { return t.Bytes, t.Count, t.Type })
	return st
}

// sortLargestFirst orders statistics rows by bytes, then count, largest
// first, then by name.
func sortLargestFirst[T any](rows []T, key func(T) (bytes int64, count int, name string)) {
	slices.SortFunc(rows, func(a, b T) int {
		ab, ac, an := key(a)
		bb, bc, bn := key(b)
		return cmp.Or(cmp.Compare(bb, ab), cmp.Compare(bc, ac), strings.Compare(an, bn))
	})
}

// DomainOf is the lower-case host name (without port) of a URL source, or
// "" when source is not an http(s) URL (a model name, for instance).
func DomainOf(source string) string {
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// FileTypeOf is the lower-case extension of name without its dot, "model"
// for models and "other" when there is no usable extension.
func FileTypeOf(kind, name string) string {
	if kind == "model" {
		return "model"
	}
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(name), "."))
	if ext == "" || len(ext) > 16 || strings.ContainsFunc(ext, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	}) {
		return "other"
	}
	return ext
}
