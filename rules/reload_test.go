package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// waitDeadline bounds every wait for the watcher; waits poll, they never
// sleep a fixed time before asserting.
const waitDeadline = 5 * time.Second

// fast is the debounce of most tests.
const fast = 30 * time.Millisecond

// testConfig names the plain-list catalogs, relative to the config.
func testConfig(catalogs ...string) string {
	var b strings.Builder
	b.WriteString("embedded: []\ncatalogs:\n")
	for _, c := range catalogs {
		fmt.Fprintf(&b, "  - path: %s\n", c)
	}
	return b.String()
}

// hostList is a plain-list catalog admitting hosts on port 443.
func hostList(hosts ...string) string {
	var b strings.Builder
	for _, h := range hosts {
		b.WriteString(h + ":443\n")
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic writes a temporary file and renames it over path, as
// editors and config management tools do.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// hooks records the calls of ReloadHooks.
type hooks struct {
	mu    sync.Mutex
	swaps []*Ruleset
	errs  []error
}

func (h *hooks) reloadHooks() ReloadHooks {
	return ReloadHooks{
		OnSwap:  func(rs *Ruleset) { h.mu.Lock(); h.swaps = append(h.swaps, rs); h.mu.Unlock() },
		OnError: func(err error) { h.mu.Lock(); h.errs = append(h.errs, err); h.mu.Unlock() },
	}
}

func (h *hooks) counts() (swaps, errs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.swaps), len(h.errs)
}

func (h *hooks) lastErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) == 0 {
		return nil
	}
	return h.errs[len(h.errs)-1]
}

func newTestReloader(t *testing.T, path string) (*Reloader, *hooks, *proxytest.LogBuffer) {
	t.Helper()
	return newLeveledReloader(t, path, slog.LevelDebug)
}

// newLeveledReloader is newTestReloader logging at level and above.
func newLeveledReloader(t *testing.T, path string, level slog.Level) (*Reloader, *hooks, *proxytest.LogBuffer) {
	t.Helper()
	h := &hooks{}
	lb := &proxytest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: level}))
	r, err := NewReloader(path, log, h.reloadHooks())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reloader log:\n%s", lb)
		}
	})
	return r, h, lb
}

