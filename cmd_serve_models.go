package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/mirror"
	"ollama-model-downloader/internal/units"
	"os"
	"slices"
	"strings"
	"time"
)

const serveModelsUsage = `Usage: ollama-model-downloader serve-models [flags] [zip | folder]...

Serves models as a read-only registry, so that other machines pull them
with a stock Ollama instead of the Internet:

  ollama pull --insecure <this-machine>:11435/library/<model>:<tag>

What is served: the zips in -output-dir (the default), or the zips and
folders named as arguments. A folder is either in Ollama's layout (an Ollama
models folder, a kept staging folder, an extracted zip: it has manifests/)
or holds zips. New zips are picked up while it runs.

With -upstream it is also a pull-through cache for a LAN: a model that is
not here is fetched from the upstream registry once (several connections,
resumable, every blob verified before it is kept) into
<output-dir>/.ollama-cache, in Ollama's layout, and served to every client
asking for it while it arrives; later pulls come from the cache. A tag is
asked upstream on each pull, so a moved tag is seen; when upstream does not
answer, the cached models still pull. -cache-max bounds the cache: the
least recently pulled models are evicted whole.

It listens on loopback only unless -listen says otherwise; beyond loopback
it answers the addresses -allow names (default: this machine and private
networks). Blob downloads answer with a redirect to the same server under a
second name (an IPv4 address and its IPv4-mapped IPv6 form,
[::ffff:a.b.c.d]), because Ollama only accepts a blob after a redirect to
another host name.

Examples:
  ollama-model-downloader serve-models
  ollama-model-downloader serve-models -listen 0.0.0.0:11435          # the whole LAN
  ollama-model-downloader serve-models -listen 0.0.0.0:11435 -upstream https://registry.ollama.ai -cache-max 200G
  ollama-model-downloader serve-models -listen 0.0.0.0:11435 -allow 192.168.1.0/24 -upstream https://registry.ollama.ai
  ollama-model-downloader serve-models ~/.ollama/models qwen3-8b.zip
  curl http://127.0.0.1:11435/v2/_catalog

Flags:
`

// runServeModelsCommand is "ollama-model-downloader serve-models". It
// serves until ctx ends and returns the exit code: 0 stopped cleanly, 1
// failed, 2 bad usage.
func runServeModelsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve-models", flag.ContinueOnError)
	listen := fset.String("listen", mirror.DefaultListen, "`address` to listen on; 0.0.0.0:11435 serves the LAN")
	outputDir := fset.String("output-dir", "downloaded-models", "`folder` whose zips are served when no argument is given; the cache lives in its .ollama-cache")
	upstream := fset.String("upstream", "", "registry `URL` to cache models from, e.g. https://registry.ollama.ai (may carry user:pass@; else OLLAMA_REGISTRY_USER/_PASSWORD)")
	cacheMax := fset.String("cache-max", "0", "most the cache may hold, e.g. 50G; least recently pulled models are evicted (0 = no bound)")
	allow := fset.String("allow", "", "clients served, as addresses or CIDR ranges separated by commas, or \"any\" (default beyond loopback: private networks)")
	proxy := fset.String("proxy", "", "proxy `URL` for the upstream (http://, https://, socks5://); default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY")
	verbose := fset.Bool("v", false, "log every request")
	sources, code, ok := subcommandArgs(fset, args, serveModelsUsage, stdout, stderr)
	if !ok {
		return code
	}
	usageErr := func(err error) int {
		fmt.Fprintln(stderr, "serve-models:", err)
		return 2
	}
	max, err := mirror.ParseCacheSize(*cacheMax)
	if err != nil {
		return usageErr(err)
	}
	if max > 0 && *upstream == "" {
		return usageErr(errors.New("-cache-max bounds the cache of an -upstream registry; give -upstream too"))
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageErr(fmt.Errorf("-listen %q: want host:port, e.g. %s or 0.0.0.0:11435", *listen, mirror.DefaultListen))
	}
	loopback := engine.IsLoopbackHost(host)
	allowed, err := mirror.ParseAllowList(*allow, loopback)
	if err != nil {
		return usageErr(err)
	}
	if len(sources) == 0 {
		sources = []string{*outputDir}
		if *upstream != "" {
			if err := os.MkdirAll(*outputDir, 0o755); err != nil {
				fmt.Fprintln(stderr, "serve-models:", err)
				return 1
			}
		}
	}
	for _, s := range sources {
		if _, err := os.Stat(s); err != nil {
			return usageErr(fmt.Errorf("%s: no such zip or folder (name the zips or folders to serve, or set -output-dir)", s))
		}
	}
	client, err := engine.NewHTTPClient(*proxy)
	if err != nil {
		return usageErr(err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	m, err := mirror.Start(mirror.Options{Sources: sources, OutputDir: *outputDir, Upstream: *upstream, CacheMax: max,
		Allow: allowed, AnyHost: !loopback, Client: client, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "serve-models:", err)
		if errors.Is(err, fault.ErrBadInput) {
			return 2
		}
		return 1
	}
	defer m.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "serve-models:", err)
		return 1
	}
	printMirrorBanner(stdout, m, ln.Addr().(*net.TCPAddr))

	srv := mirror.NewServer(m, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "serve-models:", err)
		return 1
	case <-ctx.Done():
	}
	m.Close() // clients following a fetch are cut now, not after the timeout
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(shutdown) != nil {
		srv.Close()
	}
	return 0
}

// printMirrorBanner says what is served, to whom, and the command to type
// elsewhere.
func printMirrorBanner(out io.Writer, m *mirror.Mirror, addr *net.TCPAddr) {
	hosts := mirror.PullHosts(addr)
	fmt.Fprintf(out, "Serving models read-only at http://%s/v2/\n", hosts[0])
	if !addr.IP.IsLoopback() {
		fmt.Fprintf(out, "Clients allowed: %s (change with -allow)\n", allowText(m.Allow))
	}
	if c := m.Cache; c != nil {
		bound := "no size bound"
		if c.Max > 0 {
			bound = "at most " + units.Binary(c.Max)
		}
		fmt.Fprintf(out, "Caching models from %s in %s (%s); a model not here is fetched once and served while it arrives.\n",
			c.Upstream.URL(), c.Dir, bound)
	}
	fmt.Fprintln(out, "On other machines:")
	for _, h := range hosts {
		fmt.Fprintf(out, "  %s\n", mirror.PullCommand(h))
	}
	var names []string
	idx := m.Index()
	for _, k := range idx.SortedRepos() {
		repo := idx.Repos[k]
		for _, tag := range repo.Tags {
			names = append(names, repo.Name+":"+tag)
		}
	}
	if m.Cache != nil {
		for _, e := range m.Cache.Entries() {
			names = append(names, e.Name.Namespace+"/"+e.Name.Model+":"+e.Name.ManifestFile())
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	switch {
	case len(names) == 0 && m.Cache == nil:
		fmt.Fprintln(out, "No models found yet; zips added later are picked up.")
	case len(names) > 0:
		fmt.Fprintln(out, "Models here now:")
	}
	for _, name := range names {
		for _, h := range hosts {
			fmt.Fprintf(out, "  ollama pull --insecure %s/%s\n", h, name)
		}
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

func allowText(l mirror.AllowList) string {
	if l.String() == strings.ReplaceAll(mirror.PrivateNetworks, ",", ", ") {
		return mirror.DefaultAllowText
	}
	return l.String()
}
