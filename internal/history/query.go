package history

import (
	"ollama-model-downloader/internal/fault"
	"strings"
)

// Query selects a page of records, newest first. Limit <= 0 means
// 50 and is capped at 1000; a negative Offset is bad input; an Offset past
// the end gives an empty page with the right Total. Status is "" or one of
// completed, failed, canceled; Search matches source or file name,
// ignoring case.
type Query struct {
	Limit, Offset  int
	Status, Search string
}

type Page struct {
	Total   int      `json:"total"`
	Records []Record `json:"records"`
}

// List returns one page of records, newest first.
func (h *Store) List(q Query) (Page, error) {
	if q.Offset < 0 {
		return Page{}, fault.BadInputf("offset must be 0 or more, got %d", q.Offset)
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	status := strings.ToLower(strings.TrimSpace(q.Status))
	switch status {
	case "", "completed", "failed", "canceled":
	default:
		return Page{}, fault.BadInputf("status must be completed, failed or canceled, got %q", q.Status)
	}
	search := strings.ToLower(strings.TrimSpace(q.Search))

	h.mu.Lock()
	h.parseAllLocked()
	defer h.mu.Unlock()
	page := Page{Records: []Record{}}
	if status == "" && search == "" {
		page.Total = len(h.records)
		for i := len(h.records) - 1 - q.Offset; i >= 0 && len(page.Records) < q.Limit; i-- {
			page.Records = append(page.Records, h.records[i].rec)
		}
		return page, nil
	}
	for i := len(h.records) - 1; i >= 0; i-- {
		e := &h.records[i]
		if status != "" && e.rec.Status != status {
			continue
		}
		if search != "" && !strings.Contains(e.search, search) {
			continue
		}
		if page.Total >= q.Offset && len(page.Records) < q.Limit {
			page.Records = append(page.Records, e.rec)
		}
		page.Total++
	}
	return page, nil
}