// startRun runs r.Run until the test ends. Most tests pass a short debounce
// and turn the poll off (0), so that only fsnotify can see a change.
func startRun(t *testing.T, r *Reloader, lb *proxytest.LogBuffer, debounce, poll time.Duration) {
	t.Helper()
	r.Debounce = debounce
	r.PollInterval = poll
	stop := goRun(r)
	t.Cleanup(func() { stop(t) })
	// Run reloads once after it set its watches up, so that a change made
	// before is not missed. Wait for that reload: a change after it can
	// only be seen by the watcher.
	waitFor(t, "Run's first reload", func() bool { return strings.Contains(lb.String(), "reload skipped") })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitDeadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allows(r *Reloader, host string) bool { return r.Matcher().Lookup(host, 443).Allow }

func waitAllows(t *testing.T, r *Reloader, host string, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s allowed=%v", host, want), func() bool { return allows(r, host) == want })
}

func TestReloadDirect(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	r, h, lb := newTestReloader(t, cfg)
	first := r.Current()
	if swaps, errs := h.counts(); swaps != 1 || errs != 0 {
		t.Fatalf("after NewReloader: %d swaps, %d errors; want 1, 0", swaps, errs)
	}
	if want := []string{cfg, filepath.Join(dir, "local.txt")}; fmt.Sprint(first.Files) != fmt.Sprint(want) {
		t.Errorf("Files = %q, want %q", first.Files, want)
	}
	if !allows(r, "a.example.com") || allows(r, "b.example.com") {
		t.Fatal("first load: wrong verdicts")
	}

	// Nothing changed: no swap, same ruleset.
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Current() != first {
		t.Error("Reload of unchanged files stored a new ruleset")
	}
	if swaps, _ := h.counts(); swaps != 1 {
		t.Errorf("Reload of unchanged files called OnSwap")
	}

	// A change is picked up.
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("a.example.com", "b.example.com"))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if !allows(r, "b.example.com") {
		t.Error("b.example.com not allowed after Reload")
	}
	if swaps, _ := h.counts(); swaps != 2 {
		t.Errorf("%d swaps, want 2", swaps)
	}
	good := r.Current()

	// A syntax error keeps the last good ruleset, names file and line,
	// calls OnError, and is logged once however often it is seen.
	writeFile(t, cfg, "embedded: []\ncatalogs:\n  - path: local.txt\npolicy:\n  mode: exact: x\n")
	for range 3 {
		err := r.Reload()
		if err == nil {
			t.Fatal("Reload of a broken config succeeded")
		}
		if want := cfg + ":5: mapping values are not allowed"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	}
	if r.Current() != good || !allows(r, "b.example.com") {
		t.Error("a failed reload changed the ruleset")
	}
	if _, errs := h.counts(); errs != 3 {
		t.Errorf("OnError called %d times, want 3", errs)
	}
	if n := strings.Count(lb.String(), "level=ERROR"); n != 1 {
		t.Errorf("the same error was logged at level ERROR %d times, want 1:\n%s", n, lb)
	}
	if !strings.Contains(lb.String(), "config.yaml:5: ") {
		t.Errorf("the log does not name config.yaml:5:\n%s", lb)
	}

	// Fixed back to the last good content: the recovery is stored and
	// reported even though the digest equals the last good one.
	writeFile(t, cfg, testConfig("local.txt"))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if swaps, _ := h.counts(); swaps != 3 {
		t.Errorf("recovery to the last good content: %d swaps, want 3", swaps)
	}
	if r.Current().Digest != good.Digest {
		t.Error("digest differs after restoring the same content")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if swaps, _ := h.counts(); swaps != 3 {
		t.Errorf("Reload after recovery, nothing changed: %d swaps, want 3", swaps)
	}
}

// TestReloadUnchanged checks that reloads which find the files as they
// were compile nothing (the matcher version is not used up), log "rules
// unchanged" at debug level for the watcher and poll and at info level
// when an operator asked (SIGHUP), and that the next real change gets the
// next version.
func TestReloadUnchanged(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "egressgate.yaml")
	writeFile(t, cfg, testConfig("site.txt"))
	writeFile(t, filepath.Join(dir, "site.txt"), hostList("a.example.org"))
	r, h, lb := newLeveledReloader(t, cfg, slog.LevelInfo)
	first := r.Matcher().Version()
	counter := matcherVersions.Load()

	for range 3 {
		if err := r.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	if strings.Contains(lb.String(), "rules unchanged") {
		t.Errorf("a poll's skipped reload was logged at info level:\n%s", lb)
	}
	if err := r.ReloadRequested(); err != nil {
		t.Fatalf("ReloadRequested: %v", err)
	}
	if !strings.Contains(lb.String(), `level=INFO msg="rules unchanged; reload skipped"`) {
		t.Errorf("a requested reload that changed nothing did not say so at info level:\n%s", lb)
	}
	if got := matcherVersions.Load(); got != counter {
		t.Errorf("skipped reloads compiled %d matchers; want none", got-counter)
	}
	if swaps, _ := h.counts(); swaps != 1 {
		t.Errorf("OnSwap calls = %d, want 1 (the first load only)", swaps)
	}

	writeFile(t, filepath.Join(dir, "site.txt"), hostList("a.example.org", "b.example.org"))
	if err := r.ReloadRequested(); err != nil {
		t.Fatalf("ReloadRequested after a change: %v", err)
	}
	if got := r.Matcher().Version(); got != first+1 {
		t.Errorf("matcher version after one real change = %d, want %d (the first was %d)", got, first+1, first)
	}
	if !r.Matcher().Lookup("b.example.org", 443).Allow {
		t.Error("the changed catalog is not in force")
	}
}

func TestReloaderFirstLoadFails(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "policy:\n  mode: fuzzy\n")
	called := false
	r, err := NewReloader(cfg, nil, ReloadHooks{OnSwap: func(*Ruleset) { called = true }, OnError: func(error) { called = true }})
	if err == nil || r != nil {
		t.Fatalf("NewReloader = %v, %v; want nil and an error", r, err)
	}
	if want := cfg + ":2: policy.mode: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if called {
		t.Error("a hook was called for a failed first load")
	}
}

