package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"ollama-model-downloader/internal/fault"
	"strconv"
	"strings"
)

// Ollama's model-name limits (ollama/types/model/name.go): a host may be
// long (DNS names), every other part is short.
const (
	OllamaHost        = "registry.ollama.ai" // where names without a host live, for Ollama
	defaultNamespace  = "library"
	DefaultTag        = "latest"
	maxHostLen        = 350
	maxPartLen        = 80
	Sha256HexLen      = 64
	DigestAlgoPrefix  = "sha256:"
	DigestFilePrefix  = "sha256-"
	ZipDigestShortLen = 12
)

// Name is a parsed Ollama model reference:
// [host[:port]/][namespace/]model[:tag][@sha256:<hex>]. Case is kept as
// typed (Ollama keeps it on disk and matches names case-insensitively).
type Name struct {
	Host      string // registry host, with its port if any
	Namespace string
	Model     string
	Tag       string // "" only for a digest reference typed without a tag
	Digest    string // "sha256:<64 lower-case hex>" or ""
}

// ParseName parses s with Ollama's rules; defaultHost fills a missing
// host. Errors match ErrBadInput and name the rule that was broken, so the
// person can fix what they typed before any request is made.
func ParseName(s, defaultHost string) (Name, error) {
	orig := s
	fail := func(format string, args ...any) (Name, error) {
		return Name{}, fault.BadInputf("model name %q: "+format, append([]any{orig}, args...)...)
	}
	if s == "" {
		return fail("empty")
	}
	if strings.Contains(s, "://") {
		return fail("a model name has no scheme; write host/namespace/model and choose http or https with -registry")
	}

	var n Name
	if before, digest, ok := strings.Cut(s, "@"); ok {
		s = before
		d := strings.ToLower(digest)
		if !ValidDigest(d) {
			return fail("the digest after @ must be sha256: followed by 64 hex digits")
		}
		n.Digest = d
	}
	// ":" after the last "/" starts the tag; one before it is a host's port.
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		s, n.Tag = s[:i], s[i+1:]
		if n.Tag == "" {
			return fail("the tag after ':' is empty")
		}
	} else if n.Digest == "" {
		n.Tag = DefaultTag
	}

	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		n.Host, n.Namespace, n.Model = defaultHost, defaultNamespace, parts[0]
	case 2:
		n.Host, n.Namespace, n.Model = defaultHost, parts[0], parts[1]
		if strings.ContainsAny(parts[0], ".:") {
			return fail("%q looks like a host; a host needs an explicit namespace, e.g. %s/library/%s", parts[0], parts[0], parts[1])
		}
	case 3:
		n.Host, n.Namespace, n.Model = parts[0], parts[1], parts[2]
	default:
		return fail("too many '/': the form is [host/][namespace/]model[:tag]")
	}

	if msg := checkHost(n.Host); msg != "" {
		return fail("host %q: %s", n.Host, msg)
	}
	for _, p := range []struct{ kind, value string }{
		{"namespace", n.Namespace}, {"model", n.Model}, {"tag", n.Tag},
	} {
		if p.kind == "tag" && p.value == "" {
			continue // digest reference without a tag
		}
		if msg := checkPart(p.value, p.kind == "namespace"); msg != "" {
			return fail("%s %q: %s", p.kind, p.value, msg)
		}
	}
	return n, nil
}

// checkPart applies Ollama's rule for namespace, model and tag: 1–80
// characters, starting with a letter, digit or '_', then letters, digits,
// '_', '-' or '.' (no '.' in a namespace, where it would read as a host).
func checkPart(s string, namespace bool) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxPartLen:
		return "longer than " + strconv.Itoa(maxPartLen) + " characters"
	case !isWordByte(s[0]):
		return "must start with a letter, digit or '_'"
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case isWordByte(c), c == '-':
		case c == '.' && namespace:
			return "a namespace may not contain '.'"
		case c == '.':
		default:
			return "may contain only letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}

// checkHost accepts a DNS name or IPv4 address with an optional port.
func checkHost(h string) string {
	if h == "" {
		return "must not be empty"
	}
	if len(h) > maxHostLen {
		return "longer than " + strconv.Itoa(maxHostLen) + " characters"
	}
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '0' {
			return "the port must be a number from 1 to 65535"
		}
	}
	if name == "" || !isWordByte(name[0]) {
		return "must start with a letter, digit or '_'"
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isWordByte(c) && c != '-' && c != '.' {
			return "may contain only letters, digits, '_', '-', '.' and one ':port'"
		}
	}
	return ""
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits:
// the only digest form that may become a file name (sha256-<hex>).
func ValidDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, DigestAlgoPrefix)
	return ok && IsLowerHex(hex, Sha256HexLen)
}

func IsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// String is the full reference: host/namespace/model:tag[@digest].
func (n Name) String() string {
	return n.Host + "/" + n.Namespace + "/" + n.Model + n.suffix()
}

// suffix is ":tag", "@digest", both or neither.
func (n Name) suffix() string {
	s := ""
	if n.Tag != "" {
		s += ":" + n.Tag
	}
	if n.Digest != "" {
		s += "@" + n.Digest
	}
	return s
}

// DisplayName is the short form people type: registry.ollama.ai and the
// library namespace are left out, as `ollama list` does.
func (n Name) DisplayName() string {
	s := n.Model
	switch {
	case !strings.EqualFold(n.Host, OllamaHost):
		s = n.Host + "/" + n.Namespace + "/" + s
	case !strings.EqualFold(n.Namespace, defaultNamespace):
		s = n.Namespace + "/" + s
	}
	return s + n.suffix()
}

// ZipName is "<model>-<tag>.zip", or "<model>-sha256-<12 hex>.zip" for a
// digest pull. Every part was validated, so the name is safe as a file name.
func (n Name) ZipName() string {
	if n.Digest != "" {
		return n.Model + "-" + DigestFilePrefix + n.DigestHex()[:ZipDigestShortLen] + ".zip"
	}
	return n.Model + "-" + n.Tag + ".zip"
}

// Reference is what goes after /manifests/ in a registry URL.
func (n Name) Reference() string {
	if n.Digest != "" {
		return n.Digest
	}
	return n.Tag
}

// ManifestFile is the manifest's file name in Ollama's layout: the tag, or
// sha256-<hex> for a digest pull (':' is not allowed in Windows names).
func (n Name) ManifestFile() string {
	if n.Digest != "" {
		return DigestFilePrefix + n.DigestHex()
	}
	return n.Tag
}

func (n Name) DigestHex() string { return strings.TrimPrefix(n.Digest, DigestAlgoPrefix) }

func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestAlgoPrefix + hex.EncodeToString(sum[:])
}
