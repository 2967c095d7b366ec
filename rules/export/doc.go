// Package export writes an estate's effective allowlist for other
// enforcement points and for people: a plain list (itself a catalog), YAML,
// Squid ACLs with the deny rules its policy needs, a proxy auto-config
// file (the one the proxy serves at /proxy.pac), bare host names and JSON.
//
// Every format is written from one View: the estate's entries in the
// matcher's order, each resolved once into an Entry with everything it
// inherits from its groups and sections. The package reads rules and
// nothing else of egressgate, so the proxy can serve the PAC file it
// writes and the command line can print every format.
package export