func TestReloadWatchEditInPlace(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	writeFile(t, filepath.Join(dir, "other.txt"), hostList("b.example.com"))
	r, h, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 0)

	writeFile(t, cfg, testConfig("other.txt"))
	waitAllows(t, r, "b.example.com", true)
	if allows(r, "a.example.com") {
		t.Error("a.example.com still allowed")
	}
	if _, errs := h.counts(); errs != 0 {
		t.Errorf("OnError called: %v", h.lastErr())
	}
}

func TestReloadWatchAtomicRename(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	local := filepath.Join(dir, "local.txt")
	r, _, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 0)

	writeAtomic(t, local, hostList("b.example.com"))
	waitAllows(t, r, "b.example.com", true)
	// The watch is on the directory, so it survives the first rename.
	writeAtomic(t, local, hostList("c.example.com"))
	waitAllows(t, r, "c.example.com", true)
	writeAtomic(t, cfg, testConfig("local.txt")+"policy:\n  mode: exact\n")
	waitFor(t, "exact mode", func() bool { return r.Current().Config.Policy.Mode == ModeExact })
}

// TestReloadWatchConfigMap updates the files the way the kubelet updates a
// mounted ConfigMap: the files live in a timestamped directory that the
// "..data" symlink points to, and an update swaps that symlink by rename.
func TestReloadWatchConfigMap(t *testing.T) {
	dir := t.TempDir()
	version := 0
	publish := func(files map[string]string) {
		t.Helper()
		version++
		ts := fmt.Sprintf("..2026_11_25_%02d_00_00.%d", version, 1000+version)
		for name, content := range files {
			writeFile(t, filepath.Join(dir, ts, name), content)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for name := range files {
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(map[string]string{"config.yaml": testConfig("local.txt"), "local.txt": hostList("a.example.com")})
	r, h, lb := newTestReloader(t, filepath.Join(dir, "config.yaml"))
	startRun(t, r, lb, fast, 0)

	publish(map[string]string{"config.yaml": testConfig("local.txt"), "local.txt": hostList("b.example.com")})
	waitAllows(t, r, "b.example.com", true)
	if allows(r, "a.example.com") {
		t.Error("a.example.com still allowed after the update")
	}
	publish(map[string]string{"config.yaml": testConfig("local.txt"), "local.txt": hostList("c.example.com")})
	waitAllows(t, r, "c.example.com", true)
	if _, errs := h.counts(); errs != 0 {
		t.Errorf("OnError called: %v", h.lastErr())
	}
}

func TestReloadWatchSyntaxErrorThenFix(t *testing.T) {
	_, cfg := writeLocalConfig(t, "a.example.com")
	r, h, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 0)
	good := r.Current()

	writeFile(t, cfg, "embedded: []\ncatalogs:\n  - path: local.txt\npolicy:\n  mode: exact\n  bogus: 1\n")
	waitFor(t, "OnError", func() bool { _, errs := h.counts(); return errs > 0 })
	if want := cfg + `:6: unknown field "bogus" in policy`; !strings.HasPrefix(h.lastErr().Error(), want) {
		t.Errorf("error %q does not start with %q", h.lastErr(), want)
	}
	if r.Current() != good || !allows(r, "a.example.com") {
		t.Error("the last good ruleset is not serving after a failed reload")
	}
	if !strings.Contains(lb.String(), `config.yaml:6: unknown field \"bogus\" in policy`) {
		t.Errorf("the error is not in the log:\n%s", lb)
	}

	writeFile(t, cfg, testConfig("local.txt")+"policy:\n  mode: exact\n")
	waitFor(t, "the fix", func() bool { return r.Current().Config.Policy.Mode == ModeExact })
}

func TestReloadWatchDeleteAndRestore(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	local := filepath.Join(dir, "local.txt")
	r, h, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 0)

	if err := os.Remove(local); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "OnError", func() bool { _, errs := h.counts(); return errs > 0 })
	if msg := h.lastErr().Error(); !strings.HasPrefix(msg, cfg+":3: catalogs: ") || !strings.Contains(msg, "local.txt") {
		t.Errorf("error %q does not name the config line and the missing file", msg)
	}
	if !allows(r, "a.example.com") {
		t.Error("the last good matcher is not serving while the file is missing")
	}

	swaps, _ := h.counts()
	writeFile(t, local, hostList("a.example.com")) // the same content
	waitFor(t, "OnSwap on restore", func() bool { s, _ := h.counts(); return s > swaps })

	if err := os.Remove(local); err != nil {
		t.Fatal(err)
	}
	writeFile(t, local, hostList("b.example.com"))
	waitAllows(t, r, "b.example.com", true)
}

