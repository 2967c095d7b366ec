package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of the Reloader's tunables.
const (
	DefaultReloadDebounce = 150 * time.Millisecond
	DefaultReloadPoll     = 30 * time.Second
)

// ReloadHooks are called after each reload attempt, exactly one of them
// per attempt that did not find the files unchanged. Nil funcs are
// skipped. They run with the Reloader's reload lock held, one at a time
// and in the order of the attempts, so they must not call Reload.
type ReloadHooks struct {
	// OnSwap is called after a new ruleset was stored (also for the first
	// load in NewReloader). A ruleset with Problems (an estate's own file
	// failed and that estate keeps its last good settings) is stored too:
	// the attempt then failed, and OnError is not called for it.
	OnSwap func(*Ruleset)
	// OnError is called after a failed reload; the last good ruleset keeps
	// serving.
	OnError func(error)
}

// Reloader keeps the current Ruleset of a config file and replaces it when
// the config or a catalog it names changes. Lookups go through Current or
// Matcher, which never block; Reload may be called from any goroutine.
type Reloader struct {
	// Debounce is how long Run waits after the last file event of a burst
	// before it reloads. Set it before calling Run.
	Debounce time.Duration
	// PollInterval is the period of the safety-net poll that reloads (and
	// skips when nothing changed) even without file events; 0 or less
	// turns it off. Set it before calling Run.
	PollInterval time.Duration

	path  string
	log   *slog.Logger
	hooks ReloadHooks
	cur   atomic.Pointer[Ruleset]

	mu      sync.Mutex // serialises Reload; lookups never take it
	lastErr string     // text of the last failure logged; "" after a success
	tried   []string   // the files the last failed load read or tried to read

	// newWatcher creates Run's watcher; nil means fsnotify.NewWatcher.
	newWatcher func() (*fsnotify.Watcher, error)
}

// NewReloader loads the config at path ("" for the built-in default) and
// returns a Reloader serving it. An error here means there is no ruleset
// to serve at all: the caller should treat it as fatal. log may be nil.
func NewReloader(path string, log *slog.Logger, hooks ReloadHooks) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rs, err := Load(path)
	if err != nil {
		return nil, err
	}
	r := &Reloader{Debounce: DefaultReloadDebounce, PollInterval: DefaultReloadPoll, path: path, log: log, hooks: hooks}
	r.cur.Store(rs)
	log.Info("rules loaded", rulesetAttrs(rs)...)
	if hooks.OnSwap != nil {
		hooks.OnSwap(rs)
	}
	return r, nil
}

// Current returns the ruleset being served. It never blocks and never
// returns nil. A caller that needs one consistent answer (a connection's
// verdict) loads it once and keeps using that value.
func (r *Reloader) Current() *Ruleset { return r.cur.Load() }

// Matcher returns the matcher of the current ruleset.
func (r *Reloader) Matcher() *Matcher { return r.cur.Load().Matcher }

// Reload reads the config and its catalogs again, compiles them and, when
// their content differs from the current ruleset's, stores the new
// ruleset and calls OnSwap. When nothing changed it returns nil and stores
// nothing. On error the current ruleset keeps serving, the error (which
// names file and line) is logged, OnError is called, and the error is
// returned; callers need not log it again. An error identical to the
// previous failure is logged at debug level only, so a broken file seen
// again by the poll does not flood the log (ReloadRequested logs it at
// error level every time). Each attempt logs one line. After a failure, the next
// successful load is stored even when its content equals the last good
// one, so that OnSwap reports the recovery.
//
// Reload is safe to call from any goroutine (the watcher, a SIGHUP
// handler); calls are serialised.
func (r *Reloader) Reload() error {
	return r.reload(false)
}

// ReloadRequested is Reload for a reload an operator asked for (SIGHUP):
// when nothing changed, "rules unchanged" is logged at info level rather
// than debug, and a failure is logged at error level even when it repeats
// the last one, so the operator (and the journal) always get an answer.
func (r *Reloader) ReloadRequested() error {
	return r.reload(true)
}

