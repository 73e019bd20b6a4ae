package main

import (
	"fmt"
	"net/url"
	"ollama-model-downloader/internal/fault"
	"os/exec"
	"runtime"
)

// browserOpener opens a URL in the person's default browser. Start is a
// field so that tests record the command instead of launching anything.
type browserOpener struct {
	GOOS  string                                  // runtime.GOOS unless a test says otherwise
	Start func(name string, args ...string) error // starts the command without waiting for the browser
}

func newBrowserOpener() *browserOpener {
	return &browserOpener{GOOS: runtime.GOOS, Start: startDetached}
}

// Open starts the platform's opener for an http(s) URL. Only such URLs are
// passed on: the openers also run programs and open local files.
func (b *browserOpener) Open(rawURL string) error {
	name, args, err := browserCommand(b.GOOS, rawURL)
	if err != nil {
		return err
	}
	if err := b.Start(name, args...); err != nil {
		return fmt.Errorf("opening the browser with %s: %w", name, err)
	}
	return nil
}

// browserCommand is the program and arguments that open rawURL on goos.
func browserCommand(goos, rawURL string) (string, []string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, fault.BadInputf("not an http(s) URL to open in a browser: %q", rawURL)
	}
	switch goos {
	case "windows":
		// rundll32 takes the URL as one argument with no shell in between,
		// unlike "cmd /c start", which would interpret & in the query.
		return "rundll32", []string{"url.dll,FileProtocolHandler", rawURL}, nil
	case "darwin":
		return "open", []string{rawURL}, nil
	default: // linux, the BSDs: freedesktop's opener
		return "xdg-open", []string{rawURL}, nil
	}
}

// startDetached starts a command and reaps it in the background, so the
// opener neither blocks us nor lingers as a zombie.
func startDetached(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
