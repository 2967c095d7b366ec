package main

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// The admin listener's bounds: it must never hurt the proxy, whoever
// reaches it. Idle and slow connections are closed, and it holds at most
// --admin-max-conns connections (and so descriptors) at once; further
// clients wait in the kernel's accept queue, which costs the process no
// descriptor.
const (
	adminReadHeaderTimeout = 10 * time.Second
	adminReadTimeout       = 30 * time.Second
	adminWriteTimeout      = 2 * time.Minute // a 30 s CPU profile under --pprof fits
	adminIdleTimeout       = 30 * time.Second
	defaultAdminMaxConns   = 32
)

// adminOptions are the admin listener's flags.
type adminOptions struct {
	maxConns  int
	tokenFile string // --admin-token-file: a bearer token
	users     bool   // --admin-users: Basic credentials of the proxy's users file
}

// adminServer returns the admin listener's server and its listener,
// bounded and, when asked, behind authentication. users gives the proxy
// users in force.
func adminServer(ln net.Listener, h http.Handler, o adminOptions, users func() *rules.Users) (*http.Server, net.Listener, error) {
	if o.tokenFile != "" || o.users {
		a := &adminAuth{next: h, tokenFile: o.tokenFile, users: users, checks: make(chan struct{}, 1)}
		if o.tokenFile != "" {
			if _, err := a.token(); err != nil {
				return nil, nil, err
			}
		}
		h = a
	}
	if o.maxConns > 0 {
		ln = netutil.LimitListener(ln, o.maxConns)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    16 << 10,
	}, ln, nil
}

// adminAuth lets a request through with the bearer token of tokenFile,
// or Basic credentials of a proxy user; /healthz, /readyz and the PAC
// file are always open (probes and endpoints carry no credentials).
type adminAuth struct {
	next      http.Handler
	tokenFile string
	users     func() *rules.Users

	checks chan struct{} // holds the one bcrypt check in progress

	mu      sync.Mutex
	tok     []byte
	tokTime time.Time // the file's mtime when tok was read
}

// adminOpenPaths need no credentials.
var adminOpenPaths = map[string]bool{"/healthz": true, "/readyz": true, proxy.PACPath: true}

func (a *adminAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if adminOpenPaths[r.URL.Path] || a.allowed(r) {
		a.next.ServeHTTP(w, r)
		return
	}
	if a.users != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="egressgate admin", charset="UTF-8"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="egressgate admin"`)
	}
	http.Error(w, "egressgate: admin credentials required", http.StatusUnauthorized)
}

// allowed reports whether r carries the token or a proxy user's password.
func (a *adminAuth) allowed(r *http.Request) bool {
	hdr := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(hdr, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && a.tokenFile != "":
		tok, err := a.token()
		return err == nil && subtle.ConstantTimeCompare(tok, []byte(strings.TrimSpace(cred))) == 1
	case strings.EqualFold(scheme, "Basic") && a.users != nil:
		name, password, ok := r.BasicAuth()
		u := a.users()
		if !ok || u == nil {
			return false
		}
		// One bcrypt check at a time: the admin listener never takes
		// more than a core from the proxy.
		select {
		case a.checks <- struct{}{}:
		case <-r.Context().Done():
			return false
		}
		es, _ := u.Authenticate(name, password)
		<-a.checks
		return es != nil
	}
	return false
}

// token returns the token file's content, read again when the file
// changed; an empty token is refused.
func (a *adminAuth) token() ([]byte, error) {
	st, err := os.Stat(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok != nil && st.ModTime().Equal(a.tokTime) {
		return a.tok, nil
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) < 16 {
		return nil, fmt.Errorf("--admin-token-file %s: the token must be at least 16 characters", a.tokenFile)
	}
	a.tok, a.tokTime = tok, st.ModTime()
	return tok, nil
}
