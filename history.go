package main

import (
	"errors"
	"log/slog"
	"time"
)

// historyStore keeps one record per finished download. Skeleton (issue 5).
type historyStore struct{}

type historyRecord struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	Source       string    `json:"source"`
	FileName     string    `json:"file_name"`
	Path         string    `json:"path"`
	Size         int64     `json:"size"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	Duration     float64   `json:"duration_seconds"`
	AverageSpeed float64   `json:"average_speed"`
	Status       string    `json:"status"`
	Error        string    `json:"error,omitempty"`
	Domain       string    `json:"domain"`
	FileType     string    `json:"file_type"`
}

type historyQuery struct {
	Limit, Offset  int
	Status, Search string
}

type historyPage struct {
	Total   int             `json:"total"`
	Records []historyRecord `json:"records"`
}

type historyStats struct{}

func openHistory(outputDir string, log *slog.Logger) (*historyStore, error) {
	return &historyStore{}, nil
}

func (h *historyStore) Add(rec historyRecord) error { return errors.New("history not written yet") }
func (h *historyStore) List(q historyQuery) (historyPage, error) {
	return historyPage{}, errors.New("history not written yet")
}
func (h *historyStore) Delete(id string) error           { return errNotFound }
func (h *historyStore) Clear() error                     { return nil }
func (h *historyStore) Stats(now time.Time) historyStats { return historyStats{} }
func (h *historyStore) Recovered() string                { return "" }