// reload is Reload; requested says an operator asked for it.
// Files that still hold what the current ruleset was built from are not
// compiled again: a skipped reload uses up no matcher version, so the
// versions in the log and on /rules count real changes.
func (r *Reloader) reload(requested bool) error {
	unchangedLevel := slog.LevelDebug
	if requested {
		unchangedLevel = slog.LevelInfo
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	if r.lastErr == "" && sameFiles(cur) {
		r.log.Log(context.Background(), unchangedLevel, "rules unchanged; reload skipped", "matcher_version", cur.Matcher.Version(), "digest", shortDigest(cur))
		return nil
	}
	var tried []string
	rs, err := loadTrying(r.path, cur, &tried)
	if err == nil && len(rs.Problems) > 0 {
		// An estate's own file is wrong: the rest of the new ruleset is
		// stored (no other estate notices), that estate keeps its last
		// good settings, and the attempt is one failure: one line, one
		// hook call.
		err = errors.Join(rs.Problems...)
		stored := r.storeIfChanged(rs, true)
		r.logFailure(err, requested, "rules reload failed in part: the estates whose files failed keep their last good settings, the rest is reloaded", stored)
		r.tried = tried
		if stored && r.hooks.OnSwap != nil {
			r.hooks.OnSwap(rs)
		} else if !stored && r.hooks.OnError != nil {
			r.hooks.OnError(err)
		}
		return err
	}
	if err != nil {
		r.tried = tried
		r.logFailure(err, requested, "rules reload failed; keeping the last good rules", false)
		if r.hooks.OnError != nil {
			r.hooks.OnError(err)
		}
		return err
	}
	recovered := r.lastErr != ""
	r.lastErr, r.tried = "", nil
	if !r.storeIfChanged(rs, recovered) {
		// The files changed and changed back, or hash differently from
		// what sameFiles reads: still nothing to install.
		r.log.Log(context.Background(), unchangedLevel, "rules unchanged; reload skipped", "matcher_version", cur.Matcher.Version(), "digest", shortDigest(rs))
		return nil
	}
	r.log.Info("rules reloaded", rulesetAttrs(rs)...)
	if r.hooks.OnSwap != nil {
		r.hooks.OnSwap(rs)
	}
	return nil
}

// logFailure logs a failed attempt once: at error level when its error is
// new or an operator asked for the reload, at debug level when the poll or
// the watcher meets the same error again.
func (r *Reloader) logFailure(err error, requested bool, msg string, stored bool) {
	level := slog.LevelError
	if text := err.Error(); text == r.lastErr && !requested && !stored {
		level = slog.LevelDebug
		msg += " (the same error again)"
	} else {
		r.lastErr = text
	}
	r.log.Log(context.Background(), level, msg, "err", err)
}

// storeIfChanged stores rs when its content differs from the ruleset in
// use, or when force is set, and reports whether it stored it.
func (r *Reloader) storeIfChanged(rs *Ruleset, force bool) bool {
	if !force && rs.Digest == r.cur.Load().Digest {
		return false
	}
	if force && rs.Digest == r.cur.Load().Digest && len(rs.Problems) > 0 {
		return false // the same broken estate file seen again
	}
	r.cur.Store(rs)
	return true
}

// sameFiles reports whether rs's files still hold what rs was built from:
// it hashes them as Load does and compares the digest. The config names
// the catalogs, so unchanged files cannot name other ones; embedded
// catalogs never change. Any read error means "look again": Load then
// says what is wrong.
func sameFiles(rs *Ruleset) bool {
	if len(rs.Files) == 0 {
		return true // the built-in default: nothing on disk to change
	}
	h := sha256.New()
	for _, f := range rs.Files {
		// Read no more than any file may hold: a larger one fails Load.
		data, err := readLimited(f, maxCatalogBytes)
		if err != nil {
			return false
		}
		hashFile(h, f, data)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d == rs.Digest
}

func rulesetAttrs(rs *Ruleset) []any {
	cfg := "(built-in default)"
	if rs.Config != nil && rs.Config.Path != "" {
		cfg = rs.Config.Path
	}
	return []any{"config", cfg, "files", len(rs.Files), "digest", shortDigest(rs), "matcher", rs.Matcher.String()}
}

func shortDigest(rs *Ruleset) string { return hex.EncodeToString(rs.Digest[:6]) }

// Run watches the files of the current ruleset and reloads when they
// change, until ctx is done; then it returns nil. It watches the parent
// directory of every file (and of its symlink target), since editors and
// Kubernetes ConfigMaps replace files by rename, and re-derives that set
// after every reload, as the config may name new catalogs; after a failed
// one it also watches (boundedly) where that load tried to read, so that
// the file it missed is seen when it appears. An event in a
// watched directory triggers a reload when its name is one of the files or
// starts with ".." (the ConfigMap "..data" symlink swap); a burst of events
// gives one reload, Debounce after the last. A poll every PollInterval
// reloads as a safety net, and is all that is left when the watcher cannot
// be created or a watched directory disappears (its watch comes back when
// the directory does). Watch errors are logged, never fatal. Run must be
// called at most once at a time.
func (r *Reloader) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	newWatcher := r.newWatcher
	if newWatcher == nil {
		newWatcher = fsnotify.NewWatcher
	}
	w, err := newWatcher()
	if err != nil {
		r.log.Warn("cannot watch rules files; falling back to polling", "err", err, "poll", r.PollInterval)
	} else {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}
	ws := &watchSet{w: w, log: r.log}
	delay, every := r.Debounce, r.PollInterval // read once: Run owns its timers

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var poll <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		poll = t.C
	}

	// sync re-derives the watch set; when a directory was newly watched,
	// a change there may have been missed, so one more reload is due.
	sync := func() {
		if ws.sync(r.Current().Files, r.triedFiles()) {
			debounce.Reset(delay)
		}
	}
	sync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// After a failed reload, any change in a watched directory
			// may be the fix: a file the new config names but the last
			// good ruleset did not (an estate's file written after the
			// config that names it).
			if ws.relevant(ev.Name) || ws.inWatchedDir(ev.Name) && r.failing() {
				r.log.Debug("rules file event", "event", ev.String())
				debounce.Reset(delay)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			r.log.Warn("rules watcher error", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				debounce.Reset(delay) // events were lost
			}
		case <-debounce.C:
			_ = r.Reload() // logged by Reload
			sync()
		case <-poll:
			_ = r.Reload()
			sync()
		}
	}
}

