package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// registryClient pulls Ollama models from an OCI/Docker v2 registry.
// Skeleton (issue 3): only the signatures are fixed here.
type registryClient struct {
	cfg registryConfig
}

type registryConfig struct {
	Registry    string
	Platform    string
	Concurrency int
	Files       *rangeDownloader
	Client      *http.Client
	Log         *slog.Logger
}

type pullRequest struct {
	Ref         string
	OutputDir   string
	Output      string
	KeepStaging bool
	Retries     int
	Progress    func(pullProgress)
}

type pullProgress struct {
	Phase string
	Done  int64
	Total int64
}

type pullResult struct {
	Path string
	Size int64
	Name modelName
}

func newRegistryClient(cfg registryConfig) (*registryClient, error) {
	return &registryClient{cfg: cfg}, nil
}

func (c *registryClient) DefaultHost() string { return "registry.ollama.ai" }

func (c *registryClient) Pull(ctx context.Context, req pullRequest) (pullResult, error) {
	return pullResult{}, errors.New("model pulls not written yet")
}

func removePullStaging(outputDir string, name modelName) error { return nil }
