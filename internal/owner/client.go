package owner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/queue"
	"strconv"
	"strings"
	"time"
)

// Client is how a process that does not own an output folder hands its
// downloads to the process that does, and follows them there, through the
// owner's REST API on this machine (issue 14: a CLI run beside the open
// web UI). It sends the key of owner.json and nothing else: never the
// person's token, which whoever wrote the file would collect (issue 25).
// Reach makes one that passed the trust rules.
type Client struct {
	info Info
	http *http.Client
}

// ErrGone means the owner stopped answering: it exited or was killed,
// and the folder may be free to take over.
var ErrGone = errors.New("the process that owned the folder is gone")

// NewClient talks to the owner info names, as it is: Reach checks it first.
func NewClient(info Info) *Client {
	return &Client{
		info: info,
		// Loopback only, never through a proxy; a short header timeout
		// so that a hung owner is noticed.
		http: &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
		}},
	}
}

// do sends one API request and decodes a JSON answer into out. A refused
// or cut connection is ErrGone; an API error is its message.
func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.info.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.info.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.info.Key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	if resp.StatusCode >= 300 {
		var apiErr struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &apiErr)
		msg := apiErr.Error
		if msg == "" {
			msg = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return fault.BadInputf("%s", msg)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("the process that owns this folder refused the key of its owner.json (%s)", msg)
		case http.StatusConflict:
			return fault.Conflictf("%s", msg)
		}
		return fmt.Errorf("the process that owns this folder answered %s: %s", resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("reading the owner's answer to %s: %w", path, err)
		}
	}
	return nil
}

// handoff is what POST /api/download/add takes from a CLI run.
type handoff struct {
	URL       []string `json:"url"`
	Retries   *int     `json:"retries,omitempty"` // nil: the owner's default (its -retries, and -retry-for)
	SHA256    string   `json:"sha256,omitempty"`
	Output    string   `json:"output,omitempty"`
	ModelsDir string   `json:"models_dir,omitempty"`
	Split     int64    `json:"split,omitempty"`
	Force     bool     `json:"force,omitempty"`
}

// Add hands the downloads over, all in one request, and returns them as
// the owner queued them, in the same order.
func (c *Client) Add(ctx context.Context, reqs []queue.AddRequest) ([]queue.JobView, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if reqs[0].Export {
		return c.export(ctx, reqs)
	}
	h := handoff{SHA256: reqs[0].SHA256, Output: reqs[0].Output, ModelsDir: reqs[0].ModelsDir, Split: reqs[0].Split, Force: reqs[0].Force}
	for _, r := range reqs {
		h.URL = append(h.URL, r.Source)
	}
	if r := reqs[0].Retries; r >= 0 {
		h.Retries = &r
	}
	var resp struct {
		Downloads []queue.JobView `json:"downloads"`
		Errors    []struct {
			Source string `json:"source"`
			Error  string `json:"error"`
		} `json:"errors"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/download/add", h, &resp); err != nil {
		return nil, err
	}
	if len(resp.Errors) > 0 {
		return nil, fault.BadInputf("%s: %s", resp.Errors[0].Source, resp.Errors[0].Error)
	}
	if len(resp.Downloads) != len(reqs) {
		return nil, fmt.Errorf("the owner queued %d of %d downloads", len(resp.Downloads), len(reqs))
	}
	return resp.Downloads, nil
}

// exportHandoff is what POST /api/models/export takes from a CLI run.
type exportHandoff struct {
	Name      []string `json:"name"`
	ModelsDir string   `json:"models_dir"`
	Output    string   `json:"output,omitempty"`
	Split     int64    `json:"split,omitempty"`
	LimitRate int64    `json:"limit_rate,omitempty"`
}

// export hands over an "export NAME…" run: one job, its zip written by
// the owner from the models folder the command named.
func (c *Client) export(ctx context.Context, reqs []queue.AddRequest) ([]queue.JobView, error) {
	if len(reqs) != 1 {
		return nil, fmt.Errorf("an export is handed over alone, not with %d other downloads", len(reqs)-1)
	}
	r := reqs[0]
	var resp struct {
		Downloads []queue.JobView `json:"downloads"`
	}
	h := exportHandoff{Name: strings.Fields(r.Source), ModelsDir: r.ModelsDir, Output: r.Output, Split: r.Split, LimitRate: r.LimitRate}
	if err := c.do(ctx, http.MethodPost, "/api/models/export", h, &resp); err != nil {
		return nil, err
	}
	if len(resp.Downloads) != 1 {
		return nil, fmt.Errorf("the owner queued %d exports, want 1", len(resp.Downloads))
	}
	return resp.Downloads, nil
}

// List returns the owner's queue as it is now, or only what changed since
// rev when the owner can tell (GET /api/downloads?since=).
func (c *Client) List(ctx context.Context, since uint64) (ownerList, error) {
	var d ownerList
	path := "/api/downloads"
	if since > 0 {
		path += "?since=" + strconv.FormatUint(since, 10)
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &d); err != nil {
		return d, err
	}
	if d.Rev == 0 {
		d.Full = true // an owner that sends no revisions sends everything
	}
	return d, nil
}

// ownerList is GET /api/downloads as a follower reads it.
type ownerList struct {
	queue.Delta
	Schedule *queue.ScheduleView `json:"schedule"`
}

// Pause asks the owner to pause one download (Ctrl-C in the CLI that
// handed it over).
func (c *Client) Pause(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/download/"+id+"/pause", nil, nil)
}

// Remove asks the owner to forget a finished download.
func (c *Client) Remove(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/download/"+id+"/remove", map[string]string{"delete_file": "false"}, nil)
}

// Yield asks a CLI owner to hand the folder over (a web UI starting).
func (c *Client) Yield(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/owner/yield", struct{}{}, nil)
}
