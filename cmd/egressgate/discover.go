package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// discovered is one host and port found in the artefacts, with every
// place that names it.
type discovered struct {
	host  string
	port  uint16
	from  []upkeep.Found
	entry *rules.Entry // admitting entry; nil when denied
	deny  rules.Reason
}

// runDiscover reads installer artefacts (SophosCloudInstaller.log,
// SophosCloudConfig.plist, bash -x output of SophosSetup.sh), prints each
// host they name and whether the effective policy admits it, and with
// --write writes them as a plain-list catalog to layer on the others.
// Exit 0 when every host is admitted, 3 when some are not, 1 on errors.
func runDiscover(fs *commandLine, args []string, stdout, stderr io.Writer) int {
	config := fs.addConfig()
	write := fs.String("write", "", "write the hosts found as a plain-list catalog to `file`")
	artefacts, exit, ok := fs.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	if len(artefacts) == 0 {
		return fs.fail(stderr, "missing ARTEFACT: SophosCloudInstaller.log, SophosCloudConfig.plist, or saved output of sudo bash -x ./SophosSetup.sh")
	}
	rs, ok := loadConfig(*config, stderr)
	if !ok {
		return 1
	}
	exit = 0
	var hosts []*discovered
	var read []string // files that named hosts
	byKey := map[string]*discovered{}
	for _, path := range artefacts {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "egressgate discover: %v\n", err)
			exit = 1
			continue
		}
		found, err := upkeep.Discover(path, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			exit = 1
			continue
		}
		read = append(read, path)
		for _, f := range found {
			key := f.Host + ":" + strconv.Itoa(int(f.Port))
			d := byKey[key]
			if d == nil {
				d = &discovered{host: f.Host, port: f.Port}
				v := rs.Matcher.Lookup(f.Host, f.Port)
				if v.Allow {
					d.entry = v.Entry
				}
				d.deny = v.Reason
				byKey[key] = d
				hosts = append(hosts, d)
			}
			d.from = append(d.from, f)
		}
	}
	if len(hosts) == 0 {
		return 1
	}
	denied := writeDiscovered(stdout, hosts)
	if *write != "" {
		if err := os.WriteFile(*write, overlayList(hosts, read), 0o644); err != nil {
			fmt.Fprintf(stderr, "egressgate discover: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nwrote %s: add it to the config's catalogs (see docs/catalog-upkeep.md)\n", *write)
	}
	if exit == 0 && denied > 0 {
		exit = 3
	}
	return exit
}

// writeDiscovered prints one block per host and port: the verdict and
// the admitting entry, or the hint and the line to add; then where it was
// found. It returns how many the policy does not admit.
func writeDiscovered(w io.Writer, hosts []*discovered) (denied int) {
	for _, d := range hosts {
		if e := d.entry; e != nil {
			fmt.Fprintf(w, "%s:%d  admitted by %s/%s (%s)\n", d.host, d.port, e.Catalog, e.Pattern, strings.Join(e.GroupIDs(), ","))
		} else {
			denied++
			fmt.Fprintf(w, "%s:%d  DENIED (%s)\n", d.host, d.port, d.deny)
			if ah, ok := upkeep.LooksLikeAccountHost(d.host); ok && d.deny == rules.ReasonNotInCatalog {
				fmt.Fprintf(w, "  %s (%s)\n  add: %s\n", upkeep.AccountHostHint, ah.Role, ah.Line(d.host, d.port))
			}
		}
		fmt.Fprintf(w, "  found in %s\n", foundIn(d.from))
	}
	fmt.Fprintf(w, "%d hosts, %d admitted, %d not admitted\n", len(hosts), len(hosts)-denied, denied)
	return denied
}

// foundIn lists where a host was named: "file:line (what)", repeats of one
// file joined.
func foundIn(from []upkeep.Found) string {
	parts := make([]string, 0, len(from))
	for _, f := range from {
		parts = append(parts, fmt.Sprintf("%s (%s)", f.Pos, f.Where))
	}
	return strings.Join(parts, ", ")
}

// overlayList is the plain-list catalog --write produces: one line per
// host with all its ports, and a comment naming where each was found.
func overlayList(hosts []*discovered, files []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# This account's own hosts, found by \"egressgate discover\" in:\n")
	for _, f := range files {
		fmt.Fprintf(&b, "#   %s\n", strings.ReplaceAll(f, "\n", " "))
	}
	b.WriteString("# Layer it on the embedded catalog: catalogs: [{path: THIS-FILE, name: account-hosts}]\n")
	var order []string
	ports := map[string][]uint16{}
	from := map[string][]upkeep.Found{}
	known := map[string]string{}
	for _, d := range hosts {
		if e := d.entry; e != nil && e.Kind == rules.KindExact {
			known[d.host] = e.Catalog
		}
		if _, ok := ports[d.host]; !ok {
			order = append(order, d.host)
		}
		if !slices.Contains(ports[d.host], d.port) {
			ports[d.host] = append(ports[d.host], d.port)
		}
		from[d.host] = append(from[d.host], d.from...)
	}
	for _, h := range order {
		ps := slices.Clone(ports[h])
		slices.Sort(ps)
		list := make([]string, len(ps))
		for i, p := range ps {
			list[i] = strconv.Itoa(int(p))
		}
		// The comment must stay on its line: a file name with a line
		// break would start a line of the catalog.
		note := ""
		if c := known[h]; c != "" {
			note = "; also in " + c
		}
		fmt.Fprintf(&b, "%s:%s\t# from %s%s\n", h, strings.Join(list, ","), strings.NewReplacer("\n", " ", "\r", " ").Replace(foundIn(from[h])), note)
	}
	return b.Bytes()
}
