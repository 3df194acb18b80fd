//go:build race

package main

// raceBuild: the test runs under the race detector, so the binaries it
// builds of this command have it on too.
const raceBuild = true
