// Package proxy is egressgate's data path: the forward-proxy listener
// (CONNECT and plain HTTP), the transparent SNI listener, the admission
// steps they share (client ACL, verdict, destination check, dial) and the
// spliced tunnels; and two things built on those steps for endpoints: the
// PAC file served on the proxy port (pac.go) and the probe that resolves
// and dials every catalog name ahead of time (probe.go).
package proxy
