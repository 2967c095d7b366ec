package metrics

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
)

// TestAuthFailureFolding: about 6,000 refused logins left 17 log lines,
// none naming the user. Each client and user now has one line when its
// refusals start and one with their count at the end of the interval,
// and the counter counts them all by result.
func TestAuthFailureFolding(t *testing.T) {
	r, reg, logs := newTest(t, nil, Options{MissLogInterval: time.Hour})
	guesser := netip.MustParseAddr("192.0.2.7")
	other := netip.MustParseAddr("192.0.2.8")
	for i := range 6000 {
		res := proxy.AuthWrongPassword
		if i >= 5 {
			res = proxy.AuthBackoff
		}
		r.AuthFailed(guesser, "alice", res)
	}
	r.AuthFailed(other, "bob\n{\"msg\":\"forged\"}", proxy.AuthUnknownUser)
	r.AuthFailed(other, "", proxy.AuthNoCredentials) // a challenge: counted, not logged
	r.Flush()

	lines := logLines(t, logs)
	if len(lines) != 3 {
		t.Fatalf("%d lines for 6,001 failures of two clients, want 3:\n%s", len(lines), logs)
	}
	want := []struct{ msg, client, user, result string }{
		{MsgAuthFailure, "192.0.2.7", "alice", "wrong-password"},
		{MsgAuthFailure, "192.0.2.8", `bob\n{"msg":"forged"}`, "unknown-user"},
		{MsgAuthFailureFolded, "192.0.2.7", "alice", "backoff"},
	}
	for i, w := range want {
		l := lines[i]
		if l["msg"] != w.msg || l[FieldClient] != w.client || l[FieldUser] != w.user || l[FieldResult] != w.result {
			t.Errorf("line %d = %v, want %+v", i, l, w)
		}
	}
	if n := lines[2][FieldCount]; n != float64(5999) {
		t.Errorf("folded count = %v, want 5999", n)
	}
	for res, want := range map[string]float64{"wrong-password": 5, "backoff": 5995, "unknown-user": 1, "no-credentials": 1, "queue-full": 0} {
		if v, _ := counterValue(t, reg, "egressgate_auth_failures_total", map[string]string{"result": res}); v != want {
			t.Errorf("egressgate_auth_failures_total{result=%q} = %v, want %v", res, v, want)
		}
	}
	if strings.Contains(logs.String(), "password\":") {
		t.Errorf("a line carries a password field:\n%s", logs)
	}
}
