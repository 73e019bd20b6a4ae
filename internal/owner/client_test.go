package owner

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"ollama-model-downloader/internal/queue"
)

// TestClientAddKeepsTheOwnersRetryDefault: a command without -retries hands
// its downloads over without a count, so the owner's policy (wait out an
// outage) applies; an explicit -retries N travels as N, 0 included.
func TestClientAddKeepsTheOwnersRetryDefault(t *testing.T) {
	bodies := make(chan map[string]any, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		bodies <- body
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"downloads":[{"id":"d-1","source":"https://example.com/x"}]}`))
	}))
	t.Cleanup(srv.Close)
	c := NewClient(Info{URL: srv.URL + "/", Key: "k"})
	for _, tc := range []struct {
		retries int
		want    any // the body's "retries"; nil = absent
	}{{-1, nil}, {0, 0.0}, {5, 5.0}} {
		if _, err := c.Add(t.Context(), []queue.AddRequest{{Source: "https://example.com/x", Retries: tc.retries}}); err != nil {
			t.Fatalf("Add with retries %d: %v", tc.retries, err)
		}
		got, ok := (<-bodies)["retries"]
		if (tc.want == nil && ok) || (tc.want != nil && got != tc.want) {
			t.Errorf("retries %d handed over as %v (present %v), want %v", tc.retries, got, ok, tc.want)
		}
	}
}
