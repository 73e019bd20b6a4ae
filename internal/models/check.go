package models

import (
	"context"
	"ollama-model-downloader/internal/fault"
)

// The outcomes of an update check.
const (
	UpdateUpToDate    = "up_to_date"       // the registry's manifest for the tag is the local one
	UpdateAvailable   = "update_available" // the tag points to another manifest now: pull it
	UpdateUnreachable = "unreachable"      // the registry could not be reached (offline?)
	UpdateNotFound    = "not_found"        // the registry does not have the tag (a model made here, or removed)
	UpdateFailed      = "failed"           // the registry answered otherwise (refused, credentials…): Error says
)

// UpdateCheck is what "check for an update" found for one model of this
// machine's Ollama (POST /api/models/local/check).
type UpdateCheck struct {
	Name      string `json:"name"`     // as `ollama list` shows it
	Ref       string `json:"ref"`      // host/namespace/model:tag, what a pull takes
	LocalID   string `json:"local_id"` // the ID `ollama list` shows here
	RemoteID  string `json:"remote_id,omitempty"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
}

// CheckUpdate compares a model of the models folder with what its tag
// points to in its registry now: the manifest's digest, asked with a HEAD
// (a GET of the manifest when the registry does not say), never a blob.
// The error is for a name that is not there; a registry that cannot be
// reached or refuses is an outcome (Status), not an error.
func (p *Puller) CheckUpdate(ctx context.Context, modelsDir, ref string) (UpdateCheck, error) {
	lm, err := FindLocal(modelsDir, ref)
	if err != nil {
		return UpdateCheck{}, err
	}
	out := UpdateCheck{Name: lm.Manifest.ShortRef(), Ref: lm.Name.String(), LocalID: manifestID(lm.Manifest.Digest)}
	remote, err := p.reg.ManifestDigest(ctx, lm.Name, 0)
	if err != nil {
		out.Error, out.ErrorCode = err.Error(), fault.Code(err)
		switch out.ErrorCode {
		case "dns", "refused", "timeout", "network", "tls", "proxy", "proxy_auth":
			out.Status = UpdateUnreachable
		case "model_not_found", "not_found":
			out.Status = UpdateNotFound
		default:
			out.Status = UpdateFailed
		}
		return out, nil
	}
	out.RemoteID = manifestID(remote)
	out.Status = UpdateUpToDate
	if remote != lm.Manifest.Digest {
		out.Status = UpdateAvailable
	}
	return out, nil
}
