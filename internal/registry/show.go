package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
)

// FetchSmallBlob reads one small blob (a config, a license) into memory
// from the registry, retrying what is worth retrying; its digest is checked.
func (c *Client) FetchSmallBlob(ctx context.Context, name Name, b Blob, retries int) ([]byte, error) {
	h := c.host(name)
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "blobs", b.Digest).String()
	delay := c.Backoff
	for attempt := 0; ; attempt++ {
		data, err := c.smallBlobOnce(ctx, h, u, b)
		if err == nil || attempt >= retries || !engine.Retryable(err) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("reading the %s layer of %s: %w", LayerType(b.MediaType), name.DisplayName(), ExplainNetError(err, h.base.Hostname()))
			}
			return data, nil
		}
		if engine.Sleep(ctx, delay) != nil {
			return nil, ctx.Err()
		}
		delay *= 2
	}
}

func (c *Client) smallBlobOnce(ctx context.Context, h *pullHost, u string, b Blob) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, engine.StatusErrorFrom(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != b.Size || DigestOf(data) != b.Digest {
		return nil, fmt.Errorf("blob %s: %w: got %d bytes with %s", b.Digest, fault.ErrChecksumMismatch, len(data), DigestOf(data))
	}
	return data, nil
}
