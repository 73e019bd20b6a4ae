package server

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/mirror"
	"strings"
)

// uiMirror is the model mirror the web UI started: a Mirror over the
// output folder (and, with an upstream, its cache) on its own listener,
// owned by the server.
type uiMirror struct {
	srv      *http.Server
	mirror   *mirror.Mirror
	addr     *net.TCPAddr // where it listens
	upstream string       // redacted; "" = the output folder's zips only
	cacheMax int64
	served   chan struct{}
}

// mirrorResponse is the body of GET /api/mirror and of start and stop.
type mirrorResponse struct {
	Running     bool             `json:"running"`
	Address     string           `json:"address"`      // "http://host:port", as other machines reach it
	PullCommand string           `json:"pull_command"` // what to type on another machine
	Upstream    string           `json:"upstream"`     // the registry cached, "" = none
	CacheMax    int64            `json:"cache_max"`    // bytes, 0 = no bound
	Stats       mirror.StatsView `json:"stats"`
}

func (s *Server) mirrorStatus() mirrorResponse {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	return s.mirror.status()
}

// status describes the mirror; a nil mirror is not running.
func (m *uiMirror) status() mirrorResponse {
	if m == nil {
		return mirrorResponse{}
	}
	host := mirror.PullHosts(m.addr)[0]
	return mirrorResponse{
		Running:     true,
		Address:     "http://" + host,
		PullCommand: mirror.PullCommand(host),
		Upstream:    m.upstream,
		CacheMax:    m.cacheMax,
		Stats:       m.mirror.StatsView(),
	}
}

func (s *Server) handleMirror(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.mirrorStatus())
}

// handleMirrorStart starts serving the output folder's model zips as a
// registry (see serve-models), and with upstream=URL a pull-through cache
// of that registry (cache_max bounds it, allow lists the clients).
// Loopback only unless this server has a token: a LAN mirror is then a
// deliberate choice of someone who has it.
func (s *Server) handleMirrorStart(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	listen := cmp.Or(strings.TrimSpace(vals.Get("listen")), mirror.DefaultListen)
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		s.writeError(w, r, fault.BadInputf("listen address %q: want host:port, e.g. %s", listen, mirror.DefaultListen))
		return
	}
	loopback := engine.IsLoopbackHost(host)
	if !loopback && s.cfg.Token == "" {
		s.writeError(w, r, errForbidden("the mirror may listen beyond loopback (%q) only when this server has an access token (-token)", listen))
		return
	}
	cacheMax, err := mirror.ParseCacheSize(vals.Get("cache_max"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	allow, err := mirror.ParseAllowList(vals.Get("allow"), loopback)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	upstream := strings.TrimSpace(vals.Get("upstream"))
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	if s.mirror != nil {
		s.writeError(w, r, fmt.Errorf("mirror already runs at %s: %w", s.mirror.addr, fault.ErrConflict))
		return
	}
	m, err := mirror.Start(mirror.Options{
		Sources:   []string{s.cfg.OutputDir},
		OutputDir: s.cfg.OutputDir,
		Upstream:  upstream,
		CacheMax:  cacheMax,
		Allow:     allow,
		AnyHost:   !loopback,
		Client:    mirror.EngineClient(s.cfg.Files),
		Files:     s.cfg.Files,
		Log:       s.log,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(r.Context(), "tcp", listen)
	if err != nil && vals.Get("listen") == "" {
		// Like the web UI's default port: only the default falls back to a
		// free port; an address the user chose fails loudly.
		s.log.Info("default mirror port is taken, using a free one", "listen", listen, "err", err)
		ln, err = lc.Listen(r.Context(), "tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		m.Close()
		s.writeError(w, r, &httpError{http.StatusConflict, fmt.Sprintf("listening on %s: %v", listen, err)})
		return
	}
	mir := &uiMirror{
		srv:      mirror.NewServer(m, s.log),
		mirror:   m,
		addr:     ln.Addr().(*net.TCPAddr),
		upstream: engine.RedactURL(upstream),
		cacheMax: cacheMax,
		served:   make(chan struct{}),
	}
	go func() {
		defer close(mir.served)
		mir.srv.Serve(ln)
	}()
	s.mirror = mir
	s.log.Info("model mirror started", "address", mir.addr, "upstream", mir.upstream)
	s.writeJSON(w, http.StatusOK, mir.status())
}

func (s *Server) handleMirrorStop(w http.ResponseWriter, r *http.Request) {
	s.stopMirror()
	s.writeJSON(w, http.StatusOK, s.mirrorStatus())
}

// stopMirror stops the mirror if it runs, letting pulls in flight finish
// for up to shutdownTimeout.
func (s *Server) stopMirror() {
	s.mirrorMu.Lock()
	mir := s.mirror
	s.mirror = nil
	s.mirrorMu.Unlock()
	if mir == nil {
		return
	}
	mir.mirror.Close() // clients following an upstream fetch are cut now
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := mir.srv.Shutdown(ctx); err != nil {
		mir.srv.Close()
	}
	<-mir.served
	s.log.Info("model mirror stopped", "address", mir.addr)
}
