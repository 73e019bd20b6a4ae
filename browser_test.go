package main

import (
	"errors"
	"ollama-model-downloader/internal/fault"
	"slices"
	"testing"
)

func TestBrowserCommand(t *testing.T) {
	const u = "http://127.0.0.1:8080/?token=a&b"
	tests := []struct {
		goos     string
		wantName string
		wantArgs []string
	}{
		{"linux", "xdg-open", []string{u}},
		{"freebsd", "xdg-open", []string{u}},
		{"darwin", "open", []string{u}},
		{"windows", "rundll32", []string{"url.dll,FileProtocolHandler", u}},
	}
	for _, tc := range tests {
		t.Run(tc.goos, func(t *testing.T) {
			var gotName string
			var gotArgs []string
			b := &browserOpener{GOOS: tc.goos, Start: func(name string, args ...string) error {
				gotName, gotArgs = name, args
				return nil
			}}
			if err := b.Open(u); err != nil {
				t.Fatal(err)
			}
			if gotName != tc.wantName || !slices.Equal(gotArgs, tc.wantArgs) {
				t.Errorf("started %s %q, want %s %q", gotName, gotArgs, tc.wantName, tc.wantArgs)
			}
		})
	}
}

func TestBrowserRefusesNonHTTP(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "javascript:alert(1)", "calc.exe", "", "http://"} {
		b := &browserOpener{GOOS: "linux", Start: func(string, ...string) error {
			t.Errorf("started a command for %q", u)
			return nil
		}}
		if err := b.Open(u); !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("Open(%q) = %v, want ErrBadInput", u, err)
		}
	}
}

func TestBrowserStartError(t *testing.T) {
	b := &browserOpener{GOOS: "linux", Start: func(string, ...string) error { return errors.New("no xdg-open") }}
	if err := b.Open("http://127.0.0.1:1/"); err == nil {
		t.Fatal("Open succeeded although the command could not start")
	}
}
