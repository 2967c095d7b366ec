package proxy

import (
	"net/netip"
	"testing"
)

// TestDefaultClientsAreTheCallers pins that a caller who changes the
// default client list, or a Config's list filled from it, changes no
// other server's.
func TestDefaultClientsAreTheCallers(t *testing.T) {
	mine := DefaultClients()
	mine[0] = netip.MustParsePrefix("0.0.0.0/0")
	cfg, err := Config{Rules: StaticRules{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients[1] = netip.MustParsePrefix("0.0.0.0/0")
	if got := DefaultClients(); got[0] != netip.MustParsePrefix("127.0.0.0/8") || got[1] != netip.MustParsePrefix("::1/128") {
		t.Errorf("DefaultClients() = %v after callers changed their copies", got)
	}
}
