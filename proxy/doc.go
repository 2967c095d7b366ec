// Package proxy is egressgate's data path: the forward-proxy listener
// (CONNECT and plain HTTP), the transparent SNI listener, the admission
// steps they share (client ACL, verdict, destination check, dial) and the
// spliced tunnels; and the PAC file served on the proxy port (pac.go).
// Its resolve-and-check step is exported (Config.Resolve) for the probe,
// proxy/probe, which runs it ahead of time over every catalog name.
package proxy
