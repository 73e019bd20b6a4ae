package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ollamaList reads `ollama list` as name → ID.
func ollamaList(t *testing.T, o *testkit.StockOllama) map[string]string {
	t.Helper()
	out := o.Run(t, "", "list")
	ids := map[string]string{}
	for _, m := range testkit.OllamaListID.FindAllStringSubmatch(out, -1) {
		ids[m[1]] = m[2]
	}
	return ids
}

// TestExportFromStockOllama is the real thing: models pulled and created
// by the stock Ollama are exported into one zip (each blob once, with no
// network), which verifies and installs into an empty folder, where
// another stock Ollama lists them with the same IDs and shows them the
// same. list agrees with `ollama list`. A damaged blob is refused by name
// and nothing is published; a name that is not there is one line naming
// the folder.
func TestExportFromStockOllama(t *testing.T) {
	bin := testkit.FindStockOllama(t)
	reg := testkit.StartDistribution(t, testkit.FindRegistry(t), true)
	maker := testkit.StartStockOllama(t, bin, t.TempDir())
	pulled := reg.Host + "/library/omdtest:latest"
	testkit.PushStockModel(t, maker, pulled, 256<<10)
	source := testkit.StartStockOllama(t, bin, t.TempDir())
	source.Run(t, "", "pull", "--insecure", pulled)
	// Created here from the same GGUF: the model blob is shared.
	testkit.CreateStockModel(t, source, "made", 256<<10, 5)
	testkit.CreateStockModel(t, source, "Team/Mixed:V1", 64<<10, 9)
	want := ollamaList(t, source)
	if len(want) != 3 {
		t.Fatalf("the source Ollama lists %v, want 3 models", want)
	}

	// list says what `ollama list` says, without a server.
	var stdout, stderr bytes.Buffer
	if code := runListCommand([]string{"-models-dir", source.Models}, &stdout, &stderr); code != 0 {
		t.Fatalf("list: exit %d: %s", code, stderr.String())
	}
	listed := map[string]string{}
	for _, m := range testkit.OllamaListID.FindAllStringSubmatch(stdout.String(), -1) {
		listed[m[1]] = m[2]
	}
	if !reflect.DeepEqual(listed, want) {
		t.Errorf("list shows %v, ollama list %v", listed, want)
	}
	// Name, ID and size as `ollama list` prints them.
	columns := func(table string) map[string]string {
		rows := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
			f := strings.Fields(line)
			rows[f[0]] = strings.Join(f[1:4], " ")
		}
		return rows
	}
	if got, stock := columns(stdout.String()), columns(source.Run(t, "", "list")); !reflect.DeepEqual(got, stock) {
		t.Errorf("list prints %v, ollama list %v", got, stock)
	}

	out := t.TempDir()
	zip := filepath.Join(out, "carry.zip")
	stdout.Reset()
	stderr.Reset()
	args := []string{"export", pulled, "MADE", "team/mixed:v1", "-models-dir", source.Models, "-output-dir", out, "-o", zip}
	if code := runExportCommand(t.Context(), args[1:], &stdout, &stderr); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "done: "+zip) || !strings.Contains(stdout.String(), "install carry.zip") {
		t.Errorf("export said:\n%s", stdout.String())
	}
	entries := testkit.ReadZipTree(t, zip)
	blobs := 0
	for name := range entries {
		if strings.HasPrefix(name, "blobs/sha256-") {
			blobs++
		}
	}
	distinct := map[string]bool{}
	filepath.WalkDir(filepath.Join(source.Models, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			distinct[d.Name()] = true
		}
		return nil
	})
	if blobs != len(distinct) {
		t.Errorf("the zip holds %d blobs, the three models use %d distinct ones", blobs, len(distinct))
	}
	if code := runVerifyCommand(t.Context(), []string{zip}, &stdout, &stderr); code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, stdout.String())
	}
	target := filepath.Join(t.TempDir(), "models")
	if code := runInstallCommand(t.Context(), []string{"-models-dir", target, zip}, &stdout, &stderr); code != 0 {
		t.Fatalf("install: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	// Byte for byte the source folder's models (it holds nothing else).
	testkit.CompareZipTree(t, testkit.StagingTree(t, target), testkit.StagingTree(t, source.Models))
	// unzip takes it too, as a pull's zip.
	if unzip, err := exec.LookPath("unzip"); err == nil {
		unzipped := t.TempDir()
		if out, err := exec.Command(unzip, "-q", zip, "-d", unzipped).CombinedOutput(); err != nil {
			t.Fatalf("unzip: %v\n%s", err, out)
		}
		testkit.CompareZipTree(t, testkit.StagingTree(t, unzipped), testkit.StagingTree(t, source.Models))
	}
	other := testkit.StartStockOllama(t, bin, target)
	if got := ollamaList(t, other); !reflect.DeepEqual(got, want) {
		t.Errorf("the other machine's Ollama lists %v, want %v (same IDs)", got, want)
	}
	for name := range want {
		if a, b := source.Run(t, "", "show", name), other.Run(t, "", "show", name); a != b {
			t.Errorf("ollama show %s differs:\nsource:\n%s\nthere:\n%s", name, a, b)
		}
	}

	// A name that is not there: one line naming the folder.
	stdout.Reset()
	stderr.Reset()
	if code := runExportCommand(t.Context(), []string{"qwen3:8b", "-models-dir", source.Models, "-output-dir", out}, &stdout, &stderr); code != 2 {
		t.Errorf("a model not there: exit %d, want 2", code)
	}
	if got, want := stderr.String(), "export: qwen3:8b is not in the Ollama models folder "+source.Models+" ('list' shows what is there)\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}

	// A damaged blob (same size, other bytes) is named; nothing published.
	damaged := t.TempDir()
	if err := os.CopyFS(damaged, os.DirFS(source.Models)); err != nil {
		t.Fatal(err)
	}
	name, _ := registry.ParseName("made", registry.OllamaHost)
	lm, err := models.FindLocal(damaged, name.String())
	if err != nil {
		t.Fatal(err)
	}
	var weights string
	for _, ref := range lm.Manifest.Refs {
		if ref.MediaType == "application/vnd.ollama.image.model" {
			weights = "sha256-" + strings.TrimPrefix(ref.Digest, "sha256:")
		}
	}
	blob := filepath.Join(damaged, "blobs", weights)
	data := testkit.ReadFile(t, blob)
	data[len(data)-1] ^= 0x55
	os.WriteFile(blob, data, 0o644)
	stdout.Reset()
	stderr.Reset()
	out2 := t.TempDir()
	if code := runExportCommand(t.Context(), []string{"made", "-models-dir", damaged, "-output-dir", out2}, &stdout, &stderr); code != 1 {
		t.Errorf("a damaged blob: exit %d, want 1", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, "made:latest: blob "+weights+" in "+filepath.Join(damaged, "blobs")+" is damaged") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("stderr = %q, want one line naming the blob and the model", msg)
	}
	if _, err := os.Stat(filepath.Join(out2, "made-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a zip was published: %v", err)
	}
}

// TestExportResumesAfterSIGKILL runs "export" as a process, kills it once
// its first large blob is in the zip, and runs it again: nothing was
// published after the kill, and the rerun copies only what is missing —
// the blob already exported is damaged in the models folder meanwhile,
// and the zip is still right.
func TestExportResumesAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "models")
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "big", "latest", 1, 4<<20, 4<<20)
	testkit.WriteTestFolder(t, src, m.Entries())
	out := filepath.Join(dir, "out")
	names := []registry.Name{{Host: "registry.ollama.ai", Namespace: "library", Model: "big", Tag: "latest"}}
	state := filepath.Join(models.ExportStagingDir(out, names, src), "zip.json")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// 2 MiB/s: each 4 MiB blob takes two seconds, time to kill it between.
	cmd := command(t, ctx, dir, "export", "big", "-models-dir", src, "-output-dir", "out", "-limit-rate", "2M", "-concurrency", "1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var done []string
	for i := 0; i < 1000 && len(done) == 0; i++ {
		var st struct{ Done map[string]uint32 }
		if data, err := os.ReadFile(state); err == nil && json.Unmarshal(data, &st) == nil {
			done = slices.Collect(maps.Keys(st.Done))
		}
		if len(done) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(done) != 1 {
		t.Fatalf("the export recorded %v before the kill, want one blob\n%s", done, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "big-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a killed export published its zip: %v", err)
	}
	blob := filepath.Join(src, filepath.FromSlash(testkit.BlobEntryName(done[0])))
	good := testkit.ReadFile(t, blob)
	bad := slices.Clone(good)
	bad[123] ^= 1
	os.WriteFile(blob, bad, 0o644)

	code, stdout, errOut := runCLI(t, dir, "export", "big", "-models-dir", src, "-output-dir", "out")
	if code != 0 {
		t.Fatalf("rerun: exit %d (did it read the exported blob again?)\n%s\n%s", code, stdout, errOut)
	}
	zip := filepath.Join(out, "big-latest.zip")
	l, err := models.OpenLayout(zip)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 {
		t.Errorf("the resumed zip: %q", problems)
	}
	tree := testkit.ReadZipTree(t, zip)
	for name, data := range m.Files() {
		if tree[name].Data != string(data) {
			t.Errorf("%s differs in the zip", name)
		}
	}
	if n := len(historyOf(t, out)); n != 1 {
		t.Errorf("history holds %d records, want the finished export once", n)
	}
}

// TestExportHandedToWebUI: with the web UI open on the output folder, an
// export runs there (its queue, its Library) and the command follows it.
func TestExportHandedToWebUI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "models")
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 200<<10)
	testkit.WriteTestFolder(t, src, m.Entries())
	ui := startWebUI(t, dir, "out")
	code, stdout, stderr := runCLI(t, dir, "export", "tiny", "-models-dir", src, "-output-dir", "out", "-o", "carry/tiny.zip")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "the web UI at "+ui.URL+" owns out") {
		t.Errorf("stderr does not say the web UI runs it: %s", stderr)
	}
	zip := filepath.Join(dir, "carry", "tiny.zip")
	if !strings.Contains(stdout, "done: "+zip) {
		t.Errorf("stdout = %q, want the zip at the -o path (not the web UI's folder)", stdout)
	}
	if tree := testkit.ReadZipTree(t, zip); tree[m.Manifest.Name].Data != string(m.Manifest.Data) {
		t.Errorf("the zip lacks the manifest")
	}
	listed := ui.downloads(t)
	if len(listed) != 1 || listed[0].Kind != queue.KindExport || listed[0].State != queue.JobCompleted {
		t.Errorf("the web UI lists %+v, want the export, completed", listed)
	}
}

