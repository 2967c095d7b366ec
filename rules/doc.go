// Package rules turns allowlist catalogs into a compiled, immutable Matcher
// and keeps the current one up to date as its files change.
//
// A catalog is YAML (see docs/catalog.md) or a plain list of
// patterns. A Config names the catalogs to layer and the Policy that picks
// which of their groups are on. Compile builds a Matcher from the selected
// entries; a Reloader swaps a new Matcher in atomically when the files change
// or on demand, keeping the last good one when a file is wrong.
//
// The catalog schema (CatalogFile) is declared once, here: ParseYAML
// reads it, FileOf and FormatYAML write it, and Build checks it, so the
// upkeep tools (rules/upkeep) build catalogs the way an operator's file
// is built. DiffCatalogs and DiffEntries say what changed between two
// catalogs. The exports (Squid, PAC, lists, JSON) are rules/export's.
//
// Matching semantics, the single place they are written down:
//
//   - Hosts are case-folded, lose one trailing dot and are converted from
//     Unicode to IDNA ASCII. A name with an empty label, a label over 63
//     bytes, more than 253 bytes in all, or a byte outside [a-z0-9_-] is
//     invalid and never matches.
//   - "a.example.com" matches only that name.
//   - "*.example.com" matches a name with one or more labels in front of
//     ".example.com" and never "example.com" itself.
//   - A "*" inside a label ("tf-*-bucket.s3.example.com") matches any run of
//     characters within that one label and never crosses a dot. A pattern may
//     not mix a leading "*." with stars inside labels.
//   - An IP-literal host matches only CIDR entries, never a name.
//   - The port must be one of the entry's ports.
//   - When several entries match, the verdict names one: an exact name beats
//     a star inside a label, which beats a leading wildcard, the longest
//     suffix first; among equals, the entry that comes first in catalog order.
//   - An entry the estate's policy refuses (a licence it lacks, Live
//     Response off, another region) still matches, with its own deny
//     reason, so that it beats the wildcards that would admit its host:
//     "*.sophos.com" never lets a refused live-terminal host through.
//
// Estates (see Estate, EstateConfig, docs/estates.md) give each client
// subnet its own effective policy; estates with the same policy share one
// Matcher.
package rules
