// Package proxy is egressgate's data path: the forward-proxy listener
// (CONNECT and plain HTTP), the transparent SNI listener, the admission
// steps they share (client ACL, verdict, destination check, dial) and the
// spliced tunnels.
package proxy
