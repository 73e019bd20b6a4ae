package testkit

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// ClosedPort is a loopback address where nothing listens: connecting is refused.
func ClosedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// SilentServer accepts connections and never answers, until the test ends.
func SilentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-done
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// FreeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago (the registry binds it itself).
func FreeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// GetBody GETs u (with a Range header when rng is set).
func GetBody(t *testing.T, u, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	req.Header.Set("Accept", fakeMediaManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Stop ends srv as a server that goes away does: it stops listening and
// drops every connection, so that a client meets "connection refused"
// (issue 22's outage). The returned function starts it again, with the
// same handler, on the same address; the test's cleanup stops it.
func Stop(t *testing.T, srv *httptest.Server) (restart func()) {
	t.Helper()
	addr := srv.Listener.Addr().String()
	handler := srv.Config.Handler
	srv.Listener.Close()
	srv.CloseClientConnections()
	return func() {
		t.Helper()
		var ln net.Listener
		var err error
		// The old socket may linger a moment after its close.
		for i := 0; i < 100; i++ {
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("listening on %s again: %v", addr, err)
		}
		again := &http.Server{Handler: handler}
		go again.Serve(ln)
		t.Cleanup(func() { again.Close() })
	}
}
