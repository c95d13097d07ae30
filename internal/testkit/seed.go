package testkit

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// SeedEnv names the environment variable that replays a randomised test:
// set it to the seed a failed run logged.
const SeedEnv = "ZHIFU_TEST_SEED"

// Seed returns the seed of a randomised test: the one in ZHIFU_TEST_SEED if
// set, else a fresh one. It logs the seed and how to replay it, which the
// output of a failed test then shows.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed, ok := envSeed(t)
	if !ok {
		seed = rand.Uint64()
	}
	logReplay(t, seed)
	return seed
}

// Seeds returns the seeds of a test that runs n randomised rounds, each as a
// subtest named after its seed: the one in ZHIFU_TEST_SEED alone if set,
// else n fresh ones. It logs them and how to replay one.
func Seeds(t testing.TB, n int) []uint64 {
	t.Helper()
	if seed, ok := envSeed(t); ok {
		logReplay(t, seed)
		return []uint64{seed}
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	t.Logf("seeds %v (replay one: %s=<seed> go test -run '^%s$')", seeds, SeedEnv, t.Name())
	return seeds
}

func logReplay(t testing.TB, seed uint64) {
	t.Helper()
	t.Logf("seed %d (replay: %s=%d go test -run '^%s$')", seed, SeedEnv, seed, t.Name())
}

// getenv is os.Getenv, replaceable by this package's tests.
var getenv = os.Getenv

func envSeed(t testing.TB) (uint64, bool) {
	t.Helper()
	v := getenv(SeedEnv)
	if v == "" {
		return 0, false
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: want an unsigned decimal integer", SeedEnv, v)
	}
	return seed, true
}