// A catalog named by the config is watched too, including one in a
// directory the config names only after Run started.
func TestReloadWatchCatalog(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	writeFile(t, filepath.Join(dir, "extra", "more.txt"), hostList("m1.example.com"))
	r, _, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 0)

	writeFile(t, filepath.Join(dir, "local.txt"), hostList("a.example.com", "b.example.com"))
	waitAllows(t, r, "b.example.com", true)

	writeFile(t, cfg, testConfig("local.txt", "extra/more.txt"))
	waitAllows(t, r, "m1.example.com", true)
	writeFile(t, filepath.Join(dir, "extra", "more.txt"), hostList("m2.example.com"))
	waitAllows(t, r, "m2.example.com", true)
}

// When the directory goes away, the last good rules keep serving and the
// poll takes over; when it comes back, so do the rules from it.
func TestReloadWatchDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, testConfig("local.txt"))
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("a.example.com"))
	r, h, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, fast, 50*time.Millisecond)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "OnError", func() bool { _, errs := h.counts(); return errs > 0 })
	if !allows(r, "a.example.com") {
		t.Error("the last good matcher is not serving while the directory is missing")
	}
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("b.example.com"))
	writeFile(t, cfg, testConfig("local.txt"))
	waitAllows(t, r, "b.example.com", true)
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("c.example.com"))
	waitAllows(t, r, "c.example.com", true)
}

// Without a watcher, the poll still reloads.
func TestReloadPollOnly(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	r, _, lb := newTestReloader(t, cfg)
	r.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("no inotify here") }
	startRun(t, r, lb, fast, 20*time.Millisecond)
	if !strings.Contains(lb.String(), "falling back to polling") {
		t.Errorf("the fallback is not logged:\n%s", lb)
	}
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("b.example.com"))
	waitAllows(t, r, "b.example.com", true)
}

// A burst of writes gives one reload (or very few), of the last content.
func TestReloadWatchDebounce(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	local := filepath.Join(dir, "local.txt")
	r, h, lb := newTestReloader(t, cfg)
	startRun(t, r, lb, 200*time.Millisecond, 0)
	swaps, _ := h.counts()

	const n = 20
	for i := range n {
		writeFile(t, local, hostList(fmt.Sprintf("h%d.example.com", i)))
	}
	waitAllows(t, r, fmt.Sprintf("h%d.example.com", n-1), true)
	if s, _ := h.counts(); s-swaps > 3 {
		t.Errorf("%d writes in a burst gave %d reloads", n, s-swaps)
	}
}

