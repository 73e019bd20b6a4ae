package main

import (
	"embed"
	"log/slog"
	"net/http"
)

// The web UI: HTML, CSS, JS and the font, all inside the binary.
//
//go:embed templates
var templatesFS embed.FS

// server is the REST API and the embedded web UI. Skeleton (issue 6).
type server struct {
	cfg serverConfig
}

type serverConfig struct {
	Manager   *manager
	History   *historyStore
	OutputDir string
	Addr      string // host:port the server is reachable at, for the Host check
	Token     string // required when listening beyond loopback
	Version   string
	Log       *slog.Logger
}

func newServer(cfg serverConfig) *server { return &server{cfg: cfg} }

func (s *server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(templatesFS))
	return mux
}