func TestListCommand(t *testing.T) {
	dir := t.TempDir()
	a := testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "0.5b", 1, 3000)
	b := testkit.NewTestModel(t, "hf.co", "bartowski", "Llama-GGUF", "Q4_K_M", 2, 1500)
	testkit.WriteTestFolder(t, dir, a.Entries())
	testkit.WriteTestFolder(t, dir, b.Entries())
	old := time.Now().Add(-3 * 24 * time.Hour)
	os.Chtimes(filepath.Join(dir, filepath.FromSlash(a.Manifest.Name)), old, old)

	var stdout, stderr bytes.Buffer
	if code := runListCommand([]string{"-models-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	header := regexp.MustCompile(`^NAME\s+ID\s+SIZE\s+MODIFIED\s+FAMILY\s+PARAMETERS\s+QUANTIZATION$`)
	if len(lines) != 3 || !header.MatchString(lines[0]) {
		t.Fatalf("list printed:\n%s", stdout.String())
	}
	idB := strings.TrimPrefix(b.Digest, "sha256:")[:12]
	idA := strings.TrimPrefix(a.Digest, "sha256:")[:12]
	size := func(m testkit.TestModel) string {
		var n int64
		for _, b := range m.Blobs {
			n += int64(len(b))
		}
		return regexp.QuoteMeta(ollamaSize(n))
	}
	if !regexp.MustCompile(`^hf.co/bartowski/Llama-GGUF:Q4_K_M\s+`+idB+`\s+`+size(b)+`\s+Less than a second ago\s+test\s*$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^qwen2:0.5b\s+`+idA+`\s+`+size(a)+`\s+3 days ago\s+test\s*$`).MatchString(lines[2]) {
		t.Errorf("rows (newest first, as ollama list):\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "2 model(s) in "+dir) {
		t.Errorf("stderr = %q, want the total", stderr.String())
	}

	stdout.Reset()
	if code := runListCommand([]string{"-json", "-models-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatal(code)
	}
	var got models.LocalModels
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got.State != "ok" || len(got.Models) != 2 || got.Models[1].ID != idA {
		t.Errorf("list -json: %v\n%s", err, stdout.String())
	}

	stderr.Reset()
	missing := filepath.Join(dir, "none")
	if code := runListCommand([]string{"-models-dir", missing}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no Ollama models folder at "+missing) {
		t.Errorf("missing folder: exit %d, %q", code, stderr.String())
	}
	if code := runListCommand([]string{"extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("an argument: exit %d, want 2", code)
	}
}

func TestOllamaSizeAndAgo(t *testing.T) {
	for n, want := range map[int64]string{999: "999 B", 1000: "1 KB", 307647: "307 KB", 4_700_000_000: "4.7 GB", 15_300_000_000: "15 GB", 2_000_000: "2 MB"} {
		if got := ollamaSize(n); got != want {
			t.Errorf("ollamaSize(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "Less than a second ago", 30 * time.Second: "30 seconds ago", 90 * time.Second: "About a minute ago",
		time.Hour: "About an hour ago", 5 * time.Hour: "5 hours ago", 72 * time.Hour: "3 days ago", 21 * 24 * time.Hour: "3 weeks ago", 90 * 24 * time.Hour: "3 months ago"} {
		if got := ollamaAgo(d); got != want {
			t.Errorf("ollamaAgo(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestListAndExportUnreadableFolder: a models folder this user cannot
// read says so in one line. As root, which reads everything, the command
// runs as the user nobody.
func TestListAndExportUnreadableFolder(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	modelsDir := filepath.Join(base, "models")
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 100)
	testkit.WriteTestFolder(t, modelsDir, m.Entries())
	os.Chmod(modelsDir, 0o700) // the owner only
	work := filepath.Join(base, "work")
	os.MkdirAll(work, 0o777)
	os.Chmod(work, 0o777)
	run := func(args ...string) (int, string) {
		cmd := command(t, t.Context(), work, args...)
		cmd.Env = append(cmd.Env, "HOME="+work)
		if os.Geteuid() == 0 {
			bin := filepath.Join(base, "omd.test")
			if _, err := os.Stat(bin); err != nil {
				data, err := os.ReadFile(os.Args[0])
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(bin, data, 0o755)
			}
			cmd.Path, cmd.Args[0] = bin, bin
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		} else {
			os.Chmod(modelsDir, 0)
			defer os.Chmod(modelsDir, 0o700)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	want := "cannot read the Ollama models folder " + modelsDir + ": permission denied"
	code, msg := run("list", "-models-dir", modelsDir)
	if code != 1 || !strings.Contains(msg, want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("list: exit %d, %q; want 1 and one line: %s", code, msg, want)
	}
	code, msg = run("export", "tiny", "-models-dir", modelsDir, "-output-dir", filepath.Join(work, "out"))
	if code != 1 || !strings.Contains(msg, want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("export: exit %d, %q; want 1 and one line: %s", code, msg, want)
	}
}

// TestPullOfflinePointsToExport is the issue's own case: a model in
// $OLLAMA_MODELS, the registry gone. The pull fails in one line that says
// so and that export takes it from there.
func TestPullOfflinePointsToExport(t *testing.T) {
	addr := testkit.ClosedPort(t)
	local := t.TempDir()
	m := testkit.NewTestModel(t, addr, "library", "tiny", "latest", 1, 100)
	testkit.WriteTestFolder(t, local, m.Entries())
	dir := t.TempDir()
	cmd := command(t, t.Context(), dir, "-registry", "http://"+addr, "-retries", "0", addr+"/library/tiny:latest")
	cmd.Env = append(cmd.Env, "OLLAMA_MODELS="+local)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v:\n%s", err, out)
	}
	want := "failed: " + addr + "/library/tiny:latest: cannot reach the registry " + addr + ": the connection was refused; it is in this machine's Ollama (" + local +
		", ID " + strings.TrimPrefix(m.Digest, "sha256:")[:12] + "): 'ollama-model-downloader export " + addr + "/library/tiny:latest' takes it from here\n"
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

// TestExportRefusedWhatDoesNotFit: an export whose zip does not fit the
// output folder's disk is refused in one line before any blob is copied.
func TestExportRefusedWhatDoesNotFit(t *testing.T) {
	mnt := testkit.MountTmpfs(t, "1m")
	src := t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "big", "latest", 1, 3<<20)
	testkit.WriteTestFolder(t, src, m.Entries())
	code, stdout, stderr := runCLI(t, mnt, "export", "big", "-models-dir", src, "-output-dir", "out")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "exporting big:latest: not enough free space on "+mnt+": need ") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("stderr = %q, want one line: not enough free space on %s: need …", stderr, mnt)
	}
	if zips, _ := filepath.Glob(filepath.Join(mnt, "out", "*.zip*")); len(zips) != 0 {
		t.Errorf("the refused export wrote %v", zips)
	}
}