// Lookups running during reloads always see one version or the other.
func TestReloadConcurrentLookups(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, filepath.Join(dir, "a.txt"), hostList("a.example.com", "shared.example.com"))
	writeFile(t, filepath.Join(dir, "b.txt"), hostList("b.example.com", "shared.example.com"))
	writeFile(t, cfg, testConfig("a.txt"))
	r, h := func() (*Reloader, *hooks) { r, h, _ := newTestReloader(t, cfg); return r, h }()

	var stop atomic.Bool
	var lookups atomic.Int64
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				m := r.Matcher() // one matcher for the whole verdict, as a connection does
				got := [4]bool{
					m.Lookup("a.example.com", 443).Allow,
					m.Lookup("b.example.com", 443).Allow,
					m.Lookup("shared.example.com", 443).Allow,
					m.Lookup("shared.example.com", 80).Reason == ReasonPortNotAllowed,
				}
				if got != [4]bool{true, false, true, true} && got != [4]bool{false, true, true, true} {
					errs <- fmt.Errorf("verdicts %v match neither version", got)
					return
				}
				lookups.Add(1)
			}
		})
	}
	// A second caller of Reload, as a SIGHUP handler would be.
	wg.Go(func() {
		for !stop.Load() {
			if err := r.Reload(); err != nil {
				errs <- err
				return
			}
		}
	})
	for i := range 100 {
		want := "a"
		if i%2 == 0 {
			want = "b"
		}
		writeAtomic(t, cfg, testConfig(want+".txt"))
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		if !allows(r, want+".example.com") {
			t.Fatalf("reload %d: %s.example.com not allowed", i, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if swaps, errCount := h.counts(); swaps < 101 || errCount != 0 {
		t.Errorf("%d swaps, %d errors; want at least 101 and 0", swaps, errCount)
	}
	t.Logf("%d lookup rounds", lookups.Load())
}

// Run leaves no goroutine behind once its context is cancelled.
func TestReloadRunNoLeak(t *testing.T) {
	dir, cfg := writeLocalConfig(t, "a.example.com")
	r, _, _ := newTestReloader(t, cfg)
	r.Debounce = 10 * time.Millisecond
	r.PollInterval = 10 * time.Millisecond

	before := runtime.NumGoroutine()
	stop := goRun(r)
	writeFile(t, filepath.Join(dir, "local.txt"), hostList("b.example.com"))
	waitAllows(t, r, "b.example.com", true)
	stop(t)
	waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}

func TestReloadEventFilter(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, filepath.Join(dir, "..2026_11_25_01", "config.yaml"), testConfig())
	if err := os.Symlink("..2026_11_25_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), cfg); err != nil {
		t.Fatal(err)
	}
	ws := &watchSet{log: slog.New(slog.DiscardHandler)}
	ws.sync([]string{cfg, filepath.Join(dir, "sub", "local.txt")}, nil)
	for name, want := range map[string]bool{
		cfg:                                                  true,
		filepath.Join(dir, "..data"):                         true,
		filepath.Join(dir, "..data_tmp"):                     true,
		filepath.Join(dir, "..2026_11_25_02"):                true,
		filepath.Join(dir, "config.yaml.tmp"):                false,
		filepath.Join(dir, "local.txt"):                      false,
		filepath.Join(dir, "sub", "local.txt"):               true,
		filepath.Join(dir, "sub", "other.txt"):               false,
		filepath.Join(dir, "sub"):                            true, // the watched directory itself
		filepath.Join(dir, "..2026_11_25_01", "config.yaml"): true, // the symlink's target
		filepath.Join(t.TempDir(), "config.yaml"):            false,
	} {
		if got := ws.relevant(name); got != want {
			t.Errorf("relevant(%s) = %v, want %v", name, got, want)
		}
	}
}

// writeLocalConfig writes, in a new directory, a config.yaml whose only
// catalog is local.txt allowing hosts, and returns the directory and the
// config's path.
func writeLocalConfig(t *testing.T, hosts ...string) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, testConfig("local.txt"))
	writeFile(t, filepath.Join(dir, "local.txt"), hostList(hosts...))
	return dir, cfg
}

// goRun starts r.Run; the returned func cancels it and checks that Run
// returns nil within waitDeadline.
func goRun(r *Reloader) (stop func(t *testing.T)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func(t *testing.T) {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(waitDeadline):
			t.Error("Run did not return after its context was cancelled")
		}
	}
}

