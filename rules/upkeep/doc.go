// Package upkeep keeps a catalog in step with its vendor: ImportPage reads
// a saved copy of the vendor's "Domains and ports to allow" page into the
// catalog schema, Discover finds an account's own hosts in installer
// artefacts (logs, property lists, setup traces), and LooksLikeAccountHost
// recognises the shapes of those hosts among the misses.
//
// It is used by the command line and the admin pages, never on the data
// path, and it reads rules and nothing else of egressgate: a catalog it
// builds goes through the same rules.CatalogFile and Build as a file an
// operator writes. docs/catalog-upkeep.md is the operator's guide.
package upkeep
