//go:build race

package main

// raceEnabled: the race detector slows everything many times over, so the
// load tests check correctness under it but not their timings.
const raceEnabled = true
