//go:build !race

package main

// raceEnabled reports whether the race detector is on: its runtime
// allocates more, so allocation bounds differ.
const raceEnabled = false
