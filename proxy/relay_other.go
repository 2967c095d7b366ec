//go:build !linux

package proxy

import "net"

// pipe copies src to dst until EOF or error and adds the bytes to *n; see
// copyChunks. Only Linux has the splicing relay (relay_linux.go).
func (t *tunnel) pipe(dst, src net.Conn, n *int64, _ *burst) (eof bool) {
	return t.copyChunks(dst, src, n)
}

// awaitReset returns at once: only Linux watches a half-closed peer for a
// reset (relay_linux.go).
func (t *tunnel) awaitReset(*burst) {}

// burst is a direction's state between bursts of splices, which only
// Linux has.
type burst struct{}

func (*relayDirs) init(client, upstream net.Conn) {}
