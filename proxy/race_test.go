//go:build race

package proxy

// raceEnabled is true under the race detector, which slows bcrypt and
// the HTTP parsing of a 300-connection flood many times over.
const raceEnabled = true
