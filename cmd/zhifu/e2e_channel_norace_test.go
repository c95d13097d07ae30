//go:build !race

package main

// raceEnabled: see e2e_channel_race_test.go.
const raceEnabled = false
