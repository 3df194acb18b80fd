//go:build race

package engine_test

// race is whether the race detector is on: it multiplies the memory a
// process uses, so memory bounds do not hold under it.
const race = true
