package rules

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

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
