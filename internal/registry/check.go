package registry

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// ManifestDigest is the digest of the manifest a name points at now, as
// a pull would store it, asked of the registry without fetching a blob: a
// HEAD of the manifest (its Docker-Content-Digest), else — no digest in
// the answer, an index to resolve for this platform, a registry that does
// not answer HEAD — a GET of the manifest, hashed. It is how "check for
// an update" compares a local model with its tag.
func (c *Client) ManifestDigest(ctx context.Context, name Name, retries int) (string, error) {
	if name.Digest != "" {
		return name.Digest, nil // a digest never points elsewhere
	}
	h := c.host(name)
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "manifests", name.Reference()).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return "", fmt.Errorf("asking for the manifest of %s: %w", name.DisplayName(), err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := h.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking for the manifest of %s: %w", name.DisplayName(), ExplainNetError(err, h.base.Hostname()))
	}
	defer resp.Body.Close()
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	digest := strings.ToLower(strings.TrimSpace(resp.Header.Get("Docker-Content-Digest")))
	switch {
	case resp.StatusCode == http.StatusOK && ValidDigest(digest) && (ct == MediaDockerManifest || ct == MediaOCIManifest):
		return digest, nil
	case resp.StatusCode == http.StatusNotFound:
		return "", registryStatusError(resp, name, h.base.Host)
	}
	raw, _, err := c.ResolveManifest(ctx, name, retries)
	if err != nil {
		return "", err
	}
	return DigestOf(raw), nil
}
