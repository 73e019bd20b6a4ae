package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/units"
	"text/tabwriter"
	"time"
)

const listUsage = `Usage: ollama-model-downloader list [-json] [-models-dir DIR]

Lists the models of this machine's Ollama models folder without a server,
as 'ollama list' shows them — name, ID, size, when modified, newest first —
with the family, parameters and quantization their config says. The total
the models take on disk (each shared blob once) goes to standard error.

-json prints an object for scripts (docs/MODELS.md describes its fields):
models_dir, state ("ok", "missing" or "unreadable"), error, models (name,
ref, id, digest, size, modified, family, parameters, quantization,
missing_blobs) and total_size.

The models folder is -models-dir, else $OLLAMA_MODELS, else ~/.ollama/models.
Exit code 0 when the folder was read, 1 when it is missing or unreadable.

Examples:
  ollama-model-downloader list
  ollama-model-downloader list -json | jq -r '.models[].name'
  sudo ollama-model-downloader list -models-dir /usr/share/ollama/.ollama/models

Flags:
`

// runListCommand is "ollama-model-downloader list".
func runListCommand(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("list", flag.ContinueOnError)
	modelsDir := fset.String("models-dir", "", "Ollama models `folder` (default $OLLAMA_MODELS, else ~/.ollama/models)")
	asJSON := fset.Bool("json", false, "print JSON (the shape of GET /api/models/local)")
	rest, code, ok := subcommandArgs(fset, args, listUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "list: takes no argument, got %q (-models-dir names another folder)\n", rest[0])
		return 2
	}
	dir, err := models.ResolveModelsDir(*modelsDir)
	if err != nil {
		fmt.Fprintln(stderr, "list:", err)
		return 2
	}
	l := models.ListLocal(dir)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(l)
	}
	if l.State != models.LocalOK {
		fmt.Fprintln(stderr, "list:", l.Error)
		return 1
	}
	if *asJSON {
		return 0
	}
	printLocalModels(stdout, l, time.Now())
	for _, m := range l.Models {
		if m.MissingBlobs > 0 {
			fmt.Fprintf(stderr, "%s is incomplete here: %d blob(s) missing ('ollama pull %s' mends it; export refuses it until then)\n", m.Name, m.MissingBlobs, m.Name)
		}
	}
	for _, s := range l.Skipped {
		fmt.Fprintln(stderr, "skipped:", s)
	}
	fmt.Fprintf(stderr, "%d model(s) in %s, %s on disk (shared blobs counted once)\n", len(l.Models), dir, units.Decimal(l.TotalSize))
	return 0
}

// printLocalModels lays the models out as `ollama list` does, with the
// config's details after its four columns.
func printLocalModels(w io.Writer, l models.LocalModels, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 4, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSIZE\tMODIFIED\tFAMILY\tPARAMETERS\tQUANTIZATION")
	for _, m := range l.Models {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, ollamaSize(m.Size), ollamaAgo(now.Sub(m.Modified)), m.Family, m.Parameters, m.Quantization)
	}
	tw.Flush()
}

// ollamaSize writes a size as `ollama list` does: decimal units, no
// decimals from 10 up (352 MB, 4.7 GB, 15 GB).
func ollamaSize(n int64) string {
	const k = 1000
	v, unit := float64(n), "B"
	for _, u := range []string{"KB", "MB", "GB", "TB"} {
		if v < k {
			break
		}
		v, unit = v/k, u
	}
	if unit == "B" || v >= 10 || v == math.Trunc(v) {
		return fmt.Sprintf("%d %s", int64(v), unit)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// ollamaAgo writes how long ago as `ollama list` does: "4 minutes ago",
// "About an hour ago", "3 weeks ago".
func ollamaAgo(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	var s string
	switch secs, mins, hours := int(d.Seconds()), int(d.Minutes()), int(math.Round(d.Hours())); {
	case secs < 1:
		s = "Less than a second"
	case secs == 1:
		s = "1 second"
	case secs < 60:
		s = fmt.Sprintf("%d seconds", secs)
	case mins == 1:
		s = "About a minute"
	case mins < 60:
		s = fmt.Sprintf("%d minutes", mins)
	case hours == 1:
		s = "About an hour"
	case hours < 48:
		s = fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		s = fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		s = fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		s = fmt.Sprintf("%d months", hours/24/30)
	default:
		s = fmt.Sprintf("%d years", hours/24/365)
	}
	return s + " ago"
}