// watchSet is the set of directories Run watches and the names in them
// that matter.
type watchSet struct {
	w      *fsnotify.Watcher // nil: polling only
	log    *slog.Logger
	names  map[string][]string // watched directory → base names of our files in it
	failed map[string]string   // directory → last error adding it, logged once
}

// maxTriedDirs bounds the directories watched for a failed load's files
// beyond the last good ruleset's.
const maxTriedDirs = 16

// sync makes the watcher watch the directories of files (and of their
// symlink targets), and of up to maxTriedDirs more holding the files a
// failed load tried to read (a new estate's file, a catalog the config
// now names), and nothing else: a watch of tried is dropped once the load
// succeeds or no longer reads there. It reports whether a directory was
// added.
func (s *watchSet) sync(files, tried []string) (added bool) {
	names := map[string][]string{}
	note := func(p string) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return
		}
		dir, base := filepath.Dir(abs), filepath.Base(abs)
		if !slices.Contains(names[dir], base) {
			names[dir] = append(names[dir], base)
		}
	}
	for _, f := range files {
		note(f)
		if target, err := filepath.EvalSymlinks(f); err == nil {
			note(target)
		}
	}
	good := len(names)
	// extra: directories only a failed load needs; one that does not
	// exist yet is not worth a warning (its parent, the config's
	// directory, usually is watched and sees it created).
	extra := map[string]bool{}
	for _, f := range tried {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		if dir := filepath.Dir(abs); names[dir] == nil {
			if len(names) >= good+maxTriedDirs {
				continue
			}
			extra[dir] = true
		}
		note(abs)
	}
	s.names = names
	if s.w == nil {
		return false
	}
	have := s.w.WatchList()
	for _, dir := range have {
		if _, ok := names[dir]; !ok {
			if err := s.w.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				s.log.Debug("rules watcher: removing watch", "dir", dir, "err", err)
			} else {
				s.log.Debug("rules watcher: no longer watching", "dir", dir)
			}
		}
	}
	if s.failed == nil {
		s.failed = map[string]string{}
	}
	for dir := range names {
		if slices.Contains(have, dir) {
			continue
		}
		if err := s.w.Add(dir); err != nil {
			if extra[dir] && errors.Is(err, fs.ErrNotExist) {
				s.log.Debug("rules watcher: a directory the failed load read in does not exist", "dir", dir)
				continue
			}
			if s.failed[dir] != err.Error() {
				s.log.Warn("cannot watch rules directory; relying on the poll until it is back", "dir", dir, "err", err)
				s.failed[dir] = err.Error()
			}
			continue
		}
		if _, ok := s.failed[dir]; ok {
			s.log.Info("watching rules directory again", "dir", dir)
			delete(s.failed, dir)
		}
		s.log.Debug("rules watcher: watching", "dir", dir)
		added = true
	}
	return added
}

// inWatchedDir reports whether name is in a watched directory.
func (s *watchSet) inWatchedDir(name string) bool {
	_, ok := s.names[filepath.Dir(filepath.Clean(name))]
	return ok
}

// triedFiles returns the files the last reload tried to read when it
// failed, nil after a success.
func (r *Reloader) triedFiles() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tried
}

// failing reports whether the last reload failed.
func (r *Reloader) failing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr != ""
}

// relevant reports whether an event on name may change the rules: name is
// one of the files, a ".."-prefixed name (a ConfigMap's "..data" and its
// timestamped directories) in a watched directory, or a watched directory
// itself (deleted or moved).
func (s *watchSet) relevant(name string) bool {
	name = filepath.Clean(name)
	if _, ok := s.names[name]; ok {
		return true
	}
	bases, ok := s.names[filepath.Dir(name)]
	if !ok {
		return false
	}
	base := filepath.Base(name)
	return strings.HasPrefix(base, "..") || slices.Contains(bases, base)
}
