package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// envPrefix begins the environment variable of every serve flag.
const envPrefix = "EGRESSGATE_"

// envName is the environment variable that sets the flag called name:
// EGRESSGATE_ and the name in upper case, '-' as '_' (--sni-listen is
// EGRESSGATE_SNI_LISTEN).
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// setFromEnv sets each flag of fs that the command line left unset from
// its environment variable (envName), so that a container platform can
// configure serve without a command line; the command line wins. With
// names given, only those flags are looked up. An empty variable counts
// as unset, as a compose file's "${VAR:-}" leaves it. A flag set this way
// counts as given (fs.Visit sees it), so it overrides the config file as
// the flag would.
//
// The flags are walked with VisitAll, so a flag added to the set gets
// its variable without further work.
func setFromEnv(fs *flag.FlagSet, names ...string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || len(names) > 0 && !slices.Contains(names, f.Name) {
			return
		}
		v := os.Getenv(envName(f.Name))
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("environment %s=%q (--%s): %w", envName(f.Name), v, f.Name, serr)
		}
	})
	return err
}