// TestReloadWatchesWhatAFailedLoadTried: after a load fails on a file in a
// directory the last good ruleset had no file in (the first estate with
// its own file, a catalog in a new directory), creating that file reloads
// at once, with the poll off; fixing the config instead drops the watch.
func TestReloadWatchesWhatAFailedLoadTried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string // appended to testConfig("local.txt")
		file   string // relative to the config's directory
		data   string
		done   func(*Ruleset) bool
	}{{
		name:   "estate file",
		config: "estates:\n  - name: perth\n    subnets: [10.4.0.0/16]\n    source: estate\n",
		file:   filepath.Join(EstatesDir, "perth.yaml"),
		data:   "mode: exact\n",
		done:   func(rs *Ruleset) bool { return rs.Estate("perth") != nil },
	}, {
		name:   "catalog",
		config: "  - path: more/extra.txt\n",
		file:   filepath.Join("more", "extra.txt"),
		data:   hostList("b.example.com"),
		done:   func(rs *Ruleset) bool { return rs.Matcher.Lookup("b.example.com", 443).Allow },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := writeLocalConfig(t, "a.example.com")
			newDir := filepath.Join(dir, filepath.Dir(tc.file))
			if err := os.Mkdir(newDir, 0o755); err != nil {
				t.Fatal(err)
			}
			r, h, lb := newTestReloader(t, cfg)
			startRun(t, r, lb, 20*time.Millisecond, 0)
			watching := "rules watcher: watching\" dir=" + newDir + "\n"
			unwatching := "rules watcher: no longer watching\" dir=" + newDir + "\n"
			count := func(s string) int { return strings.Count(lb.String(), s) }
			if count(watching) != 0 {
				t.Fatalf("%s watched before any file there was named", newDir)
			}

			writeAtomic(t, cfg, testConfig("local.txt")+tc.config)
			waitFor(t, "the error for the missing file", func() bool { _, errs := h.counts(); return errs > 0 })
			waitFor(t, newDir+" watched", func() bool { return count(watching) == 1 })
			// The config no longer names the file: the watch goes.
			writeAtomic(t, cfg, testConfig("local.txt"))
			waitFor(t, newDir+" no longer watched", func() bool { return count(unwatching) == 1 })
			if r.failing() {
				t.Fatal("still failing after the config was fixed")
			}

			writeAtomic(t, cfg, testConfig("local.txt")+tc.config)
			waitFor(t, newDir+" watched again", func() bool { return count(watching) == 2 })
			writeAtomic(t, filepath.Join(dir, tc.file), tc.data)
			waitFor(t, "the ruleset with the new file", func() bool { return tc.done(r.Current()) })
		})
	}
}

// TestReloadRequestedLogsEveryFailure: an operator's reload (SIGHUP) of a
// broken config logs the error, with file and line, at ERROR every time,
// not only the first; one line per attempt.
func TestReloadRequestedLogsEveryFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "egressgate.yaml")
	writeFile(t, p, "policy:\n  mode: wildcard\n")
	r, h, lb := newTestReloader(t, p)
	writeFile(t, p, "policy:\n  mode: wildcards\n")
	before := len(lb.String())
	for range 3 {
		if err := r.ReloadRequested(); err == nil {
			t.Fatal("ReloadRequested of a broken config succeeded")
		}
	}
	logged := lb.String()[before:]
	want := p + `:2: policy.mode:`
	if n := strings.Count(logged, "level=ERROR"); n != 3 || strings.Count(logged, want) != 3 || strings.Count(logged, "\n") != 3 {
		t.Errorf("3 requested reloads of a broken config logged %d ERROR lines (want 3 lines, each naming %s):\n%s", n, want, logged)
	}
	if _, errs := h.counts(); errs != 3 {
		t.Errorf("%d failures counted for 3 attempts, want 3", errs)
	}
	// The watcher's and the poll's repeats stay quiet: debug level.
	before = len(lb.String())
	r.Reload()
	if logged := lb.String()[before:]; strings.Contains(logged, "level=ERROR") {
		t.Errorf("a repeated failure seen by the poll logged at ERROR:\n%s", logged)
	}
	// Fixed: one INFO line.
	writeFile(t, p, "policy:\n  mode: exact\n")
	before = len(lb.String())
	if err := r.ReloadRequested(); err != nil {
		t.Fatal(err)
	}
	if logged := lb.String()[before:]; strings.Count(logged, "\n") != 1 || !strings.Contains(logged, `level=INFO msg="rules reloaded"`) {
		t.Errorf("the fixed reload logged:\n%s", logged)
	}
}
