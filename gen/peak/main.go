// Command peak writes the peak-FMA probe of package asm/peak
// (peak_amd64.s, peak_amd64.go) into the current directory; asm/peak's
// go:generate line runs it.
package main

import (
	"log"
	"os"

	"github.com/resnetgen/resnetgen/gen/kernels"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen/peak: ")
	files, err := kernels.EmitPeak()
	if err != nil {
		log.Fatal(err)
	}
	for name, b := range kernels.EmitPeakNEON() {
		files[name] = b
	}
	for _, name := range []string{"peak_amd64.s", "peak_amd64.go", "peak_arm64.s", "peak_arm64.go"} {
		if err := os.WriteFile(name, files[name], 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
