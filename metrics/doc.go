// Package metrics records what the proxy decides: Prometheus collectors per
// catalog entry, the miss log, and the usage report served on the admin
// listener.
package metrics
