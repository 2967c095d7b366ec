//go:build !race

package proxy

// raceEnabled is true under the race detector (race_test.go).
const raceEnabled = false
